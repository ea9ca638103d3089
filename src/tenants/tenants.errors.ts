import { defineErrors } from '../common/errors/catalogue.js';
import { COMMON_ERRORS } from '../common/errors/common.errors.js';

/** Errors of companies, API keys and the operator API (and the shared codes). */
export const tenantsError = defineErrors(
  {
    'slug-taken': { status: 409, description: 'Another company has this slug.' },
    'api-key-revoked': { status: 409, description: 'A revoked API key cannot be rotated.' },
  },
  COMMON_ERRORS,
);
