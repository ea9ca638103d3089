import { ROLE_RANK } from '../common/access/principal.js';
import type { CompanyRole, Role } from '../common/access/roles.js';

/**
 * Who may manage whom inside a company:
 * - an agent manages nobody (it edits itself through /auth/me);
 * - a manager manages agents;
 * - an admin manages everyone but owners;
 * - an owner manages everyone.
 * Nobody gives a role above their own, and nobody changes their own role.
 */
export function canManage(actor: Role, target: Role): boolean {
  switch (actor) {
    case 'owner':
      return target !== 'superadmin';
    case 'admin':
      return target === 'admin' || target === 'manager' || target === 'agent';
    case 'manager':
      return target === 'agent';
    default:
      return false;
  }
}

export function canAssign(actor: Role, role: CompanyRole): boolean {
  return canManage(actor, role) && ROLE_RANK[role] <= ROLE_RANK[actor];
}
