import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AgentsModule } from '../agents/agents.module.js';
import { AuditModule } from '../audit/audit.module.js';
import { CallsModule } from '../calls/calls.module.js';
import { RateLimitModule } from '../common/rate-limit/rate-limit.module.js';
import { MessagesModule } from '../messages/messages.module.js';
import { type AmiGatewayRef, AsteriskDriver } from './asterisk/asterisk.driver.js';
import { AsteriskSupervisor } from './asterisk/asterisk-supervisor.service.js';
import { DialpadDriver } from './dialpad/dialpad.driver.js';
import { NetsapiensDriver } from './netsapiens/netsapiens.driver.js';
import { TwilioDriver } from './twilio/twilio.driver.js';
import { ClickToCallController } from './click-to-call/click-to-call.controller.js';
import { ClickToCallService } from './click-to-call/click-to-call.service.js';
import { OAuthStateEntity } from './connections/oauth-state.entity.js';
import { PbxConnectionEntity } from './connections/pbx-connection.entity.js';
import { PbxConnectionsController } from './connections/pbx-connections.controller.js';
import { PbxConnectionsService } from './connections/pbx-connections.service.js';
import { ProviderSetupController } from './connections/provider-setup.controller.js';
import { ProviderSetupService } from './connections/provider-setup.service.js';
import { WebhookInboxEntity } from './inbox/webhook-inbox.entity.js';
import { WebhookInboxService } from './inbox/webhook-inbox.service.js';
import { WebhooksController } from './inbox/webhooks.controller.js';
import type { PbxDriver } from './pbx-provider.js';
import { PbxRegistry } from './pbx-registry.js';
import { SecretBox } from '../common/crypto/secret-box.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import { AMI_GATEWAY_REF, PBX_DRIVERS } from './pbx.tokens.js';

/** Every PBX driver, one per vendor: the registry picks one per connection. */
export function createDrivers(ami: AmiGatewayRef = {}): PbxDriver[] {
  return [new AsteriskDriver(ami), new DialpadDriver(), new TwilioDriver(), new NetsapiensDriver()] as PbxDriver[];
}
export const DRIVERS: PbxDriver[] = createDrivers();

@Module({
  imports: [
    TypeOrmModule.forFeature([PbxConnectionEntity, WebhookInboxEntity, OAuthStateEntity]),
    AgentsModule,
    AuditModule,
    CallsModule,
    MessagesModule,
    RateLimitModule,
  ],
  controllers: [PbxConnectionsController, ProviderSetupController, WebhooksController, ClickToCallController],
  providers: [
    // One per application (a factory, not a shared value): tests run several apps in one process.
    { provide: AMI_GATEWAY_REF, useFactory: (): AmiGatewayRef => ({}) },
    { provide: PBX_DRIVERS, useFactory: (ref: AmiGatewayRef) => createDrivers(ref), inject: [AMI_GATEWAY_REF] },
    AsteriskSupervisor,
    PbxRegistry,
    // One key ring for every sealed value of the module (connection secrets, OAuth verifiers).
    {
      provide: SecretBox,
      useFactory: (config: ResolvedConfig) => new SecretBox(config.PBX_SECRETS_KEY, config.PBX_SECRETS_KEYS_PREVIOUS),
      inject: [APP_CONFIG],
    },
    PbxConnectionsService,
    ProviderSetupService,
    WebhookInboxService,
    ClickToCallService,
  ],
  exports: [PbxConnectionsService, PbxRegistry, AsteriskSupervisor],
})
export class PbxModule {}
