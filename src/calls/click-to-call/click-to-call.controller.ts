import { Body, Controller, Get, HttpCode, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { ApiAcceptedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../../common/access/access.decorators.js';
import type { Tenant } from '../../common/access/principal.js';
import { ApiProblems } from '../../common/swagger/api-problems.js';
import {
  CallCommandAcceptedDto,
  CallStatusDto,
  ClickToCallAcceptedDto,
  ClickToCallDto,
  DtmfDto,
} from './click-to-call.dto.js';
import { ClickToCallService } from './click-to-call.service.js';

const PROVIDER_ERRORS =
  'Provider failures: 502 `pbx-auth-failed` / `pbx-bad-gateway`, 503 `pbx-unavailable` / `pbx-rate-limited` ' +
  '(Retry-After), 422 `pbx-rejected` / `pbx-unsupported`, 404 `pbx-call-not-found`.';

@ApiTags('calls')
@Controller('api/v1/calls')
export class ClickToCallController {
  constructor(private readonly c2c: ClickToCallService) {}

  @Post('click-to-call')
  @HttpCode(202)
  @Access.tenant('agent', 'calls:write')
  @ApiOperation({
    summary: "Click-to-call: ring the agent's phone, then the customer",
    description:
      'Through the connection given, or the only one of the company that can place calls. The call is recorded ' +
      "queued, outbound, at the agent, and follows the provider's events from then on. When the provider fails, " +
      'nothing is recorded. ' +
      PROVIDER_ERRORS,
    operationId: 'clickToCall',
  })
  @ApiAcceptedResponse({ type: ClickToCallAcceptedDto })
  @ApiProblems(400, 404, 409, 422, 502, 503)
  clickToCall(@CurrentTenant() tenant: Tenant, @Body() dto: ClickToCallDto) {
    return this.c2c.clickToCall(tenant, dto);
  }

  @Get(':id/status')
  @Access.tenant('agent', 'calls:read')
  @ApiOperation({
    summary: "A call's status, with the provider's live state while it is active",
    operationId: 'getCallStatus',
  })
  @ApiOkResponse({ type: CallStatusDto })
  @ApiProblems(400, 404)
  status(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.c2c.status(tenant, id);
  }

  @Post(':id/hangup')
  @HttpCode(202)
  @Access.tenant('agent', 'calls:write')
  @ApiOperation({
    summary: 'Hang up an active call (an agent: its own calls)',
    description: `409 \`call-ended\` when it has ended; the end arrives as \`call.ended\`. ${PROVIDER_ERRORS}`,
    operationId: 'hangupCall',
  })
  @ApiAcceptedResponse({ type: CallCommandAcceptedDto })
  @ApiProblems(400, 404, 409, 422, 502, 503)
  hangup(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.c2c.hangup(tenant, id);
  }

  @Post(':id/dtmf')
  @HttpCode(202)
  @Access.tenant('agent', 'calls:write')
  @ApiOperation({
    summary: 'Send DTMF digits on an answered call (an agent: its own calls)',
    description:
      'digits: 1 to 32 of `0-9*#ABCD` (else 400). 409 when not answered or ended. 501 `unsupported-by-provider` ' +
      'when the vendor has no DTMF operation at all (Dialpad, NetSapiens: `capabilities.dtmf` is false on the ' +
      `connection). Twilio keeps the call up: the customer leg plays the digits and rejoins the conference. ${PROVIDER_ERRORS}`,
    operationId: 'sendCallDtmf',
  })
  @ApiAcceptedResponse({ type: CallCommandAcceptedDto })
  @ApiProblems(400, 404, 409, 422, 501, 502, 503)
  dtmf(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string, @Body() dto: DtmfDto) {
    return this.c2c.dtmf(tenant, id, dto.digits);
  }
}
