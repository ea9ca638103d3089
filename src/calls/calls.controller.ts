import { Body, Controller, Get, HttpCode, Param, ParseUUIDPipe, Patch, Post, Query } from '@nestjs/common';
import { ApiAcceptedResponse, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../common/access/access.decorators.js';
import type { Tenant } from '../common/access/principal.js';
import { CursorPageQuery } from '../common/pagination.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { CallCommandsService } from './call-commands.service.js';
import { CallQueriesService } from './call-queries.service.js';
import {
  AssignCallDto,
  CallDetailDto,
  CallDto,
  CallPageDto,
  CreateCallDto,
  ListCallsQuery,
  ScreenPopAcceptedDto,
  ScreenPopDto,
  UpdateCallDto,
} from './dto/calls.dto.js';

@ApiTags('calls')
@Controller('api/v1')
export class CallsController {
  constructor(
    private readonly queries: CallQueriesService,
    private readonly commands: CallCommandsService,
  ) {}

  @Get('calls')
  @Access.tenant('agent', 'calls:read')
  @ApiOperation({
    summary: 'List calls, newest first (an agent sees only its own)',
    description:
      'Filters combine. `from`/`to` take E.164 or digits (an extension). Keyset pagination: pass `next` as `cursor`.',
    operationId: 'listCalls',
  })
  @ApiOkResponse({ type: CallPageDto })
  @ApiProblems(400)
  list(@CurrentTenant() tenant: Tenant, @Query() query: ListCallsQuery) {
    return this.queries.list(tenant, query);
  }

  @Get('calls/active')
  @Access.tenant('agent', 'calls:read')
  @ApiOperation({
    summary: 'Calls queued, ringing or in progress, newest first (an agent sees only its own)',
    operationId: 'listActiveCalls',
  })
  @ApiOkResponse({ type: CallPageDto })
  @ApiProblems(400)
  active(@CurrentTenant() tenant: Tenant, @Query() query: CursorPageQuery) {
    return this.queries.listActive(tenant, query);
  }

  @Get('calls/:id')
  @Access.tenant('agent', 'calls:read')
  @ApiOperation({ summary: 'Get a call with its timeline', operationId: 'getCall' })
  @ApiOkResponse({ type: CallDetailDto })
  @ApiProblems(400, 404)
  get(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.queries.detail(tenant, id);
  }

  @Post('calls')
  @Access.tenant('manager', 'calls:write')
  @ApiOperation({
    summary: 'Log a call by hand',
    description:
      'Applied as the events of a phone system (provider `manual`): ringing at startedAt, answered, ended; ' +
      'status and durations are derived from them.',
    operationId: 'createCall',
  })
  @ApiCreatedResponse({ type: CallDto })
  @ApiProblems(400)
  create(@CurrentTenant() tenant: Tenant, @Body() dto: CreateCallDto) {
    return this.commands.logManual(tenant, dto);
  }

  @Patch('calls/:id')
  @Access.tenant('agent', 'calls:write')
  @ApiOperation({
    summary: 'Change the notes, disposition or tags of a call (an agent: its own calls)',
    operationId: 'updateCall',
  })
  @ApiOkResponse({ type: CallDto })
  @ApiProblems(400, 404)
  update(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string, @Body() dto: UpdateCallDto) {
    return this.commands.updateCall(tenant, id, dto);
  }

  @Post('calls/:id/assign')
  @HttpCode(200)
  @Access.tenant('manager', 'calls:write')
  @ApiOperation({ summary: 'Assign a call to an agent of the company', operationId: 'assignCall' })
  @ApiOkResponse({ type: CallDto })
  @ApiProblems(400, 404)
  assign(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string, @Body() dto: AssignCallDto) {
    return this.commands.assign(tenant, id, dto.agentId);
  }

  @Post('screen-pop')
  @HttpCode(202)
  @Access.tenant('manager', 'calls:write')
  @ApiOperation({
    summary: "Pop a call on an agent's screen by hand (a call.ringing event for that agent)",
    operationId: 'screenPop',
  })
  @ApiAcceptedResponse({ type: ScreenPopAcceptedDto })
  @ApiProblems(400)
  screenPop(@CurrentTenant() tenant: Tenant, @Body() dto: ScreenPopDto) {
    return this.commands.screenPop(tenant, dto);
  }
}
