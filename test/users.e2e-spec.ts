import { json, PROBLEM, type Auth } from './support/http.js';
import {
  call,
  createApiKey,
  createCompany,
  createUser,
  login,
  PASSWORD,
  type TestCompany,
  type TestUser,
  unique,
} from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

describe('users: /api/v1/users', () => {
  let t: TestApp;
  let a: TestCompany;

  beforeAll(async () => {
    // Many sign-ins from one address: the login limit (10/min by default) is not under test here.
    t = await startTestApp({ env: { RATE_LIMIT_LOGIN_PER_MIN: '10000' } });
    a = await createCompany(t, 'users');
  });
  afterAll(() => t.close());

  const owner = () => ({ token: a.owner.accessToken });
  const as = (u: TestUser) => ({ token: u.accessToken });

  async function expectProblem(res: Response, status: number, code: string) {
    const body = await json(res);
    expect({ status: res.status, type: body.type }).toEqual({ status, type: `urn:switchboard:problem:${code}` });
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    return body;
  }

  function fieldsOf(body: { errors?: { field: string }[] }): string[] {
    return (body.errors ?? []).map((e) => e.field);
  }

  function newUser(role: string, extra: Record<string, unknown> = {}) {
    return { email: `${unique(role)}@example.com`, password: PASSWORD, displayName: `New ${role}`, role, ...extra };
  }

  const createAs = (auth: Auth, role: string, extra: Record<string, unknown> = {}) =>
    call(t, 'POST', '/api/v1/users', auth, newUser(role, extra));
  const patch = (auth: Auth, id: string, body: unknown) => call(t, 'PATCH', `/api/v1/users/${id}`, auth, body);
  const remove = (auth: Auth, id: string) => call(t, 'DELETE', `/api/v1/users/${id}`, auth);

  /** The user as the owner sees it (null: gone). */
  async function fetchUser(
    id: string,
    company: TestCompany = a,
  ): Promise<{ role: string; displayName: string } | null> {
    const res = await call(t, 'GET', `/api/v1/users/${id}`, { token: company.owner.accessToken });
    if (res.status === 404) return null;
    expect(res.status).toBe(200);
    return json(res);
  }

  async function allUsers(auth: Auth): Promise<{ id: string; email: string; role: string }[]> {
    const res = await call(t, 'GET', '/api/v1/users?limit=200', auth);
    expect(res.status).toBe(200);
    return (await json(res)).data;
  }

  describe('role rules', () => {
    it('an agent lists only itself and gets 404 for any other user', async () => {
      const agent = await createUser(t, a, 'agent');
      const manager = await createUser(t, a, 'manager');

      const everyone = await allUsers(owner());
      expect(everyone.map((u) => u.id)).toEqual(expect.arrayContaining([a.owner.id, agent.id, manager.id]));

      const res = await call(t, 'GET', '/api/v1/users', as(agent));
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body.data.map((u: { id: string }) => u.id)).toEqual([agent.id]);
      expect(body.pagination).toEqual({ limit: 50, offset: 0, total: 1, hasMore: false });

      const self = await call(t, 'GET', `/api/v1/users/${agent.id}`, as(agent));
      expect(self.status).toBe(200);
      expect(await json(self)).toMatchObject({ id: agent.id, email: agent.email, role: 'agent', companyId: a.id });

      await expectProblem(await call(t, 'GET', `/api/v1/users/${manager.id}`, as(agent)), 404, 'not-found');
      await expectProblem(await call(t, 'GET', `/api/v1/users/${a.owner.id}`, as(agent)), 404, 'not-found');
      // A manager sees others.
      expect((await call(t, 'GET', `/api/v1/users/${agent.id}`, as(manager))).status).toBe(200);
    });

    it('never returns password hashes', async () => {
      const agent = await createUser(t, a, 'agent');
      const text = JSON.stringify([await allUsers(owner()), await fetchUser(agent.id)]);
      expect(text).not.toMatch(/password/i);
    });

    it('an agent cannot create, change or delete users (403)', async () => {
      const agent = await createUser(t, a, 'agent');
      const other = await createUser(t, a, 'agent');
      const created = newUser('agent');
      await expectProblem(await call(t, 'POST', '/api/v1/users', as(agent), created), 403, 'forbidden');
      await expectProblem(await patch(as(agent), other.id, { displayName: 'Renamed' }), 403, 'forbidden');
      await expectProblem(await patch(as(agent), agent.id, { role: 'manager' }), 403, 'forbidden');
      await expectProblem(await remove(as(agent), other.id), 403, 'forbidden');

      expect(await fetchUser(other.id)).toMatchObject({ displayName: 'A agent', role: 'agent' });
      expect(await fetchUser(agent.id)).toMatchObject({ role: 'agent' });
      expect((await allUsers(owner())).map((u) => u.email)).not.toContain(created.email);
    });

    it('a manager creates agents, but not managers, admins or owners (403)', async () => {
      const manager = await createUser(t, a, 'manager');
      const res = await createAs(as(manager), 'agent');
      expect(res.status).toBe(201);
      expect(await json(res)).toMatchObject({ role: 'agent', companyId: a.id });

      const refused = [newUser('manager'), newUser('admin'), newUser('owner')];
      for (const body of refused) {
        await expectProblem(await call(t, 'POST', '/api/v1/users', as(manager), body), 403, 'forbidden');
      }
      const emails = (await allUsers(owner())).map((u) => u.email);
      for (const body of refused) expect(emails).not.toContain(body.email);
    });

    it('a manager changes and deletes agents, but not managers or admins (403)', async () => {
      const manager = await createUser(t, a, 'manager');
      const otherManager = await createUser(t, a, 'manager');
      const admin = await createUser(t, a, 'admin');
      const agent = await createUser(t, a, 'agent');

      const renamed = await patch(as(manager), agent.id, { displayName: 'Renamed by manager' });
      expect(renamed.status).toBe(200);
      expect(await json(renamed)).toMatchObject({ id: agent.id, displayName: 'Renamed by manager', role: 'agent' });

      await expectProblem(await patch(as(manager), otherManager.id, { displayName: 'x' }), 403, 'forbidden');
      await expectProblem(await patch(as(manager), admin.id, { displayName: 'x' }), 403, 'forbidden');
      await expectProblem(await patch(as(manager), a.owner.id, { displayName: 'x' }), 403, 'forbidden');
      await expectProblem(await remove(as(manager), otherManager.id), 403, 'forbidden');
      await expectProblem(await remove(as(manager), admin.id), 403, 'forbidden');
      await expectProblem(await remove(as(manager), a.owner.id), 403, 'forbidden');
      expect(await fetchUser(otherManager.id)).toMatchObject({ displayName: 'A manager' });
      expect(await fetchUser(admin.id)).toMatchObject({ displayName: 'A admin' });

      const deleted = await remove(as(manager), agent.id);
      expect(deleted.status).toBe(204);
      expect(await deleted.text()).toBe('');
      expect(await fetchUser(agent.id)).toBeNull();
    });

    it('an admin manages admins, managers and agents, but not the owner (403)', async () => {
      const admin = await createUser(t, a, 'admin');
      for (const role of ['admin', 'manager', 'agent']) {
        const res = await createAs(as(admin), role);
        expect(res.status).toBe(201);
        expect((await json(res)).role).toBe(role);
      }
      const owners = newUser('owner');
      await expectProblem(await call(t, 'POST', '/api/v1/users', as(admin), owners), 403, 'forbidden');
      expect((await allUsers(owner())).map((u) => u.email)).not.toContain(owners.email);

      const otherAdmin = await createUser(t, a, 'admin');
      const manager = await createUser(t, a, 'manager');
      const agent = await createUser(t, a, 'agent');

      const r1 = await patch(as(admin), otherAdmin.id, { displayName: 'Renamed admin' });
      expect(r1.status).toBe(200);
      const r2 = await patch(as(admin), manager.id, { role: 'agent' });
      expect(r2.status).toBe(200);
      expect((await json(r2)).role).toBe('agent');
      const r3 = await patch(as(admin), agent.id, { role: 'admin' });
      expect(r3.status).toBe(200);
      expect((await json(r3)).role).toBe('admin');

      await expectProblem(await patch(as(admin), a.owner.id, { displayName: 'Taken over' }), 403, 'forbidden');
      await expectProblem(await patch(as(admin), a.owner.id, { role: 'agent' }), 403, 'forbidden');
      await expectProblem(await remove(as(admin), a.owner.id), 403, 'forbidden');
      expect(await fetchUser(a.owner.id)).toMatchObject({ role: 'owner', displayName: `${a.name} owner` });

      expect((await remove(as(admin), otherAdmin.id)).status).toBe(204);
      expect(await fetchUser(otherAdmin.id)).toBeNull();
    });

    it('the owner manages everyone, other owners included', async () => {
      const created = await createAs(owner(), 'owner');
      expect(created.status).toBe(201);
      const secondOwner = await json(created);
      expect(secondOwner.role).toBe('owner');
      const admin = await createUser(t, a, 'admin');
      const manager = await createUser(t, a, 'manager');

      expect((await patch(owner(), secondOwner.id, { displayName: 'Co-owner' })).status).toBe(200);
      const demoted = await patch(owner(), admin.id, { role: 'manager' });
      expect(demoted.status).toBe(200);
      expect((await json(demoted)).role).toBe('manager');
      const promoted = await patch(owner(), manager.id, { role: 'owner' });
      expect(promoted.status).toBe(200);
      expect((await json(promoted)).role).toBe('owner');

      expect((await remove(owner(), admin.id)).status).toBe(204);
      expect((await remove(owner(), manager.id)).status).toBe(204);
      expect((await remove(owner(), secondOwner.id)).status).toBe(204);
      for (const id of [admin.id, manager.id, secondOwner.id]) expect(await fetchUser(id)).toBeNull();
    });

    it('nobody gives a role above their own (403)', async () => {
      const manager = await createUser(t, a, 'manager');
      const admin = await createUser(t, a, 'admin');
      const agent = await createUser(t, a, 'agent');
      await expectProblem(await patch(as(manager), agent.id, { role: 'manager' }), 403, 'forbidden');
      await expectProblem(await patch(as(manager), agent.id, { role: 'admin' }), 403, 'forbidden');
      await expectProblem(await patch(as(admin), agent.id, { role: 'owner' }), 403, 'forbidden');
      await expectProblem(await createAs(as(admin), 'owner'), 403, 'forbidden');
      expect(await fetchUser(agent.id)).toMatchObject({ role: 'agent' });
    });

    it('nobody changes their own role (403), but may rename themself', async () => {
      const manager = await createUser(t, a, 'manager');
      const admin = await createUser(t, a, 'admin');
      await expectProblem(await patch(as(manager), manager.id, { role: 'agent' }), 403, 'forbidden');
      await expectProblem(await patch(as(admin), admin.id, { role: 'owner' }), 403, 'forbidden');
      await expectProblem(await patch(as(admin), admin.id, { role: 'manager' }), 403, 'forbidden');
      await expectProblem(await patch(owner(), a.owner.id, { role: 'admin' }), 403, 'forbidden');
      expect(await fetchUser(manager.id)).toMatchObject({ role: 'manager' });
      expect(await fetchUser(admin.id)).toMatchObject({ role: 'admin' });
      expect(await fetchUser(a.owner.id)).toMatchObject({ role: 'owner' });

      // Sending one's own current role is no change.
      const same = await patch(as(admin), admin.id, { role: 'admin', displayName: 'Admin renamed' });
      expect(same.status).toBe(200);
      expect(await json(same)).toMatchObject({ role: 'admin', displayName: 'Admin renamed' });
    });

    it('nobody deletes themself (403)', async () => {
      const manager = await createUser(t, a, 'manager');
      const admin = await createUser(t, a, 'admin');
      await expectProblem(await remove(as(manager), manager.id), 403, 'forbidden');
      await expectProblem(await remove(as(admin), admin.id), 403, 'forbidden');
      await expectProblem(await remove(owner(), a.owner.id), 403, 'forbidden');
      for (const id of [manager.id, admin.id, a.owner.id]) expect(await fetchUser(id)).not.toBeNull();
    });

    it('an owner deletes another owner while two exist; the last owner stays (409 last-owner)', async () => {
      const b = await createCompany(t, 'owners');
      const res = await call(t, 'POST', '/api/v1/users', { token: b.owner.accessToken }, newUser('owner'));
      expect(res.status).toBe(201);
      const second = await json(res);
      const secondSession = await login(t, second.email);

      // The second owner deletes the first: two owners exist, so that is allowed.
      expect((await remove({ token: secondSession.accessToken }, b.owner.id)).status).toBe(204);
      const left = await allUsers({ key: b.apiKey });
      expect(left.filter((u) => u.role === 'owner').map((u) => u.id)).toEqual([second.id]);
      // The one left cannot delete itself, and nothing else may manage an owner.
      await expectProblem(await remove({ token: secondSession.accessToken }, second.id), 403, 'forbidden');
      await expectProblem(await remove({ key: b.apiKey }, second.id), 403, 'forbidden');
    });

    /** Companies with two owners each, both signed in. */
    async function twoOwnerCompanies(n: number) {
      return Promise.all(
        Array.from({ length: n }, async () => {
          const c = await createCompany(t, 'race');
          const res = await call(t, 'POST', '/api/v1/users', { token: c.owner.accessToken }, newUser('owner'));
          expect(res.status).toBe(201);
          const second = await json(res);
          return { c, second, secondToken: (await login(t, second.email)).accessToken };
        }),
      );
    }

    async function outcome(r: Response): Promise<string> {
      return r.status < 300 ? String(r.status) : `${r.status} ${(await json(r)).type}`;
    }

    it('two owners deleting each other at the same time leave one owner (one 204, one 409 last-owner)', async () => {
      for (const { c, second, secondToken } of await twoOwnerCompanies(4)) {
        const results = await Promise.all([
          remove({ token: c.owner.accessToken }, second.id),
          remove({ token: secondToken }, c.owner.id),
        ]);
        const outcomes = await Promise.all(results.map(outcome));
        expect(outcomes.sort()).toEqual(['204', '409 urn:switchboard:problem:last-owner']);
        const owners = (await allUsers({ key: c.apiKey })).filter((u) => u.role === 'owner');
        expect(owners).toHaveLength(1);
      }
    });

    it('two owners demoting each other at the same time leave one owner (one 200, one 409 last-owner)', async () => {
      for (const { c, second, secondToken } of await twoOwnerCompanies(4)) {
        const results = await Promise.all([
          patch({ token: c.owner.accessToken }, second.id, { role: 'admin' }),
          patch({ token: secondToken }, c.owner.id, { role: 'admin' }),
        ]);
        const outcomes = await Promise.all(results.map(outcome));
        expect(outcomes.sort()).toEqual(['200', '409 urn:switchboard:problem:last-owner']);
        const owners = (await allUsers({ key: c.apiKey })).filter((u) => u.role === 'owner');
        expect(owners).toHaveLength(1);
      }
    });
  });

  describe('validation', () => {
    it('refuses a password under 12 characters with a field error on password (400)', async () => {
      const body = newUser('agent', { password: 'x'.repeat(11) });
      const res = await expectProblem(await call(t, 'POST', '/api/v1/users', owner(), body), 400, 'validation-failed');
      expect(fieldsOf(res)).toEqual(['password']);
      // Exactly 12 is enough.
      expect((await createAs(owner(), 'agent', { password: 'y'.repeat(12) })).status).toBe(201);

      const agent = await createUser(t, a, 'agent');
      const short = await expectProblem(
        await patch(owner(), agent.id, { password: 'short' }),
        400,
        'validation-failed',
      );
      expect(fieldsOf(short)).toEqual(['password']);
      await login(t, agent.email, PASSWORD); // unchanged
    });

    it('refuses a bad e-mail (400)', async () => {
      for (const email of ['not-an-email', 'a@', '@example.com', '']) {
        const res = await expectProblem(await createAs(owner(), 'agent', { email }), 400, 'validation-failed');
        expect(fieldsOf(res)).toContain('email');
      }
    });

    it('refuses unknown properties and unknown roles (400)', async () => {
      const unknownProp = await expectProblem(
        await createAs(owner(), 'agent', { isAdmin: true }),
        400,
        'validation-failed',
      );
      expect(fieldsOf(unknownProp)).toEqual(['isAdmin']);
      const role = await expectProblem(await createAs(owner(), 'superadmin'), 400, 'validation-failed');
      expect(fieldsOf(role)).toEqual(['role']);

      const agent = await createUser(t, a, 'agent');
      const patched = await expectProblem(
        await patch(owner(), agent.id, { companyId: UNKNOWN_ID }),
        400,
        'validation-failed',
      );
      expect(fieldsOf(patched)).toEqual(['companyId']);
      await expectProblem(await patch(owner(), agent.id, { role: 'superadmin' }), 400, 'validation-failed');
      expect(await fetchUser(agent.id)).toMatchObject({ role: 'agent' });
    });

    it('refuses a duplicate e-mail, whatever its case (409 email-taken)', async () => {
      const first = newUser('agent');
      expect((await call(t, 'POST', '/api/v1/users', owner(), first)).status).toBe(201);
      await expectProblem(await call(t, 'POST', '/api/v1/users', owner(), first), 409, 'email-taken');
      const upper = { ...newUser('agent'), email: first.email.toUpperCase() };
      await expectProblem(await call(t, 'POST', '/api/v1/users', owner(), upper), 409, 'email-taken');
      // Another company's user has the e-mail: still taken (e-mails are global).
      const b = await createCompany(t, 'dup');
      const other = { ...newUser('agent'), email: first.email };
      await expectProblem(
        await call(t, 'POST', '/api/v1/users', { token: b.owner.accessToken }, other),
        409,
        'email-taken',
      );
      expect((await allUsers(owner())).filter((u) => u.email === first.email.toLowerCase())).toHaveLength(1);
    });

    it('stores e-mails lower-case and signs in whatever the case', async () => {
      const mixed = `${unique('Mixed')}@Example.COM`;
      const res = await createAs(owner(), 'agent', { email: mixed });
      expect(res.status).toBe(201);
      expect((await json(res)).email).toBe(mixed.toLowerCase());
      await login(t, mixed.toUpperCase());
    });

    it('answers 400 to a malformed id and 404 to an unknown one', async () => {
      for (const [method, body] of [
        ['GET', undefined],
        ['PATCH', { displayName: 'x' }],
        ['DELETE', undefined],
      ] as const) {
        const bad = await call(t, method, '/api/v1/users/not-a-uuid', owner(), body);
        expect(bad.status).toBe(400);
        expect(bad.headers.get('content-type')).toBe(PROBLEM);
        await expectProblem(await call(t, method, `/api/v1/users/${UNKNOWN_ID}`, owner(), body), 404, 'not-found');
      }
    });

    it("answers 404 to another company's user, and leaves it alone", async () => {
      const b = await createCompany(t, 'other');
      const theirs = await createUser(t, b, 'agent');
      const mine = owner();
      await expectProblem(await call(t, 'GET', `/api/v1/users/${theirs.id}`, mine), 404, 'not-found');
      await expectProblem(await patch(mine, theirs.id, { role: 'admin' }), 404, 'not-found');
      await expectProblem(await remove(mine, theirs.id), 404, 'not-found');
      await expectProblem(await remove(mine, b.owner.id), 404, 'not-found');
      expect((await allUsers(mine)).map((u) => u.id)).not.toContain(theirs.id);
      expect(await fetchUser(theirs.id, b)).toMatchObject({ role: 'agent' });
    });

    it('refuses requests without a credential (401)', async () => {
      const res = await call(t, 'GET', '/api/v1/users');
      await expectProblem(res, 401, 'unauthorized');
      await expectProblem(await call(t, 'POST', '/api/v1/users', {}, newUser('agent')), 401, 'unauthorized');
    });
  });

  describe('sessions follow the user', () => {
    it("a deleted user's access token stops working (401) and they cannot sign in", async () => {
      const agent = await createUser(t, a, 'agent');
      expect((await call(t, 'GET', '/api/v1/users', as(agent))).status).toBe(200);
      expect((await remove(owner(), agent.id)).status).toBe(204);

      const res = await call(t, 'GET', '/api/v1/users', as(agent));
      await expectProblem(res, 401, 'unauthorized');
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      await expectProblem(await call(t, 'GET', '/api/v1/auth/me', as(agent)), 401, 'unauthorized');
      await expectProblem(
        await call(t, 'POST', '/api/v1/auth/login', {}, { email: agent.email, password: PASSWORD }),
        401,
        'invalid-credentials',
      );
      const refreshed = await call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: agent.refreshToken });
      expect(refreshed.status).toBe(401);
    });

    it('a role change takes effect at once, on the same access token', async () => {
      const agent = await createUser(t, a, 'agent');
      await expectProblem(await createAs(as(agent), 'agent'), 403, 'forbidden');

      expect((await patch(owner(), agent.id, { role: 'manager' })).status).toBe(200);
      const created = await createAs(as(agent), 'agent');
      expect(created.status).toBe(201);
      expect((await allUsers(as(agent))).length).toBeGreaterThan(1);

      expect((await patch(owner(), agent.id, { role: 'agent' })).status).toBe(200);
      await expectProblem(await createAs(as(agent), 'agent'), 403, 'forbidden');
      expect((await allUsers(as(agent))).map((u) => u.id)).toEqual([agent.id]);
    });

    it('a new password takes effect: the old one no longer signs in', async () => {
      const agent = await createUser(t, a, 'agent');
      const next = 'another-long-password-123';
      expect((await patch(owner(), agent.id, { password: next })).status).toBe(200);
      await expectProblem(
        await call(t, 'POST', '/api/v1/auth/login', {}, { email: agent.email, password: PASSWORD }),
        401,
        'invalid-credentials',
      );
      await login(t, agent.email, next);
    });
  });

  describe('API keys', () => {
    it('a key with users:read lists users but may not write (403 insufficient-scope)', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      const agent = await createUser(t, a, 'agent');
      const listed = await allUsers({ key: k.key });
      expect(listed.map((u) => u.id)).toEqual(expect.arrayContaining([a.owner.id, agent.id]));
      expect((await call(t, 'GET', `/api/v1/users/${agent.id}`, { key: k.key })).status).toBe(200);

      const body = newUser('agent');
      await expectProblem(await call(t, 'POST', '/api/v1/users', { key: k.key }, body), 403, 'insufficient-scope');
      await expectProblem(await patch({ key: k.key }, agent.id, { displayName: 'x' }), 403, 'insufficient-scope');
      await expectProblem(await remove({ key: k.key }, agent.id), 403, 'insufficient-scope');
      expect((await allUsers(owner())).map((u) => u.email)).not.toContain(body.email);
      expect(await fetchUser(agent.id)).toMatchObject({ displayName: 'A agent' });
    });

    it('a key with users:write creates agents but not admins or owners (403)', async () => {
      const k = await createApiKey(t, a, ['users:write']);
      const res = await createAs({ key: k.key }, 'agent');
      expect(res.status).toBe(201);
      const agent = await json(res);
      expect(agent).toMatchObject({ role: 'agent', companyId: a.id });

      const admin = newUser('admin');
      await expectProblem(await call(t, 'POST', '/api/v1/users', { key: k.key }, admin), 403, 'forbidden');
      await expectProblem(await createAs({ key: k.key }, 'owner'), 403, 'forbidden');
      await expectProblem(await patch({ key: k.key }, agent.id, { role: 'admin' }), 403, 'forbidden');
      await expectProblem(await patch({ key: k.key }, a.owner.id, { displayName: 'x' }), 403, 'forbidden');
      await expectProblem(await remove({ key: k.key }, a.owner.id), 403, 'forbidden');
      expect((await allUsers(owner())).map((u) => u.email)).not.toContain(admin.email);
      expect(await fetchUser(agent.id)).toMatchObject({ role: 'agent' });
      expect(await fetchUser(a.owner.id)).toMatchObject({ role: 'owner' });

      // users:write alone does not read.
      await expectProblem(await call(t, 'GET', '/api/v1/users', { key: k.key }), 403, 'insufficient-scope');
      // It deletes the agent it made.
      expect((await remove({ key: k.key }, agent.id)).status).toBe(204);
    });
  });

  describe('audit', () => {
    async function auditEntries(action: string): Promise<Record<string, unknown>[]> {
      const res = await call(t, 'GET', `/api/v1/audit-log?limit=200&action=${action}`, owner());
      expect(res.status).toBe(200);
      return (await json(res)).data;
    }

    it('records role changes and deletions with actor and target', async () => {
      const admin = await createUser(t, a, 'admin');
      const agent = await createUser(t, a, 'agent');
      const doomed = await createUser(t, a, 'manager');
      const k = await createApiKey(t, a, ['users:write']);
      const viaKey = await json(await createAs({ key: k.key }, 'agent'));

      expect((await patch(as(admin), agent.id, { role: 'manager' })).status).toBe(200);
      expect((await remove(owner(), doomed.id)).status).toBe(204);
      expect((await remove({ key: k.key }, viaKey.id)).status).toBe(204);

      const changes = await auditEntries('user.role_changed');
      expect(changes.filter((e) => e.targetId === agent.id)).toEqual([
        expect.objectContaining({
          companyId: a.id,
          action: 'user.role_changed',
          actorType: 'user',
          actorId: admin.id,
          targetType: 'user',
          targetId: agent.id,
          details: { from: 'agent', to: 'manager' },
        }),
      ]);

      const deletions = await auditEntries('user.deleted');
      expect(deletions.filter((e) => e.targetId === doomed.id)).toEqual([
        expect.objectContaining({
          actorType: 'user',
          actorId: a.owner.id,
          targetType: 'user',
          targetId: doomed.id,
          details: { role: 'manager' },
        }),
      ]);
      expect(deletions.filter((e) => e.targetId === viaKey.id)).toEqual([
        expect.objectContaining({ actorType: 'api_key', actorId: k.id, targetType: 'user', targetId: viaKey.id }),
      ]);
    });

    it('records nothing for a refused change', async () => {
      const manager = await createUser(t, a, 'manager');
      const admin = await createUser(t, a, 'admin');
      await expectProblem(await patch(as(manager), admin.id, { role: 'agent' }), 403, 'forbidden');
      await expectProblem(await remove(as(manager), admin.id), 403, 'forbidden');
      expect((await auditEntries('user.role_changed')).filter((e) => e.targetId === admin.id)).toEqual([]);
      expect((await auditEntries('user.deleted')).filter((e) => e.targetId === admin.id)).toEqual([]);
    });
  });
});

describe('null in an optional field', () => {
  it('is a 400 field error, never a 500 from a NOT NULL column', async () => {
    const t = await startTestApp();
    try {
      const co = await createCompany(t, 'nulls');
      const agent = await createUser(t, co, 'agent');
      for (const field of ['displayName', 'role', 'password', 'preferences']) {
        const res = await call(
          t,
          'PATCH',
          `/api/v1/users/${agent.id}`,
          { token: co.owner.accessToken },
          { [field]: null },
        );
        expect([field, res.status]).toEqual([field, 400]);
        expect((await json(res)).errors.map((e: { field: string }) => e.field)).toEqual([field]);
      }
      const me = await call(t, 'PATCH', '/api/v1/auth/me', { token: agent.accessToken }, { displayName: null });
      expect(me.status).toBe(400);
      const company = await call(t, 'PATCH', '/api/v1/company', { token: co.owner.accessToken }, { name: null });
      expect(company.status).toBe(400);
    } finally {
      await t.close();
    }
  });
});
