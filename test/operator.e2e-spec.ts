import { randomUUID } from 'node:crypto';
import { query } from './support/database.js';
import { json, PROBLEM } from './support/http.js';
import {
  call,
  createCompany,
  createOperatorUser,
  login,
  operator,
  PASSWORD,
  type TestCompany,
  type TestUser,
  unique,
} from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

/** The operator API (`/internal/...`): who may call it, and what each route does and refuses. */

const FULL_KEY = /sbk_[A-Za-z0-9_-]{43}/;

interface Operation {
  'x-access'?: { kind: string };
  responses?: Record<string, unknown>;
}
interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
}
interface OperatorRoute {
  method: string;
  path: string;
  /** The success status the document gives. */
  success: number;
}

function operatorRoutes(doc: OpenApiDocument): OperatorRoute[] {
  const routes: OperatorRoute[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (operation['x-access']?.kind !== 'operator') continue;
      const success = Object.keys(operation.responses ?? {}).find((s) => /^2\d\d$/.test(s));
      routes.push({ method: method.toUpperCase(), path, success: Number(success) });
    }
  }
  return routes;
}

/** Asserts a problem+json answer with a stable type; returns its body. */
async function expectProblem(res: Response, status: number, code: string, what = '') {
  const body = await json(res);
  expect({
    what,
    status: res.status,
    contentType: res.headers.get('content-type'),
    type: body.type,
    bodyStatus: body.status,
  }).toEqual({ what, status, contentType: PROBLEM, type: `urn:switchboard:problem:${code}`, bodyStatus: status });
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  return body;
}

function fieldsOf(problem: { errors?: { field: string }[] }): string[] {
  return (problem.errors ?? []).map((e) => e.field).sort();
}

function hintOf(key: string): string {
  return `${key.slice(0, 8)}…${key.slice(-4)}`;
}

/** A valid body for an operator route (fresh names and e-mails), or none. */
function validBody(route: OperatorRoute): Record<string, unknown> | undefined {
  switch (`${route.method} ${route.path}`) {
    case 'POST /internal/apps':
      return { name: unique('app') };
    case 'POST /internal/operators':
      return { email: `${unique('op')}@example.com`, password: PASSWORD, displayName: 'Op' };
    case 'POST /internal/apps/{appId}/api-key':
      return { overlapSeconds: 0 };
    default:
      return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('operator API', () => {
  let t: TestApp;
  let doc: OpenApiDocument;
  let company: TestCompany;
  let superadmin: TestUser;

  /** An app made by the operator secret, without owner. */
  async function createApp(body: Record<string, unknown> = {}) {
    const res = await call(t, 'POST', '/internal/apps', operator, { name: unique('app'), ...body });
    expect(res.status).toBe(201);
    return json(res) as Promise<{ appId: string; apiKey: string; apiKeyId: string; keyHint: string }>;
  }
  /** The status of a company API key on a tenant route. */
  const keyWorks = async (key: string) => (await call(t, 'GET', '/api/v1/company', { key })).status;

  beforeAll(async () => {
    // Many operator calls and sign-ins from one address: those limits are tested on their own app.
    t = await startTestApp({ env: { RATE_LIMIT_OPERATOR_PER_MIN: '100000', RATE_LIMIT_LOGIN_PER_MIN: '100000' } });
    doc = await json(await t.fetch('/docs-json'));
    company = await createCompany(t, 'owner-co');
    superadmin = await createOperatorUser(t);
  });
  afterAll(() => t.close());

  describe('access', () => {
    it('documents the operator routes', () => {
      const routes = operatorRoutes(doc).map((r) => `${r.method} ${r.path}`);
      expect(routes).toEqual(
        expect.arrayContaining([
          'POST /internal/apps',
          'GET /internal/apps',
          'GET /internal/apps/{appId}',
          'POST /internal/apps/{appId}/api-key',
          'GET /internal/apps/{appId}/api-key/status',
          'POST /internal/apps/{appId}/api-key/revoke',
          'GET /internal/apps/{appId}/api-key/audit',
          'POST /internal/apps/{appId}/suspend',
          'POST /internal/apps/{appId}/reactivate',
          'POST /internal/operators',
        ]),
      );
      expect(routes.every((r) => / \/internal\//.test(r))).toBe(true);
    });

    it('refuses every operator route without the secret or a superadmin session', async () => {
      const routes = operatorRoutes(doc);
      const refusals: [string, Record<string, string>, number, string][] = [
        ['no credential', {}, 401, 'unauthorized'],
        ['a wrong bearer secret', { authorization: 'Bearer not-the-internal-secret' }, 401, 'unauthorized'],
        ['the secret, not as a bearer', { authorization: `Basic ${operator.token}` }, 401, 'unauthorized'],
        ['a company API key', { 'x-api-key': company.apiKey }, 401, 'unauthorized'],
        ['a company owner JWT', { authorization: `Bearer ${company.owner.accessToken}` }, 403, 'forbidden'],
      ];
      for (const route of routes) {
        const path = route.path.replace('{appId}', company.id);
        for (const [label, headers, status, code] of refusals) {
          // A valid body: what refuses is the credential, not the input.
          const body = validBody(route);
          const res = await t.fetch(path, {
            method: route.method,
            headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
            body: body ? JSON.stringify(body) : undefined,
          });
          await expectProblem(res, status, code, `${label}: ${route.method} ${route.path}`);
          if (status === 401) expect(res.headers.get('www-authenticate')).toBe('Bearer');
        }
      }
      // Nothing happened: the company is active and its key works.
      expect(await keyWorks(company.apiKey)).toBe(200);
      const app = await json(await call(t, 'GET', `/internal/apps/${company.id}`, operator));
      expect(app).toMatchObject({ appId: company.id, status: 'active' });
    });

    it('lets the secret and a superadmin session use every operator route', async () => {
      for (const route of operatorRoutes(doc)) {
        for (const [label, token] of [
          ['the secret', operator.token],
          ['a superadmin JWT', superadmin.accessToken],
        ]) {
          const app = await createApp();
          const path = route.path.replace('{appId}', app.appId);
          const body = validBody(route);
          const res = await call(t, route.method, path, { token }, body);
          expect({ what: `${label}: ${route.method} ${route.path}`, status: res.status }).toEqual({
            what: `${label}: ${route.method} ${route.path}`,
            status: route.success,
          });
          expect(res.headers.get('ratelimit-limit')).toBe(String(t.config.RATE_LIMIT_OPERATOR_PER_MIN));
        }
      }
    });
  });

  describe('POST /internal/apps', () => {
    it('creates a company with its primary API key, without owner', async () => {
      const name = unique('Acme Dental');
      const res = await call(t, 'POST', '/internal/apps', operator, { name });
      expect(res.status).toBe(201);
      const body = await json(res);
      expect(body).toMatchObject({
        appId: expect.any(String),
        company: {
          id: body.appId,
          name,
          slug: name.toLowerCase().replace(/[^a-z0-9]+/g, '-'),
          status: 'active',
          settings: {},
        },
        owner: null,
        apiKeyId: expect.any(String),
        keyHint: hintOf(body.apiKey),
        note: expect.stringContaining('shown once'),
      });
      expect(body.apiKey).toMatch(new RegExp(`^${FULL_KEY.source}$`));
      // The key is the company's, with every scope.
      const own = await call(t, 'GET', '/api/v1/company', { key: body.apiKey });
      expect(own.status).toBe(200);
      expect(await json(own)).toMatchObject({ id: body.appId, name });
      expect((await call(t, 'GET', '/api/v1/users', { key: body.apiKey })).status).toBe(200);
    });

    it('creates a company with its owner, who can sign in', async () => {
      const slug = unique('with-owner');
      const email = `${unique('Owner')}@Example.com`;
      const res = await call(t, 'POST', '/internal/apps', operator, {
        name: 'With Owner',
        slug,
        owner: { email, password: PASSWORD, displayName: 'The Owner' },
      });
      expect(res.status).toBe(201);
      const text = await res.text();
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toMatch(/password/i);
      const body = JSON.parse(text);
      expect(body.company).toMatchObject({ id: body.appId, name: 'With Owner', slug });
      expect(body.owner).toMatchObject({
        companyId: body.appId,
        email: email.toLowerCase(),
        displayName: 'The Owner',
        role: 'owner',
      });
      const session = await login(t, email);
      expect(session.user.id).toBe(body.owner.id);
      const users = await json(await call(t, 'GET', '/api/v1/users', { token: session.accessToken }));
      expect(users.data.map((u: { id: string }) => u.id)).toEqual([body.owner.id]);
    });

    it('refuses an invalid body with field errors', async () => {
      const res = await call(t, 'POST', '/internal/apps', operator, {
        name: '',
        slug: 'Not A Slug',
        owner: { email: 'not-an-e-mail', password: 'short', displayName: '' },
        color: 'red',
      });
      const problem = await expectProblem(res, 400, 'validation-failed');
      expect(fieldsOf(problem)).toEqual([
        'color',
        'name',
        'owner.displayName',
        'owner.email',
        'owner.password',
        'slug',
      ]);
      const empty = await expectProblem(
        await call(t, 'POST', '/internal/apps', operator, {}),
        400,
        'validation-failed',
      );
      expect(fieldsOf(empty)).toEqual(['name']);
      const malformed = await t.fetch('/internal/apps', {
        method: 'POST',
        headers: { authorization: `Bearer ${operator.token}`, 'content-type': 'application/json' },
        body: '{"name": ',
      });
      await expectProblem(malformed, 400, 'malformed-json');
    });

    it('refuses a taken slug or owner e-mail (409) and creates nothing then', async () => {
      const slug = unique('taken');
      expect((await call(t, 'POST', '/internal/apps', operator, { name: 'First', slug })).status).toBe(201);
      const total = async () => (await json(await call(t, 'GET', '/internal/apps?limit=1', operator))).pagination.total;
      const before = await total();
      await expectProblem(
        await call(t, 'POST', '/internal/apps', operator, { name: 'Second', slug }),
        409,
        'slug-taken',
      );

      const freshSlug = unique('fresh');
      const dup = await call(t, 'POST', '/internal/apps', operator, {
        name: 'Dup owner',
        slug: freshSlug,
        owner: { email: company.owner.email, password: PASSWORD, displayName: 'Dup' },
      });
      await expectProblem(dup, 409, 'email-taken');
      expect(await total()).toBe(before);
      // The refused creation left nothing behind: its slug is still free.
      expect((await call(t, 'POST', '/internal/apps', operator, { name: 'Dup owner', slug: freshSlug })).status).toBe(
        201,
      );
      expect(await total()).toBe(before + 1);
    });
  });

  describe('GET /internal/apps', () => {
    it('pages the companies, newest first, with limit, offset, total and hasMore', async () => {
      const made = [await createApp(), await createApp(), await createApp()];
      const first = await call(t, 'GET', '/internal/apps?limit=2&offset=0', operator);
      expect(first.status).toBe(200);
      const firstText = await first.text();
      expect(firstText).not.toMatch(FULL_KEY);
      const page = JSON.parse(firstText);
      const total: number = page.pagination.total;
      expect(total).toBeGreaterThanOrEqual(3);
      expect(page.pagination).toEqual({ limit: 2, offset: 0, total, hasMore: true });
      expect(page.data.map((a: { appId: string }) => a.appId)).toEqual([made[2].appId, made[1].appId]);
      expect(page.data[0]).toMatchObject({
        appId: made[2].appId,
        id: made[2].appId,
        status: 'active',
        keyHint: made[2].keyHint,
      });
      expect(page.data[0]).not.toHaveProperty('apiKey');

      const next = await json(await call(t, 'GET', '/internal/apps?limit=2&offset=2', operator));
      expect(next.data[0].appId).toBe(made[0].appId);
      const last = await json(await call(t, 'GET', `/internal/apps?limit=2&offset=${total - 1}`, operator));
      expect(last.data).toHaveLength(1);
      expect(last.pagination).toEqual({ limit: 2, offset: total - 1, total, hasMore: false });
      const past = await json(await call(t, 'GET', `/internal/apps?offset=${total}`, operator));
      expect(past).toEqual({ data: [], pagination: { limit: 50, offset: total, total, hasMore: false } });
      const all = await json(await call(t, 'GET', '/internal/apps', operator));
      expect(all.pagination).toMatchObject({ limit: 50, offset: 0, total });
    });

    it('refuses bad paging', async () => {
      for (const q of ['limit=0', 'limit=201', 'limit=ten', 'offset=-1', 'colour=red']) {
        const problem = await expectProblem(
          await call(t, 'GET', `/internal/apps?${q}`, operator),
          400,
          'validation-failed',
          q,
        );
        expect(fieldsOf(problem)).toEqual([q.split('=')[0]]);
      }
    });
  });

  describe('GET /internal/apps/:appId', () => {
    it('answers one company, 404 for an unknown id, 400 for a malformed one', async () => {
      const app = await createApp({ slug: unique('one') });
      const res = await call(t, 'GET', `/internal/apps/${app.appId}`, operator);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).not.toContain(app.apiKey);
      expect(JSON.parse(text)).toMatchObject({
        appId: app.appId,
        id: app.appId,
        status: 'active',
        keyHint: app.keyHint,
      });
      await expectProblem(await call(t, 'GET', `/internal/apps/${randomUUID()}`, operator), 404, 'not-found');
      await expectProblem(await call(t, 'GET', '/internal/apps/not-a-uuid', operator), 400, 'bad-request');
    });
  });

  describe('primary API key', () => {
    it('rotates the key created with the app: the old key stops at once', async () => {
      const app = await createApp();
      expect(await keyWorks(app.apiKey)).toBe(200); // cached now
      const res = await call(t, 'POST', `/internal/apps/${app.appId}/api-key`, operator, {});
      expect(res.status).toBe(201);
      const rotated = await json(res);
      expect(rotated).toMatchObject({
        appId: app.appId,
        apiKeyId: app.apiKeyId,
        keyHint: hintOf(rotated.apiKey),
        previousKeyValidUntil: null,
        rotatedAt: expect.any(String),
      });
      expect(rotated.apiKey).toMatch(FULL_KEY);
      expect(rotated.apiKey).not.toBe(app.apiKey);
      await expectProblem(
        await call(t, 'GET', '/api/v1/company', { key: app.apiKey }),
        401,
        'unauthorized',
        'old key after rotation',
      );
      expect(await keyWorks(rotated.apiKey)).toBe(200);

      // Without a body at all, too.
      const again = await call(t, 'POST', `/internal/apps/${app.appId}/api-key`, operator);
      expect(again.status).toBe(201);
      const third = await json(again);
      expect(await keyWorks(rotated.apiKey)).toBe(401);
      expect(await keyWorks(third.apiKey)).toBe(200);
    });

    it('keeps the old key working for overlapSeconds, then refuses it', async () => {
      const app = await createApp();
      expect(await keyWorks(app.apiKey)).toBe(200);
      const res = await call(t, 'POST', `/internal/apps/${app.appId}/api-key`, operator, { overlapSeconds: 2 });
      expect(res.status).toBe(201);
      const rotated = await json(res);
      const until = Date.parse(rotated.previousKeyValidUntil);
      expect(until - Date.now()).toBeGreaterThan(1000);
      expect(until - Date.now()).toBeLessThanOrEqual(2000);
      expect(await keyWorks(app.apiKey)).toBe(200);
      expect(await keyWorks(rotated.apiKey)).toBe(200);
      const during = await json(await call(t, 'GET', `/internal/apps/${app.appId}/api-key/status`, operator));
      expect(during).toMatchObject({
        isActive: true,
        keyHint: rotated.keyHint,
        previousKeyHint: app.keyHint,
        previousKeyValidUntil: rotated.previousKeyValidUntil,
      });

      await sleep(until - Date.now() + 200);
      await expectProblem(
        await call(t, 'GET', '/api/v1/company', { key: app.apiKey }),
        401,
        'unauthorized',
        'old key after the overlap',
      );
      expect(await keyWorks(rotated.apiKey)).toBe(200);
      const after = await json(await call(t, 'GET', `/internal/apps/${app.appId}/api-key/status`, operator));
      expect(after).toMatchObject({
        isActive: true,
        keyHint: rotated.keyHint,
        previousKeyHint: null,
        previousKeyValidUntil: null,
      });
    });

    it('refuses a bad overlap, and an unknown or malformed app', async () => {
      const app = await createApp();
      for (const overlapSeconds of [-1, 1.5, 'ten', 7 * 24 * 3600 + 1]) {
        const problem = await expectProblem(
          await call(t, 'POST', `/internal/apps/${app.appId}/api-key`, operator, { overlapSeconds }),
          400,
          'validation-failed',
          String(overlapSeconds),
        );
        expect(fieldsOf(problem)).toEqual(['overlapSeconds']);
      }
      expect(await keyWorks(app.apiKey)).toBe(200);
      await expectProblem(
        await call(t, 'POST', `/internal/apps/${randomUUID()}/api-key`, operator, {}),
        404,
        'not-found',
      );
      await expectProblem(await call(t, 'POST', '/internal/apps/123/api-key', operator, {}), 400, 'bad-request');
    });

    it('shows the status by hint only', async () => {
      const app = await createApp();
      expect(await keyWorks(app.apiKey)).toBe(200);
      const res = await call(t, 'GET', `/internal/apps/${app.appId}/api-key/status`, operator);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).not.toContain(app.apiKey);
      expect(text).not.toMatch(FULL_KEY);
      const status = JSON.parse(text);
      expect(status).toMatchObject({
        appId: app.appId,
        apiKeyId: app.apiKeyId,
        isActive: true,
        keyHint: app.keyHint,
        rotatedAt: expect.any(String),
      });
      expect(status.keyHint).toBe(hintOf(app.apiKey));
      // The use is recorded off the request path: it shows up shortly.
      let lastUsedAt: string | null = status.lastUsedAt;
      for (let i = 0; i < 20 && !lastUsedAt; i++) {
        await sleep(100);
        lastUsedAt = (await json(await call(t, 'GET', `/internal/apps/${app.appId}/api-key/status`, operator)))
          .lastUsedAt;
      }
      expect(lastUsedAt).toEqual(expect.any(String));
      await expectProblem(
        await call(t, 'GET', `/internal/apps/${randomUUID()}/api-key/status`, operator),
        404,
        'not-found',
      );
      await expectProblem(await call(t, 'GET', '/internal/apps/x/api-key/status', operator), 400, 'bad-request');
    });

    it('revokes the key at once; then a new primary key can be generated', async () => {
      const app = await createApp();
      expect(await keyWorks(app.apiKey)).toBe(200);
      const res = await call(t, 'POST', `/internal/apps/${app.appId}/api-key/revoke`, operator);
      expect(res.status).toBe(200);
      const revoked = await json(res);
      expect(revoked).toEqual({
        appId: app.appId,
        apiKeyId: app.apiKeyId,
        keyHint: app.keyHint,
        revokedAt: expect.any(String),
      });
      await expectProblem(
        await call(t, 'GET', '/api/v1/company', { key: app.apiKey }),
        401,
        'unauthorized',
        'revoked key',
      );
      const status = await json(await call(t, 'GET', `/internal/apps/${app.appId}/api-key/status`, operator));
      expect(status).toMatchObject({ appId: app.appId, isActive: false, keyHint: null });
      await expectProblem(
        await call(t, 'POST', `/internal/apps/${app.appId}/api-key/revoke`, operator),
        404,
        'not-found',
        'second revoke',
      );
      await expectProblem(
        await call(t, 'POST', `/internal/apps/${randomUUID()}/api-key/revoke`, operator),
        404,
        'not-found',
      );

      const generated = await call(t, 'POST', `/internal/apps/${app.appId}/api-key`, operator, {});
      expect(generated.status).toBe(201);
      const fresh = await json(generated);
      expect(fresh).toMatchObject({ appId: app.appId, keyHint: hintOf(fresh.apiKey), previousKeyValidUntil: null });
      expect(fresh.apiKeyId).not.toBe(app.apiKeyId);
      expect(await keyWorks(fresh.apiKey)).toBe(200);
      expect(await keyWorks(app.apiKey)).toBe(401);
      const now = await json(await call(t, 'GET', `/internal/apps/${app.appId}/api-key/status`, operator));
      expect(now).toMatchObject({ apiKeyId: fresh.apiKeyId, isActive: true, keyHint: fresh.keyHint });
    });

    it('keeps an audit trail of created, rotated and revoked, with hints, newest first, paged', async () => {
      const app = await createApp();
      const r1 = await json(await call(t, 'POST', `/internal/apps/${app.appId}/api-key`, operator, {}));
      const r2 = await json(
        await call(t, 'POST', `/internal/apps/${app.appId}/api-key`, operator, { overlapSeconds: 60 }),
      );
      expect(
        (await call(t, 'POST', `/internal/apps/${app.appId}/api-key/revoke`, { token: superadmin.accessToken })).status,
      ).toBe(200);
      const g = await json(await call(t, 'POST', `/internal/apps/${app.appId}/api-key`, operator, {}));
      // Another company's key events are not in this trail.
      await call(t, 'POST', `/internal/apps/${company.id}/api-key`, operator, { overlapSeconds: 3600 });

      const res = await call(t, 'GET', `/internal/apps/${app.appId}/api-key/audit`, operator);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).not.toMatch(FULL_KEY);
      const trail = JSON.parse(text);
      const op = { actorType: 'operator', actorId: null };
      expect(trail.data).toEqual([
        expect.objectContaining({
          action: 'created',
          apiKeyId: g.apiKeyId,
          oldKeyHint: null,
          newKeyHint: g.keyHint,
          ...op,
        }),
        expect.objectContaining({
          action: 'revoked',
          apiKeyId: app.apiKeyId,
          oldKeyHint: r2.keyHint,
          newKeyHint: null,
          actorType: 'user',
          actorId: superadmin.id,
        }),
        expect.objectContaining({
          action: 'rotated',
          apiKeyId: app.apiKeyId,
          oldKeyHint: r1.keyHint,
          newKeyHint: r2.keyHint,
          details: { overlapSeconds: 60 },
          ...op,
        }),
        expect.objectContaining({
          action: 'rotated',
          apiKeyId: app.apiKeyId,
          oldKeyHint: app.keyHint,
          newKeyHint: r1.keyHint,
          details: { overlapSeconds: 0 },
          ...op,
        }),
        expect.objectContaining({
          action: 'created',
          apiKeyId: app.apiKeyId,
          oldKeyHint: null,
          newKeyHint: app.keyHint,
          ...op,
        }),
      ]);
      expect(trail.pagination).toEqual({ limit: 50, offset: 0, total: 5, hasMore: false });
      for (const entry of trail.data)
        expect(entry).toMatchObject({ performedAt: expect.any(String), requestId: expect.any(String) });

      const page = await json(
        await call(t, 'GET', `/internal/apps/${app.appId}/api-key/audit?limit=2&offset=1`, operator),
      );
      expect(page.data.map((e: { action: string }) => e.action)).toEqual(['revoked', 'rotated']);
      expect(page.pagination).toEqual({ limit: 2, offset: 1, total: 5, hasMore: true });
      const tail = await json(
        await call(t, 'GET', `/internal/apps/${app.appId}/api-key/audit?limit=2&offset=4`, operator),
      );
      expect(tail.data.map((e: { action: string }) => e.action)).toEqual(['created']);
      expect(tail.pagination).toEqual({ limit: 2, offset: 4, total: 5, hasMore: false });

      await expectProblem(
        await call(t, 'GET', `/internal/apps/${app.appId}/api-key/audit?limit=0`, operator),
        400,
        'validation-failed',
      );
      await expectProblem(
        await call(t, 'GET', `/internal/apps/${randomUUID()}/api-key/audit`, operator),
        404,
        'not-found',
      );
      await expectProblem(await call(t, 'GET', '/internal/apps/nope/api-key/audit', operator), 400, 'bad-request');
    });
  });

  describe('suspend and reactivate', () => {
    it('answers the company, and 404 for an unknown one', async () => {
      const app = await createApp();
      const suspended = await call(t, 'POST', `/internal/apps/${app.appId}/suspend`, { token: superadmin.accessToken });
      expect(suspended.status).toBe(200);
      expect(await json(suspended)).toMatchObject({ id: app.appId, status: 'suspended' });
      await expectProblem(await call(t, 'GET', '/api/v1/company', { key: app.apiKey }), 403, 'company-suspended');
      const reactivated = await call(t, 'POST', `/internal/apps/${app.appId}/reactivate`, operator);
      expect(reactivated.status).toBe(200);
      expect(await json(reactivated)).toMatchObject({ id: app.appId, status: 'active' });
      expect(await keyWorks(app.apiKey)).toBe(200);
      await expectProblem(await call(t, 'POST', `/internal/apps/${randomUUID()}/suspend`, operator), 404, 'not-found');
      await expectProblem(
        await call(t, 'POST', `/internal/apps/${randomUUID()}/reactivate`, operator),
        404,
        'not-found',
      );
    });
  });

  describe('POST /internal/operators', () => {
    it('creates a superadmin who uses /internal but no tenant route', async () => {
      const email = `${unique('Ops')}@Example.com`;
      const res = await call(t, 'POST', '/internal/operators', operator, {
        email,
        password: PASSWORD,
        displayName: 'Ops',
      });
      expect(res.status).toBe(201);
      const text = await res.text();
      expect(text).not.toMatch(/password/i);
      const created = JSON.parse(text);
      expect(created).toMatchObject({
        id: expect.any(String),
        email: email.toLowerCase(),
        role: 'superadmin',
        companyId: null,
      });

      const session = await login(t, email);
      expect(session.user.id).toBe(created.id);
      const apps = await call(t, 'GET', '/internal/apps', { token: session.accessToken });
      expect(apps.status).toBe(200);
      const made = await call(t, 'POST', '/internal/apps', { token: session.accessToken }, { name: unique('by-op') });
      expect(made.status).toBe(201);
      for (const path of ['/api/v1/users', '/api/v1/company', '/api/v1/api-keys', '/api/v1/audit-log']) {
        await expectProblem(await call(t, 'GET', path, { token: session.accessToken }), 403, 'no-company', path);
      }
      await expectProblem(
        await call(
          t,
          'POST',
          '/api/v1/users',
          { token: session.accessToken },
          { email: `${unique('x')}@example.com`, password: PASSWORD, displayName: 'X', role: 'agent' },
        ),
        403,
        'no-company',
      );

      await expectProblem(
        await call(t, 'POST', '/internal/operators', operator, {
          email: email.toUpperCase(),
          password: PASSWORD,
          displayName: 'Again',
        }),
        409,
        'email-taken',
      );
      const invalid = await expectProblem(
        await call(t, 'POST', '/internal/operators', operator, {
          email: 'nope',
          password: 'short',
          displayName: '',
          role: 'owner',
        }),
        400,
        'validation-failed',
      );
      expect(fieldsOf(invalid)).toEqual(['displayName', 'email', 'password', 'role']);
    });
  });

  describe('rate limit', () => {
    it('answers the request past RATE_LIMIT_OPERATOR_PER_MIN with 429 and Retry-After', async () => {
      const limited = await startTestApp({ env: { RATE_LIMIT_OPERATOR_PER_MIN: '5' } });
      try {
        const created = await call(limited, 'POST', '/internal/apps', operator, { name: unique('limited') });
        expect(created.status).toBe(201);
        expect(created.headers.get('ratelimit-limit')).toBe('5');
        expect(created.headers.get('ratelimit-remaining')).toBe('4');
        const { apiKey } = await json(created);
        for (const remaining of ['3', '2', '1', '0']) {
          const res = await call(limited, 'GET', '/internal/apps', operator);
          expect(res.status).toBe(200);
          expect(res.headers.get('ratelimit-remaining')).toBe(remaining);
        }
        const sixth = await call(limited, 'GET', '/internal/apps', operator);
        await expectProblem(sixth, 429, 'too-many-requests');
        expect(sixth.headers.get('ratelimit-limit')).toBe('5');
        expect(sixth.headers.get('ratelimit-remaining')).toBe('0');
        const retryAfter = Number(sixth.headers.get('retry-after'));
        expect(Number.isInteger(retryAfter)).toBe(true);
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(60);

        // A refused write does nothing.
        await expectProblem(
          await call(limited, 'POST', '/internal/apps', operator, { name: unique('refused') }),
          429,
          'too-many-requests',
        );
        expect(await query(limited.db.url, 'SELECT count(*)::int AS n FROM companies')).toEqual([{ n: 1 }]);
        // The operator limit is not the tenant limit: the company's key still works.
        expect((await call(limited, 'GET', '/api/v1/company', { key: apiKey })).status).toBe(200);
      } finally {
        await limited.close();
      }
    });
  });
});
