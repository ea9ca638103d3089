import { defineErrors } from '../../common/errors/catalogue.js';
import { COMMON_ERRORS } from '../../common/errors/common.errors.js';

/**
 * Errors of the generic incoming webhook (and the shared codes: `not-found` for an unknown company
 * or one without a secret, `company-suspended`, `validation-failed`, `too-many-requests` …). The
 * issue wants 403 for a missing or wrong signature here (provider webhooks answer 401
 * `invalid-signature`), hence a code of its own.
 */
export const incomingError = defineErrors(
  {
    'incoming-signature-invalid': {
      status: 403,
      description:
        'The Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) are missing, or no ' +
        "signature verifies with the company's incoming webhook secret.",
    },
    'stale-webhook': { status: 403, description: "A signed webhook's own time is outside the accepted window." },
    'unsupported-media-type': { status: 415, description: 'The body must be JSON (`application/json`).' },
  },
  COMMON_ERRORS,
);
