import { Body, Controller, Get, Patch } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../common/access/access.decorators.js';
import type { Tenant } from '../common/access/principal.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { CompaniesService, toCompanyDto } from './companies.service.js';
import { CompanyDto, UpdateCompanyDto } from './dto/tenants.dto.js';

@ApiTags('company')
@Controller('api/v1/company')
export class CompanyController {
  constructor(private readonly companies: CompaniesService) {}

  @Get()
  @Access.tenant('agent', 'company:read')
  @ApiOperation({ summary: "The caller's company and its settings", operationId: 'getCompany' })
  @ApiOkResponse({ type: CompanyDto })
  async get(@CurrentTenant() tenant: Tenant) {
    return toCompanyDto(await this.companies.get(tenant.companyId));
  }

  @Patch()
  @Access.tenant('admin', 'company:write')
  @ApiOperation({
    summary:
      'Change the company name or settings (timezone, business hours, default caller id, retention, allowed origins)',
    operationId: 'updateCompany',
  })
  @ApiOkResponse({ type: CompanyDto })
  @ApiProblems(400)
  async update(@CurrentTenant() tenant: Tenant, @Body() dto: UpdateCompanyDto) {
    return toCompanyDto(await this.companies.updateSettings(tenant.companyId, dto, tenant.principal));
  }
}
