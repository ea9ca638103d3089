/** Company roles, lowest first; platform operators are `superadmin` and belong to no company. */
export const ROLES = ['agent', 'manager', 'admin', 'owner'] as const;
export type CompanyRole = (typeof ROLES)[number];
export type Role = CompanyRole | 'superadmin';
