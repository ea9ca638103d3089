import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuditModule } from '../../audit/audit.module.js';
import { SecretBox } from '../../common/crypto/secret-box.js';
import { RateLimitModule } from '../../common/rate-limit/rate-limit.module.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import { WebhookInboxModule } from '../inbox/webhook-inbox.module.js';
import { IncomingWebhookSecretEntity } from './incoming-webhook-secret.entity.js';
import { IncomingWebhookSecretsService } from './incoming-webhook-secrets.service.js';
import { IncomingWebhooksController } from './incoming-webhooks.controller.js';
import { IncomingWebhooksService } from './incoming-webhooks.service.js';

/**
 * The generic incoming webhook (Standard Webhooks): a per-company secret (created, rotated with
 * an overlap, revoked, audited) and `POST /api/v1/webhooks/incoming/:companyId`, verified and
 * written to the inbox (provider `generic`), processed by the inbox processor.
 */
@Module({
  imports: [TypeOrmModule.forFeature([IncomingWebhookSecretEntity]), WebhookInboxModule, AuditModule, RateLimitModule],
  controllers: [IncomingWebhooksController],
  providers: [
    // Secrets sealed with the same key ring as the PBX connections' (PBX_SECRETS_KEY, previous keys).
    {
      provide: SecretBox,
      useFactory: (config: ResolvedConfig) => new SecretBox(config.PBX_SECRETS_KEY, config.PBX_SECRETS_KEYS_PREVIOUS),
      inject: [APP_CONFIG],
    },
    IncomingWebhookSecretsService,
    IncomingWebhooksService,
  ],
})
export class IncomingWebhooksModule {}
