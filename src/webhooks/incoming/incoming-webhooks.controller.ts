import { Controller, Delete, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import {
  ApiBody,
  ApiConsumes,
  ApiCreatedResponse,
  ApiHeader,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { Access, CurrentTenant } from '../../common/access/access.decorators.js';
import type { Tenant } from '../../common/access/principal.js';
import { ApiProblems } from '../../common/swagger/api-problems.js';
import { IncomingWebhookSecretsService } from './incoming-webhook-secrets.service.js';
import {
  IncomingCallEventDto,
  IncomingSecretCreatedDto,
  IncomingSecretDto,
  IncomingWebhookAckDto,
  MAX_EVENTS_PER_REQUEST,
} from './incoming-webhooks.dto.js';
import { IncomingWebhooksService } from './incoming-webhooks.service.js';

const RECEIVE_DESCRIPTION =
  "Feeds call events from any phone system or script. Signed with the company's secret by the Standard Webhooks " +
  'scheme (https://www.standardwebhooks.com): headers `webhook-id` (unique per message: the same id again is ' +
  'answered `duplicate: true` and not processed again), `webhook-timestamp` (seconds since the epoch, within ' +
  '± WEBHOOK_MAX_AGE_MS, 5 minutes by default: else 403 `stale-webhook`) and `webhook-signature` ' +
  '(`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<raw body>">`, space-separated when several; during a ' +
  'rotation the previous secret also verifies). A missing or wrong signature: 403 `incoming-signature-invalid`, ' +
  'nothing stored. A signed body that is not valid: 400 `validation-failed` naming the field, nothing stored. ' +
  `Body: one call event, or a list of 1 to ${MAX_EVENTS_PER_REQUEST}. Unknown company or no secret: 404. ` +
  'Limit: RATE_LIMIT_WEBHOOK_PER_MIN per company.';

@ApiTags('webhooks')
@Controller()
export class IncomingWebhooksController {
  constructor(
    private readonly incoming: IncomingWebhooksService,
    private readonly secrets: IncomingWebhookSecretsService,
  ) {}

  @Post('api/v1/webhooks/incoming/:companyId')
  @HttpCode(200)
  @Access.public()
  @ApiOperation({
    summary: 'Receive call events through the generic incoming webhook (Standard Webhooks)',
    description: RECEIVE_DESCRIPTION,
    operationId: 'receiveIncomingWebhook',
  })
  @ApiParam({ name: 'companyId', format: 'uuid' })
  @ApiHeader({ name: 'webhook-id', required: true, description: 'Unique per message (redeliveries keep it)' })
  @ApiHeader({ name: 'webhook-timestamp', required: true, description: 'Seconds since the epoch' })
  @ApiHeader({ name: 'webhook-signature', required: true, description: '`v1,<base64>`, space-separated' })
  @ApiConsumes('application/json')
  @ApiBody({
    type: IncomingCallEventDto,
    description: `One call event, or a JSON list of 1 to ${MAX_EVENTS_PER_REQUEST} of them (the same shape).`,
  })
  @ApiOkResponse({ type: IncomingWebhookAckDto })
  @ApiProblems(400, 403, 404, 413, 415, 429)
  receive(@Param('companyId') companyId: string, @Req() req: FastifyRequest) {
    return this.incoming.ingest(companyId, {
      headers: req.headers,
      rawBody: (req as FastifyRequest & { rawBody?: Buffer }).rawBody ?? Buffer.alloc(0),
      body: req.body,
    });
  }

  @Get('api/v1/webhooks/incoming-secret')
  @Access.tenant('admin')
  @ApiOperation({
    summary: "The incoming webhook secret's metadata (never the secret) and the URL to post to",
    operationId: 'getIncomingWebhookSecret',
  })
  @ApiOkResponse({ type: IncomingSecretDto })
  @ApiProblems(404)
  get(@CurrentTenant() tenant: Tenant) {
    return this.secrets.get(tenant);
  }

  @Post('api/v1/webhooks/incoming-secret')
  @Access.tenant('admin')
  @ApiOperation({
    summary: 'Create or rotate the incoming webhook secret (shown in this response only)',
    description:
      'After a rotation the previous secret still verifies for WEBHOOK_SECRET_OVERLAP_MS (24 h by default). Audited.',
    operationId: 'rotateIncomingWebhookSecret',
  })
  @ApiCreatedResponse({ type: IncomingSecretCreatedDto })
  @ApiProblems(409)
  createOrRotate(@CurrentTenant() tenant: Tenant) {
    return this.secrets.createOrRotate(tenant);
  }

  @Delete('api/v1/webhooks/incoming-secret')
  @HttpCode(204)
  @Access.tenant('admin')
  @ApiOperation({
    summary: 'Revoke the incoming webhook secret (and a previous one in its overlap), at once',
    operationId: 'revokeIncomingWebhookSecret',
  })
  @ApiNoContentResponse({ description: 'Revoked' })
  @ApiProblems(404)
  async revoke(@CurrentTenant() tenant: Tenant): Promise<void> {
    await this.secrets.revoke(tenant);
  }
}
