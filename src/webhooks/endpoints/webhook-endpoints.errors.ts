import { defineErrors } from '../../common/errors/catalogue.js';
import { COMMON_ERRORS } from '../../common/errors/common.errors.js';

/** Errors of outbound webhook endpoints (and the shared codes). */
export const webhookEndpointsError = defineErrors(
  {
    'webhook-target-refused': {
      status: 400,
      description:
        'The endpoint URL targets an address webhooks may not reach (loopback, private, link-local, CGNAT, ' +
        'multicast, metadata …), does not resolve, carries credentials, or is plain http to a target that is ' +
        'not allow-listed; `field` is `url`, `reason` says which.',
    },
    'webhook-endpoint-limit': {
      status: 422,
      description: 'The company has as many webhook endpoints as allowed (WEBHOOK_ENDPOINTS_PER_COMPANY).',
    },
  },
  COMMON_ERRORS,
);
