import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DataSource } from 'typeorm';
import { SecretBox } from '../src/common/crypto/secret-box.js';
import { EventsService } from '../src/events/events.service.js';
import { WebhookEndpointsService } from '../src/webhooks/endpoints/webhook-endpoints.service.js';
import { type Auth, expectProblem, json } from './support/http.js';
import { call, createApiKey, createCompany, createUser, type TestCompany } from './support/tenant.js';
import { startTestApp, TEST_PBX_SECRETS_KEY, type TestApp } from './support/test-app.js';

const BASE = '/api/v1/webhook-endpoints';
const SECRET = /^whsec_[A-Za-z0-9+/]{43}=$/;

/** Host names of the tests resolve through WEBHOOK_DNS_OVERRIDES only (tests never query DNS). */
const DNS_OVERRIDES = [
  'public.example.test=93.184.216.34',
  'public6.example.test=2606:4700:4700::1111',
  'evil.example.test=127.0.0.1',
  'private.example.test=10.0.0.5',
  'mixed.example.test=93.184.216.34',
  'mixed.example.test=192.168.1.20',
].join(',');

const endpoint = (over: Record<string, unknown> = {}) => ({
  url: 'https://public.example.test/hooks/switchboard',
  eventTypes: ['call.*'],
  ...over,
});

describe('outbound webhook endpoints: /api/v1/webhook-endpoints', () => {
  let t: TestApp;
  let co: TestCompany;
  let other: TestCompany;
  const owner = (): Auth => ({ token: co.owner.accessToken });

  beforeAll(async () => {
    t = await startTestApp({
      // Many endpoints per company here: the limit has its own app below. Nothing is delivered:
      // the endpoints of this file name public addresses (resolved, never connected to).
      env: {
        WEBHOOK_DELIVERY_ENABLED: 'false',
        WEBHOOK_DNS_OVERRIDES: DNS_OVERRIDES,
        WEBHOOK_SECRET_OVERLAP_MS: '3600000',
        WEBHOOK_ENDPOINTS_PER_COMPANY: '1000',
      },
    });
    [co, other] = await Promise.all([createCompany(t, 'whe'), createCompany(t, 'whe-b')]);
  });
  afterAll(() => t.close());

  const create = async (company: TestCompany, body: Record<string, unknown> = endpoint()) => {
    const res = await call(t, 'POST', BASE, { token: company.owner.accessToken }, body);
    const out = await json(res);
    if (res.status !== 201) throw new Error(`create endpoint: ${res.status} ${JSON.stringify(out)}`);
    return out;
  };
  const row = async (id: string) => {
    const [r] = await t.app.get(DataSource).query('SELECT * FROM webhook_endpoints WHERE id = $1', [id]);
    return r;
  };
  const auditOf = async (id: string) =>
    (await t.app
      .get(DataSource)
      .query('SELECT action, details FROM audit_log WHERE target_id = $1 ORDER BY created_at, id', [id])) as {
      action: string;
      details: Record<string, unknown>;
    }[];

  it('creates an endpoint and shows its secret once, sealed at rest and bound to the row', async () => {
    const res = await call(t, 'POST', BASE, owner(), {
      url: 'https://public.example.test/hooks/switchboard?tenant=acme',
      description: 'Helpdesk',
      eventTypes: ['call.*', 'voicemail.received'],
      rateLimitPerSecond: 50,
      headers: { Authorization: 'Bearer receiver-token', 'X-Tenant': 'acme' },
    });
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body).toEqual({
      id: expect.any(String),
      url: 'https://public.example.test/hooks/switchboard?tenant=acme',
      description: 'Helpdesk',
      eventTypes: ['call.*', 'voicemail.received'],
      enabled: true,
      disabledReason: null,
      disabledAt: null,
      secret: expect.stringMatching(SECRET),
      secretHint: expect.any(String),
      previousSecretExpiresAt: null,
      rateLimitPerSecond: 50,
      headers: { Authorization: 'Bearer receiver-token', 'X-Tenant': 'acme' },
      failingSince: null,
      lastSuccessAt: null,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    expect(body.secretHint).toBe(`${body.secret.slice(0, 8)}…${body.secret.slice(-4)}`);

    const { secret, ...shown } = body;
    const got = await call(t, 'GET', `${BASE}/${body.id}`, owner());
    expect(got.status).toBe(200);
    expect(await json(got)).toEqual(shown);
    const list = await json(await call(t, 'GET', BASE, owner()));
    expect(list.data).toContainEqual(shown);
    expect(JSON.stringify(list)).not.toContain(secret);

    const stored = await row(body.id);
    expect(stored.secret_sealed).toMatch(/^v1\.[0-9a-f]{8}\./);
    expect(stored.secret_sealed).not.toContain(secret.slice(6));
    const box = new SecretBox(TEST_PBX_SECRETS_KEY);
    expect(box.open(stored.secret_sealed, `webhook-endpoint:${body.id}`)).toBe(secret);
    expect(() => box.open(stored.secret_sealed, `webhook-endpoint:${co.id}`)).toThrow();
    expect(t.logs.text()).not.toContain(secret.slice(6));
    expect(JSON.stringify(await auditOf(body.id))).not.toContain(secret.slice(6));
  });

  it('changes, lists in keyset pages, deletes, and audits every change without secrets', async () => {
    const company = await createCompany(t, 'whe-crud');
    const auth = { token: company.owner.accessToken };
    const a = await create(company);
    const b = await create(company, endpoint({ description: 'second' }));
    const c = await create(company, endpoint({ description: 'third' }));

    const first = await json(await call(t, 'GET', `${BASE}?limit=2`, auth));
    expect(first.data.map((e: { id: string }) => e.id)).toEqual([c.id, b.id]);
    expect(first.next).toEqual(expect.any(String));
    const second = await json(await call(t, 'GET', `${BASE}?limit=2&cursor=${first.next}`, auth));
    expect(second).toEqual({ data: [expect.objectContaining({ id: a.id })], next: null });
    await expectProblem(await call(t, 'GET', `${BASE}?cursor=garbage`, auth), 400, 'invalid-cursor');

    const patched = await call(t, 'PATCH', `${BASE}/${a.id}`, auth, {
      url: 'https://public6.example.test:8443/in',
      description: 'renamed',
      eventTypes: ['*'],
      rateLimitPerSecond: 10,
      headers: { 'X-Api-Key': 'k' },
    });
    expect(patched.status).toBe(200);
    expect(await json(patched)).toMatchObject({
      id: a.id,
      url: 'https://public6.example.test:8443/in',
      description: 'renamed',
      eventTypes: ['*'],
      rateLimitPerSecond: 10,
      headers: { 'X-Api-Key': 'k' },
      secretHint: a.secretHint,
    });
    const cleared = await json(
      await call(t, 'PATCH', `${BASE}/${a.id}`, auth, { rateLimitPerSecond: null, headers: {} }),
    );
    expect(cleared).toMatchObject({ rateLimitPerSecond: null, headers: {} });

    const del = await call(t, 'DELETE', `${BASE}/${a.id}`, auth);
    expect(del.status).toBe(204);
    await expectProblem(await call(t, 'GET', `${BASE}/${a.id}`, auth), 404, 'not-found');
    await expectProblem(await call(t, 'DELETE', `${BASE}/${a.id}`, auth), 404, 'not-found');

    const audit = await auditOf(a.id);
    expect(audit.map((e) => e.action)).toEqual([
      'webhook_endpoint.created',
      'webhook_endpoint.updated',
      'webhook_endpoint.updated',
      'webhook_endpoint.deleted',
    ]);
    expect(audit[1]!.details).toMatchObject({
      fields: ['url', 'description', 'eventTypes', 'rateLimitPerSecond', 'headers'],
      host: 'public6.example.test:8443',
    });
    expect(JSON.stringify(audit)).not.toContain(a.secret.slice(6));
  });

  it('rotates the secret: the new one shown once, the old one signs too until the overlap ends', async () => {
    const created = await create(co);
    const before = Date.now();
    const res = await call(t, 'POST', `${BASE}/${created.id}/rotate-secret`, owner());
    expect(res.status).toBe(201);
    const rotated = await json(res);
    expect(rotated).toEqual({
      id: created.id,
      secret: expect.stringMatching(SECRET),
      secretHint: expect.any(String),
      previousSecretExpiresAt: expect.any(String),
    });
    expect(rotated.secret).not.toBe(created.secret);
    const until = Date.parse(rotated.previousSecretExpiresAt);
    expect(until).toBeGreaterThanOrEqual(before + 3_600_000 - 1_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 3_600_000 + 1_000);

    const got = await json(await call(t, 'GET', `${BASE}/${created.id}`, owner()));
    expect(got).toMatchObject({
      secretHint: rotated.secretHint,
      previousSecretExpiresAt: rotated.previousSecretExpiresAt,
    });
    expect(JSON.stringify(got)).not.toContain(rotated.secret);

    const service = t.app.get(WebhookEndpointsService);
    const entity = await service.get(co.id, created.id);
    expect(service.signingSecrets(entity)).toEqual([rotated.secret, created.secret]);
    expect(service.signingSecrets(entity, new Date(until + 1))).toEqual([rotated.secret]);

    // A second rotation: the first secret no longer signs, the second is now the previous one.
    const again = await json(await call(t, 'POST', `${BASE}/${created.id}/rotate-secret`, owner()));
    expect(service.signingSecrets(await service.get(co.id, created.id))).toEqual([again.secret, rotated.secret]);

    const audit = await auditOf(created.id);
    expect(audit.map((e) => e.action)).toEqual([
      'webhook_endpoint.created',
      'webhook_endpoint.secret_rotated',
      'webhook_endpoint.secret_rotated',
    ]);
    for (const s of [created.secret, rotated.secret, again.secret]) {
      expect(JSON.stringify(audit)).not.toContain(s.slice(6));
      expect(t.logs.text()).not.toContain(s.slice(6));
    }
  });

  it('starts a new endpoint after the latest event; re-enabling clears the failure and starts from the latest again', async () => {
    const company = await createCompany(t, 'whe-seq');
    const auth = { token: company.owner.accessToken };
    const events = t.app.get(EventsService);
    const ds = t.app.get(DataSource);
    const append = (n: number) =>
      ds.transaction(async (m) => {
        for (let i = 0; i < n; i++) await events.append(m, company.id, 'kpi.updated', { i });
      });
    await append(3);
    const latest = await events.latestSeq(company.id);
    expect(latest).toBeGreaterThanOrEqual(3);
    const created = await create(company);
    expect((await row(created.id)).fanout_seq).toBe(String(latest));

    // Already enabled: enabling again changes nothing.
    await append(1);
    await call(t, 'PATCH', `${BASE}/${created.id}`, auth, { enabled: true });
    expect((await row(created.id)).fanout_seq).toBe(String(latest));

    const disabled = await json(await call(t, 'PATCH', `${BASE}/${created.id}`, auth, { enabled: false }));
    expect(disabled).toMatchObject({ enabled: false, disabledReason: 'manual', disabledAt: expect.any(String) });

    // As the deliveries would leave it after failing for too long.
    await ds.query(
      `UPDATE webhook_endpoints SET disabled_reason = 'failing', failing_since = now() - interval '6 days' WHERE id = $1`,
      [created.id],
    );
    await append(2);
    const enabled = await json(await call(t, 'PATCH', `${BASE}/${created.id}`, auth, { enabled: true }));
    expect(enabled).toMatchObject({ enabled: true, disabledReason: null, disabledAt: null, failingSince: null });
    expect((await row(created.id)).fanout_seq).toBe(String(await events.latestSeq(company.id)));
    expect(Number((await row(created.id)).fanout_seq)).toBe(latest + 3);

    const createdDisabled = await create(company, endpoint({ enabled: false }));
    expect(createdDisabled).toMatchObject({ enabled: false, disabledReason: 'manual' });
  });

  it('lets admins, managers and API keys with webhooks:manage in; agents and other scopes get 403', async () => {
    const manager = await createUser(t, co, 'manager');
    const admin = await createUser(t, co, 'admin');
    const agent = await createUser(t, co, 'agent');
    const created = await create(co);
    const byManager = await call(t, 'POST', BASE, { token: manager.accessToken }, endpoint());
    expect(byManager.status).toBe(201);
    expect((await call(t, 'GET', `${BASE}/${created.id}`, { token: admin.accessToken })).status).toBe(200);

    const scoped = await createApiKey(t, co, ['webhooks:manage']);
    expect((await call(t, 'GET', BASE, { key: scoped.key })).status).toBe(200);
    expect((await call(t, 'POST', `${BASE}/${created.id}/rotate-secret`, { key: scoped.key })).status).toBe(201);
    const unscoped = await createApiKey(t, co, ['calls:read']);
    await expectProblem(await call(t, 'GET', BASE, { key: unscoped.key }), 403, 'insufficient-scope');

    const asAgent = { token: agent.accessToken };
    for (const [method, path, body] of [
      ['GET', BASE, undefined],
      ['POST', BASE, endpoint()],
      ['GET', `${BASE}/${created.id}`, undefined],
      ['PATCH', `${BASE}/${created.id}`, { description: 'x' }],
      ['DELETE', `${BASE}/${created.id}`, undefined],
      ['POST', `${BASE}/${created.id}/rotate-secret`, undefined],
    ] as const) {
      await expectProblem(await call(t, method, path, asAgent, body), 403, 'forbidden');
    }
    await expectProblem(await call(t, 'GET', BASE), 401, 'unauthorized');
  });

  it("answers 404 for another company's endpoint on every route, and never lists it", async () => {
    const created = await create(co);
    const asB = { token: other.owner.accessToken };
    for (const [method, path, body] of [
      ['GET', `${BASE}/${created.id}`, undefined],
      ['PATCH', `${BASE}/${created.id}`, { description: 'stolen' }],
      ['PATCH', `${BASE}/${created.id}`, { enabled: false }],
      ['DELETE', `${BASE}/${created.id}`, undefined],
      ['POST', `${BASE}/${created.id}/rotate-secret`, undefined],
    ] as const) {
      await expectProblem(await call(t, method, path, asB, body), 404, 'not-found');
    }
    const keyB = await call(t, 'GET', `${BASE}/${created.id}`, { key: other.apiKey });
    await expectProblem(keyB, 404, 'not-found');
    const listB = await json(await call(t, 'GET', BASE, asB));
    expect(listB.data.map((e: { id: string }) => e.id)).not.toContain(created.id);
    // Nothing changed.
    expect(await json(await call(t, 'GET', `${BASE}/${created.id}`, owner()))).toMatchObject({
      description: '',
      enabled: true,
      secretHint: created.secretHint,
    });
    await expectProblem(await call(t, 'GET', `${BASE}/not-a-uuid`, owner()), 400, 'bad-request');
  });

  describe('SSRF guard', () => {
    const refused: [string, string][] = [
      ['https://127.0.0.1/hook', 'blocked-address'],
      ['http://127.0.0.1:8080/hook', 'blocked-address'],
      ['https://10.0.0.5/hook', 'blocked-address'],
      ['https://[::1]/hook', 'blocked-address'],
      ['http://localhost:8080/hook', 'blocked-address'],
      ['https://evil.example.test/hook', 'blocked-address'],
      ['https://private.example.test/hook', 'blocked-address'],
      ['https://mixed.example.test/hook', 'blocked-address'],
      ['https://169.254.169.254/latest/meta-data/', 'blocked-address'],
      ['https://[::ffff:127.0.0.1]/hook', 'blocked-address'],
      ['https://[::ffff:a9fe:a9fe]/hook', 'blocked-address'],
      ['https://[fd00::1]/hook', 'blocked-address'],
      ['https://100.64.0.1/hook', 'blocked-address'],
      ['http://2130706433/hook', 'blocked-address'],
      ['http://0x7f.1/hook', 'blocked-address'],
      ['http://public.example.test/hook', 'scheme'],
      ['http://93.184.216.34/hook', 'scheme'],
      ['https://user:password@public.example.test/hook', 'credentials'],
      ['https://unknown.example.test/hook', 'unresolvable'],
    ];

    it.each(refused)('refuses %s at creation (%s)', async (url, reason) => {
      const body = await expectProblem(
        await call(t, 'POST', BASE, owner(), endpoint({ url })),
        400,
        'webhook-target-refused',
      );
      expect(body).toMatchObject({ field: 'url', reason });
      expect(body.detail).toMatch(/^url/);
      // The addresses a name resolved to are never echoed.
      for (const address of ['127.0.0.1', '10.0.0.5', '192.168.1.20']) {
        if (!url.includes(address)) expect(JSON.stringify(body)).not.toContain(address);
      }
    });

    it.each(refused)('refuses %s on PATCH (%s) and keeps the URL', async (url, reason) => {
      const created = await create(co);
      const body = await expectProblem(
        await call(t, 'PATCH', `${BASE}/${created.id}`, owner(), { url, description: 'not saved' }),
        400,
        'webhook-target-refused',
      );
      expect(body).toMatchObject({ field: 'url', reason });
      expect(await json(await call(t, 'GET', `${BASE}/${created.id}`, owner()))).toMatchObject({
        url: created.url,
        description: '',
      });
    });

    it('stores the URL as WHATWG normalises it (what was checked is what is called)', async () => {
      const created = await create(co, endpoint({ url: 'HTTPS://PUBLIC.example.test:443/a/../hook' }));
      expect(created.url).toBe('https://public.example.test/hook');
    });
  });

  describe('validation', () => {
    const fieldOf = async (res: Response) => {
      const body = await expectProblem(res, 400, 'validation-failed');
      return body.errors.map((e: { field: string }) => e.field);
    };

    it.each([
      ['a URL that is no URL', { url: 'not a url' }, 'url'],
      ['a URL over 2048 characters', { url: `https://public.example.test/${'a'.repeat(2_030)}` }, 'url'],
      ['an ftp URL', { url: 'ftp://public.example.test/x' }, 'url'],
      ['a URL with spaces around', { url: ' https://public.example.test/ ' }, 'url'],
      ['a URL that is a number', { url: 5 }, 'url'],
      ['an unknown event type', { eventTypes: ['call.rang'] }, 'eventTypes'],
      ['an unknown wildcard', { eventTypes: ['calls.*'] }, 'eventTypes'],
      ['empty eventTypes', { eventTypes: [] }, 'eventTypes'],
      ['eventTypes of numbers', { eventTypes: [1] }, 'eventTypes'],
      ['duplicated eventTypes', { eventTypes: ['call.*', 'call.*'] }, 'eventTypes'],
      ['too many eventTypes', { eventTypes: Array.from({ length: 51 }, () => '*') }, 'eventTypes'],
      ['a description over 500', { description: 'd'.repeat(501) }, 'description'],
      ['rateLimitPerSecond 0', { rateLimitPerSecond: 0 }, 'rateLimitPerSecond'],
      ['rateLimitPerSecond 10001', { rateLimitPerSecond: 10_001 }, 'rateLimitPerSecond'],
      ['rateLimitPerSecond 1.5', { rateLimitPerSecond: 1.5 }, 'rateLimitPerSecond'],
      ['rateLimitPerSecond "5"', { rateLimitPerSecond: '5' }, 'rateLimitPerSecond'],
      ['a webhook-* header', { headers: { 'webhook-signature': 'v1,forged' } }, 'headers'],
      ['a hop-by-hop header', { headers: { Connection: 'close' } }, 'headers'],
      ['a framing header', { headers: { 'Content-Length': '0' } }, 'headers'],
      ['a proxy-* header', { headers: { 'Proxy-Authorization': 'x' } }, 'headers'],
      ['a header name that is no token', { headers: { 'x bad': 'v' } }, 'headers'],
      ['a header value with CR LF', { headers: { 'X-A': 'v\r\nX-Injected: 1' } }, 'headers'],
      ['a header value with a tab and DEL', { headers: { 'X-A': 'v\u007f' } }, 'headers'],
      ['a header value not in ASCII', { headers: { 'X-A': 'café' } }, 'headers'],
      ['a header value over 1024', { headers: { 'X-A': 'v'.repeat(1_025) } }, 'headers'],
      [
        '21 headers',
        { headers: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`x-h${i}`, 'v'])) },
        'headers',
      ],
      [
        'headers over 8 KB in all',
        { headers: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`x-h${i}`, 'v'.repeat(1_000)])) },
        'headers',
      ],
      ['headers as a list', { headers: [['x', 'y']] }, 'headers'],
      ['a nested header value', { headers: { x: { y: 'z' } } }, 'headers'],
      ['enabled "yes"', { enabled: 'yes' }, 'enabled'],
      ['an unknown property', { secret: 'whsec_mine' }, 'secret'],
    ])('refuses %s at creation, naming the field', async (_, over, field) => {
      expect(await fieldOf(await call(t, 'POST', BASE, owner(), endpoint(over)))).toContain(field);
    });

    it('refuses a missing url or eventTypes', async () => {
      expect(await fieldOf(await call(t, 'POST', BASE, owner(), { eventTypes: ['*'] }))).toContain('url');
      expect(await fieldOf(await call(t, 'POST', BASE, owner(), { url: endpoint().url }))).toContain('eventTypes');
    });

    it('refuses null where a field cannot be null on PATCH, and lets rateLimitPerSecond be null', async () => {
      const created = await create(co, endpoint({ rateLimitPerSecond: 5 }));
      const path = `${BASE}/${created.id}`;
      for (const field of ['url', 'description', 'eventTypes', 'enabled', 'headers']) {
        expect(await fieldOf(await call(t, 'PATCH', path, owner(), { [field]: null }))).toEqual([field]);
      }
      for (const field of ['url', 'description', 'eventTypes', 'enabled', 'headers']) {
        expect(await fieldOf(await call(t, 'POST', BASE, owner(), endpoint({ [field]: null })))).toContain(field);
      }
      expect(await fieldOf(await call(t, 'PATCH', path, owner(), { eventTypes: [] }))).toEqual(['eventTypes']);
      expect(await fieldOf(await call(t, 'PATCH', path, owner(), { headers: { 'webhook-id': 'x' } }))).toEqual([
        'headers',
      ]);
      const res = await call(t, 'PATCH', path, owner(), { rateLimitPerSecond: null });
      expect(res.status).toBe(200);
      expect((await json(res)).rateLimitPerSecond).toBeNull();
    });

    it('names the unknown event types and the refused header in the message', async () => {
      const types = await expectProblem(
        await call(t, 'POST', BASE, owner(), endpoint({ eventTypes: ['call.*', 'call.rang'] })),
        400,
        'validation-failed',
      );
      expect(types.errors).toEqual([{ field: 'eventTypes', messages: [expect.stringContaining('"call.rang"')] }]);
      const headers = await expectProblem(
        await call(t, 'POST', BASE, owner(), endpoint({ headers: { 'Webhook-Id': 'x' } })),
        400,
        'validation-failed',
      );
      expect(headers.errors).toEqual([{ field: 'headers', messages: [expect.stringContaining('"Webhook-Id"')] }]);
    });

    it('answers hostile bodies with 4xx problems, never 5xx', async () => {
      const raw = (method: string, path: string, body: string, type = 'application/json') =>
        t.fetch(path, {
          method,
          headers: { authorization: `Bearer ${co.owner.accessToken}`, 'content-type': type },
          body,
        });
      const created = await create(co);
      const nested = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
      const deepObject = (levels: number) => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);
      const cases: [string, string, string, string?][] = [
        ['POST', BASE, 'null'],
        ['POST', BASE, '[]'],
        ['POST', BASE, '"https://public.example.test/"'],
        ['POST', BASE, '{"url":'],
        ['POST', BASE, `{"url":"https://public.example.test/","eventTypes":${nested(3_000)}}`],
        ['POST', BASE, `{"url":"https://public.example.test/","eventTypes":["*"],"headers":${deepObject(3_000)}}`],
        ['POST', BASE, `{"url":"https://public.example.test/","eventTypes":["*"],"headers":${deepObject(3)}}`],
        ['POST', BASE, JSON.stringify(endpoint({ eventTypes: Array.from({ length: 20_000 }, () => 'call.*') }))],
        ['POST', BASE, JSON.stringify(endpoint({ description: 'x'.repeat(5_000_000) }))],
        ['POST', BASE, JSON.stringify(endpoint({ url: `https://public.example.test/${'a'.repeat(100_000)}` }))],
        ['POST', BASE, '{"__proto__":{"admin":true},"url":"https://public.example.test/","eventTypes":["*"]}'],
        ['POST', BASE, JSON.stringify(endpoint()), 'text/plain'],
        ['PATCH', `${BASE}/${created.id}`, '[{"url":"https://127.0.0.1/"}]'],
        ['PATCH', `${BASE}/${created.id}`, '"https://127.0.0.1/"'],
        ['PATCH', `${BASE}/${created.id}`, '42'],
        ['PATCH', `${BASE}/${created.id}`, '{"headers":{"constructor":{"prototype":{"x":1}}}}'],
        ['PATCH', `${BASE}/${created.id}`, '{"url":{"href":"https://127.0.0.1/"}}'],
        ['PATCH', `${BASE}/${created.id}`, '{"eventTypes":"call.*"}'],
        ['PATCH', `${BASE}/${created.id}`, '{"rateLimitPerSecond":1e400}'],
        // NUL anywhere in a body is refused before validation (400 invalid-body).
        ['PATCH', `${BASE}/${created.id}`, '{"headers":{"X-A":"v\\u0000"}}'],
      ];
      for (const [method, path, body, type] of cases) {
        const res = await raw(method, path, body, type);
        const text = await res.text();
        expect({
          body: body.slice(0, 80),
          status: res.status >= 400 && res.status < 500 ? true : `${res.status} ${text.slice(0, 300)}`,
        }).toEqual({
          body: body.slice(0, 80),
          status: true,
        });
        expect(res.headers.get('content-type')).toContain('application/problem+json');
        expect(text).not.toMatch(/stack|QueryFailedError/);
      }
      // A JSON null is an empty change (the validation pipe reads it as {}), as on every route.
      expect((await raw('PATCH', `${BASE}/${created.id}`, 'null')).status).toBe(200);
      // Nothing of the above changed the endpoint.
      expect(await json(await call(t, 'GET', `${BASE}/${created.id}`, owner()))).toMatchObject({
        url: created.url,
        eventTypes: created.eventTypes,
        headers: {},
      });
    });
  });
});

describe('outbound webhook endpoints with an allow-list and a limit of 2 per company', () => {
  let t: TestApp;
  let receiver: Server;
  let port: number;

  beforeAll(async () => {
    receiver = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    port = (receiver.address() as AddressInfo).port;
    t = await startTestApp({
      env: {
        WEBHOOK_DELIVERY_ENABLED: 'false',
        WEBHOOK_ALLOWED_TARGETS: '127.0.0.1/32',
        WEBHOOK_ENDPOINTS_PER_COMPANY: '2',
        WEBHOOK_DNS_OVERRIDES: 'receiver.example.test=127.0.0.1,public.example.test=93.184.216.34',
      },
    });
  });
  afterAll(async () => {
    await t.close();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });

  it('accepts allow-listed targets (plain http included) and still refuses the rest', async () => {
    const co = await createCompany(t, 'whe-allow');
    const auth = { token: co.owner.accessToken };
    const direct = await call(t, 'POST', BASE, auth, endpoint({ url: `http://127.0.0.1:${port}/hook` }));
    expect(direct.status).toBe(201);
    const byName = await call(t, 'PATCH', `${BASE}/${(await json(direct)).id}`, auth, {
      url: `http://receiver.example.test:${port}/hook`,
    });
    expect(byName.status).toBe(200);
    for (const [url, reason] of [
      [`http://localhost:${port}/hook`, 'blocked-address'], // ::1 is not allow-listed
      [`https://127.0.0.2:${port}/hook`, 'blocked-address'],
      ['https://10.0.0.5/hook', 'blocked-address'],
      [`http://[::1]:${port}/hook`, 'blocked-address'],
      ['https://169.254.169.254/', 'blocked-address'],
      ['http://public.example.test/hook', 'scheme'],
    ] as const) {
      const body = await expectProblem(
        await call(t, 'POST', BASE, auth, endpoint({ url })),
        400,
        'webhook-target-refused',
      );
      expect(body.reason).toBe(reason);
    }
  });

  it('refuses a third endpoint with 422 webhook-endpoint-limit, also under concurrent creations', async () => {
    const co = await createCompany(t, 'whe-limit');
    const auth = { token: co.owner.accessToken };
    const results = await Promise.all(
      Array.from({ length: 5 }, () => call(t, 'POST', BASE, auth, endpoint({ url: `http://127.0.0.1:${port}/h` }))),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 201, 422, 422, 422]);
    const refused = results.find((r) => r.status === 422)!;
    const body = await expectProblem(refused, 422, 'webhook-endpoint-limit');
    expect(body).toMatchObject({ limit: 2 });
    expect((await json(await call(t, 'GET', BASE, auth))).data).toHaveLength(2);

    // Another company has its own allowance; a deletion frees a place.
    const other = await createCompany(t, 'whe-limit-b');
    expect((await call(t, 'POST', BASE, { token: other.owner.accessToken }, endpoint())).status).toBe(201);
    const [first] = (await json(await call(t, 'GET', BASE, auth))).data;
    expect((await call(t, 'DELETE', `${BASE}/${first.id}`, auth)).status).toBe(204);
    expect((await call(t, 'POST', BASE, auth, endpoint())).status).toBe(201);
  });
});
