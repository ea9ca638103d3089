import { json, type Auth, expectProblem } from './support/http.js';
import {
  call,
  createApiKey,
  createCompany,
  createUser,
  login,
  PASSWORD,
  type TestCompany,
  type TestUser,
} from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

interface Entry {
  id: string;
  companyId: string | null;
  actorType: string;
  actorId: string | null;
  action: string;
  targetType: string | null;
  targetId: string | null;
  requestId: string | null;
  ip: string | null;
  details: Record<string, unknown>;
  createdAt: string;
}

describe('audit log: /api/v1/audit-log', () => {
  let t: TestApp;
  let a: TestCompany;
  let admin: TestUser;
  let manager: TestUser;
  let agent: TestUser;

  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_LOGIN_PER_MIN: '10000' } });
    a = await createCompany(t, 'audit');
    admin = await createUser(t, a, 'admin');
    manager = await createUser(t, a, 'manager');
    agent = await createUser(t, a, 'agent');
  });
  afterAll(() => t.close());

  const owner = () => ({ token: a.owner.accessToken });
  const get = (query = '', auth: Auth = owner()) => call(t, 'GET', `/api/v1/audit-log${query}`, auth);

  async function page(query: string, auth: Auth = owner()): Promise<{ data: Entry[]; next: string | null }> {
    const res = await get(query, auth);
    expect(res.status).toBe(200);
    return json(res);
  }

  /** Every entry of the company, newest first (one page of up to 200). */
  async function all(query = ''): Promise<Entry[]> {
    const body = await page(`?limit=200${query}`);
    expect(body.next).toBeNull();
    return body.data;
  }

  describe('access', () => {
    it('admins and the owner read it; managers and agents get 403', async () => {
      expect((await get('', owner())).status).toBe(200);
      expect((await get('', { token: admin.accessToken })).status).toBe(200);
      await expectProblem(await get('', { token: manager.accessToken }), 403, 'forbidden');
      await expectProblem(await get('', { token: agent.accessToken }), 403, 'forbidden');
    });

    it('a key with audit:read reads it; a key without gets 403 insufficient-scope', async () => {
      const reader = await createApiKey(t, a, ['audit:read']);
      const viaKey = await page('?limit=200', { key: reader.key });
      expect(viaKey.data.map((e) => e.id)).toEqual((await all()).map((e) => e.id));
      const other = await createApiKey(t, a, ['users:read', 'company:read']);
      await expectProblem(await get('', { key: other.key }), 403, 'insufficient-scope');
    });

    it('refuses a request without a credential (401)', async () => {
      await expectProblem(await call(t, 'GET', '/api/v1/audit-log'), 401, 'unauthorized');
    });

    it("shows only the company's own entries", async () => {
      const b = await createCompany(t, 'other');
      await createUser(t, b, 'agent');
      const mine = await all();
      expect(mine.length).toBeGreaterThan(0);
      expect(mine.every((e) => e.companyId === a.id)).toBe(true);
      const theirs = await page('?limit=200', { token: b.owner.accessToken });
      expect(theirs.data.length).toBeGreaterThan(0);
      expect(theirs.data.every((e) => e.companyId === b.id)).toBe(true);
      const ids = new Set(mine.map((e) => e.id));
      expect(theirs.data.some((e) => ids.has(e.id))).toBe(false);
    });
  });

  describe('entries', () => {
    it('records sign-ins and failed sign-ins, with the request id of the request', async () => {
      const ok = await call(t, 'POST', '/api/v1/auth/login', {}, { email: agent.email, password: PASSWORD });
      expect(ok.status).toBe(200);
      const okRequestId = ok.headers.get('x-request-id');
      expect(okRequestId).toEqual(expect.any(String));

      const bad = await call(
        t,
        'POST',
        '/api/v1/auth/login',
        {},
        { email: agent.email, password: 'wrong-password-123' },
      );
      await expectProblem(bad, 401, 'invalid-credentials');
      const badRequestId = bad.headers.get('x-request-id');

      const logins = await all('&action=auth.login');
      expect(logins.filter((e) => e.requestId === okRequestId)).toEqual([
        expect.objectContaining({ companyId: a.id, action: 'auth.login', actorType: 'user', actorId: agent.id }),
      ]);
      const failures = await all('&action=auth.login_failed');
      expect(failures.filter((e) => e.requestId === badRequestId)).toEqual([
        expect.objectContaining({
          companyId: a.id,
          action: 'auth.login_failed',
          actorType: 'user',
          actorId: agent.id,
          details: { reason: 'invalid-credentials' },
        }),
      ]);
      // Nothing secret in them.
      const text = JSON.stringify(await all());
      expect(text).not.toContain('wrong-password-123');
      expect(text).not.toContain(PASSWORD);
    });

    it('takes a well-formed x-request-id from the client into the entry', async () => {
      const requestId = `client-req-${Date.now()}`;
      const res = await t.fetch('/api/v1/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': requestId },
        body: JSON.stringify({ email: manager.email, password: PASSWORD }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-request-id')).toBe(requestId);
      const entries = (await all('&action=auth.login')).filter((e) => e.requestId === requestId);
      expect(entries).toEqual([expect.objectContaining({ actorId: manager.id })]);
    });

    it('records user.created and api_key.created with actor, target and request id', async () => {
      const email = `audited-${Date.now()}@example.com`;
      const created = await call(
        t,
        'POST',
        '/api/v1/users',
        { token: admin.accessToken },
        {
          email,
          password: PASSWORD,
          displayName: 'Audited',
          role: 'agent',
        },
      );
      expect(created.status).toBe(201);
      const user = await json(created);
      const keyRes = await call(t, 'POST', '/api/v1/api-keys', owner(), {
        name: 'audited key',
        scopes: ['calls:read'],
      });
      expect(keyRes.status).toBe(201);
      const key = await json(keyRes);

      const users = await all('&action=user.created');
      expect(users.filter((e) => e.targetId === user.id)).toEqual([
        expect.objectContaining({
          companyId: a.id,
          actorType: 'user',
          actorId: admin.id,
          targetType: 'user',
          targetId: user.id,
          details: { role: 'agent' },
          requestId: created.headers.get('x-request-id'),
        }),
      ]);
      const keys = await all('&action=api_key.created');
      expect(keys.filter((e) => e.targetId === key.apiKey.id)).toEqual([
        expect.objectContaining({
          actorType: 'user',
          actorId: a.owner.id,
          targetType: 'api_key',
          targetId: key.apiKey.id,
          requestId: keyRes.headers.get('x-request-id'),
        }),
      ]);
      expect(JSON.stringify(keys)).not.toContain(key.key);
      // The users created at set-up are there too.
      const targets = users.map((e) => e.targetId);
      expect(targets).toEqual(expect.arrayContaining([admin.id, manager.id, agent.id]));
    });
  });

  describe('filters', () => {
    it('filters by action', async () => {
      const everything = await all();
      const actions = new Set(everything.map((e) => e.action));
      expect(actions.size).toBeGreaterThan(2);
      for (const action of actions) {
        const filtered = await all(`&action=${action}`);
        expect(filtered.length).toBeGreaterThan(0);
        expect(filtered.every((e) => e.action === action)).toBe(true);
        expect(filtered.map((e) => e.id)).toEqual(everything.filter((e) => e.action === action).map((e) => e.id));
      }
      expect(await all('&action=nothing.happened')).toEqual([]);
      for (const bad of ['DROP%20TABLE', 'auth', 'auth.login%27--']) {
        await expectProblem(await get(`?action=${bad}`), 400, 'validation-failed');
      }
    });

    it('filters by since (inclusive) and until (exclusive)', async () => {
      const mark = new Date();
      await new Promise((resolve) => setTimeout(resolve, 20));
      await login(t, agent.email);
      const after = await all(`&since=${encodeURIComponent(mark.toISOString())}`);
      expect(after.length).toBeGreaterThan(0);
      expect(after.every((e) => Date.parse(e.createdAt) >= mark.getTime())).toBe(true);
      expect(after.map((e) => e.action)).toContain('auth.login');

      const everything = await all();
      const pivot = everything[Math.floor(everything.length / 2)]!;
      const at = encodeURIComponent(pivot.createdAt);
      const since = await all(`&since=${at}`);
      const until = await all(`&until=${at}`);
      expect(since.map((e) => e.id)).toContain(pivot.id);
      expect(until.map((e) => e.id)).not.toContain(pivot.id);
      expect(since.every((e) => Date.parse(e.createdAt) >= Date.parse(pivot.createdAt))).toBe(true);
      expect(until.every((e) => Date.parse(e.createdAt) < Date.parse(pivot.createdAt))).toBe(true);
      expect([...since, ...until].map((e) => e.id)).toEqual(everything.map((e) => e.id));

      const window = await all(`&since=${encodeURIComponent(everything.at(-1)!.createdAt)}&until=${at}`);
      expect(window.map((e) => e.id)).toEqual(until.map((e) => e.id));
      expect(await all(`&since=${at}&until=${at}`)).toEqual([]);
      for (const bad of ['?since=yesterday', '?until=not-a-date']) {
        await expectProblem(await get(bad), 400, 'validation-failed');
      }
    });
  });

  describe('keyset pagination', () => {
    beforeAll(async () => {
      // Entries that share a timestamp: a role change and a new password are written in one
      // transaction, so their created_at is the same.
      for (let i = 0; i < 4; i++) {
        const u = await createUser(t, a, 'agent');
        const res = await call(t, 'PATCH', `/api/v1/users/${u.id}`, owner(), {
          role: 'manager',
          password: `a-new-password-${i}-long`,
        });
        expect(res.status).toBe(200);
      }
    });

    async function walk(limit: number, query = ''): Promise<Entry[]> {
      const out: Entry[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 500; pages++) {
        const body = await page(`?limit=${limit}${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        expect(body.data.length).toBeLessThanOrEqual(limit);
        out.push(...body.data);
        if (!body.next) return out;
        expect(body.data).toHaveLength(limit);
        cursor = body.next;
      }
      throw new Error('pagination did not end');
    }

    it('walks every page newest first, without duplicates or gaps', async () => {
      const everything = await all();
      expect(everything.length).toBeGreaterThan(20);
      const times = everything.map((e) => Date.parse(e.createdAt));
      expect([...times].sort((x, y) => y - x)).toEqual(times);
      // The same-transaction pairs are there: some timestamps repeat.
      expect(new Set(everything.map((e) => e.createdAt)).size).toBeLessThan(everything.length);

      for (const limit of [1, 2, 3, 7]) {
        const walked = await walk(limit);
        const ids = walked.map((e) => e.id);
        expect(new Set(ids).size).toBe(ids.length);
        expect({ limit, ids }).toEqual({ limit, ids: everything.map((e) => e.id) });
      }
    });

    it('paginates a filtered list the same way', async () => {
      const filtered = await all('&action=user.created');
      expect(filtered.length).toBeGreaterThan(3);
      expect((await walk(2, '&action=user.created')).map((e) => e.id)).toEqual(filtered.map((e) => e.id));
    });

    it('gives next: null on the last page', async () => {
      const everything = await all();
      const one = await page(`?limit=${everything.length}`);
      expect(one.next).toBeNull();
      const short = await page(`?limit=${everything.length - 1}`);
      expect(short.next).toEqual(expect.any(String));
      const last = await page(`?limit=5&cursor=${encodeURIComponent(short.next!)}`);
      expect(last).toEqual({ data: [everything.at(-1)], next: null });
    });

    it('refuses a tampered cursor (400 invalid-cursor) and bad limits (400)', async () => {
      const first = await page('?limit=2');
      const cursor = first.next!;
      const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
      expect(typeof at).toBe('string');
      const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const tampered = [
        'not-a-cursor',
        cursor.slice(0, -3),
        `${cursor}x!`,
        encode([at, 'not-a-uuid']),
        encode([at, `${id}' OR '1'='1`]),
        encode([at, 42]),
        encode(['not a date', id]),
        encode(['2026-02-30T10:00:00.000Z', id]),
        encode(['2026-02-28T24:00:00.000Z', id]),
        encode({ at, id }),
        encode([at]),
        encode(null),
        Buffer.from('garbage').toString('base64url'),
      ];
      for (const bad of tampered) {
        const res = await get(`?cursor=${encodeURIComponent(bad)}`);
        const body = await json(res);
        expect({ cursor: bad, status: res.status, type: body.type }).toEqual({
          cursor: bad,
          status: 400,
          type: 'urn:switchboard:problem:invalid-cursor',
        });
      }
      await expectProblem(await get(`?cursor=${'a'.repeat(201)}`), 400, 'validation-failed');
      for (const q of ['?limit=0', '?limit=201', '?limit=two']) {
        await expectProblem(await get(q), 400, 'validation-failed');
      }
    });
  });
});
