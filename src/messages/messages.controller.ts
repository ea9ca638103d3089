import { Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Query } from '@nestjs/common';
import { ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Access, CurrentTenant } from '../common/access/access.decorators.js';
import type { Tenant } from '../common/access/principal.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import {
  ListMessagesQuery,
  ListVoicemailsQuery,
  MessagePageDto,
  VoicemailDto,
  VoicemailPageDto,
} from './messages.dto.js';
import { MessagesService } from './messages.service.js';

@ApiTags('voicemails and messages')
@Controller('api/v1')
export class MessagesController {
  constructor(private readonly messages: MessagesService) {}

  @Get('voicemails')
  @Access.tenant('agent', 'calls:read')
  @ApiOperation({
    summary: 'List voicemails, newest first (an agent sees only its own)',
    description: "Delivered by the phone systems' webhooks; each new one is also pushed as `voicemail.received`.",
    operationId: 'listVoicemails',
  })
  @ApiOkResponse({ type: VoicemailPageDto })
  @ApiProblems(400)
  listVoicemails(@CurrentTenant() tenant: Tenant, @Query() query: ListVoicemailsQuery) {
    return this.messages.listVoicemails(tenant, query);
  }

  @Get('voicemails/:id')
  @Access.tenant('agent', 'calls:read')
  @ApiOperation({ summary: 'Get a voicemail', operationId: 'getVoicemail' })
  @ApiOkResponse({ type: VoicemailDto })
  @ApiProblems(400, 404)
  getVoicemail(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.messages.getVoicemail(tenant, id);
  }

  @Delete('voicemails/:id')
  @HttpCode(204)
  @Access.tenant('agent', 'calls:write')
  @ApiOperation({
    summary: 'Delete a voicemail (here only; the recording stays at the provider)',
    operationId: 'deleteVoicemail',
  })
  @ApiNoContentResponse()
  @ApiProblems(400, 404)
  async deleteVoicemail(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string): Promise<void> {
    await this.messages.deleteVoicemail(tenant, id);
  }

  @Get('messages')
  @Access.tenant('agent', 'calls:read')
  @ApiOperation({
    summary: 'List SMS messages, newest first (an agent sees only its own)',
    description: "Delivered by the phone systems' webhooks; each new one is also pushed as `message.received`.",
    operationId: 'listMessages',
  })
  @ApiOkResponse({ type: MessagePageDto })
  @ApiProblems(400)
  listMessages(@CurrentTenant() tenant: Tenant, @Query() query: ListMessagesQuery) {
    return this.messages.listMessages(tenant, query);
  }
}
