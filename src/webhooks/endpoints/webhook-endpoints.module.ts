import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import { createDefaultDnsLookup, SsrfGuard, WEBHOOK_DNS_LOOKUP } from './ssrf-guard.js';
import { WebhookEndpointEntity } from './webhook-endpoint.entity.js';
import { WebhookEndpointsController } from './webhook-endpoints.controller.js';
import { WebhookEndpointsService } from './webhook-endpoints.service.js';
import { webhookSecretBox } from '../webhook-secrets.js';

/** Outbound webhook endpoints: subscriptions, secrets, SSRF guard. */
@Module({
  imports: [TypeOrmModule.forFeature([WebhookEndpointEntity])],
  controllers: [WebhookEndpointsController],
  providers: [
    webhookSecretBox,
    {
      provide: WEBHOOK_DNS_LOOKUP,
      useFactory: (config: ResolvedConfig) => createDefaultDnsLookup(config),
      inject: [APP_CONFIG],
    },
    SsrfGuard,
    WebhookEndpointsService,
  ],
  exports: [WebhookEndpointsService, SsrfGuard],
})
export class WebhookEndpointsModule {}
