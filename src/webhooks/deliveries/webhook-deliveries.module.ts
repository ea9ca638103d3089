import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { HealthModule } from '../../health/health.module.js';
import { WebhookEndpointsModule } from '../endpoints/webhook-endpoints.module.js';
import { WebhookClock } from './webhook-clock.js';
import { WebhookDeliveriesController } from './webhook-deliveries.controller.js';
import { WebhookDeliveriesService } from './webhook-deliveries.service.js';
import { WebhookDeliveryAttemptEntity, WebhookDeliveryEntity } from './webhook-delivery.entity.js';
import { WebhookDeliveryMetricsService } from './webhook-delivery-metrics.service.js';
import { WebhookDispatcherService } from './webhook-dispatcher.service.js';

/**
 * Outbound deliveries: fan-out of company events, signed POSTs, retries, delivery log, replay,
 * test sends. Exports the dispatcher (benchmarks) and the clock (tests move it).
 */
@Module({
  imports: [
    TypeOrmModule.forFeature([WebhookDeliveryEntity, WebhookDeliveryAttemptEntity]),
    WebhookEndpointsModule,
    HealthModule,
  ],
  controllers: [WebhookDeliveriesController],
  providers: [WebhookClock, WebhookDispatcherService, WebhookDeliveriesService, WebhookDeliveryMetricsService],
  exports: [WebhookDispatcherService, WebhookClock],
})
export class WebhookDeliveriesModule {}
