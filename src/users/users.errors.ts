import { defineErrors } from '../common/errors/catalogue.js';
import { COMMON_ERRORS } from '../common/errors/common.errors.js';

/** Errors of the users module (and the shared codes: not-found, forbidden …). */
export const usersError = defineErrors(
  {
    'email-taken': { status: 409, description: 'A user with this e-mail already exists.' },
    'last-owner': { status: 409, description: 'The change would leave the company without an owner.' },
  },
  COMMON_ERRORS,
);
