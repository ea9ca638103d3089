import { Body, Controller, Get, HttpCode, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiAcceptedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../../common/access/access.decorators.js';
import type { Tenant } from '../../common/access/principal.js';
import { ApiProblems } from '../../common/swagger/api-problems.js';
import {
  ReplayResultDto,
  ReplayWebhookEventsDto,
  WebhookDeliveryDetailDto,
  WebhookDeliveryListQuery,
  WebhookDeliveryPageDto,
  WebhookTestResultDto,
} from './dto/webhook-deliveries.dto.js';
import { WebhookDeliveriesService } from './webhook-deliveries.service.js';

@ApiTags('webhook endpoints')
@Controller('api/v1/webhook-endpoints/:id')
export class WebhookDeliveriesController {
  constructor(private readonly deliveries: WebhookDeliveriesService) {}

  @Get('deliveries')
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({
    summary: "The endpoint's delivery log, newest first, each delivery with every attempt",
    description:
      'Keyset pages (`next` → `cursor`). Filters: status, eventType, since/until (creation time). An attempt has ' +
      'the status code, latency, error class and the first 1 KB of the response body (never its headers).',
    operationId: 'listWebhookDeliveries',
  })
  @ApiOkResponse({ type: WebhookDeliveryPageDto })
  @ApiProblems(400, 404)
  list(
    @CurrentTenant() tenant: Tenant,
    @Param('id', ParseUUIDPipe) id: string,
    @Query() query: WebhookDeliveryListQuery,
  ): Promise<WebhookDeliveryPageDto> {
    return this.deliveries.list(tenant.companyId, id, query);
  }

  @Get('deliveries/:deliveryId')
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({ summary: 'One delivery: its attempts and the exact body sent', operationId: 'getWebhookDelivery' })
  @ApiOkResponse({ type: WebhookDeliveryDetailDto })
  @ApiProblems(400, 404)
  get(
    @CurrentTenant() tenant: Tenant,
    @Param('id', ParseUUIDPipe) id: string,
    @Param('deliveryId', ParseUUIDPipe) deliveryId: string,
  ): Promise<WebhookDeliveryDetailDto> {
    return this.deliveries.get(tenant.companyId, id, deliveryId);
  }

  @Post('deliveries/:deliveryId/retry')
  @HttpCode(202)
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({
    summary: 'Send a delivery again now',
    description:
      'A pending delivery (waiting for its backoff) is due at once; a finished one (failed or succeeded) gets a new ' +
      'delivery (origin `retry`, same event id and body) with a new series of attempts, which is returned. ' +
      '409 while the delivery is being sent. Audited.',
    operationId: 'retryWebhookDelivery',
  })
  @ApiAcceptedResponse({ type: WebhookDeliveryDetailDto })
  @ApiProblems(400, 404, 409)
  retry(
    @CurrentTenant() tenant: Tenant,
    @Param('id', ParseUUIDPipe) id: string,
    @Param('deliveryId', ParseUUIDPipe) deliveryId: string,
  ): Promise<WebhookDeliveryDetailDto> {
    return this.deliveries.retry(tenant, id, deliveryId);
  }

  @Post('replay')
  @HttpCode(202)
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({
    summary: "Send the company's stored events of a time window to the endpoint again",
    description:
      'Events emitted in [since, until) — the given `types`, or those the endpoint subscribes to — are queued ' +
      'as new deliveries (origin `replay`, same event ids). At most WEBHOOK_REPLAY_MAX_EVENTS events, and only ' +
      'as far back as events are kept (48 h): otherwise 422. Audited.',
    operationId: 'replayWebhookEvents',
  })
  @ApiAcceptedResponse({ type: ReplayResultDto })
  @ApiProblems(400, 404, 422)
  replay(
    @CurrentTenant() tenant: Tenant,
    @Param('id', ParseUUIDPipe) id: string,
    @Body() dto: ReplayWebhookEventsDto,
  ): Promise<ReplayResultDto> {
    return this.deliveries.replay(tenant, id, dto);
  }

  @Post('test')
  @HttpCode(200)
  @Access.tenant('manager', 'webhooks:manage')
  @ApiOperation({
    summary: 'Send a webhook.test event to the endpoint now and return the attempt',
    description:
      'The envelope has type `webhook.test` and `seq` 0: it is not part of the company event stream (no other ' +
      'endpoint or socket receives it). Signed like every delivery; sent even when the endpoint is disabled; never ' +
      "retried, and it does not count towards the endpoint's health. `ok` is false when the receiver did not " +
      'answer 2xx in time (the attempt says why).',
    operationId: 'testWebhookEndpoint',
  })
  @ApiOkResponse({ type: WebhookTestResultDto })
  @ApiProblems(400, 404)
  test(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string): Promise<WebhookTestResultDto> {
    return this.deliveries.test(tenant, id);
  }
}
