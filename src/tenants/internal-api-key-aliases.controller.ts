import { Body, Controller, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { ApiCreatedResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentPrincipal } from '../common/access/access.decorators.js';
import type { Principal } from '../common/access/principal.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { RotateApiKeyDto } from './dto/tenants.dto.js';
import { OperatorService } from './operator.service.js';

/**
 * The Dialpad CTI server's key path that Switchboard lacked (seeds 003/004, README "Seed systems'
 * endpoints"): `POST /internal/apps/:appId/api-key/rotate`, a deprecated alias of
 * `POST /internal/apps/:appId/api-key` (which generates the primary key or rotates it) with the
 * same operator authentication and the same answer. Its siblings (`…/api-key/status`, `/revoke`,
 * `/audit`) are already Switchboard's own paths (internal.controller.ts).
 */
@ApiTags('operator')
@Controller('internal')
@Access.operator()
export class InternalApiKeyAliasesController {
  constructor(private readonly operator: OperatorService) {}

  @Post('apps/:appId/api-key/rotate')
  @ApiOperation({
    summary: 'Rotate the primary API key (deprecated alias of POST /internal/apps/:appId/api-key)',
    description:
      "Deprecated: the Dialpad CTI server's path (seeds 003/004), kept for migrating clients. Same answer as " +
      'POST /internal/apps/:appId/api-key: the old key works for overlapSeconds more.',
    operationId: 'rotateAppKeyDeprecatedAlias',
    deprecated: true,
  })
  @ApiCreatedResponse({ description: '{ appId, apiKey, keyHint, rotatedAt, previousKeyValidUntil, note }' })
  @ApiProblems(400, 404)
  rotate(
    @Param('appId', ParseUUIDPipe) appId: string,
    @Body() dto: RotateApiKeyDto,
    @CurrentPrincipal() actor: Principal,
  ) {
    return this.operator.generateKey(appId, dto.overlapSeconds ?? 0, actor);
  }
}
