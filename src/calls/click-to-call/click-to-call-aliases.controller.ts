import { Body, Controller, Get, HttpCode, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { ApiAcceptedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../../common/access/access.decorators.js';
import type { Tenant } from '../../common/access/principal.js';
import { ApiProblems } from '../../common/swagger/api-problems.js';
import {
  CallCommandAcceptedDto,
  CallStatusDto,
  ClickToCallAcceptedDto,
  DtmfAliasDto,
  InitiateCallAliasDto,
} from './click-to-call.dto.js';
import { ClickToCallService } from './click-to-call.service.js';

const DEPRECATED =
  "Deprecated: the NetSapiens click-to-call middleware's path (seed 000), kept for migrating clients. ";

/**
 * The seed click-to-call middleware's own paths (README "Seed systems' endpoints", 000), as
 * deprecated aliases: same authentication, same service calls, same answers as /api/v1/calls/….
 * Only the request shape differs where the seed's did (`phoneNumber`, `digit`).
 */
@ApiTags('calls')
@Controller('api/calls')
export class ClickToCallAliasesController {
  constructor(private readonly c2c: ClickToCallService) {}

  @Post('initiate')
  @HttpCode(202)
  @Access.tenant('agent', 'calls:write')
  @ApiOperation({
    summary: 'Click-to-call (deprecated alias of POST /api/v1/calls/click-to-call)',
    description: `${DEPRECATED}\`phoneNumber\` is \`to\`.`,
    operationId: 'clickToCallDeprecatedAlias',
    deprecated: true,
  })
  @ApiAcceptedResponse({ type: ClickToCallAcceptedDto })
  @ApiProblems(400, 404, 409, 422, 502, 503)
  initiate(@CurrentTenant() tenant: Tenant, @Body() dto: InitiateCallAliasDto) {
    const { phoneNumber, ...rest } = dto;
    return this.c2c.clickToCall(tenant, { to: phoneNumber, ...rest });
  }

  @Post('end/:callId')
  @HttpCode(202)
  @Access.tenant('agent', 'calls:write')
  @ApiOperation({
    summary: 'Hang up (deprecated alias of POST /api/v1/calls/:id/hangup)',
    description: `${DEPRECATED}The id is Switchboard's call id.`,
    operationId: 'hangupCallDeprecatedAlias',
    deprecated: true,
  })
  @ApiAcceptedResponse({ type: CallCommandAcceptedDto })
  @ApiProblems(400, 404, 409, 422, 502, 503)
  end(@CurrentTenant() tenant: Tenant, @Param('callId', ParseUUIDPipe) callId: string) {
    return this.c2c.hangup(tenant, callId);
  }

  @Post('dtmf/:callId')
  @HttpCode(202)
  @Access.tenant('agent', 'calls:write')
  @ApiOperation({
    summary: 'Send DTMF (deprecated alias of POST /api/v1/calls/:id/dtmf)',
    description: `${DEPRECATED}\`{ "digit" }\` is \`digits\`. 501 \`unsupported-by-provider\` where the vendor has no DTMF.`,
    operationId: 'sendCallDtmfDeprecatedAlias',
    deprecated: true,
  })
  @ApiAcceptedResponse({ type: CallCommandAcceptedDto })
  @ApiProblems(400, 404, 409, 422, 501, 502, 503)
  dtmf(@CurrentTenant() tenant: Tenant, @Param('callId', ParseUUIDPipe) callId: string, @Body() dto: DtmfAliasDto) {
    return this.c2c.dtmf(tenant, callId, dto.digit);
  }

  @Get('status/:callId')
  @Access.tenant('agent', 'calls:read')
  @ApiOperation({
    summary: "A call's status (deprecated alias of GET /api/v1/calls/:id/status)",
    description: DEPRECATED,
    operationId: 'getCallStatusDeprecatedAlias',
    deprecated: true,
  })
  @ApiOkResponse({ type: CallStatusDto })
  @ApiProblems(400, 404)
  status(@CurrentTenant() tenant: Tenant, @Param('callId', ParseUUIDPipe) callId: string) {
    return this.c2c.status(tenant, callId);
  }
}
