import { defineErrors } from '../common/errors/catalogue.js';
import { COMMON_ERRORS } from '../common/errors/common.errors.js';

/** Errors of sign-in, sessions and the access guard (and the shared codes). */
export const authError = defineErrors(
  {
    // Always 401: a wrong e-mail or password at sign-in. A wrong `currentPassword` when a signed-in
    // user changes the password is 400 `validation-failed` on that field instead, so that a
    // client's 401 handling (sign the user out) does not fire on a typo.
    'invalid-credentials': { status: 401, description: 'The e-mail or the password is wrong.' },
    'invalid-refresh-token': {
      status: 401,
      description: 'The refresh token is unknown, expired, revoked or not yours; sign in again.',
    },
    'refresh-token-reused': {
      status: 401,
      description: 'A rotated refresh token was used again; its whole session is ended.',
    },
    'registration-disabled': { status: 403, description: 'Self-service registration is switched off.' },
  },
  COMMON_ERRORS,
);
