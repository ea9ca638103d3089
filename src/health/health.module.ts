import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PbxModule } from '../pbx/pbx.module.js';
import { WebhookInboxModule } from '../webhooks/inbox/webhook-inbox.module.js';
import { HealthController } from './health.controller.js';
import { LifecycleService } from './lifecycle.service.js';
import { MetricsService } from './metrics.service.js';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), PbxModule, WebhookInboxModule],
  controllers: [HealthController],
  providers: [MetricsService, LifecycleService],
  exports: [MetricsService, LifecycleService],
})
export class HealthModule {}
