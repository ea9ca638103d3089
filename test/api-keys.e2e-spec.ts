import { createHash } from 'node:crypto';
import { json, type Auth, expectProblem } from './support/http.js';
import {
  call,
  createApiKey,
  createCompany,
  createUser,
  type TestCompany,
  type TestUser,
  unique,
} from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

const KEY_FORMAT = /^sbk_[A-Za-z0-9_-]{43}$/;
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const DEFAULT_SCOPES = ['agents:read', 'agents:write', 'calls:read', 'calls:write', 'company:read', 'users:read'];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const hintOf = (key: string) => `${key.slice(0, 8)}…${key.slice(-4)}`;

/** A request any API key with users:read may make. */
const useKey = (t: TestApp, key: string, header = 'x-api-key') =>
  t.fetch('/api/v1/users', { headers: { [header]: key } });

describe('API keys: /api/v1/api-keys', () => {
  let t: TestApp;
  let a: TestCompany;
  let admin: TestUser;
  let manager: TestUser;
  let agent: TestUser;

  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_LOGIN_PER_MIN: '10000' } });
    a = await createCompany(t, 'keys');
    admin = await createUser(t, a, 'admin');
    manager = await createUser(t, a, 'manager');
    agent = await createUser(t, a, 'agent');
  });
  afterAll(() => t.close());

  const owner = () => ({ token: a.owner.accessToken });
  const create = (auth: Auth, body: Record<string, unknown>) => call(t, 'POST', '/api/v1/api-keys', auth, body);
  const rotate = (auth: Auth, id: string, body: Record<string, unknown> = {}) =>
    call(t, 'POST', `/api/v1/api-keys/${id}/rotate`, auth, body);
  const revoke = (auth: Auth, id: string) => call(t, 'POST', `/api/v1/api-keys/${id}/revoke`, auth);
  const status = async (id: string) => {
    const res = await call(t, 'GET', `/api/v1/api-keys/${id}/status`, owner());
    expect(res.status).toBe(200);
    return json(res);
  };

  describe('access', () => {
    it('admins and owners use every route; managers and agents get 403', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      const routes = (id: string): [string, string, unknown][] => [
        ['POST', '/api/v1/api-keys', { name: unique('k') }],
        ['GET', '/api/v1/api-keys', undefined],
        ['GET', `/api/v1/api-keys/${id}/status`, undefined],
        ['GET', `/api/v1/api-keys/${id}/audit`, undefined],
        ['POST', `/api/v1/api-keys/${id}/rotate`, { overlapSeconds: 60 }],
        ['POST', `/api/v1/api-keys/${id}/revoke`, undefined],
      ];
      for (const user of [manager, agent]) {
        for (const [method, path, body] of routes(k.id)) {
          await expectProblem(await call(t, method, path, { token: user.accessToken }, body), 403, 'forbidden');
        }
      }
      // Nothing happened: the key is as it was, and still works.
      expect(await status(k.id)).toMatchObject({ active: true, rotatedAt: null, revokedAt: null });
      expect((await useKey(t, k.key)).status).toBe(200);

      for (const who of [admin, a.owner]) {
        const mine = await createApiKey(t, a, ['users:read']);
        const expected = [201, 200, 200, 200, 200, 200];
        const got: number[] = [];
        for (const [method, path, body] of routes(mine.id)) {
          got.push((await call(t, method, path, { token: who.accessToken }, body)).status);
        }
        expect(got).toEqual(expected);
      }
    });

    it('refuses every API key, even one with scope * (403: users only)', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      for (const key of [a.apiKey, k.key]) {
        for (const [method, path] of [
          ['POST', '/api/v1/api-keys'],
          ['GET', '/api/v1/api-keys'],
          ['GET', `/api/v1/api-keys/${k.id}/status`],
          ['GET', `/api/v1/api-keys/${k.id}/audit`],
          ['POST', `/api/v1/api-keys/${k.id}/rotate`],
          ['POST', `/api/v1/api-keys/${k.id}/revoke`],
        ]) {
          const body = method === 'POST' && path.endsWith('api-keys') ? { name: 'x' } : undefined;
          await expectProblem(await call(t, method, path, { key }, body), 403, 'forbidden');
        }
      }
      expect(await status(k.id)).toMatchObject({ active: true, rotatedAt: null, revokedAt: null });
    });

    it('refuses a request without a credential (401)', async () => {
      await expectProblem(await call(t, 'GET', '/api/v1/api-keys'), 401, 'unauthorized');
    });

    it("answers 404 for another company's key, and 400 for a malformed id", async () => {
      const b = await createCompany(t, 'other');
      const theirs = await createApiKey(t, b, ['users:read']);
      for (const path of [`${theirs.id}/status`, `${theirs.id}/audit`, `${theirs.id}/rotate`, `${theirs.id}/revoke`]) {
        const method = path.endsWith('status') || path.endsWith('audit') ? 'GET' : 'POST';
        await expectProblem(await call(t, method, `/api/v1/api-keys/${path}`, owner()), 404, 'not-found');
        const unknown = path.replace(theirs.id, UNKNOWN_ID);
        await expectProblem(await call(t, method, `/api/v1/api-keys/${unknown}`, owner()), 404, 'not-found');
        const malformed = path.replace(theirs.id, 'not-a-uuid');
        expect((await call(t, method, `/api/v1/api-keys/${malformed}`, owner())).status).toBe(400);
      }
      const listed = await json(await call(t, 'GET', '/api/v1/api-keys', owner()));
      expect(listed.data.map((k: { id: string }) => k.id)).not.toContain(theirs.id);
      expect((await useKey(t, theirs.key)).status).toBe(200);
    });
  });

  describe('create', () => {
    it('shows the key in the create response only; list and status show hints', async () => {
      const name = unique('crm');
      const res = await create(owner(), { name, scopes: ['users:read'] });
      expect(res.status).toBe(201);
      const body = await json(res);
      expect(body.key).toMatch(KEY_FORMAT);
      const key: string = body.key;
      const hint = hintOf(key);
      expect(hint).toHaveLength(13);
      expect(body.apiKey).toMatchObject({
        name,
        scopes: ['users:read'],
        keyHint: hint,
        isPrimary: false,
        active: true,
        expiresAt: null,
        rotatedAt: null,
        lastUsedAt: null,
        revokedAt: null,
        previousKeyHint: null,
        previousKeyValidUntil: null,
      });
      expect(JSON.stringify(body.apiKey)).not.toContain(key);
      expect(typeof body.note).toBe('string');

      const hash = createHash('sha256').update(key).digest('hex');
      const secretParts = [key, key.slice(4), key.slice(8, -4), hash];
      const list = await call(t, 'GET', '/api/v1/api-keys', owner());
      expect(list.status).toBe(200);
      const listText = await list.text();
      const listed = JSON.parse(listText).data.find((k: { id: string }) => k.id === body.apiKey.id);
      expect(listed).toMatchObject({ name, keyHint: hint, active: true });
      const statusRes = await call(t, 'GET', `/api/v1/api-keys/${body.apiKey.id}/status`, owner());
      const statusText = await statusRes.text();
      expect(JSON.parse(statusText)).toMatchObject({ id: body.apiKey.id, keyHint: hint });
      for (const text of [listText, statusText]) {
        for (const part of secretParts) expect(text).not.toContain(part);
        expect(text).not.toMatch(/keyHash|key_hash/i);
      }
      // A second key is a different key.
      expect((await createApiKey(t, a, ['users:read'])).key).not.toBe(key);
    });

    it('gives the default scopes when none are given', async () => {
      const res = await create(owner(), { name: unique('default') });
      expect(res.status).toBe(201);
      const body = await json(res);
      expect([...body.apiKey.scopes].sort()).toEqual(DEFAULT_SCOPES);
      expect((await call(t, 'GET', '/api/v1/users', { key: body.key })).status).toBe(200);
      expect((await call(t, 'GET', '/api/v1/company', { key: body.key })).status).toBe(200);
      await expectProblem(await call(t, 'GET', '/api/v1/audit-log', { key: body.key }), 403, 'insufficient-scope');
      await expectProblem(
        await call(t, 'PATCH', '/api/v1/company', { key: body.key }, { name: 'x' }),
        403,
        'insufficient-scope',
      );
    });

    it("stores '*' alone, and it grants every scope", async () => {
      const res = await create(owner(), { name: unique('all'), scopes: ['*', 'users:read'] });
      expect(res.status).toBe(201);
      const body = await json(res);
      expect(body.apiKey.scopes).toEqual(['*']);
      expect((await call(t, 'GET', '/api/v1/audit-log', { key: body.key })).status).toBe(200);
    });

    it('refuses bad scopes, names and expiry (400)', async () => {
      const before = (await json(await call(t, 'GET', '/api/v1/api-keys', owner()))).data.length;
      const cases: [Record<string, unknown>, string][] = [
        [{ name: 'x', scopes: ['users:read', 'users:delete'] }, 'scopes'],
        [{ name: 'x', scopes: ['admin'] }, 'scopes'],
        [{ name: 'x', scopes: 'users:read' }, 'scopes'],
        [{ name: 'x', scopes: ['users:read', 'users:read'] }, 'scopes'],
        [{ scopes: ['users:read'] }, 'name'],
        [{ name: '' }, 'name'],
        [{ name: 'x'.repeat(101) }, 'name'],
        [{ name: 'x', expiresAt: 'tomorrow' }, 'expiresAt'],
        [{ name: 'x', key: 'sbk_chosen' }, 'key'],
      ];
      for (const [body, field] of cases) {
        const problem = await expectProblem(await create(owner(), body), 400, 'validation-failed');
        expect(problem.errors.map((e: { field: string }) => e.field)).toContain(field);
      }
      const past = await create(owner(), { name: 'x', expiresAt: new Date(Date.now() - 60_000).toISOString() });
      await expectProblem(past, 400, 'validation-failed');
      expect((await json(await call(t, 'GET', '/api/v1/api-keys', owner()))).data).toHaveLength(before);
    });

    it('an expiring key works until expiresAt, then is refused (401)', async () => {
      const expiresAt = new Date(Date.now() + 1500);
      const res = await create(owner(), {
        name: unique('short'),
        scopes: ['users:read'],
        expiresAt: expiresAt.toISOString(),
      });
      expect(res.status).toBe(201);
      const body = await json(res);
      expect(body.apiKey.expiresAt).toBe(expiresAt.toISOString());
      expect((await useKey(t, body.key)).status).toBe(200);

      await sleep(expiresAt.getTime() - Date.now() + 100);
      const refused = await useKey(t, body.key);
      await expectProblem(refused, 401, 'unauthorized');
      expect((await status(body.apiKey.id)).active).toBe(false);
    });
  });

  describe('using a key', () => {
    it('is accepted in x-api-key and in the alias x-app-api-key', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      for (const header of ['x-api-key', 'x-app-api-key']) {
        const res = await useKey(t, k.key, header);
        expect(res.status).toBe(200);
        expect((await json(res)).data.map((u: { id: string }) => u.id)).toContain(a.owner.id);
      }
    });

    it('refuses a wrong key: 401 problem+json with www-authenticate: Bearer', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      const wrong = [
        `sbk_${'A'.repeat(43)}`,
        `${k.key.slice(0, -1)}${k.key.endsWith('A') ? 'B' : 'A'}`,
        k.key.slice(0, -1),
        'not-a-key',
      ];
      for (const key of wrong) {
        for (const header of ['x-api-key', 'x-app-api-key']) {
          const res = await useKey(t, key, header);
          await expectProblem(res, 401, 'unauthorized');
          expect(res.headers.get('www-authenticate')).toBe('Bearer');
        }
      }
    });
  });

  describe('rotate', () => {
    it('without overlap: the old key is refused at once, the new key works', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      expect((await useKey(t, k.key)).status).toBe(200); // cached now
      const res = await rotate(owner(), k.id);
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body.key).toMatch(KEY_FORMAT);
      expect(body.key).not.toBe(k.key);
      expect(body.previousKeyValidUntil).toBeNull();
      expect(body.apiKey).toMatchObject({ id: k.id, keyHint: hintOf(body.key), active: true, previousKeyHint: null });
      expect(body.apiKey.rotatedAt).not.toBeNull();
      expect(JSON.stringify(body.apiKey)).not.toContain(body.key);

      await expectProblem(await useKey(t, k.key), 401, 'unauthorized');
      expect((await useKey(t, body.key)).status).toBe(200);
      expect((await useKey(t, body.key, 'x-app-api-key')).status).toBe(200);
    });

    it('with overlapSeconds: the old key works until the window ends, then is refused', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      expect((await useKey(t, k.key)).status).toBe(200);
      const before = Date.now();
      const res = await rotate(owner(), k.id, { overlapSeconds: 2 });
      expect(res.status).toBe(200);
      const body = await json(res);
      const until = Date.parse(body.previousKeyValidUntil);
      expect(until).toBeGreaterThanOrEqual(before + 2000 - 50);
      expect(until).toBeLessThanOrEqual(Date.now() + 2000 + 50);
      expect(body.apiKey.previousKeyValidUntil).toBe(body.previousKeyValidUntil);
      expect(body.apiKey.previousKeyHint).toBe(hintOf(k.key));
      expect(body.note).toContain(body.previousKeyValidUntil);

      expect((await useKey(t, k.key)).status).toBe(200);
      expect((await useKey(t, body.key)).status).toBe(200);

      await sleep(until - Date.now() + 100);
      await expectProblem(await useKey(t, k.key), 401, 'unauthorized');
      expect((await useKey(t, body.key)).status).toBe(200);
      expect(await status(k.id)).toMatchObject({ active: true, previousKeyHint: null, previousKeyValidUntil: null });
    });

    it('refuses overlapSeconds out of range (400)', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      for (const overlapSeconds of [-1, 7 * 24 * 3600 + 1, 1.5, '60']) {
        const problem = await expectProblem(await rotate(owner(), k.id, { overlapSeconds }), 400, 'validation-failed');
        expect(problem.errors.map((e: { field: string }) => e.field)).toEqual(['overlapSeconds']);
      }
      expect((await rotate(owner(), k.id, { overlapSeconds: 7 * 24 * 3600 })).status).toBe(200);
      expect((await useKey(t, k.key)).status).toBe(200); // the old key in its (week-long) overlap
    });

    it('refuses to rotate a revoked key (409)', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      expect((await revoke(owner(), k.id)).status).toBe(200);
      await expectProblem(await rotate(owner(), k.id), 409, 'api-key-revoked');
      await expectProblem(await useKey(t, k.key), 401, 'unauthorized');
      expect(await status(k.id)).toMatchObject({ active: false, rotatedAt: null });
    });
  });

  describe('revoke', () => {
    it('refuses the key at once; status says inactive; revoking twice answers 200', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      expect((await useKey(t, k.key)).status).toBe(200); // cached now
      const res = await revoke(owner(), k.id);
      expect(res.status).toBe(200);
      const first = await json(res);
      expect(first).toMatchObject({ id: k.id, active: false });
      expect(first.revokedAt).not.toBeNull();
      expect(JSON.stringify(first)).not.toContain(k.key);

      const refused = await useKey(t, k.key);
      await expectProblem(refused, 401, 'unauthorized');
      expect(refused.headers.get('www-authenticate')).toBe('Bearer');
      expect(await status(k.id)).toMatchObject({ active: false, revokedAt: first.revokedAt });

      const again = await revoke(owner(), k.id);
      expect(again.status).toBe(200);
      expect(await json(again)).toMatchObject({ id: k.id, active: false, revokedAt: first.revokedAt });
      const trail = await json(await call(t, 'GET', `/api/v1/api-keys/${k.id}/audit`, owner()));
      expect(trail.data.filter((e: { action: string }) => e.action === 'revoked')).toHaveLength(1);
    });

    it('revoking during a rotation overlap refuses both the old and the new key', async () => {
      const k = await createApiKey(t, a, ['users:read']);
      const rotated = await json(await rotate(owner(), k.id, { overlapSeconds: 3600 }));
      expect((await useKey(t, k.key)).status).toBe(200);
      expect((await revoke(owner(), k.id)).status).toBe(200);
      await expectProblem(await useKey(t, k.key), 401, 'unauthorized');
      await expectProblem(await useKey(t, rotated.key), 401, 'unauthorized');
    });
  });

  it('records the last use: status shows lastUsedAt after the key is used', async () => {
    const k = await createApiKey(t, a, ['users:read']);
    expect((await status(k.id)).lastUsedAt).toBeNull();
    const before = Date.now();
    expect((await useKey(t, k.key)).status).toBe(200);
    // Written off the request path: give it a moment.
    let lastUsedAt: string | null = null;
    for (let i = 0; i < 20 && !lastUsedAt; i++) {
      lastUsedAt = (await status(k.id)).lastUsedAt;
      if (!lastUsedAt) await sleep(50);
    }
    expect(lastUsedAt).not.toBeNull();
    expect(Date.parse(lastUsedAt!)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(lastUsedAt!)).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('keeps an audit trail: created, rotated, revoked with hints, newest first, paginated', async () => {
    const res = await create({ token: admin.accessToken }, { name: unique('audited'), scopes: ['users:read'] });
    const created = await json(res);
    const id: string = created.apiKey.id;
    const hint0 = hintOf(created.key);
    const r1 = await json(await rotate(owner(), id, { overlapSeconds: 30 }));
    const r2 = await json(await rotate({ token: admin.accessToken }, id));
    expect((await revoke(owner(), id)).status).toBe(200);
    const hint1 = hintOf(r1.key);
    const hint2 = hintOf(r2.key);

    const full = await call(t, 'GET', `/api/v1/api-keys/${id}/audit`, owner());
    expect(full.status).toBe(200);
    const body = await json(full);
    expect(body.pagination).toEqual({ limit: 50, offset: 0, total: 4, hasMore: false });
    expect(body.data).toEqual([
      expect.objectContaining({
        apiKeyId: id,
        action: 'revoked',
        oldKeyHint: hint2,
        newKeyHint: null,
        actorType: 'user',
        actorId: a.owner.id,
      }),
      expect.objectContaining({
        action: 'rotated',
        oldKeyHint: hint1,
        newKeyHint: hint2,
        actorId: admin.id,
        details: { overlapSeconds: 0 },
      }),
      expect.objectContaining({
        action: 'rotated',
        oldKeyHint: hint0,
        newKeyHint: hint1,
        actorId: a.owner.id,
        details: { overlapSeconds: 30 },
      }),
      expect.objectContaining({
        action: 'created',
        oldKeyHint: null,
        newKeyHint: hint0,
        actorType: 'user',
        actorId: admin.id,
      }),
    ]);
    expect(created.apiKey.keyHint).toBe(hint0);
    expect(res.headers.get('x-request-id')).toBe(body.data[3].requestId);
    const times = body.data.map((e: { performedAt: string }) => Date.parse(e.performedAt));
    expect([...times].sort((x, y) => y - x)).toEqual(times);
    const text = JSON.stringify(body);
    for (const key of [created.key, r1.key, r2.key]) expect(text).not.toContain(key);

    const page = async (q: string) => json(await call(t, 'GET', `/api/v1/api-keys/${id}/audit?${q}`, owner()));
    const p1 = await page('limit=1');
    expect(p1.data.map((e: { action: string }) => e.action)).toEqual(['revoked']);
    expect(p1.pagination).toEqual({ limit: 1, offset: 0, total: 4, hasMore: true });
    const p2 = await page('limit=2&offset=1');
    expect(p2.data.map((e: { id: string }) => e.id)).toEqual([body.data[1].id, body.data[2].id]);
    expect(p2.pagination).toEqual({ limit: 2, offset: 1, total: 4, hasMore: true });
    const p3 = await page('limit=2&offset=3');
    expect(p3.data.map((e: { action: string }) => e.action)).toEqual(['created']);
    expect(p3.pagination).toEqual({ limit: 2, offset: 3, total: 4, hasMore: false });
    const beyond = await page('limit=2&offset=10');
    expect(beyond.data).toEqual([]);
    expect(beyond.pagination.hasMore).toBe(false);
    for (const q of ['limit=0', 'limit=201', 'offset=-1', 'limit=abc']) {
      await expectProblem(await call(t, 'GET', `/api/v1/api-keys/${id}/audit?${q}`, owner()), 400, 'validation-failed');
    }
    // Only this key's entries.
    const other = await createApiKey(t, a, ['users:read']);
    const otherTrail = await page('limit=50');
    expect(otherTrail.data.every((e: { apiKeyId: string }) => e.apiKeyId === id)).toBe(true);
    expect((await json(await call(t, 'GET', `/api/v1/api-keys/${other.id}/audit`, owner()))).pagination.total).toBe(1);
  });
});

describe('API keys: rate limit per credential', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_TENANT_PER_MIN: '5', RATE_LIMIT_LOGIN_PER_MIN: '10000' } });
  });
  afterAll(() => t.close());

  it("answers a key's 6th request in a minute 429, while another key of the company still works", async () => {
    const c = await createCompany(t, 'limited');
    const k1 = await createApiKey(t, c, ['users:read']);
    const k2 = await createApiKey(t, c, ['users:read']);

    for (let i = 1; i <= 5; i++) {
      const res = await useKey(t, k1.key);
      expect(res.status).toBe(200);
      expect(res.headers.get('ratelimit-limit')).toBe('5');
      expect(res.headers.get('ratelimit-remaining')).toBe(String(5 - i));
    }
    const limited = await useKey(t, k1.key);
    const problem = await expectProblem(limited, 429, 'too-many-requests');
    expect(problem.status).toBe(429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.headers.get('ratelimit-limit')).toBe('5');
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');
    expect(Number(limited.headers.get('ratelimit-reset'))).toBe(retryAfter);
    // The alias header is the same credential.
    expect((await useKey(t, k1.key, 'x-app-api-key')).status).toBe(429);

    const other = await useKey(t, k2.key);
    expect(other.status).toBe(200);
    expect(other.headers.get('ratelimit-remaining')).toBe('4');
    // The owner's session is a credential of its own, too.
    expect((await call(t, 'GET', '/api/v1/users', { token: c.owner.accessToken })).status).toBe(200);
  });
});
