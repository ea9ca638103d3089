import { Controller, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiConsumes, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Access, CurrentTenant } from '../../common/access/access.decorators.js';
import type { Tenant } from '../../common/access/principal.js';
import { ApiProblems } from '../../common/swagger/api-problems.js';
import { PbxRegistry } from '../../pbx/pbx-registry.js';
import { InboxPageDto, ListInboxQuery, WebhookAckDto } from './webhook-inbox.dto.js';
import { WebhookInboxService } from './webhook-inbox.service.js';

const CONSUMES = ['application/jwt', 'application/json', 'application/x-www-form-urlencoded'];
const DESCRIPTION =
  'Verified first (401 and nothing stored when the signature is missing or wrong), written to the inbox, answered ' +
  '2xx, then processed. A redelivered event is answered 2xx with `duplicate: true` and not processed again. ' +
  'Dialpad: a JWT signed HS256 with the webhook secret (`application/jwt`, or the JWT as a JSON string). ' +
  'Twilio: `X-Twilio-Signature` over PUBLIC_BASE_URL + path + query and the form fields (or `bodySHA256`). ' +
  'NetSapiens: see the README. Limit: RATE_LIMIT_WEBHOOK_PER_MIN (1000) per connection.';

@ApiTags('webhooks')
@Controller()
export class WebhooksController {
  constructor(
    private readonly inbox: WebhookInboxService,
    private readonly registry: PbxRegistry,
  ) {}

  @Post('webhooks/:provider/:connectionId')
  @HttpCode(200)
  @Access.public()
  @ApiOperation({
    summary: 'Receive a provider webhook (Dialpad, NetSapiens)',
    description: DESCRIPTION,
    operationId: 'receiveWebhook',
  })
  @ApiParam({ name: 'provider', enum: ['dialpad', 'netsapiens'] })
  @ApiConsumes(...CONSUMES)
  @ApiOkResponse({ type: WebhookAckDto })
  @ApiProblems(400, 401, 403, 404, 413, 415, 429)
  receive(
    @Param('provider') provider: string,
    @Param('connectionId') connectionId: string,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    return this.handle(provider, connectionId, '', req, reply);
  }

  @Post('webhooks/:provider/:connectionId/:route')
  @HttpCode(200)
  @Access.public()
  @ApiOperation({
    summary: 'Receive a provider webhook on a route (Twilio: `status`, `sms`)',
    description: DESCRIPTION,
    operationId: 'receiveWebhookRoute',
  })
  @ApiParam({ name: 'provider', enum: ['twilio'] })
  @ApiParam({ name: 'route', enum: ['status', 'sms'] })
  @ApiConsumes(...CONSUMES)
  @ApiOkResponse({ type: WebhookAckDto })
  @ApiProblems(400, 401, 403, 404, 413, 415, 429)
  receiveRoute(
    @Param('provider') provider: string,
    @Param('connectionId') connectionId: string,
    @Param('route') route: string,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    return this.handle(provider, connectionId, route, req, reply);
  }

  @Get('api/v1/webhook-inbox')
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: "The company's received provider webhooks, newest first",
    description: 'Status (pending, processed, failed), attempts and last error; payloads with phone numbers masked.',
    operationId: 'listWebhookInbox',
  })
  @ApiOkResponse({ type: InboxPageDto })
  @ApiProblems(400)
  list(@CurrentTenant() tenant: Tenant, @Query() query: ListInboxQuery) {
    return this.inbox.list(tenant, query);
  }

  private async handle(
    provider: string,
    connectionId: string,
    route: string,
    req: FastifyRequest,
    reply: FastifyReply,
  ): Promise<WebhookAckDto | string> {
    const raw = (req as FastifyRequest & { rawBody?: Buffer }).rawBody;
    const result = await this.inbox.ingest(provider, connectionId, route, {
      url: this.registry.env.publicBaseUrl + req.url,
      headers: req.headers,
      contentType: String(req.headers['content-type'] ?? ''),
      rawBody: raw ?? Buffer.alloc(0),
      body: req.body,
    });
    if (result.ack) {
      void reply.type(result.ack.contentType);
      return result.ack.body;
    }
    return { received: true, duplicate: result.duplicate };
  }
}
