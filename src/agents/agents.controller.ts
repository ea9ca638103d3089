import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Patch, Post, Put, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../common/access/access.decorators.js';
import type { Tenant } from '../common/access/principal.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { AgentsService } from './agents.service.js';
import { AgentDto, AgentListQuery, CreateAgentDto, SetAvailabilityDto, UpdateAgentDto } from './dto/agents.dto.js';

@ApiTags('agents')
@Controller('api/v1/agents')
export class AgentsController {
  constructor(private readonly agents: AgentsService) {}

  @Get()
  @Access.tenant('agent', 'agents:read')
  @ApiOperation({ summary: 'List the agents of the company (filters: status, skill)', operationId: 'listAgents' })
  @ApiOkResponse({ description: '{ data: Agent[], pagination }' })
  @ApiProblems(400)
  list(@CurrentTenant() tenant: Tenant, @Query() query: AgentListQuery) {
    return this.agents.list(tenant, query);
  }

  @Post()
  @Access.tenant('manager', 'agents:write')
  @ApiOperation({
    summary: 'Create an agent',
    description:
      'Optionally linked to a user of the company (one agent per user). The extension is unique among the ' +
      "company's agents (409 extension-taken).",
    operationId: 'createAgent',
  })
  @ApiCreatedResponse({ type: AgentDto })
  @ApiProblems(400, 409)
  create(@CurrentTenant() tenant: Tenant, @Body() dto: CreateAgentDto) {
    return this.agents.create(tenant, dto);
  }

  @Get(':id')
  @Access.tenant('agent', 'agents:read')
  @ApiOperation({ summary: 'Get an agent', operationId: 'getAgent' })
  @ApiOkResponse({ type: AgentDto })
  @ApiProblems(400, 404)
  get(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.agents.get(tenant, id);
  }

  @Patch(':id')
  @Access.tenant('manager', 'agents:write')
  @ApiOperation({ summary: 'Change an agent (name, user, extension, skills)', operationId: 'updateAgent' })
  @ApiOkResponse({ type: AgentDto })
  @ApiProblems(400, 404, 409)
  update(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string, @Body() dto: UpdateAgentDto) {
    return this.agents.update(tenant, id, dto);
  }

  @Delete(':id')
  @HttpCode(204)
  @Access.tenant('manager', 'agents:write')
  @ApiOperation({
    summary: 'Delete an agent',
    description:
      'The agent is marked deleted (call history keeps it) and is not found afterwards. Its user mappings go: ' +
      'those naming a CRM user too lose their agent, the others are removed.',
    operationId: 'deleteAgent',
  })
  @ApiNoContentResponse()
  @ApiProblems(400, 404)
  remove(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.agents.remove(tenant, id);
  }

  @Put(':id/availability')
  @Access.tenant('agent', 'agents:write')
  @ApiOperation({
    summary: "Set an agent's availability",
    description:
      "An agent user sets its own agent's availability only (403 otherwise); managers and above, and API keys " +
      'with agents:write, any agent of the company. A change emits agent.status; the same status again does nothing.',
    operationId: 'setAgentAvailability',
  })
  @ApiOkResponse({ type: AgentDto })
  @ApiProblems(400, 404)
  setAvailability(
    @CurrentTenant() tenant: Tenant,
    @Param('id', ParseUUIDPipe) id: string,
    @Body() dto: SetAvailabilityDto,
  ) {
    return this.agents.setAvailability(tenant, id, dto.status);
  }
}
