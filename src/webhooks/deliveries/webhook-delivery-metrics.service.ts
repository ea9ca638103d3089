import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram } from 'prom-client';
import { MetricsService } from '../../health/metrics.service.js';
import { WebhookDispatcherService } from './webhook-dispatcher.service.js';

/**
 * Outbound delivery metrics on the application registry: attempts by outcome (success, failure
 * that will be retried, gave_up: the last attempt failed), attempt durations, and the deliveries
 * pending per endpoint (all instances; one GROUP BY at scrape time).
 */
@Injectable()
export class WebhookDeliveryMetricsService {
  constructor(metrics: MetricsService, dispatcher: WebhookDispatcherService) {
    const registers = [metrics.registry];
    new Counter({
      name: 'webhook_deliveries_total',
      help: 'Outbound webhook attempts by outcome (this instance)',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset();
        for (const [outcome, n] of Object.entries(dispatcher.outcomes)) this.inc({ outcome }, n);
      },
    });
    const histogram = new Histogram({
      name: 'webhook_delivery_duration_seconds',
      help: 'Duration of outbound webhook attempts (request to the end of the response read)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    dispatcher.onAttemptDuration((seconds) => histogram.observe(seconds));
    new Gauge({
      name: 'webhook_deliveries_pending',
      help: 'Outbound webhook deliveries pending or in flight, by endpoint (all instances)',
      labelNames: ['endpoint_id'],
      registers,
      async collect() {
        this.reset();
        for (const { endpointId, pending } of await dispatcher.pendingByEndpoint()) {
          this.set({ endpoint_id: endpointId }, pending);
        }
      },
    });
  }
}
