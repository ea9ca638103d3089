/**
 * The time outbound deliveries run on (due attempts, leases, backoff, the failure window that
 * disables an endpoint). Tests replace `now` to move time forward instead of waiting for it.
 */
export class WebhookClock {
  now(): Date {
    return new Date();
  }
}
