import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuditModule } from '../../audit/audit.module.js';
import { RateLimitModule } from '../../common/rate-limit/rate-limit.module.js';
import { WebhookInboxModule } from '../inbox/webhook-inbox.module.js';
import { IncomingWebhookSecretEntity } from './incoming-webhook-secret.entity.js';
import { IncomingWebhookSecretsService } from './incoming-webhook-secrets.service.js';
import { IncomingWebhooksController } from './incoming-webhooks.controller.js';
import { IncomingWebhooksService } from './incoming-webhooks.service.js';
import { webhookSecretBox } from '../webhook-secrets.js';

/**
 * The generic incoming webhook (Standard Webhooks): a per-company secret (created, rotated with
 * an overlap, revoked, audited) and `POST /api/v1/webhooks/incoming/:companyId`, verified and
 * written to the inbox (provider `generic`), processed by the inbox processor.
 */
@Module({
  imports: [TypeOrmModule.forFeature([IncomingWebhookSecretEntity]), WebhookInboxModule, AuditModule, RateLimitModule],
  controllers: [IncomingWebhooksController],
  providers: [webhookSecretBox, IncomingWebhookSecretsService, IncomingWebhooksService],
})
export class IncomingWebhooksModule {}
