import { Module } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AgentsModule } from '../agents/agents.module.js';
import { AuditModule } from '../audit/audit.module.js';
import { CallsModule } from '../calls/calls.module.js';
import { RateLimitModule } from '../common/rate-limit/rate-limit.module.js';
import { MessagesModule } from '../messages/messages.module.js';
import { type AmiGatewayLookup, AsteriskDriver } from './asterisk/asterisk.driver.js';
import { AsteriskSupervisor } from './asterisk/asterisk-supervisor.service.js';
import { DialpadDriver } from './dialpad/dialpad.driver.js';
import { NetsapiensDriver } from './netsapiens/netsapiens.driver.js';
import { TwilioDriver } from './twilio/twilio.driver.js';
import { OAuthStateEntity } from './connections/oauth-state.entity.js';
import { PbxConnectionEntity } from './connections/pbx-connection.entity.js';
import { PbxConnectionsController } from './connections/pbx-connections.controller.js';
import { PbxConnectionsService } from './connections/pbx-connections.service.js';
import { ProviderSetupController } from './connections/provider-setup.controller.js';
import { ProviderSetupService } from './connections/provider-setup.service.js';
import type { PbxDriver } from './pbx-provider.js';
import { PbxRegistry } from './pbx-registry.js';
import { SecretBox } from '../common/crypto/secret-box.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import { PBX_DRIVERS } from './pbx.tokens.js';

/** Every PBX driver, one per vendor: the registry picks one per connection. */
export function createDrivers(ami: AmiGatewayLookup = () => undefined): PbxDriver[] {
  return [new AsteriskDriver(ami), new DialpadDriver(), new TwilioDriver(), new NetsapiensDriver()] as PbxDriver[];
}
export const DRIVERS: PbxDriver[] = createDrivers();

@Module({
  imports: [
    TypeOrmModule.forFeature([PbxConnectionEntity, OAuthStateEntity]),
    AgentsModule,
    AuditModule,
    CallsModule,
    MessagesModule,
    RateLimitModule,
  ],
  controllers: [PbxConnectionsController, ProviderSetupController],
  providers: [
    // One set per application (tests run several apps in one process). The Asterisk driver finds
    // this application's supervisor when a command runs: the supervisor needs the registry (through
    // the connections), so it cannot be injected into the drivers it serves.
    {
      provide: PBX_DRIVERS,
      useFactory: (modules: ModuleRef) =>
        createDrivers(() => {
          try {
            return modules.get(AsteriskSupervisor, { strict: true });
          } catch {
            return undefined;
          }
        }),
      inject: [ModuleRef],
    },
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
  ],
  exports: [PbxConnectionsService, PbxRegistry, ProviderSetupService, AsteriskSupervisor],
})
export class PbxModule {}
