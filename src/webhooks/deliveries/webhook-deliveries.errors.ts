import { defineErrors } from '../../common/errors/catalogue.js';
import { COMMON_ERRORS } from '../../common/errors/common.errors.js';

/** Errors of outbound deliveries: the delivery log, retries, replays and tests (and the shared codes). */
export const deliveriesError = defineErrors(
  {
    'delivery-in-flight': {
      status: 409,
      description: 'The delivery is being sent right now; retry once its attempt is over.',
    },
    'replay-window-invalid': {
      status: 422,
      description:
        'The replay window cannot be served: `until` is before `since`, or `since` is older than the events kept.',
    },
    'replay-too-large': {
      status: 422,
      description: 'The replay window holds more events than WEBHOOK_REPLAY_MAX_EVENTS; replay a shorter window.',
    },
  },
  COMMON_ERRORS,
);
