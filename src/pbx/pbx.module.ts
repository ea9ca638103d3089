import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AgentsModule } from '../agents/agents.module.js';
import { AuditModule } from '../audit/audit.module.js';
import { CallsModule } from '../calls/calls.module.js';
import { RateLimitModule } from '../common/rate-limit/rate-limit.module.js';
import { MessagesModule } from '../messages/messages.module.js';
import { AsteriskDriver } from './asterisk/asterisk.driver.js';
import { ClickToCallController } from './click-to-call/click-to-call.controller.js';
import { ClickToCallService } from './click-to-call/click-to-call.service.js';
import { OAuthStateEntity } from './connections/oauth-state.entity.js';
import { PbxConnectionEntity } from './connections/pbx-connection.entity.js';
import { PbxConnectionsController } from './connections/pbx-connections.controller.js';
import { PbxConnectionsService } from './connections/pbx-connections.service.js';
import { WebhookInboxEntity } from './inbox/webhook-inbox.entity.js';
import { WebhookInboxService } from './inbox/webhook-inbox.service.js';
import { WebhooksController } from './inbox/webhooks.controller.js';
import type { PbxDriver } from './pbx-provider.js';
import { PbxRegistry } from './pbx-registry.js';
import { PBX_DRIVERS } from './pbx.tokens.js';

/** Every PBX driver, one per vendor: the registry picks one per connection. */
export const DRIVERS: PbxDriver[] = [new AsteriskDriver()];

@Module({
  imports: [
    TypeOrmModule.forFeature([PbxConnectionEntity, WebhookInboxEntity, OAuthStateEntity]),
    AgentsModule,
    AuditModule,
    CallsModule,
    MessagesModule,
    RateLimitModule,
  ],
  controllers: [PbxConnectionsController, WebhooksController, ClickToCallController],
  providers: [
    { provide: PBX_DRIVERS, useValue: DRIVERS },
    PbxRegistry,
    PbxConnectionsService,
    WebhookInboxService,
    ClickToCallService,
  ],
  exports: [PbxConnectionsService, PbxRegistry],
})
export class PbxModule {}
