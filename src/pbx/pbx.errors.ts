import { defineErrors } from '../common/errors/catalogue.js';
import { COMMON_ERRORS } from '../common/errors/common.errors.js';

/**
 * Errors of the pbx module (and the shared codes: `not-found`, `conflict`, `company-suspended`,
 * `validation-failed` …): connections, provider setup, webhook ingest, and the one map from our
 * PbxError codes to problems (pbx-errors.ts).
 */
export const pbxError = defineErrors(
  {
    // pbx-errors.ts: PbxError code → problem (never from vendor text).
    'pbx-auth-failed': { status: 502, description: "The phone system refused this connection's credentials." },
    'pbx-bad-gateway': { status: 502, description: 'The phone system answered with a server error; retry later.' },
    'pbx-rate-limited': { status: 503, description: 'The phone system asks us to slow down; `Retry-After` says when.' },
    'pbx-unavailable': { status: 503, description: 'The phone system cannot be reached; retry later.' },
    'pbx-rejected': { status: 422, description: 'The phone system understood and refused the request.' },
    'pbx-call-not-found': { status: 404, description: 'The phone system does not know this call.' },
    'pbx-unsupported': { status: 422, description: 'This phone system has no such command.' },
    // Webhook ingest.
    'invalid-signature': { status: 401, description: 'The webhook signature is missing or does not verify.' },
    'stale-webhook': { status: 403, description: "A signed webhook's own time is outside the accepted window." },
    'malformed-webhook': { status: 400, description: 'The webhook body cannot be read.' },
    // Provider setup (Dialpad OAuth).
    'oauth-denied': { status: 400, description: 'The provider did not authorize the connection.' },
    'invalid-oauth-state': {
      status: 400,
      description: 'The authorization is unknown, used already, or expired: start again.',
    },
    'wrong-provider': { status: 409, description: 'The connection belongs to another provider.' },
    'connection-incomplete': {
      status: 409,
      description: 'The connection lacks a credential this step needs (`detail` says which and how to set it).',
    },
  },
  COMMON_ERRORS,
);
