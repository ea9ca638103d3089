import { Controller, Get, HttpCode, Param, ParseUUIDPipe, Post, Query, Res } from '@nestjs/common';
import {
  ApiOkResponse,
  ApiOperation,
  ApiProperty,
  ApiPropertyOptional,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, IsUrl, MaxLength } from 'class-validator';
import type { FastifyReply } from 'fastify';
import { Access, CurrentTenant } from '../../common/access/access.decorators.js';
import type { Tenant } from '../../common/access/principal.js';
import { ApiProblems } from '../../common/swagger/api-problems.js';
import { ProviderSetupService } from './provider-setup.service.js';

class AuthorizeQuery {
  @ApiPropertyOptional({
    description: 'Where to send the browser after the callback (must be under one of CORS_ORIGINS)',
    example: 'https://app.example.com/settings/phone',
  })
  @IsOptional()
  @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  @MaxLength(2000)
  returnTo?: string;

  @ApiPropertyOptional({
    enum: ['true', 'false'],
    default: 'true',
    description:
      '`false`: answer 200 with the URL instead of a 302 (a browser `fetch` cannot read a redirect to another site)',
  })
  @IsOptional()
  @IsIn(['true', 'false'])
  redirect?: 'true' | 'false';
}

class CallbackQuery {
  @IsOptional() @IsString() @MaxLength(4096) code?: string;
  @IsOptional() @IsString() @MaxLength(200) state?: string;
  @IsOptional() @IsString() @MaxLength(200) error?: string;
}

class AuthorizeDto {
  @ApiProperty({ description: "Dialpad's authorization page, with state and a PKCE S256 challenge" })
  authorizeUrl!: string;
  @ApiProperty({ format: 'date-time', description: 'The authorization must complete before then' })
  expiresAt!: string;
}

class ConnectedDto {
  @ApiProperty() connected!: boolean;
  @ApiProperty({ format: 'uuid' }) connectionId!: string;
}

class DeauthorizedDto {
  @ApiProperty() deauthorized!: boolean;
}

class SubscriptionDto {
  @ApiProperty({ description: 'The URL the provider now posts events to' }) hookUrl!: string;
  @ApiPropertyOptional() webhookId?: string;
  @ApiPropertyOptional() callSubscriptionId?: string;
  @ApiPropertyOptional() smsSubscriptionId?: string;
  @ApiPropertyOptional() subscriptionId?: string;
}

const PROVIDER_ERRORS = 'Provider failures: 502/503/422 problems (`pbx-*`), and nothing is changed.';

@ApiTags('phone-system connections')
@Controller()
export class ProviderSetupController {
  constructor(private readonly setup: ProviderSetupService) {}

  @Get('api/v1/pbx-connections/:id/dialpad/authorize')
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: 'Start connecting Dialpad with OAuth 2.0: a redirect to Dialpad (state and PKCE)',
    description:
      "Answers 302 to Dialpad's authorization page (the same URL is in the body). After the user agrees, Dialpad " +
      'sends the browser to `GET /oauth/dialpad/callback`. Needs DIALPAD_CLIENT_ID and DIALPAD_CLIENT_SECRET ' +
      '(else 422 `pbx-rejected`). 409 `wrong-provider` for a connection that is not Dialpad.',
    operationId: 'authorizeDialpad',
  })
  @ApiResponse({ status: 302, description: "Redirect to Dialpad's authorization page", type: AuthorizeDto })
  @ApiOkResponse({ description: 'With `redirect=false`: the URL to send the browser to', type: AuthorizeDto })
  @ApiProblems(400, 404, 409, 422)
  async authorize(
    @CurrentTenant() tenant: Tenant,
    @Param('id', ParseUUIDPipe) id: string,
    @Query() query: AuthorizeQuery,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const result: AuthorizeDto = await this.setup.authorize(tenant, id, query.returnTo);
    void reply.header('cache-control', 'no-store');
    if (query.redirect === 'false') await reply.status(200).send(result);
    else await reply.status(302).header('location', result.authorizeUrl).send(result);
  }

  @Get('oauth/dialpad/callback')
  @Access.public()
  @ApiOperation({
    summary: "Dialpad's OAuth redirect: exchanges the code (PKCE) and stores the tokens encrypted",
    description:
      'The state is used once and expires after 10 minutes (400 `invalid-oauth-state`); a refusal at Dialpad is ' +
      '400 `oauth-denied`. With a returnTo, answers 302 there with `?dialpad=connected`. ' +
      PROVIDER_ERRORS,
    operationId: 'dialpadOAuthCallback',
  })
  @ApiQuery({ name: 'code', required: false })
  @ApiQuery({ name: 'state', required: true })
  @ApiQuery({ name: 'error', required: false })
  @ApiOkResponse({ type: ConnectedDto })
  @ApiProblems(400, 502, 503)
  async callback(
    @Query() query: CallbackQuery,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ConnectedDto> {
    const { connectionId, returnTo } = await this.setup.callback(query);
    if (returnTo) {
      const url = new URL(returnTo);
      url.searchParams.set('dialpad', 'connected');
      void reply.status(302).header('location', url.toString());
    }
    return { connected: true, connectionId };
  }

  @Post('api/v1/pbx-connections/:id/dialpad/deauthorize')
  @HttpCode(200)
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: "Revoke the connection's Dialpad OAuth tokens (at Dialpad, then here)",
    description: PROVIDER_ERRORS,
    operationId: 'deauthorizeDialpad',
  })
  @ApiOkResponse({ type: DeauthorizedDto })
  @ApiProblems(400, 404, 409, 422, 502, 503)
  deauthorize(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.setup.deauthorize(tenant, id);
  }

  @Post('api/v1/pbx-connections/:id/dialpad/subscribe')
  @HttpCode(200)
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: 'Create the Dialpad webhook (our URL and a secret) and the call and SMS event subscriptions',
    description:
      "Uses the connection's webhookSecret, or makes one. Subscriptions made before are replaced. 409 " +
      '`connection-incomplete` when the connection has no API key (or, with OAuth, is not authorized yet). ' +
      PROVIDER_ERRORS,
    operationId: 'subscribeDialpad',
  })
  @ApiOkResponse({ type: SubscriptionDto })
  @ApiProblems(400, 404, 409, 422, 502, 503)
  subscribeDialpad(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.setup.subscribeDialpad(tenant, id);
  }

  @Post('api/v1/pbx-connections/:id/netsapiens/subscribe')
  @HttpCode(200)
  @Access.tenant('admin', 'pbx:manage')
  @ApiOperation({
    summary: 'Create the NetSapiens `call` event subscription posting to our webhook URL',
    description:
      "The post-url carries the connection's webhookSecret as `?token=` (made when missing): NetSapiens signs " +
      'nothing, so that token is what verifies its deliveries. ' +
      PROVIDER_ERRORS,
    operationId: 'subscribeNetsapiens',
  })
  @ApiOkResponse({ type: SubscriptionDto })
  @ApiProblems(400, 404, 409, 422, 502, 503)
  subscribeNetsapiens(@CurrentTenant() tenant: Tenant, @Param('id', ParseUUIDPipe) id: string) {
    return this.setup.subscribeNetsapiens(tenant, id);
  }
}
