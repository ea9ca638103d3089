import { Body, Controller, Get, HttpCode, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../common/access/access.decorators.js';
import { DEFAULT_SCOPES, type ScopeGrant, type Tenant } from '../common/access/principal.js';
import { OffsetPageQuery } from '../common/pagination.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { ApiKeysService } from './api-keys.service.js';
import { API_KEY_SCOPES_NOTE, CreateApiKeyDto, RotateApiKeyDto } from './dto/tenants.dto.js';

const SHOWN_ONCE = 'Store this key now: it is shown once and cannot be recovered.';

@ApiTags('api-keys')
@Controller('api/v1/api-keys')
export class ApiKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @Post()
  @Access.tenant('admin')
  @ApiOperation({
    summary: 'Create an API key (the key is in this response only)',
    description: API_KEY_SCOPES_NOTE,
    operationId: 'createApiKey',
  })
  @ApiCreatedResponse({ description: '{ key, apiKey, note }' })
  @ApiProblems(400)
  async create(@CurrentTenant() tenant: Tenant, @Body() dto: CreateApiKeyDto) {
    const scopes: ScopeGrant[] = dto.scopes?.includes('*') ? ['*'] : (dto.scopes ?? DEFAULT_SCOPES);
    const { key, apiKey } = await this.keys.create(
      tenant.companyId,
      { name: dto.name, scopes, expiresAt: dto.expiresAt },
      tenant.principal,
    );
    return { key, apiKey: await this.keys.get(tenant.companyId, apiKey.id), note: SHOWN_ONCE };
  }

  @Get()
  @Access.tenant('admin')
  @ApiOperation({ summary: "List the company's API keys (hints only)", operationId: 'listApiKeys' })
  @ApiOkResponse({ description: '{ data: ApiKey[] }' })
  async list(@CurrentTenant() tenant: Tenant) {
    return { data: await this.keys.list(tenant.companyId) };
  }

  @Post(':id/rotate')
  @HttpCode(200)
  @Access.tenant('admin')
  @ApiOperation({
    summary: 'Rotate a key: a new key now; the old one keeps working for overlapSeconds',
    operationId: 'rotateApiKey',
  })
  @ApiOkResponse({ description: '{ key, apiKey, previousKeyValidUntil, note }' })
  @ApiProblems(400, 404, 409)
  async rotate(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string, @Body() dto: RotateApiKeyDto) {
    const result = await this.keys.rotate(tenant.companyId, id, dto.overlapSeconds ?? 0, tenant.principal);
    return {
      key: result.key,
      apiKey: await this.keys.get(tenant.companyId, id),
      previousKeyValidUntil: result.previousKeyValidUntil,
      note: `${SHOWN_ONCE} ${result.previousKeyValidUntil ? `The previous key works until ${result.previousKeyValidUntil.toISOString()}.` : 'The previous key no longer works.'}`,
    };
  }

  @Post(':id/revoke')
  @HttpCode(200)
  @Access.tenant('admin')
  @ApiOperation({ summary: 'Revoke a key (at once, on every instance)', operationId: 'revokeApiKey' })
  @ApiOkResponse({ description: 'The key, revoked' })
  @ApiProblems(400, 404)
  revoke(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.keys.revoke(tenant.companyId, id, tenant.principal);
  }

  @Get(':id/status')
  @Access.tenant('admin')
  @ApiOperation({
    summary: 'Status of a key: active, hint, expiry, last use, rotation overlap',
    operationId: 'apiKeyStatus',
  })
  @ApiOkResponse({ description: 'The key' })
  @ApiProblems(400, 404)
  status(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.keys.get(tenant.companyId, id);
  }

  @Get(':id/audit')
  @Access.tenant('admin')
  @ApiOperation({
    summary: 'Audit trail of a key (created, rotated, revoked), newest first',
    operationId: 'apiKeyAudit',
  })
  @ApiOkResponse({ description: '{ data, pagination }' })
  @ApiProblems(400, 404)
  audit(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string, @Query() query: OffsetPageQuery) {
    return this.keys.auditTrail(tenant.companyId, id, query);
  }
}
