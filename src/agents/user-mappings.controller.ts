import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../common/access/access.decorators.js';
import type { Tenant } from '../common/access/principal.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import {
  BatchUserMappingsDto,
  CreateUserMappingDto,
  CrmUserParams,
  MAX_BATCH,
  ProviderIdentityParams,
  UserMappingDto,
  UserMappingListDto,
  UserMappingListQuery,
} from './dto/user-mappings.dto.js';
import { UserMappingsService } from './user-mappings.service.js';

@ApiTags('user-mappings')
@Controller('api/v1/user-mappings')
export class UserMappingsController {
  constructor(private readonly mappings: UserMappingsService) {}

  @Get()
  @Access.tenant('agent', 'agents:read')
  @ApiOperation({ summary: 'List the user mappings (filters: provider, agentId)', operationId: 'listUserMappings' })
  @ApiOkResponse({ description: '{ data: UserMapping[], pagination }' })
  @ApiProblems(400)
  list(@CurrentTenant() tenant: Tenant, @Query() query: UserMappingListQuery) {
    return this.mappings.list(tenant, query);
  }

  @Post()
  @Access.tenant('manager', 'agents:write')
  @ApiOperation({
    summary: 'Map an identity at a provider to an agent, a CRM user, or both',
    description: 'agentId must be an agent of the company (400); a provider identity is mapped once (409).',
    operationId: 'createUserMapping',
  })
  @ApiCreatedResponse({ type: UserMappingDto })
  @ApiProblems(400, 409)
  create(@CurrentTenant() tenant: Tenant, @Body() dto: CreateUserMappingDto) {
    return this.mappings.create(tenant, dto);
  }

  @Post('batch')
  @Access.tenant('manager', 'agents:write')
  @ApiOperation({
    summary: `Create up to ${MAX_BATCH} user mappings, all or nothing`,
    description:
      'One transaction: if any row is refused nothing is written, and the problem lists every error by row ' +
      '(errors[].field: mappings[3].agentId). 409 mapping-exists when the only errors are identities already mapped.',
    operationId: 'createUserMappings',
  })
  @ApiCreatedResponse({ type: UserMappingListDto })
  @ApiProblems(400, 409)
  createMany(@CurrentTenant() tenant: Tenant, @Body() dto: BatchUserMappingsDto) {
    return this.mappings.createMany(tenant, dto.mappings);
  }

  @Get('provider/:provider/:externalId')
  @Access.tenant('agent', 'agents:read')
  @ApiOperation({ summary: 'The mapping of an identity at a provider', operationId: 'getUserMappingByProvider' })
  @ApiOkResponse({ type: UserMappingDto })
  @ApiProblems(400, 404)
  byProvider(@CurrentTenant() tenant: Tenant, @Param() params: ProviderIdentityParams) {
    return this.mappings.byProvider(tenant, params.provider, params.externalId);
  }

  @Get('crm/:crmUserId')
  @Access.tenant('agent', 'agents:read')
  @ApiOperation({ summary: 'The mappings of a CRM user', operationId: 'listUserMappingsOfCrmUser' })
  @ApiOkResponse({ type: UserMappingListDto })
  @ApiProblems(400, 404)
  byCrmUser(@CurrentTenant() tenant: Tenant, @Param() params: CrmUserParams) {
    return this.mappings.byCrmUser(tenant, params.crmUserId);
  }

  @Delete(':id')
  @HttpCode(204)
  @Access.tenant('manager', 'agents:write')
  @ApiOperation({ summary: 'Delete a user mapping', operationId: 'deleteUserMapping' })
  @ApiNoContentResponse()
  @ApiProblems(400, 404)
  remove(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.mappings.remove(tenant, id);
  }
}
