import type { CompanyRole, Role } from './roles.js';

/** Who is calling, as the access guard resolved it from the credential. */
export type Principal =
  | { kind: 'user'; userId: string; companyId: string | null; role: Role; email: string }
  | { kind: 'api_key'; apiKeyId: string; companyId: string; scopes: string[] }
  | { kind: 'operator' };

/** A request of one company: the only place tenant code reads the company id from. */
export interface Tenant {
  companyId: string;
  principal: Extract<Principal, { kind: 'user' | 'api_key' }>;
}

export const ROLE_RANK: Record<Role, number> = { agent: 1, manager: 2, admin: 3, owner: 4, superadmin: 5 };

export function roleAtLeast(role: Role, minimum: CompanyRole): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[minimum];
}

/** API-key scopes. `*` grants every scope. */
export const SCOPES = [
  'calls:read',
  'calls:write',
  'agents:read',
  'agents:write',
  'users:read',
  'users:write',
  'company:read',
  'company:write',
  'audit:read',
  'webhooks:manage',
  'pbx:manage',
] as const;
export type Scope = (typeof SCOPES)[number];
/** What a key may hold: scopes, or `*` for all of them. */
export type ScopeGrant = Scope | '*';
export const DEFAULT_SCOPES: Scope[] = [
  'calls:read',
  'calls:write',
  'agents:read',
  'agents:write',
  'users:read',
  'company:read',
];

/** The actor of an audit entry, from a principal. */
export function actorOf(principal: Principal): { actorType: 'user' | 'api_key' | 'operator'; actorId: string | null } {
  switch (principal.kind) {
    case 'user':
      return { actorType: 'user', actorId: principal.userId };
    case 'api_key':
      return { actorType: 'api_key', actorId: principal.apiKeyId };
    case 'operator':
      return { actorType: 'operator', actorId: null };
  }
}
