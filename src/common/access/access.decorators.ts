import { applyDecorators, createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import { ApiBearerAuth, ApiExtension, ApiSecurity } from '@nestjs/swagger';
import { ApiProblems } from '../swagger/api-problems.js';
import type { CompanyRole } from './roles.js';
import { commonError } from '../errors/common.errors.js';
import { API_KEY_SCHEME, JWT_SCHEME } from '../swagger/swagger.js';
import type { Principal, Scope, Tenant } from './principal.js';

export const ACCESS_RULE = 'switchboard:access';

/**
 * The access rule of a route. Every route declares one; a route without a rule is refused (403).
 * - `public`: no credential.
 * - `session`: any signed-in user (JWT), platform operators included.
 * - `tenant`: a member of an active company with at least `role` (JWT), or an API key of an active
 *   company holding `scope`. Without `scope`, API keys are refused.
 * - `operator`: the bearer INTERNAL_API_SECRET, or a superadmin's JWT.
 */
export type AccessRule =
  | { kind: 'public' }
  | { kind: 'session' }
  | { kind: 'tenant'; role: CompanyRole; scope?: Scope }
  | { kind: 'operator' };

/** Sets the rule, and documents it: security schemes, 401/403/429 problems, and `x-access`. */
function rule(access: AccessRule) {
  const decorators = [SetMetadata(ACCESS_RULE, access), ApiExtension('x-access', access)];
  if (access.kind === 'public') return applyDecorators(...decorators);
  decorators.push(ApiBearerAuth(JWT_SCHEME), ApiProblems(401, 403, 429));
  if (access.kind === 'tenant' && access.scope) decorators.push(ApiSecurity(API_KEY_SCHEME));
  return applyDecorators(...decorators);
}

export const Access = {
  public: () => rule({ kind: 'public' }),
  session: () => rule({ kind: 'session' }),
  tenant: (role: CompanyRole, scope?: Scope) =>
    rule(scope ? { kind: 'tenant', role, scope } : { kind: 'tenant', role }),
  operator: () => rule({ kind: 'operator' }),
};

interface WithPrincipal {
  principal?: Principal;
}

/** The resolved principal of the request (set by the access guard). */
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  const principal = ctx.switchToHttp().getRequest<WithPrincipal>().principal;
  if (!principal) throw commonError('unauthorized', 'Authentication is required.');
  return principal;
});

/** The company of the request, from its credential only. Fails closed when there is none. */
export const CurrentTenant = createParamDecorator((_: unknown, ctx: ExecutionContext): Tenant => {
  const principal = ctx.switchToHttp().getRequest<WithPrincipal>().principal;
  if (!principal || principal.kind === 'operator' || !principal.companyId) {
    throw commonError('no-company', 'This route acts on a company; the credential has none.');
  }
  return { companyId: principal.companyId, principal };
});
