import { canAssign, canManage } from './roles.policy.js';

describe('role policy', () => {
  it.each([
    ['owner', 'owner', true],
    ['owner', 'admin', true],
    ['owner', 'agent', true],
    ['admin', 'owner', false],
    ['admin', 'admin', true],
    ['admin', 'manager', true],
    ['admin', 'agent', true],
    ['manager', 'admin', false],
    ['manager', 'manager', false],
    ['manager', 'agent', true],
    ['agent', 'agent', false],
  ] as const)('%s manages %s: %s', (actor, target, expected) => {
    expect(canManage(actor, target)).toBe(expected);
  });

  it.each([
    ['owner', 'owner', true],
    ['admin', 'owner', false],
    ['admin', 'admin', true],
    ['manager', 'manager', false],
    ['manager', 'agent', true],
    ['agent', 'agent', false],
  ] as const)('%s assigns %s: %s', (actor, role, expected) => {
    expect(canAssign(actor, role)).toBe(expected);
  });
});
