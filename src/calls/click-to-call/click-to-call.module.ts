import { Module } from '@nestjs/common';
import { AgentsModule } from '../../agents/agents.module.js';
import { PbxModule } from '../../pbx/pbx.module.js';
import { CallsModule } from '../calls.module.js';
import { ClickToCallAliasesController } from './click-to-call-aliases.controller.js';
import { ClickToCallController } from './click-to-call.controller.js';
import { ClickToCallService } from './click-to-call.service.js';

/**
 * Click-to-call, a call command (originate, hang up, DTMF, live status) carried out through the
 * company's phone system. A module of its own rather than part of CallsModule: PbxModule imports
 * CallsModule (webhooks apply call events), so CallsModule importing PbxModule would be a cycle.
 * It uses only what PbxModule exports (PbxRegistry, PbxConnectionsService, ProviderSetupService).
 */
@Module({
  imports: [CallsModule, PbxModule, AgentsModule],
  controllers: [ClickToCallController, ClickToCallAliasesController],
  providers: [ClickToCallService],
})
export class ClickToCallModule {}
