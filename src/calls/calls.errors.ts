import { defineErrors } from '../common/errors/catalogue.js';
import { type AppException, COMMON_ERRORS } from '../common/errors/common.errors.js';

/**
 * Errors of the calls module (and the shared codes: `not-found`, `validation-failed` …),
 * click-to-call's commands included. A vendor's refusal stays a pbx code: click-to-call throws
 * `pbxError('pbx-unsupported', …)` (src/pbx/pbx.errors.ts) or maps a PbxError through pbx-errors.ts.
 */
export const callsError = defineErrors(
  {
    'call-not-answered': { status: 409, description: 'DTMF needs an answered call.' },
    'call-not-controllable': {
      status: 409,
      description: 'The call was not made through a phone-system connection, or its connection was removed.',
    },
    'call-ended': { status: 409, description: 'The call has ended.' },
    'no-pbx-connection': {
      status: 409,
      description: 'The company has no phone-system connection that can place calls; create one first.',
    },
    'unsupported-by-provider': {
      status: 501,
      description: "The vendor's API has no such operation (see the capability matrix); `provider` names it.",
    },
  },
  COMMON_ERRORS,
);

/** The answer for a call that does not exist or that the caller may not see (404, like a missing one). */
export function callNotFound(): AppException {
  return callsError('not-found', 'No such call.');
}
