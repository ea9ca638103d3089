import { defineErrors } from '../common/errors/catalogue.js';
import { COMMON_ERRORS } from '../common/errors/common.errors.js';

/** Voicemail and SMS records raise only shared codes (`not-found`) today. */
export const messagesError = defineErrors({}, COMMON_ERRORS);
