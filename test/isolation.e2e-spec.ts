import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { CallApplyService } from '../src/calls/call-apply.service.js';
import { MessagesService } from '../src/messages/messages.service.js';
import { ApiKeysService } from '../src/tenants/api-keys.service.js';
import { startTwilioFake, type TwilioFake } from './fakes/twilio-fake.js';
import { json } from './support/http.js';
import { call, createCompany, login, operator, PASSWORD, type TestCompany, unique } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * Proof of isolation. Every tenant route of the OpenAPI document (its `x-access` says
 * `kind: 'tenant'`) is called by company A on a real resource of company B: it must answer exactly
 * as for a missing resource (404) and never show or change anything of B. A tenant route whose
 * resource kind has no factory here fails this file: a new route needs its isolation case.
 */

interface AccessRule {
  kind: string;
  role?: string;
  scope?: string;
}

interface Route {
  method: string;
  path: string;
  access: AccessRule;
  params: string[];
}

/** A resource of company B, made through the API with B's owner token. */
interface Resource {
  id: string;
  /** The path parameters naming it, in order, when not just [id]. */
  params?: string[];
  /** The parameters for a route with more of them than the resource's own (a sub-resource), by count. */
  paramsByCount?: Record<number, string[]>;
  /** Path parameters of a resource that does not exist, in the same form (default: a random UUID). */
  missingParams?: string[];
  /** Values only company B has (ids, e-mails, names, keys): none may reach company A. */
  needles: string[];
  /** Asserts that the resource is still there, unchanged. */
  intact(): Promise<void>;
}

type Credential = { token: string } | { key: string };

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const PARAM = /\{[^}]+\}/g;

interface OpenApiDocument {
  paths: Record<string, Record<string, { 'x-access'?: AccessRule }>>;
}

function tenantRoutes(doc: OpenApiDocument): Route[] {
  const routes: Route[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (!METHODS.includes(method)) continue;
      const access = operation['x-access'];
      if (access?.kind !== 'tenant') continue;
      routes.push({ method: method.toUpperCase(), path, access, params: path.match(PARAM) ?? [] });
    }
  }
  return routes;
}

/** The kind of resource a path id names: the segment before the first parameter. */
function resourceKind(path: string): string {
  const segments = path.split('/').filter(Boolean);
  const at = segments.findIndex((s) => /^\{[^}]+\}$/.test(s));
  return at > 0 ? segments[at - 1] : '';
}

/**
 * Routes that answer counts and live presence only (no ids of stored data): the leak check still
 * applies to them, but there is no value of A or B to find in them.
 */
const AGGREGATES = new Set(['/api/v1/status', '/api/v1/agents/connected']);

const takesBody = (method: string) => method === 'POST' || method === 'PATCH' || method === 'PUT';

/** The error of a problem response, without what differs per request. */
function problemShape(body: { type?: unknown; title?: unknown; status?: unknown; detail?: unknown }) {
  return { type: body.type, title: body.title, status: body.status, detail: body.detail };
}

describe('tenant isolation', () => {
  let t: TestApp;
  let doc: OpenApiDocument;
  let a: TestCompany;
  let b: TestCompany;
  /** Every value of company B seen so far. */
  const bNeedles: string[] = [];
  let aNeedles: string[];
  /** An agent of A, for bodies that name one. */
  let aAgentId = '';
  let twilio: TwilioFake;
  let aTwilioId = '';

  /** Plausible valid bodies, by `METHOD path`; a route without one is sent `{}`. */
  const bodies: Record<string, () => unknown> = {
    'POST /api/v1/users': () => ({
      email: `${unique('a-user')}@example.com`,
      password: PASSWORD,
      displayName: 'Made by A',
      role: 'agent',
    }),
    'PATCH /api/v1/users/{id}': () => ({
      displayName: 'Renamed by A',
      role: 'manager',
      password: 'a-password-set-by-company-a',
      preferences: { theme: 'dark' },
    }),
    'POST /api/v1/api-keys': () => ({ name: unique('a-key'), scopes: ['users:read'] }),
    'POST /api/v1/api-keys/{id}/rotate': () => ({ overlapSeconds: 0 }),
    'PATCH /api/v1/company': () => ({ settings: { timezone: 'Europe/Paris', dataRetentionDays: 30 } }),
    'POST /api/v1/agents': () => ({ displayName: 'Agent of A', extension: `7${Math.floor(Math.random() * 1e6)}` }),
    'PATCH /api/v1/agents/{id}': () => ({ displayName: 'Renamed by A', skills: ['french'] }),
    'PUT /api/v1/agents/{id}/availability': () => ({ status: 'busy' }),
    'POST /api/v1/user-mappings': () => ({
      provider: 'dialpad',
      externalId: unique('a-ext'),
      crmUserId: unique('a-crm'),
    }),
    'POST /api/v1/calls': () => ({
      direction: 'inbound',
      from: '+15551230009',
      to: '+15550001234',
      startedAt: new Date().toISOString(),
    }),
    'PATCH /api/v1/calls/{id}': () => ({ notes: 'Written by A', tags: ['by-a'], disposition: 'a' }),
    'POST /api/v1/calls/{id}/assign': () => ({ agentId: aAgentId }),
    'POST /api/v1/screen-pop': () => ({ agentId: aAgentId, from: '+15551230009' }),
    'POST /api/v1/pbx-connections': () => ({
      provider: 'asterisk',
      name: unique('A pbx'),
      settings: { host: '127.0.0.1', port: 9, username: 'a-user' },
      secrets: { secret: 'a-secret' },
    }),
    'PATCH /api/v1/pbx-connections/{id}': () => ({ name: unique('Renamed by A'), secrets: { secret: 'set-by-a' } }),
    'POST /api/v1/calls/{id}/dtmf': () => ({ digits: '123#' }),
    // Through A's Twilio connection (A also has Asterisk connections that could place calls).
    'POST /api/v1/calls/click-to-call': () => ({ to: '+15551230009', agentId: aAgentId, connectionId: aTwilioId }),
    'POST /api/calls/initiate': () => ({ phoneNumber: '+15551230009', agentId: aAgentId, connectionId: aTwilioId }),
    'POST /api/calls/dtmf/{callId}': () => ({ digit: '1' }),
    // Created disabled, at a public address that is never reached.
    'POST /api/v1/webhook-endpoints': () => ({
      url: 'https://93.184.216.34/a-hook',
      eventTypes: ['*'],
      enabled: false,
    }),
    'PATCH /api/v1/webhook-endpoints/{id}': () => ({ description: 'Renamed by A', enabled: false }),
    'POST /api/v1/webhook-endpoints/{id}/replay': () => ({ since: new Date(Date.now() - 3600_000).toISOString() }),
    'POST /api/v1/user-mappings/batch': () => ({
      mappings: [{ provider: 'twilio', externalId: unique('a-ext'), crmUserId: unique('a-crm') }],
    }),
  };
  const bodyFor = (route: Route) =>
    takesBody(route.method) ? (bodies[`${route.method} ${route.path}`]?.() ?? {}) : undefined;

  /** One factory per resource kind a path id can name: creates it for company B. */
  const factories: Record<string, (company: TestCompany) => Promise<Resource>> = {
    users: async (company) => {
      const email = `${unique('b-user')}@example.com`;
      const displayName = unique('B user');
      const res = await call(
        t,
        'POST',
        '/api/v1/users',
        { token: company.owner.accessToken },
        {
          email,
          password: PASSWORD,
          displayName,
          role: 'agent',
        },
      );
      expect(res.status).toBe(201);
      const user = await json(res);
      return {
        id: user.id,
        needles: [user.id, email, displayName],
        intact: async () => {
          const now = await call(t, 'GET', `/api/v1/users/${user.id}`, { token: company.owner.accessToken });
          expect(now.status).toBe(200);
          expect(await json(now)).toEqual(user);
          // The password is the one B set.
          expect((await login(t, email)).user.id).toBe(user.id);
        },
      };
    },
    'api-keys': async (company) => {
      const name = unique('b-key');
      const res = await call(
        t,
        'POST',
        '/api/v1/api-keys',
        { token: company.owner.accessToken },
        { name, scopes: ['users:read'] },
      );
      expect(res.status).toBe(201);
      const created = await json(res);
      const key: string = created.key;
      return {
        id: created.apiKey.id,
        needles: [created.apiKey.id, key, name, created.apiKey.keyHint],
        intact: async () => {
          const status = await call(t, 'GET', `/api/v1/api-keys/${created.apiKey.id}/status`, {
            token: company.owner.accessToken,
          });
          expect(status.status).toBe(200);
          const view = await json(status);
          expect(view).toMatchObject({
            id: created.apiKey.id,
            name,
            keyHint: created.apiKey.keyHint,
            active: true,
            revokedAt: null,
            rotatedAt: null,
          });
          const used = await call(t, 'GET', '/api/v1/users', { key });
          expect(used.status).toBe(200);
          expect((await json(used)).data.map((u: { companyId: string }) => u.companyId)).toContain(company.id);
        },
      };
    },
  };

  const createAgentOf = async (company: TestCompany) => {
    const displayName = unique('B agent');
    const extension = `9${Math.floor(Math.random() * 1e7)}`;
    const res = await call(
      t,
      'POST',
      '/api/v1/agents',
      { token: company.owner.accessToken },
      { displayName, extension, skills: ['b-skill'] },
    );
    expect(res.status).toBe(201);
    const agent = await json(res);
    return { agent, displayName, extension };
  };
  const createMappingOf = async (company: TestCompany) => {
    const { agent } = await createAgentOf(company);
    const externalId = unique('b-ext');
    const crmUserId = unique('b-crm');
    const res = await call(
      t,
      'POST',
      '/api/v1/user-mappings',
      { token: company.owner.accessToken },
      { provider: 'asterisk', externalId, agentId: agent.id, crmUserId },
    );
    expect(res.status).toBe(201);
    const mapping = await json(res);
    const intact = async () => {
      const now = await call(t, 'GET', `/api/v1/user-mappings/provider/asterisk/${encodeURIComponent(externalId)}`, {
        token: company.owner.accessToken,
      });
      expect(now.status).toBe(200);
      expect(await json(now)).toEqual(mapping);
    };
    return { mapping, externalId, crmUserId, intact, needles: [mapping.id, externalId, crmUserId, agent.id] };
  };
  factories.calls = async (company) => {
    const { agent } = await createAgentOf(company);
    const providerCallId = randomUUID();
    const from = `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
    const result = await t.app.get(CallApplyService).apply({
      companyId: company.id,
      provider: 'asterisk',
      providerCallId,
      eventKey: `${providerCallId}:ring`,
      kind: 'ringing',
      at: new Date(),
      direction: 'inbound',
      from,
      to: '+15550001234',
      callerName: unique('B caller'),
      agent: { agentId: agent.id },
    });
    const id = result.call.id;
    const view = await json(await call(t, 'GET', `/api/v1/calls/${id}`, { token: company.owner.accessToken }));
    return {
      id,
      needles: [id, providerCallId, from, result.call.callerName!],
      intact: async () => {
        const now = await call(t, 'GET', `/api/v1/calls/${id}`, { token: company.owner.accessToken });
        expect(now.status).toBe(200);
        expect(await json(now)).toEqual(view);
      },
    };
  };
  // The deprecated seed aliases (/api/calls/end|dtmf|status/{callId}) name a call after their verb.
  factories.end = factories.dtmf = factories.status = factories.calls;
  factories.agents = async (company) => {
    const { agent, displayName, extension } = await createAgentOf(company);
    return {
      id: agent.id,
      needles: [agent.id, displayName, extension],
      intact: async () => {
        const now = await call(t, 'GET', `/api/v1/agents/${agent.id}`, { token: company.owner.accessToken });
        expect(now.status).toBe(200);
        expect(await json(now)).toEqual(agent);
      },
    };
  };
  factories['user-mappings'] = async (company) => {
    const m = await createMappingOf(company);
    return { id: m.mapping.id, needles: m.needles, intact: m.intact };
  };
  /** GET /api/v1/user-mappings/provider/{provider}/{externalId} */
  factories.provider = async (company) => {
    const m = await createMappingOf(company);
    return {
      id: m.mapping.id,
      params: ['asterisk', m.externalId],
      missingParams: ['asterisk', unique('missing')],
      needles: m.needles,
      intact: m.intact,
    };
  };
  /** GET /api/v1/user-mappings/crm/{crmUserId} */
  factories.crm = async (company) => {
    const m = await createMappingOf(company);
    return {
      id: m.mapping.id,
      params: [m.crmUserId],
      missingParams: [unique('missing')],
      needles: m.needles,
      intact: m.intact,
    };
  };

  factories['pbx-connections'] = async (company) => {
    const name = unique('B pbx');
    // A closed port on the loopback: the app's AMI supervisor tries it, and nothing leaves the machine.
    const username = unique('b-ami-user');
    const res = await call(
      t,
      'POST',
      '/api/v1/pbx-connections',
      { token: company.owner.accessToken },
      {
        provider: 'asterisk',
        name,
        settings: { host: '127.0.0.1', port: 9, username },
        secrets: { secret: 'b-secret-value' },
      },
    );
    expect(res.status).toBe(201);
    const connection = await json(res);
    return {
      id: connection.id,
      needles: [connection.id, name, username],
      intact: async () => {
        const now = await call(t, 'GET', `/api/v1/pbx-connections/${connection.id}`, {
          token: company.owner.accessToken,
        });
        expect(now.status).toBe(200);
        expect(await json(now)).toEqual(connection);
      },
    };
  };
  factories.voicemails = async (company) => {
    const providerVoicemailId = unique('b-vm');
    const from = `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
    await t.app
      .get(MessagesService)
      .recordVoicemail(
        { companyId: company.id, connectionId: randomUUID(), provider: 'dialpad' },
        { providerVoicemailId, at: new Date(), from, to: '+15550001234', transcription: unique('B words') },
        null,
      );
    const list = await json(await call(t, 'GET', '/api/v1/voicemails', { token: company.owner.accessToken }));
    const vm = list.data.find((v: { providerVoicemailId: string }) => v.providerVoicemailId === providerVoicemailId);
    return {
      id: vm.id,
      needles: [vm.id, providerVoicemailId, from, vm.transcription],
      intact: async () => {
        const now = await call(t, 'GET', `/api/v1/voicemails/${vm.id}`, { token: company.owner.accessToken });
        expect(now.status).toBe(200);
        expect(await json(now)).toEqual(vm);
      },
    };
  };

  /** No route takes an inbox id; B's received webhooks are there for the list to leak. */
  factories['webhook-inbox'] = async (company) => {
    const connection = await factories['pbx-connections']!(company);
    const eventId = unique('b-event');
    await t.app.get(DataSource).query(
      `INSERT INTO webhook_inbox (company_id, connection_id, provider, kind, event_id, payload, status)
         VALUES ($1, $2, 'asterisk', 'call', $3, $4::jsonb, 'processed')`,
      [company.id, connection.id, eventId, JSON.stringify({ note: eventId })],
    );
    return { id: eventId, needles: [eventId, ...connection.needles], intact: async () => {} };
  };
  /** An outbound endpoint of B (disabled: nothing is sent) with one delivery in its log. */
  factories['webhook-endpoints'] = async (company) => {
    const description = unique('B hook');
    const token = unique('b-header');
    const res = await call(
      t,
      'POST',
      '/api/v1/webhook-endpoints',
      { token: company.owner.accessToken },
      {
        url: `https://93.184.216.34/${unique('b-hook')}`,
        description,
        eventTypes: ['*'],
        enabled: false,
        headers: { 'X-B-Token': token },
      },
    );
    expect(res.status).toBe(201);
    const { secret, ...endpoint } = await json(res);
    const eventId = randomUUID();
    const body = JSON.stringify({ id: eventId, type: 'call.ringing', companyId: company.id, note: description });
    const [delivery] = (await t.app.get(DataSource).query(
      `INSERT INTO webhook_deliveries (company_id, endpoint_id, event_id, event_type, event_seq, body, origin, status, attempts, completed_at)
         VALUES ($1, $2, $3, 'call.ringing', 1, $4, 'event', 'failed', 1, now()) RETURNING id`,
      [company.id, endpoint.id, eventId, body],
    )) as { id: string }[];
    const deliveries = async () =>
      json(
        await call(t, 'GET', `/api/v1/webhook-endpoints/${endpoint.id}/deliveries`, {
          token: company.owner.accessToken,
        }),
      );
    const before = await deliveries();
    expect(before.data).toHaveLength(1);
    return {
      id: endpoint.id,
      paramsByCount: { 2: [endpoint.id, delivery!.id] },
      needles: [endpoint.id, description, token, secret, endpoint.url, delivery!.id, eventId],
      intact: async () => {
        const now = await call(t, 'GET', `/api/v1/webhook-endpoints/${endpoint.id}`, {
          token: company.owner.accessToken,
        });
        expect(now.status).toBe(200);
        expect(await json(now)).toEqual(endpoint);
        expect(await deliveries()).toEqual(before);
      },
    };
  };
  /** No route takes it as an id: B's incoming-webhook secret, for the list route to leak. */
  factories['incoming-secret'] = async (company) => {
    const res = await call(t, 'POST', '/api/v1/webhooks/incoming-secret', { token: company.owner.accessToken });
    expect(res.status).toBe(201);
    const created = await json(res);
    return { id: company.id, needles: [created.secret], intact: async () => {} };
  };
  /** No route takes a message id; B's messages are there for the lists to leak. */
  factories.messages = async (company) => {
    const providerMessageId = unique('b-sms');
    const text = unique('B text');
    await t.app
      .get(MessagesService)
      .recordMessage(
        { companyId: company.id, connectionId: randomUUID(), provider: 'twilio' },
        { providerMessageId, direction: 'inbound', at: new Date(), from: '+15551230077', to: '+15550001234', text },
      );
    return { id: providerMessageId, needles: [providerMessageId, text], intact: async () => {} };
  };

  beforeAll(async () => {
    // Many sign-ins from one address: the login limit is not what this file tests.
    twilio = await startTwilioFake();
    t = await startTestApp({ env: { RATE_LIMIT_LOGIN_PER_MIN: '100000', TWILIO_BASE_URL: twilio.baseUrl } });
    doc = await json(await t.fetch('/docs-json'));
    a = await createCompany(t, 'a');
    b = await createCompany(t, 'b');
    aNeedles = [a.id, a.name, a.owner.id, a.owner.email, a.apiKeyId];
    aAgentId = (await createAgentOf(a)).agent.id;
    // A can place calls (through a fake Twilio), so that click-to-call answers A as it should.
    const conn = await call(
      t,
      'POST',
      '/api/v1/pbx-connections',
      { token: a.owner.accessToken },
      {
        provider: 'twilio',
        name: 'A twilio',
        settings: { accountSid: twilio.accountSid, callerId: '+15550001000' },
        secrets: { authToken: twilio.authToken },
      },
    );
    expect(conn.status).toBe(201);
    aTwilioId = (await json(conn)).id;
    const mapping = await call(
      t,
      'POST',
      '/api/v1/user-mappings',
      { token: a.owner.accessToken },
      {
        provider: 'twilio',
        externalId: '+15550001999',
        agentId: aAgentId,
      },
    );
    expect(mapping.status).toBe(201);
    bNeedles.push(
      b.id,
      b.name,
      b.owner.id,
      b.owner.email,
      b.owner.accessToken,
      b.owner.refreshToken,
      b.apiKeyId,
      b.apiKey,
    );
    // B has data of every kind, so that a list leaking B would show it.
    for (const factory of Object.values(factories)) bNeedles.push(...(await factory(b)).needles);
    // And so has A, so that each list of A has something of A to show.
    for (const factory of Object.values(factories)) aNeedles.push(...(await factory(a)).needles);
  });
  afterAll(async () => {
    await t.close();
    await twilio.close();
  });

  const credentialsOfA = (): [string, Credential][] => [
    ['A owner JWT', { token: a.owner.accessToken }],
    ['A primary API key', { key: a.apiKey }],
  ];
  const keyAllowed = (route: Route, label: string) => label.includes('JWT') || route.access.scope !== undefined;
  const leaked = (text: string, needles: string[]) => needles.filter((n) => text.includes(n));

  it('finds the tenant routes in the OpenAPI document', () => {
    const routes = tenantRoutes(doc);
    expect(routes.filter((r) => r.params.length > 0).length).toBeGreaterThan(0);
    expect(routes.filter((r) => r.params.length === 0).length).toBeGreaterThan(0);
    // Known routes are among them (the list itself comes from the document).
    expect(routes.map((r) => `${r.method} ${r.path}`)).toEqual(
      expect.arrayContaining([
        'GET /api/v1/users/{id}',
        'DELETE /api/v1/users/{id}',
        'POST /api/v1/api-keys/{id}/revoke',
        'GET /api/v1/company',
      ]),
    );
  });

  it('answers company A on every id of company B as on a missing id, and changes nothing of B', async () => {
    const routes = tenantRoutes(doc).filter((r) => r.params.length > 0);
    const uncovered = routes.filter((r) => !factories[resourceKind(r.path)]);
    if (uncovered.length > 0) {
      throw new Error(
        `No isolation case for ${uncovered.map((r) => `${r.method} ${r.path} (resource "${resourceKind(r.path)}", ${r.params.length} path parameters)`).join(', ')}: ` +
          'add a factory for its resource kind to test/isolation.e2e-spec.ts.',
      );
    }

    const resources: Resource[] = [];
    for (const route of routes) {
      const resource = await factories[resourceKind(route.path)](b);
      resources.push(resource);
      bNeedles.push(...resource.needles);
      const fill = (values: string[]) => {
        if (values.length !== route.params.length)
          throw new Error(`${route.path} takes ${route.params.length} parameters`);
        let i = 0;
        return route.path.replace(PARAM, () => encodeURIComponent(values[i++]!));
      };
      const onB = fill(resource.paramsByCount?.[route.params.length] ?? resource.params ?? [resource.id]);
      const onMissing = fill(resource.missingParams ?? route.params.map(() => randomUUID()));

      for (const [label, credential] of credentialsOfA()) {
        const what = `${label} ${route.method} ${route.path}`;
        const missing = await call(t, route.method, onMissing, credential, bodyFor(route));
        const missingBody = await json(missing);
        const res = await call(t, route.method, onB, credential, bodyFor(route));
        const text = await res.text();

        expect({ what, ok: res.ok }).toEqual({ what, ok: false });
        // The problem's `instance` echoes the path A sent; nothing else may name B.
        expect({ what, leaked: leaked(text.replaceAll(onB, '(path)'), bNeedles) }).toEqual({ what, leaked: [] });
        expect({ what, contentType: res.headers.get('content-type') }).toEqual({
          what,
          contentType: 'application/problem+json; charset=utf-8',
        });
        const body = JSON.parse(text);
        if (keyAllowed(route, label)) {
          // Another company's resource is answered exactly like a missing one: 404.
          expect({ what, status: res.status, type: body.type }).toEqual({
            what,
            status: 404,
            type: 'urn:switchboard:problem:not-found',
          });
          expect({ what, problem: problemShape(body) }).toEqual({ what, problem: problemShape(missingBody) });
        } else {
          // The route takes no API key at all (no scope): refused before any lookup.
          expect({ what, status: res.status, type: body.type }).toEqual({
            what,
            status: 403,
            type: 'urn:switchboard:problem:forbidden',
          });
          expect({ what, status: missing.status }).toEqual({ what, status: 403 });
        }
      }
    }

    // Nothing of B was changed or deleted.
    for (const resource of resources) await resource.intact();
    const owner = await call(t, 'GET', `/api/v1/users/${b.owner.id}`, { token: b.owner.accessToken });
    expect(owner.status).toBe(200);
    expect(await json(owner)).toMatchObject({ id: b.owner.id, email: b.owner.email, role: 'owner', companyId: b.id });
    const company = await call(t, 'GET', '/api/v1/company', { key: b.apiKey });
    expect(company.status).toBe(200);
    expect(await json(company)).toMatchObject({ id: b.id, name: b.name, status: 'active' });
  });

  it('shows company A only its own data on routes without an id, and changes nothing of B', async () => {
    const routes = tenantRoutes(doc).filter((r) => r.params.length === 0);
    const reads = routes.filter((r) => r.method === 'GET');
    expect(reads.length).toBeGreaterThan(0);
    const snapshotOfB = async () => {
      const views: Record<string, unknown> = {};
      for (const route of reads) {
        if (AGGREGATES.has(route.path)) continue; // counts and uptime move on their own
        const res = await call(t, 'GET', route.path, { token: b.owner.accessToken });
        expect({ route: route.path, status: res.status }).toEqual({ route: route.path, status: 200 });
        views[route.path] = await res.text();
      }
      return views;
    };
    // Uses of B's keys by the cases before are stored (batched, a moment after their requests).
    await t.app.get(ApiKeysService).flushLastUsed();
    const before = await snapshotOfB();
    for (const route of reads.filter((r) => !AGGREGATES.has(r.path))) {
      // The check can fail: B's own answer holds B's values, and none of A's.
      const own = String(before[route.path]);
      expect({ route: route.path, hasB: leaked(own, bNeedles).length > 0, leakedA: leaked(own, aNeedles) }).toEqual({
        route: route.path,
        hasB: true,
        leakedA: [],
      });
    }

    for (const route of routes) {
      for (const [label, credential] of credentialsOfA()) {
        const what = `${label} ${route.method} ${route.path}`;
        const res = await call(t, route.method, route.path, credential, bodyFor(route));
        const text = await res.text();
        expect({ what, leaked: leaked(text, bNeedles) }).toEqual({ what, leaked: [] });
        if (!keyAllowed(route, label)) {
          expect({ what, status: res.status }).toEqual({ what, status: 403 });
          continue;
        }
        expect({ what, ok: res.ok, status: res.status }).toEqual({ what, ok: true, status: res.status });
        if (route.method === 'GET') {
          expect({ what, status: res.status }).toEqual({ what, status: 200 });
          if (!AGGREGATES.has(route.path))
            expect({ what, hasA: leaked(text, aNeedles).length > 0 }).toEqual({ what, hasA: true });
        }
      }
    }

    // A's writes landed in A, not in B: B's views (users, keys, company, audit log) are as they were.
    expect(await snapshotOfB()).toEqual(before);
  });

  it("refuses a suspended company's API key, tokens, refresh and login at once, until it is reactivated", async () => {
    const c = await createCompany(t, 'c');
    const other = await login(t, c.owner.email);
    const expectSuspended = async (res: Response, what: string) => {
      const body = await json(res);
      expect({ what, status: res.status, type: body.type, contentType: res.headers.get('content-type') }).toEqual({
        what,
        status: 403,
        type: 'urn:switchboard:problem:company-suspended',
        contentType: 'application/problem+json; charset=utf-8',
      });
    };
    const tenantReads = ['/api/v1/users', '/api/v1/company', '/api/v1/audit-log'];
    // Warm every cache first: suspension must not wait for them to expire.
    for (const path of tenantReads) {
      expect((await call(t, 'GET', path, { key: c.apiKey })).status).toBe(200);
      expect((await call(t, 'GET', path, { token: c.owner.accessToken })).status).toBe(200);
    }

    const suspended = await call(t, 'POST', `/internal/apps/${c.id}/suspend`, operator);
    expect(suspended.status).toBe(200);
    expect(await json(suspended)).toMatchObject({ id: c.id, status: 'suspended' });

    for (const path of tenantReads) {
      await expectSuspended(await call(t, 'GET', path, { key: c.apiKey }), `key GET ${path}`);
      await expectSuspended(await call(t, 'GET', path, { token: c.owner.accessToken }), `token GET ${path}`);
    }
    await expectSuspended(
      await call(t, 'GET', '/api/v1/api-keys', { token: c.owner.accessToken }),
      'token GET /api/v1/api-keys',
    );
    await expectSuspended(
      await call(
        t,
        'POST',
        '/api/v1/users',
        { key: c.apiKey },
        { email: `${unique('s')}@example.com`, password: PASSWORD, displayName: 'S', role: 'agent' },
      ),
      'key POST /api/v1/users',
    );
    await expectSuspended(
      await call(t, 'GET', '/api/v1/auth/me', { token: c.owner.accessToken }),
      'token GET /api/v1/auth/me',
    );
    await expectSuspended(
      await call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: other.refreshToken }),
      'refresh',
    );
    await expectSuspended(
      await call(t, 'POST', '/api/v1/auth/login', {}, { email: c.owner.email, password: PASSWORD }),
      'login',
    );

    const reactivated = await call(t, 'POST', `/internal/apps/${c.id}/reactivate`, operator);
    expect(reactivated.status).toBe(200);
    expect(await json(reactivated)).toMatchObject({ id: c.id, status: 'active' });

    for (const path of tenantReads) {
      expect({ path, status: (await call(t, 'GET', path, { key: c.apiKey })).status }).toEqual({ path, status: 200 });
      expect({ path, status: (await call(t, 'GET', path, { token: c.owner.accessToken })).status }).toEqual({
        path,
        status: 200,
      });
    }
    // Nothing was created while suspended.
    const users = await json(await call(t, 'GET', '/api/v1/users', { key: c.apiKey }));
    expect(users.data.map((u: { id: string }) => u.id)).toEqual([c.owner.id]);
    const refreshed = await call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: c.owner.refreshToken });
    expect(refreshed.status).toBe(200);
    expect((await call(t, 'GET', '/api/v1/users', { token: (await json(refreshed)).accessToken })).status).toBe(200);
    expect((await login(t, c.owner.email)).user.id).toBe(c.owner.id);
  });
});
