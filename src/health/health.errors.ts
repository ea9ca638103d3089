import { defineErrors } from '../common/errors/catalogue.js';
import { COMMON_ERRORS } from '../common/errors/common.errors.js';

/** Errors of the health endpoints. */
export const healthError = defineErrors(
  {
    'not-ready': {
      status: 503,
      description: 'A dependency is unreachable (or the service is stopping); `checks` says which.',
    },
  },
  COMMON_ERRORS,
);
