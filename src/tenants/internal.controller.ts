import { Body, Controller, Get, HttpCode, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentPrincipal } from '../common/access/access.decorators.js';
import type { Principal } from '../common/access/principal.js';
import { OffsetPageQuery } from '../common/pagination.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { CreateAppDto, CreateOperatorDto, RotateApiKeyDto } from './dto/tenants.dto.js';
import { OperatorService } from './operator.service.js';

/**
 * The operator API (the seeds' "internal" API): bearer INTERNAL_API_SECRET or a superadmin JWT.
 * An "app" is a company.
 */
@ApiTags('operator')
@Controller('internal')
@Access.operator()
export class InternalController {
  constructor(private readonly operator: OperatorService) {}

  @Post('apps')
  @ApiOperation({
    summary: 'Create a company ("app") with its primary API key (shown once), and optionally its owner',
    operationId: 'createApp',
  })
  @ApiCreatedResponse({ description: '{ appId, company, owner, apiKey, keyHint, note }' })
  @ApiProblems(400, 409)
  createApp(@Body() dto: CreateAppDto, @CurrentPrincipal() actor: Principal) {
    return this.operator.createApp(dto, actor);
  }

  @Get('apps')
  @ApiOperation({ summary: 'List companies, newest first', operationId: 'listApps' })
  @ApiOkResponse({ description: '{ data, pagination }' })
  @ApiProblems(400)
  listApps(@Query() query: OffsetPageQuery) {
    return this.operator.listApps(query);
  }

  @Get('apps/:appId')
  @ApiOperation({ summary: 'One company', operationId: 'getApp' })
  @ApiOkResponse({ description: 'The company' })
  @ApiProblems(400, 404)
  getApp(@Param('appId', ParseUUIDPipe) appId: string) {
    return this.operator.getApp(appId);
  }

  @Post('apps/:appId/api-key')
  @ApiOperation({
    summary: 'Generate the primary API key, or rotate it (the old key works for overlapSeconds more)',
    operationId: 'generateAppKey',
  })
  @ApiCreatedResponse({ description: '{ appId, apiKey, keyHint, rotatedAt, previousKeyValidUntil, note }' })
  @ApiProblems(400, 404)
  generateKey(
    @Param('appId', ParseUUIDPipe) appId: string,
    @Body() dto: RotateApiKeyDto,
    @CurrentPrincipal() actor: Principal,
  ) {
    return this.operator.generateKey(appId, dto.overlapSeconds ?? 0, actor);
  }

  @Get('apps/:appId/api-key/status')
  @ApiOperation({ summary: 'Status of the primary key (hint only)', operationId: 'appKeyStatus' })
  @ApiOkResponse({ description: '{ appId, isActive, keyHint, rotatedAt, lastUsedAt }' })
  @ApiProblems(400, 404)
  keyStatus(@Param('appId', ParseUUIDPipe) appId: string) {
    return this.operator.keyStatus(appId);
  }

  @Post('apps/:appId/api-key/revoke')
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke the primary key', operationId: 'revokeAppKey' })
  @ApiOkResponse({ description: '{ appId, apiKeyId, keyHint, revokedAt }' })
  @ApiProblems(400, 404)
  revokeKey(@Param('appId', ParseUUIDPipe) appId: string, @CurrentPrincipal() actor: Principal) {
    return this.operator.revokeKey(appId, actor);
  }

  @Get('apps/:appId/api-key/audit')
  @ApiOperation({ summary: "Audit trail of the company's API keys, newest first", operationId: 'appKeyAudit' })
  @ApiOkResponse({ description: '{ data, pagination: { limit, offset, total, hasMore } }' })
  @ApiProblems(400, 404)
  keyAudit(@Param('appId', ParseUUIDPipe) appId: string, @Query() query: OffsetPageQuery) {
    return this.operator.keyAudit(appId, query);
  }

  @Post('apps/:appId/suspend')
  @HttpCode(200)
  @ApiOperation({
    summary: "Suspend a company: its API keys and users' sessions stop working at once",
    operationId: 'suspendApp',
  })
  @ApiOkResponse({ description: 'The company' })
  @ApiProblems(400, 404)
  suspend(@Param('appId', ParseUUIDPipe) appId: string, @CurrentPrincipal() actor: Principal) {
    return this.operator.setStatus(appId, 'suspended', actor);
  }

  @Post('apps/:appId/reactivate')
  @HttpCode(200)
  @ApiOperation({ summary: 'Reactivate a suspended company', operationId: 'reactivateApp' })
  @ApiOkResponse({ description: 'The company' })
  @ApiProblems(400, 404)
  reactivate(@Param('appId', ParseUUIDPipe) appId: string, @CurrentPrincipal() actor: Principal) {
    return this.operator.setStatus(appId, 'active', actor);
  }

  @Post('operators')
  @ApiOperation({ summary: 'Create a platform operator (superadmin user, no company)', operationId: 'createOperator' })
  @ApiCreatedResponse({ description: 'The user' })
  @ApiProblems(400, 409)
  createOperator(@Body() dto: CreateOperatorDto, @CurrentPrincipal() actor: Principal) {
    return this.operator.createOperator(dto, actor);
  }
}
