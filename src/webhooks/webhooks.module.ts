import { Module } from '@nestjs/common';
import { WebhookDeliveriesModule } from './deliveries/webhook-deliveries.module.js';
import { WebhookEndpointsModule } from './endpoints/webhook-endpoints.module.js';
import { WebhookInboxModule } from './inbox/webhook-inbox.module.js';
import { IncomingWebhooksModule } from './incoming/incoming-webhooks.module.js';

/**
 * Webhooks, both ways (DESIGN.md "Layout"). Inbound: the durable inbox and its batch processing
 * (provider webhooks, verified and mapped by their drivers behind the PBX port) and the generic
 * incoming webhook. Outbound: endpoints, signed deliveries, retries, delivery log, replay.
 */
@Module({
  imports: [WebhookInboxModule, IncomingWebhooksModule, WebhookEndpointsModule, WebhookDeliveriesModule],
  exports: [WebhookInboxModule],
})
export class WebhooksModule {}
