import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CallsModule } from '../../calls/calls.module.js';
import { RateLimitModule } from '../../common/rate-limit/rate-limit.module.js';
import { MessagesModule } from '../../messages/messages.module.js';
import { PbxModule } from '../../pbx/pbx.module.js';
import { WebhookInboxEntity } from './webhook-inbox.entity.js';
import { WebhookInboxService } from './webhook-inbox.service.js';
import { WebhookInboxProcessorService } from './webhook-inbox-processor.service.js';
import { WebhooksController } from './webhooks.controller.js';

/**
 * The durable inbox of inbound webhooks: provider webhooks (verified and mapped by the vendor's
 * driver behind the PBX port) and the generic incoming webhook are written here before they are
 * answered, then processed in batches.
 */
@Module({
  imports: [TypeOrmModule.forFeature([WebhookInboxEntity]), PbxModule, CallsModule, MessagesModule, RateLimitModule],
  controllers: [WebhooksController],
  providers: [WebhookInboxService, WebhookInboxProcessorService],
  exports: [WebhookInboxService, WebhookInboxProcessorService],
})
export class WebhookInboxModule {}
