import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../common/access/access.decorators.js';
import type { Tenant } from '../common/access/principal.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { AuditLogQuery } from './audit-log.dto.js';
import { AuditService } from './audit.service.js';

@ApiTags('audit')
@Controller('api/v1/audit-log')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @Access.tenant('admin', 'audit:read')
  @ApiOperation({
    summary: "The company's audit log (logins, role changes, key changes, deletions), newest first",
    operationId: 'listAuditLog',
  })
  @ApiOkResponse({ description: '{ data, next } — pass next as cursor for the following page' })
  @ApiProblems(400)
  list(@CurrentTenant() tenant: Tenant, @Query() query: AuditLogQuery) {
    return this.audit.list(tenant.companyId, query);
  }
}
