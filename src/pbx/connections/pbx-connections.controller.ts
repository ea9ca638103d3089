import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Patch, Post } from '@nestjs/common';
import {
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProperty,
  ApiTags,
} from '@nestjs/swagger';
import { Access, CurrentTenant } from '../../common/access/access.decorators.js';
import type { Tenant } from '../../common/access/principal.js';
import { ApiProblems } from '../../common/swagger/api-problems.js';
import {
  CreatePbxConnectionDto,
  PbxConnectionDto,
  PbxConnectionListDto,
  PbxConnectionTestDto,
  UpdatePbxConnectionDto,
} from './pbx-connections.dto.js';
import { PbxConnectionsService } from './pbx-connections.service.js';
import { AsteriskSupervisor } from '../asterisk/asterisk-supervisor.service.js';

const LIVE_STATES = ['connecting', 'connected', 'reconnecting', 'failed', 'standby', 'webhooks'] as const;

class PbxConnectionStatusDto {
  @ApiProperty({ format: 'uuid' }) connectionId!: string;
  @ApiProperty({ example: 'asterisk' }) provider!: string;
  @ApiProperty({
    enum: LIVE_STATES,
    description:
      'Asterisk: the AMI connection as its holder last wrote it (standby: no instance holds it right now). ' +
      'Webhook providers: `webhooks` (nothing is held open).',
  })
  state!: (typeof LIVE_STATES)[number];
  @ApiProperty({ nullable: true, type: String, example: 'authentication failed: Authentication failed' })
  reason!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) since!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'The instance holding the AMI connection' })
  holder!: string | null;
}

class ResealResultDto {
  @ApiProperty() resealed!: number;
  @ApiProperty() total!: number;
}

@ApiTags('phone-system connections')
@Controller()
export class PbxConnectionsController {
  constructor(
    private readonly connections: PbxConnectionsService,
    private readonly asterisk: AsteriskSupervisor,
  ) {}

  @Get('api/v1/pbx-connections')
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: "List the company's phone-system connections (secrets never shown)",
    operationId: 'listPbxConnections',
  })
  @ApiOkResponse({ type: PbxConnectionListDto })
  async list(@CurrentTenant() tenant: Tenant): Promise<PbxConnectionListDto> {
    return { data: await this.connections.list(tenant.companyId) };
  }

  @Post('api/v1/pbx-connections')
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: 'Connect a phone system (Asterisk, Dialpad, Twilio, NetSapiens)',
    description:
      'Settings and secrets are validated by the provider (400 with a field per problem; an unknown key is an ' +
      'error). Secrets are write-only and stored encrypted (AES-256-GCM). Names are unique in the company (409).',
    operationId: 'createPbxConnection',
  })
  @ApiCreatedResponse({ type: PbxConnectionDto })
  @ApiProblems(400, 409)
  create(@CurrentTenant() tenant: Tenant, @Body() dto: CreatePbxConnectionDto) {
    return this.connections.create(tenant, dto);
  }

  @Get('api/v1/pbx-connections/:id')
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({ summary: 'Get a phone-system connection', operationId: 'getPbxConnection' })
  @ApiOkResponse({ type: PbxConnectionDto })
  @ApiProblems(400, 404)
  get(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.connections.get(tenant.companyId, id);
  }

  @Patch('api/v1/pbx-connections/:id')
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: 'Change a connection: name, settings and secrets are merged (null removes a key)',
    operationId: 'updatePbxConnection',
  })
  @ApiOkResponse({ type: PbxConnectionDto })
  @ApiProblems(400, 404, 409)
  update(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string, @Body() dto: UpdatePbxConnectionDto) {
    return this.connections.update(tenant, id, dto);
  }

  @Delete('api/v1/pbx-connections/:id')
  @HttpCode(204)
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: 'Remove a connection (its calls stay; its webhooks are refused from then on)',
    operationId: 'deletePbxConnection',
  })
  @ApiNoContentResponse()
  @ApiProblems(400, 404)
  async remove(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string): Promise<void> {
    await this.connections.remove(tenant, id);
  }

  @Get('api/v1/pbx-connections/:id/status')
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: "The connection's live state (Asterisk: connected / reconnecting / standby / failed with the reason)",
    operationId: 'getPbxConnectionStatus',
  })
  @ApiOkResponse({ type: PbxConnectionStatusDto })
  @ApiProblems(400, 404)
  async status(
    @CurrentTenant() tenant: Tenant,
    @Param('id', ParseUUIDPipe) id: string,
  ): Promise<PbxConnectionStatusDto> {
    const connection = await this.connections.get(tenant.companyId, id);
    if (connection.provider !== 'asterisk') {
      return {
        connectionId: id,
        provider: connection.provider,
        state: 'webhooks',
        reason: null,
        since: null,
        holder: null,
      };
    }
    const live = await this.asterisk.status(tenant.companyId, id);
    return { connectionId: id, provider: connection.provider, ...live };
  }

  @Post('api/v1/pbx-connections/:id/test')
  @HttpCode(200)
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: 'Check the credentials against the provider',
    description: 'A refusal or an unreachable provider is answered 200 with `ok: false` and our error code.',
    operationId: 'testPbxConnection',
  })
  @ApiOkResponse({ type: PbxConnectionTestDto })
  @ApiProblems(400, 404)
  test(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.connections.test(tenant, id);
  }

  @Post('internal/pbx-connections/reseal')
  @HttpCode(200)
  @Access.operator()
  @ApiOperation({
    summary: 'Re-encrypt every connection secret with the current PBX_SECRETS_KEY (key rotation)',
    description: 'Run after moving the old key to PBX_SECRETS_KEYS_PREVIOUS; idempotent.',
    operationId: 'resealPbxSecrets',
  })
  @ApiOkResponse({ type: ResealResultDto })
  reseal() {
    return this.connections.resealAll();
  }
}
