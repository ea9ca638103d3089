import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Patch, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../../common/access/access.decorators.js';
import type { Tenant } from '../../common/access/principal.js';
import { CursorPageQuery } from '../../common/pagination.js';
import { ApiProblems } from '../../common/swagger/api-problems.js';
import {
  CreatedWebhookEndpointDto,
  CreateWebhookEndpointDto,
  RotatedWebhookSecretDto,
  UpdateWebhookEndpointDto,
  WebhookEndpointDto,
  WebhookEndpointListDto,
} from './webhook-endpoints.dto.js';
import { WebhookEndpointsService } from './webhook-endpoints.service.js';

const BASE = 'api/v1/webhook-endpoints';

/** Outbound webhook endpoints of the company (admins and managers; API keys with `webhooks:manage`). */
@ApiTags('outbound webhooks')
@Controller()
export class WebhookEndpointsController {
  constructor(private readonly endpoints: WebhookEndpointsService) {}

  @Post(BASE)
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({
    summary: 'Add an outbound webhook endpoint; its signing secret is shown this once',
    description:
      'Events of the types chosen are POSTed to the URL, signed with the Standard Webhooks scheme. The URL is ' +
      'checked by the SSRF guard (400 `webhook-target-refused` naming the reason). Only events from now on are ' +
      'sent (POST …/replay re-sends older ones). 422 `webhook-endpoint-limit` past WEBHOOK_ENDPOINTS_PER_COMPANY.',
    operationId: 'createWebhookEndpoint',
  })
  @ApiCreatedResponse({ type: CreatedWebhookEndpointDto })
  @ApiProblems(400, 422)
  create(@CurrentTenant() tenant: Tenant, @Body() dto: CreateWebhookEndpointDto): Promise<CreatedWebhookEndpointDto> {
    return this.endpoints.create(tenant, dto);
  }

  @Get(BASE)
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({ summary: "The company's webhook endpoints, newest first", operationId: 'listWebhookEndpoints' })
  @ApiOkResponse({ type: WebhookEndpointListDto })
  @ApiProblems(400)
  list(@CurrentTenant() tenant: Tenant, @Query() query: CursorPageQuery): Promise<WebhookEndpointListDto> {
    return this.endpoints.list(tenant.companyId, query);
  }

  @Get(`${BASE}/:id`)
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({ summary: 'A webhook endpoint (never its secret)', operationId: 'getWebhookEndpoint' })
  @ApiOkResponse({ type: WebhookEndpointDto })
  @ApiProblems(400, 404)
  get(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string): Promise<WebhookEndpointDto> {
    return this.endpoints.describe(tenant.companyId, id);
  }

  @Patch(`${BASE}/:id`)
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({
    summary: 'Change an endpoint: url, description, eventTypes, enabled, rateLimitPerSecond, headers',
    description:
      'A new URL is checked by the SSRF guard again. `enabled: true` on a disabled endpoint clears ' +
      'disabledReason, disabledAt and failingSince and starts it from the latest event: events of the time it was ' +
      'disabled are not sent (POST …/replay re-sends them).',
    operationId: 'updateWebhookEndpoint',
  })
  @ApiOkResponse({ type: WebhookEndpointDto })
  @ApiProblems(400, 404)
  update(
    @CurrentTenant() tenant: Tenant,
    @Param('id', ParseUUIDPipe) id: string,
    @Body() dto: UpdateWebhookEndpointDto,
  ): Promise<WebhookEndpointDto> {
    return this.endpoints.update(tenant, id, dto);
  }

  @Delete(`${BASE}/:id`)
  @HttpCode(204)
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({
    summary: 'Remove an endpoint (its deliveries and their log go too)',
    operationId: 'deleteWebhookEndpoint',
  })
  @ApiNoContentResponse()
  @ApiProblems(400, 404)
  async remove(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string): Promise<void> {
    await this.endpoints.remove(tenant, id);
  }

  @Post(`${BASE}/:id/rotate-secret`)
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({
    summary: 'A new signing secret, shown this once; the previous one keeps signing until previousSecretExpiresAt',
    description:
      'During the overlap (WEBHOOK_SECRET_OVERLAP_MS) deliveries carry both signatures, so receivers can switch ' +
      'to the new secret at their pace.',
    operationId: 'rotateWebhookEndpointSecret',
  })
  @ApiCreatedResponse({ type: RotatedWebhookSecretDto })
  @ApiProblems(400, 404)
  rotateSecret(
    @CurrentTenant() tenant: Tenant,
    @Param('id', ParseUUIDPipe) id: string,
  ): Promise<RotatedWebhookSecretDto> {
    return this.endpoints.rotateSecret(tenant, id);
  }
}
