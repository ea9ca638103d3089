import { Module } from '@nestjs/common';
import { AgentsModule } from '../agents/agents.module.js';
import { AuthModule } from '../auth/auth.module.js';
import { CallsModule } from '../calls/calls.module.js';
import { TenantsModule } from '../tenants/tenants.module.js';
import { EventsGateway } from './events.gateway.js';
import { GatewayController } from './gateway.controller.js';
import { GatewayService } from './gateway.service.js';

@Module({
  imports: [AuthModule, TenantsModule, AgentsModule, CallsModule],
  controllers: [GatewayController],
  providers: [EventsGateway, GatewayService],
})
export class GatewayModule {}
