import { Body, Controller, Get, HttpCode, Patch, Post, Req } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { Access, CurrentPrincipal } from '../common/access/access.decorators.js';
import type { Principal } from '../common/access/principal.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { AuthService } from './auth.service.js';
import { LoginDto, LogoutDto, RefreshDto, RegisterDto, TokensDto, UpdateMeDto } from './dto/auth.dto.js';

const client = (req: FastifyRequest) => ({ ip: req.ip, userAgent: req.headers['user-agent'] });

@ApiTags('auth')
@Controller('api/v1/auth')
export class AuthController {
  constructor(private readonly auth: AuthService) {}

  @Post('register')
  @Access.public()
  @ApiOperation({
    summary: 'Create a company and its owner, and sign in',
    description: 'Switched off with AUTH_REGISTRATION_ENABLED=false (403 registration-disabled).',
    operationId: 'register',
  })
  @ApiCreatedResponse({ type: TokensDto })
  @ApiProblems(400, 403, 409)
  register(@Body() dto: RegisterDto, @Req() req: FastifyRequest) {
    return this.auth.register(dto, client(req));
  }

  @Post('login')
  @HttpCode(200)
  @Access.public()
  @ApiOperation({
    summary: 'Sign in with e-mail and password',
    description:
      'Limited to RATE_LIMIT_LOGIN_PER_MIN (10) attempts a minute per client address and per e-mail (429 with Retry-After). Unknown e-mail and wrong password answer alike.',
    operationId: 'login',
  })
  @ApiOkResponse({ type: TokensDto })
  @ApiProblems(400, 401, 403, 429)
  login(@Body() dto: LoginDto, @Req() req: FastifyRequest) {
    return this.auth.login(dto, client(req));
  }

  @Post('refresh')
  @HttpCode(200)
  @Access.public()
  @ApiOperation({
    summary: 'Exchange a refresh token for new tokens (the old refresh token stops working)',
    description: 'Presenting a refresh token that was already used ends its whole session (401 refresh-token-reused).',
    operationId: 'refresh',
  })
  @ApiOkResponse({ type: TokensDto })
  @ApiProblems(400, 401, 403)
  refresh(@Body() dto: RefreshDto, @Req() req: FastifyRequest) {
    return this.auth.refresh(dto.refreshToken, client(req));
  }

  @Post('logout')
  @HttpCode(204)
  @Access.session()
  @ApiOperation({ summary: 'End a session: its refresh token and access tokens stop working', operationId: 'logout' })
  @ApiNoContentResponse()
  @ApiProblems(400)
  logout(@CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest, @Body() dto: LogoutDto) {
    return this.auth.logout(principal, req.sessionId, dto.refreshToken);
  }

  @Get('me')
  @Access.session()
  @ApiOperation({ summary: 'The signed-in user and their company', operationId: 'getMe' })
  @ApiOkResponse({ description: '{ user, company }' })
  me(@CurrentPrincipal() principal: Principal) {
    return this.auth.me(principal);
  }

  @Patch('me')
  @Access.session()
  @ApiOperation({
    summary: 'Change your name, preferences or password (with currentPassword)',
    operationId: 'updateMe',
  })
  @ApiOkResponse({ description: '{ user, company }' })
  @ApiProblems(400)
  updateMe(@CurrentPrincipal() principal: Principal, @Body() dto: UpdateMeDto) {
    return this.auth.updateMe(principal, dto);
  }
}
