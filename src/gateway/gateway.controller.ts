import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../common/access/access.decorators.js';
import type { Tenant } from '../common/access/principal.js';
import { GatewayService } from './gateway.service.js';

@ApiTags('live')
@Controller('api/v1')
export class GatewayController {
  constructor(private readonly gateway: GatewayService) {}

  @Get('agents/connected')
  @Access.tenant('agent', 'agents:read')
  @ApiOperation({ summary: 'Agents connected to the live gateway now (all instances)', operationId: 'connectedAgents' })
  @ApiOkResponse({ description: '{ data: [{ agentId, userId, connections, since }] }' })
  async connected(@CurrentTenant() tenant: Tenant) {
    return { data: await this.gateway.connectedAgents(tenant.companyId) };
  }

  @Get('status')
  @Access.tenant('agent', 'calls:read')
  @ApiOperation({
    summary: 'Live status: active calls, connected agents and clients, events processed, uptime',
    operationId: 'status',
  })
  @ApiOkResponse({
    description: '{ activeCalls, connectedAgents, connectedClients, eventsProcessed, lastSeq, uptimeSeconds }',
  })
  status(@CurrentTenant() tenant: Tenant) {
    return this.gateway.status(tenant.companyId);
  }
}
