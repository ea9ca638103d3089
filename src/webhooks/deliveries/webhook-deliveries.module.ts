import { Module } from '@nestjs/common';

/** Outbound deliveries: fan-out of company events, signed POSTs, retries, delivery log, replay. */
@Module({})
export class WebhookDeliveriesModule {}
