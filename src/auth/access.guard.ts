import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { ACCESS_RULE, type AccessRule } from '../common/access/access.decorators.js';
import { type Principal, roleAtLeast } from '../common/access/principal.js';
import { constantTimeEqual } from '../common/crypto/crypto.js';
import { type AppException, isAppException } from '../common/errors/common.errors.js';
import { enforce } from '../common/rate-limit/rate-limit.js';
import { RateLimitService } from '../common/rate-limit/rate-limit.service.js';
import { requestContext } from '../common/request-context.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import { ApiKeysService } from '../tenants/api-keys.service.js';
import { CompaniesService } from '../tenants/companies.service.js';
import { authError } from './auth.errors.js';
import { AuthService } from './auth.service.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    /** The session (refresh-token family) of the access token, for logout. */
    sessionId?: string;
  }
}

/**
 * The one global guard. Every route declares an access rule (see `Access`); this guard resolves
 * the credential (JWT or API key; the operator secret for `/internal`), applies the rate limit
 * of the caller, then checks role or scope. A route without a rule is refused.
 */
@Injectable()
export class AccessGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
    private readonly auth: AuthService,
    private readonly apiKeys: ApiKeysService,
    private readonly companies: CompaniesService,
    private readonly rateLimits: RateLimitService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const rule = this.reflector.getAllAndOverride<AccessRule | undefined>(ACCESS_RULE, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!rule) throw authError('forbidden', 'This route has no access rule.');
    if (rule.kind === 'public') return true;

    const request = context.switchToHttp().getRequest<FastifyRequest>();
    let principal: Principal;
    try {
      principal = await this.authenticate(request, rule);
    } catch (error) {
      // Failed credentials count against the client address: no free guessing of keys.
      if (isAppException(error) && error.status === 401) {
        enforce(
          await this.rateLimits.hit(`authfail:${request.ip}`, this.config.RATE_LIMIT_TENANT_PER_MIN),
          'failed authentications from this address',
        );
      }
      throw error;
    }
    request.principal = principal;
    const store = requestContext.getStore();
    if (store && principal.kind !== 'operator') store.companyId = principal.companyId ?? undefined;

    if (principal.kind === 'operator' || rule.kind === 'operator') {
      enforce(
        await this.rateLimits.hit(`operator:${request.ip}`, this.config.RATE_LIMIT_OPERATOR_PER_MIN),
        'the operator API',
      );
    } else {
      const who = principal.kind === 'api_key' ? `key:${principal.apiKeyId}` : `user:${principal.userId}`;
      enforce(await this.rateLimits.hit(`tenant:${who}`, this.config.RATE_LIMIT_TENANT_PER_MIN), 'this credential');
    }
    this.authorize(rule, principal);
    return true;
  }

  private async authenticate(
    request: FastifyRequest,
    rule: Exclude<AccessRule, { kind: 'public' }>,
  ): Promise<Principal> {
    const bearer = bearerToken(request);
    if (rule.kind === 'operator') {
      if (!bearer) throw unauthorized('Send Authorization: Bearer <INTERNAL_API_SECRET> or a superadmin access token.');
      const secret = this.config.INTERNAL_API_SECRET;
      if (secret && constantTimeEqual(bearer, secret)) return { kind: 'operator' };
      return this.userFromJwt(request, bearer);
    }
    if (bearer) return this.userFromJwt(request, bearer);
    const key = apiKeyHeader(request);
    if (key) {
      if (rule.kind !== 'tenant' || !rule.scope)
        throw authError('forbidden', 'This route takes a user session, not an API key.');
      const found = await this.apiKeys.authenticate(key);
      if (!found) throw unauthorized('The API key is unknown, revoked or expired.');
      const { companyActive, ...identity } = found;
      if (companyActive === false) throw suspended();
      if (companyActive === undefined) await this.assertActive(identity.companyId);
      return { kind: 'api_key', ...identity };
    }
    throw unauthorized('Send Authorization: Bearer <access token> or x-api-key: <API key>.');
  }

  private async userFromJwt(request: FastifyRequest, token: string): Promise<Principal> {
    const claims = await this.auth.verifyAccessToken(token);
    if (!claims) throw unauthorized('The access token is invalid or expired.');
    const user = await this.auth.identityOf(claims);
    if (!user) throw unauthorized('The session has ended.');
    if (user.companyId) await this.assertActive(user.companyId);
    request.sessionId = claims.sid;
    return { kind: 'user', userId: user.id, companyId: user.companyId, role: user.role, email: user.email };
  }

  private async assertActive(companyId: string): Promise<void> {
    if (!(await this.companies.isActive(companyId))) throw suspended();
  }

  private authorize(rule: Exclude<AccessRule, { kind: 'public' }>, principal: Principal): void {
    switch (rule.kind) {
      case 'session':
        if (principal.kind !== 'user') throw authError('forbidden', 'This route takes a user session.');
        return;
      case 'operator':
        if (principal.kind === 'operator' || (principal.kind === 'user' && principal.role === 'superadmin')) return;
        throw authError('forbidden', 'Platform operators only.');
      case 'tenant':
        if (principal.kind === 'api_key') {
          if (rule.scope && (principal.scopes.includes(rule.scope) || principal.scopes.includes('*'))) return;
          throw authError('insufficient-scope', `This API key lacks the scope ${rule.scope ?? '(users only)'}.`);
        }
        if (principal.kind !== 'user' || !principal.companyId) {
          throw authError('no-company', 'This route acts on a company; the credential has none.');
        }
        if (!roleAtLeast(principal.role, rule.role)) {
          throw authError('forbidden', `This needs the role ${rule.role} or higher.`);
        }
        return;
    }
  }
}

function suspended(): AppException {
  return authError('company-suspended', 'This company is suspended.');
}

function unauthorized(detail: string): AppException {
  return authError('unauthorized', detail, {}, { 'www-authenticate': 'Bearer' });
}

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw unauthorized('The Authorization header must be "Bearer <token>".');
  return match[1];
}

/** `x-api-key`; `x-app-api-key` is accepted too (the header of the CTI server this replaces). */
function apiKeyHeader(request: FastifyRequest): string | undefined {
  const value = request.headers['x-api-key'] ?? request.headers['x-app-api-key'];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}
