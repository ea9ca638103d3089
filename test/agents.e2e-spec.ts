import type { Subscription } from 'rxjs';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import { EventsService } from '../src/events/events.service.js';
import { query } from './support/database.js';
import { json, PROBLEM, type Auth } from './support/http.js';
import {
  call,
  createAgent,
  createApiKey,
  createCompany,
  createUser,
  type TestAgent,
  type TestCompany,
  type TestUser,
  unique,
} from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

interface EventRow {
  type: string;
  agent_id: string | null;
  data: { agent: Record<string, unknown> };
}

describe('agents: /api/v1/agents', () => {
  let t: TestApp;
  let a: TestCompany;
  let published: EventEnvelope[];
  let subscription: Subscription;

  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_LOGIN_PER_MIN: '10000' } });
    a = await createCompany(t, 'agents');
    published = [];
    subscription = t.app.get(EventsService).produced$.subscribe((e) => published.push(e));
  });
  afterAll(async () => {
    subscription.unsubscribe();
    await t.close();
  });

  const owner = (company: TestCompany = a) => ({ token: company.owner.accessToken });
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

  const create = (auth: Auth, body: unknown) => call(t, 'POST', '/api/v1/agents', auth, body);
  const get = (auth: Auth, id: string) => call(t, 'GET', `/api/v1/agents/${id}`, auth);
  const patch = (auth: Auth, id: string, body: unknown) => call(t, 'PATCH', `/api/v1/agents/${id}`, auth, body);
  const remove = (auth: Auth, id: string) => call(t, 'DELETE', `/api/v1/agents/${id}`, auth);
  const setStatus = (auth: Auth, id: string, status: unknown) =>
    call(t, 'PUT', `/api/v1/agents/${id}/availability`, auth, { status });

  /** The agent as its company's owner sees it (null: not found). */
  async function fetchAgent(id: string, company: TestCompany = a): Promise<TestAgent | null> {
    const res = await get(owner(company), id);
    if (res.status === 404) return null;
    expect(res.status).toBe(200);
    return json(res);
  }

  async function listIds(auth: Auth, qs = 'limit=200'): Promise<string[]> {
    const res = await call(t, 'GET', `/api/v1/agents?${qs}`, auth);
    expect(res.status).toBe(200);
    return (await json(res)).data.map((x: { id: string }) => x.id);
  }

  async function eventRows(companyId: string): Promise<EventRow[]> {
    return query<EventRow & { seq: string }>(
      t.db.url,
      'SELECT type, agent_id, data FROM company_events WHERE company_id = $1 ORDER BY seq',
      [companyId],
    );
  }

  it('documents every agents route with its access rule (OpenAPI x-access)', async () => {
    const doc = await json(await t.fetch('/docs-json'));
    const access = (path: string, method: string) => doc.paths[path]?.[method]?.['x-access'];
    expect({
      list: access('/api/v1/agents', 'get'),
      create: access('/api/v1/agents', 'post'),
      get: access('/api/v1/agents/{id}', 'get'),
      update: access('/api/v1/agents/{id}', 'patch'),
      remove: access('/api/v1/agents/{id}', 'delete'),
      availability: access('/api/v1/agents/{id}/availability', 'put'),
    }).toEqual({
      list: { kind: 'tenant', role: 'agent', scope: 'agents:read' },
      create: { kind: 'tenant', role: 'manager', scope: 'agents:write' },
      get: { kind: 'tenant', role: 'agent', scope: 'agents:read' },
      update: { kind: 'tenant', role: 'manager', scope: 'agents:write' },
      remove: { kind: 'tenant', role: 'manager', scope: 'agents:write' },
      availability: { kind: 'tenant', role: 'agent', scope: 'agents:write' },
    });
  });

  describe('create and read', () => {
    it('creates an agent linked to a user of the company, and reads it back', async () => {
      const user = await createUser(t, a, 'agent');
      const extension = String(2000 + Math.floor(Math.random() * 7000));
      const res = await create(owner(), {
        displayName: 'Ada Agent',
        userId: user.id,
        extension,
        skills: ['spanish', 'billing'],
      });
      expect(res.status).toBe(201);
      const agent = await json(res);
      expect(agent).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        companyId: a.id,
        userId: user.id,
        displayName: 'Ada Agent',
        extension,
        skills: ['spanish', 'billing'],
        status: 'offline',
        statusChangedAt: expect.any(String),
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
      });
      expect(await fetchAgent(agent.id)).toEqual(agent);
      expect(await listIds(owner())).toContain(agent.id);
    });

    it('creates an agent with only a display name', async () => {
      const res = await create(owner(), { displayName: 'Bare' });
      expect(res.status).toBe(201);
      expect(await json(res)).toMatchObject({ userId: null, extension: null, skills: [], status: 'offline' });
    });

    it('every member reads agents: an agent user lists and gets them', async () => {
      const agentUser = await createUser(t, a, 'agent');
      const someone = await createAgent(t, a);
      expect(await listIds(as(agentUser))).toContain(someone.id);
      const res = await get(as(agentUser), someone.id);
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual(someone);
    });

    it('managers create agents; agent users cannot (403)', async () => {
      const manager = await createUser(t, a, 'manager');
      const created = await create(as(manager), { displayName: 'By manager' });
      expect(created.status).toBe(201);

      const agentUser = await createUser(t, a, 'agent');
      const name = unique('refused');
      await expectProblem(await create(as(agentUser), { displayName: name }), 403, 'forbidden');
      const names = (await json(await call(t, 'GET', '/api/v1/agents?limit=200', owner()))).data.map(
        (x: { displayName: string }) => x.displayName,
      );
      expect(names).not.toContain(name);
    });

    it('API keys: agents:read reads but does not write (403 insufficient-scope); agents:write writes', async () => {
      const reader = await createApiKey(t, a, ['agents:read']);
      const writer = await createApiKey(t, a, ['agents:write']);
      const other = await createApiKey(t, a, ['users:read']);
      const existing = await createAgent(t, a);

      expect(await listIds({ key: reader.key })).toContain(existing.id);
      expect((await get({ key: reader.key }, existing.id)).status).toBe(200);
      const name = unique('by-reader');
      await expectProblem(await create({ key: reader.key }, { displayName: name }), 403, 'insufficient-scope');
      await expectProblem(
        await patch({ key: reader.key }, existing.id, { displayName: 'x' }),
        403,
        'insufficient-scope',
      );
      await expectProblem(await remove({ key: reader.key }, existing.id), 403, 'insufficient-scope');
      await expectProblem(await setStatus({ key: reader.key }, existing.id, 'busy'), 403, 'insufficient-scope');
      await expectProblem(await call(t, 'GET', '/api/v1/agents', { key: other.key }), 403, 'insufficient-scope');
      await expectProblem(await get({ key: other.key }, existing.id), 403, 'insufficient-scope');
      expect(await fetchAgent(existing.id)).toEqual(existing);

      const made = await create({ key: writer.key }, { displayName: 'By key' });
      expect(made.status).toBe(201);
      expect(await json(made)).toMatchObject({ companyId: a.id, displayName: 'By key' });
      // agents:write alone does not read.
      await expectProblem(await call(t, 'GET', '/api/v1/agents', { key: writer.key }), 403, 'insufficient-scope');
    });

    it('refuses requests without a credential (401)', async () => {
      await expectProblem(await call(t, 'GET', '/api/v1/agents'), 401, 'unauthorized');
      await expectProblem(await create({}, { displayName: 'x' }), 401, 'unauthorized');
      await expectProblem(await setStatus({}, UNKNOWN_ID, 'busy'), 401, 'unauthorized');
    });
  });

  describe('validation', () => {
    it('refuses bad bodies with field errors (400)', async () => {
      const cases: [unknown, string[]][] = [
        [{}, ['displayName']],
        [{ displayName: '' }, ['displayName']],
        [{ displayName: 'x'.repeat(201) }, ['displayName']],
        [{ displayName: 42 }, ['displayName']],
        [{ displayName: 'ok', extension: '10 01' }, ['extension']],
        [{ displayName: 'ok', extension: 'x'.repeat(33) }, ['extension']],
        [{ displayName: 'ok', extension: 1001 }, ['extension']],
        [{ displayName: 'ok', skills: 'spanish' }, ['skills']],
        [{ displayName: 'ok', skills: ['spanish', 'spanish'] }, ['skills']],
        [{ displayName: 'ok', skills: [''] }, ['skills']],
        [{ displayName: 'ok', skills: [' padded '] }, ['skills']],
        [{ displayName: 'ok', skills: [7] }, ['skills']],
        [{ displayName: 'ok', skills: ['s'.repeat(65)] }, ['skills']],
        [{ displayName: 'ok', skills: Array.from({ length: 51 }, (_, i) => `s${i}`) }, ['skills']],
        [{ displayName: 'ok', skills: null }, ['skills']],
        [{ displayName: 'ok', userId: 'not-a-uuid' }, ['userId']],
        [{ displayName: 'ok', status: 'available' }, ['status']],
        [{ displayName: 'ok', companyId: UNKNOWN_ID }, ['companyId']],
      ];
      for (const [body, fields] of cases) {
        const res = await expectProblem(await create(owner(), body), 400, 'validation-failed');
        expect({ body, fields: fieldsOf(res) }).toEqual({ body, fields });
      }
      // Exactly at the limits is fine.
      const ok = await create(owner(), {
        displayName: 'x'.repeat(200),
        skills: Array.from({ length: 50 }, (_, i) => `s${i}`.padEnd(64, 'k')),
      });
      expect(ok.status).toBe(201);
    });

    it('refuses a PATCH that sets displayName or skills to null, or sets the status (400)', async () => {
      const agent = await createAgent(t, a, { skills: ['x'] });
      for (const [body, field] of [
        [{ displayName: null }, 'displayName'],
        [{ skills: null }, 'skills'],
        [{ status: 'busy' }, 'status'],
        [{ extension: '' }, 'extension'],
      ] as const) {
        const res = await expectProblem(await patch(owner(), agent.id, body), 400, 'validation-failed');
        expect(fieldsOf(res)).toEqual([field]);
      }
      expect(await fetchAgent(agent.id)).toEqual(agent);
    });

    it('refuses an unknown user, and a user of another company, alike (400 on userId)', async () => {
      const b = await createCompany(t, 'other-users');
      const theirs = await createUser(t, b, 'agent');
      const unknown = await expectProblem(
        await create(owner(), { displayName: 'x', userId: UNKNOWN_ID }),
        400,
        'validation-failed',
      );
      const foreign = await expectProblem(
        await create(owner(), { displayName: 'x', userId: theirs.id }),
        400,
        'validation-failed',
      );
      expect(unknown.errors).toEqual([{ field: 'userId', messages: ['userId must be a user of this company'] }]);
      expect(foreign.errors).toEqual(unknown.errors);
      expect(foreign.detail).toBe(unknown.detail);

      const agent = await createAgent(t, a);
      const patched = await expectProblem(
        await patch(owner(), agent.id, { userId: theirs.id }),
        400,
        'validation-failed',
      );
      expect(fieldsOf(patched)).toEqual(['userId']);
      expect(await fetchAgent(agent.id)).toEqual(agent);
    });

    it('answers 400 to a malformed id on every route, 404 to an unknown one', async () => {
      for (const [method, suffix, body] of [
        ['GET', '', undefined],
        ['PATCH', '', { displayName: 'x' }],
        ['DELETE', '', undefined],
        ['PUT', '/availability', { status: 'busy' }],
      ] as const) {
        const bad = await call(t, method, `/api/v1/agents/not-a-uuid${suffix}`, owner(), body);
        expect(bad.status).toBe(400);
        expect(bad.headers.get('content-type')).toBe(PROBLEM);
        await expectProblem(
          await call(t, method, `/api/v1/agents/${UNKNOWN_ID}${suffix}`, owner(), body),
          404,
          'not-found',
        );
      }
    });

    it('refuses bad list filters (400)', async () => {
      for (const [qs, field] of [
        ['status=sleeping', 'status'],
        ['status=busy&status=away', 'status'],
        ['skill=', 'skill'],
        ['limit=0', 'limit'],
        ['limit=201', 'limit'],
        ['offset=-1', 'offset'],
        ['colour=blue', 'colour'],
      ]) {
        const res = await expectProblem(
          await call(t, 'GET', `/api/v1/agents?${qs}`, owner()),
          400,
          'validation-failed',
        );
        expect({ qs, fields: fieldsOf(res) }).toEqual({ qs, fields: [field] });
      }
    });
  });

  describe('one agent per user, unique extensions', () => {
    it('a user is at most one agent (409 user-has-agent), again after its agent is deleted', async () => {
      const user = await createUser(t, a, 'agent');
      const first = await createAgent(t, a, { userId: user.id });
      const dup = await expectProblem(
        await create(owner(), { displayName: 'twin', userId: user.id }),
        409,
        'user-has-agent',
      );
      expect(fieldsOf(dup)).toEqual(['userId']);
      const other = await createAgent(t, a);
      await expectProblem(await patch(owner(), other.id, { userId: user.id }), 409, 'user-has-agent');
      expect(await fetchAgent(other.id)).toEqual(other);
      // Setting the same user on its own agent is no conflict.
      expect((await patch(owner(), first.id, { userId: user.id })).status).toBe(200);

      expect((await remove(owner(), first.id)).status).toBe(204);
      const again = await create(owner(), { displayName: 'again', userId: user.id });
      expect(again.status).toBe(201);
      expect((await json(again)).userId).toBe(user.id);
    });

    it("an extension is unique among the company's live agents (409 extension-taken)", async () => {
      const extension = `x${unique('e').slice(-8)}`;
      const first = await createAgent(t, a, { extension });
      const dup = await expectProblem(await create(owner(), { displayName: 'dup', extension }), 409, 'extension-taken');
      expect(fieldsOf(dup)).toEqual(['extension']);
      const other = await createAgent(t, a, { extension: `${extension}9` });
      await expectProblem(await patch(owner(), other.id, { extension }), 409, 'extension-taken');
      expect(await fetchAgent(other.id)).toEqual(other);

      // Another company has its own extensions.
      const b = await createCompany(t, 'ext');
      expect((await createAgent(t, b, { extension })).extension).toBe(extension);

      // A deleted agent's extension is free again.
      expect((await remove(owner(), first.id)).status).toBe(204);
      const reused = await patch(owner(), other.id, { extension });
      expect(reused.status).toBe(200);
      expect((await json(reused)).extension).toBe(extension);
    });

    it('two agents created at once with one extension: one 201, one 409', async () => {
      const extension = `r${unique('e').slice(-8)}`;
      const results = await Promise.all([
        create(owner(), { displayName: 'r1', extension }),
        create(owner(), { displayName: 'r2', extension }),
      ]);
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([201, 409]);
      const conflict = results.find((r) => r.status === 409)!;
      expect((await json(conflict)).type).toBe('urn:switchboard:problem:extension-taken');
    });
  });

  describe('update and delete', () => {
    it('a manager changes name, extension, skills and user; null clears extension and user', async () => {
      const manager = await createUser(t, a, 'manager');
      const user = await createUser(t, a, 'agent');
      const agent = await createAgent(t, a, { extension: `u${unique('e').slice(-8)}`, skills: ['a'] });
      const res = await patch(as(manager), agent.id, {
        displayName: 'Renamed',
        skills: ['b', 'c'],
        userId: user.id,
        extension: null,
      });
      expect(res.status).toBe(200);
      const changed = await json(res);
      expect(changed).toMatchObject({
        id: agent.id,
        displayName: 'Renamed',
        skills: ['b', 'c'],
        userId: user.id,
        extension: null,
        status: agent.status,
        createdAt: agent.createdAt,
      });
      expect(await fetchAgent(agent.id)).toEqual(changed);

      const unlinked = await patch(as(manager), agent.id, { userId: null });
      expect(unlinked.status).toBe(200);
      expect(await json(unlinked)).toMatchObject({ userId: null, displayName: 'Renamed', skills: ['b', 'c'] });
    });

    it('an agent user cannot change or delete agents, not even its own (403)', async () => {
      const user = await createUser(t, a, 'agent');
      const own = await createAgent(t, a, { userId: user.id });
      await expectProblem(await patch(as(user), own.id, { displayName: 'Mine' }), 403, 'forbidden');
      await expectProblem(await remove(as(user), own.id), 403, 'forbidden');
      expect(await fetchAgent(own.id)).toEqual(own);
    });

    it('a deleted agent is gone everywhere (404, not listed, no filter finds it)', async () => {
      const manager = await createUser(t, a, 'manager');
      const skill = unique('skill');
      const agent = await createAgent(t, a, { skills: [skill] });
      expect(await listIds(owner(), `skill=${skill}`)).toEqual([agent.id]);

      const res = await remove(as(manager), agent.id);
      expect(res.status).toBe(204);
      expect(await res.text()).toBe('');

      expect(await fetchAgent(agent.id)).toBeNull();
      expect(await listIds(owner())).not.toContain(agent.id);
      expect(await listIds(owner(), `skill=${skill}`)).toEqual([]);
      expect(await listIds(owner(), 'status=offline&limit=200')).not.toContain(agent.id);
      await expectProblem(await patch(owner(), agent.id, { displayName: 'x' }), 404, 'not-found');
      await expectProblem(await remove(owner(), agent.id), 404, 'not-found');
      await expectProblem(await setStatus(owner(), agent.id, 'available'), 404, 'not-found');
      // The row stays for the call history, marked.
      const [row] = await query<{ deleted_at: Date | null }>(t.db.url, 'SELECT deleted_at FROM agents WHERE id = $1', [
        agent.id,
      ]);
      expect(row?.deleted_at).toBeInstanceOf(Date);
    });
  });

  describe('list', () => {
    it('filters by status and skill, and pages with offset (total, hasMore)', async () => {
      const c = await createCompany(t, 'list');
      const made: TestAgent[] = [];
      for (let i = 0; i < 5; i++) {
        made.push(await createAgent(t, c, { displayName: `L${i}`, skills: i % 2 === 0 ? ['even', 'all'] : ['all'] }));
      }
      expect((await setStatus(owner(c), made[1]!.id, 'available')).status).toBe(200);
      expect((await setStatus(owner(c), made[3]!.id, 'available')).status).toBe(200);
      expect((await setStatus(owner(c), made[4]!.id, 'busy')).status).toBe(200);

      const page1 = await json(await call(t, 'GET', '/api/v1/agents?limit=2', owner(c)));
      expect(page1.data.map((x: TestAgent) => x.id)).toEqual([made[0]!.id, made[1]!.id]);
      expect(page1.pagination).toEqual({ limit: 2, offset: 0, total: 5, hasMore: true });
      const page3 = await json(await call(t, 'GET', '/api/v1/agents?limit=2&offset=4', owner(c)));
      expect(page3.data.map((x: TestAgent) => x.id)).toEqual([made[4]!.id]);
      expect(page3.pagination).toEqual({ limit: 2, offset: 4, total: 5, hasMore: false });

      expect(await listIds(owner(c), 'status=available')).toEqual([made[1]!.id, made[3]!.id]);
      expect(await listIds(owner(c), 'status=busy')).toEqual([made[4]!.id]);
      expect(await listIds(owner(c), 'status=wrap_up')).toEqual([]);
      expect(await listIds(owner(c), 'skill=even')).toEqual([made[0]!.id, made[2]!.id, made[4]!.id]);
      expect(await listIds(owner(c), 'skill=all&status=available')).toEqual([made[1]!.id, made[3]!.id]);
      expect(await listIds(owner(c), 'skill=eve')).toEqual([]);
      const filtered = await json(await call(t, 'GET', '/api/v1/agents?skill=even&limit=1', owner(c)));
      expect(filtered.pagination).toEqual({ limit: 1, offset: 0, total: 3, hasMore: true });
    });
  });

  describe('availability', () => {
    it("an agent user sets its own agent's availability: statusChangedAt moves, agent.status is written and published", async () => {
      const c = await createCompany(t, 'avail');
      const user = await createUser(t, c, 'agent');
      const agent = await createAgent(t, c, { userId: user.id, skills: ['x'] });
      published.length = 0;

      const res = await setStatus(as(user), agent.id, 'available');
      expect(res.status).toBe(200);
      const view = await json(res);
      expect(view).toMatchObject({ id: agent.id, status: 'available', userId: user.id, skills: ['x'] });
      expect(Date.parse(view.statusChangedAt)).toBeGreaterThan(Date.parse(agent.statusChangedAt));
      expect(await fetchAgent(agent.id, c)).toEqual(view);

      const rows = await eventRows(c.id);
      expect(rows).toEqual([{ type: 'agent.status', agent_id: agent.id, data: { agent: view } }]);
      const mine = published.filter((e) => e.companyId === c.id);
      expect(mine).toEqual([
        expect.objectContaining({ type: 'agent.status', companyId: c.id, agentId: agent.id, data: { agent: view } }),
      ]);
      expect(mine[0]!.occurredAt).toBe(view.statusChangedAt);
    });

    it('the same status again changes nothing and emits nothing', async () => {
      const c = await createCompany(t, 'same');
      const agent = await createAgent(t, c);
      const first = await json(await setStatus(owner(c), agent.id, 'busy'));
      published.length = 0;

      const again = await setStatus(owner(c), agent.id, 'busy');
      expect(again.status).toBe(200);
      expect(await json(again)).toEqual(first);
      expect(await fetchAgent(agent.id, c)).toEqual(first);
      expect((await eventRows(c.id)).map((r) => r.type)).toEqual(['agent.status']);
      expect(published.filter((e) => e.companyId === c.id)).toEqual([]);

      // Every real change is an event, in order.
      for (const status of ['wrap_up', 'away', 'offline']) {
        expect((await setStatus(owner(c), agent.id, status)).status).toBe(200);
      }
      const rows = await eventRows(c.id);
      expect(rows.map((r) => r.data.agent.status)).toEqual(['busy', 'wrap_up', 'away', 'offline']);
      expect(rows.every((r) => r.agent_id === agent.id)).toBe(true);
    });

    it("an agent user may not set another agent's availability (403); nothing changes, nothing is emitted", async () => {
      const c = await createCompany(t, 'notmine');
      const user = await createUser(t, c, 'agent');
      const withoutAgent = await createUser(t, c, 'agent');
      await createAgent(t, c, { userId: user.id });
      const other = await createAgent(t, c);
      const unlinked = await createAgent(t, c);

      await expectProblem(await setStatus(as(user), other.id, 'available'), 403, 'forbidden');
      await expectProblem(await setStatus(as(user), unlinked.id, 'available'), 403, 'forbidden');
      await expectProblem(await setStatus(as(withoutAgent), other.id, 'available'), 403, 'forbidden');
      expect(await fetchAgent(other.id, c)).toEqual(other);
      expect(await fetchAgent(unlinked.id, c)).toEqual(unlinked);
      expect(await eventRows(c.id)).toEqual([]);
    });

    it('managers, admins, owners and API keys with agents:write set any agent of the company', async () => {
      const c = await createCompany(t, 'anyone');
      const manager = await createUser(t, c, 'manager');
      const admin = await createUser(t, c, 'admin');
      const key = await createApiKey(t, c, ['agents:write']);
      const linkedUser = await createUser(t, c, 'agent');
      const agent = await createAgent(t, c, { userId: linkedUser.id });

      const steps: [Auth, string][] = [
        [as(manager), 'available'],
        [as(admin), 'busy'],
        [owner(c), 'wrap_up'],
        [{ key: key.key }, 'away'],
      ];
      for (const [auth, status] of steps) {
        const res = await setStatus(auth, agent.id, status);
        expect(res.status).toBe(200);
        expect((await json(res)).status).toBe(status);
      }
      const rows = await eventRows(c.id);
      expect(rows.map((r) => [r.type, r.agent_id, r.data.agent.status])).toEqual(
        steps.map(([, status]) => ['agent.status', agent.id, status]),
      );
    });

    it('refuses a bad status (400) and leaves the agent alone', async () => {
      const c = await createCompany(t, 'badstatus');
      const agent = await createAgent(t, c);
      for (const body of [{ status: 'sleeping' }, { status: null }, {}, { status: 'busy', extra: 1 }]) {
        const res = await call(t, 'PUT', `/api/v1/agents/${agent.id}/availability`, owner(c), body);
        const problem = await expectProblem(res, 400, 'validation-failed');
        expect(fieldsOf(problem).length).toBeGreaterThan(0);
      }
      const malformed = await t.fetch(`/api/v1/agents/${agent.id}/availability`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${c.owner.accessToken}`, 'content-type': 'application/json' },
        body: '{"status":',
      });
      await expectProblem(malformed, 400, 'malformed-json');
      expect(await fetchAgent(agent.id, c)).toEqual(agent);
      expect(await eventRows(c.id)).toEqual([]);
    });
  });

  describe('companies are isolated', () => {
    it("company A neither sees nor changes company B's agents (404), and B's agent is untouched", async () => {
      const b = await createCompany(t, 'iso');
      const bUser = await createUser(t, b, 'agent');
      const theirs = await createAgent(t, b, { userId: bUser.id, extension: '555', skills: ['b-only'] });
      const aManager = await createUser(t, a, 'manager');
      const aKey = await createApiKey(t, a, ['agents:read', 'agents:write']);

      for (const auth of [owner(), as(aManager), { key: a.apiKey }, { key: aKey.key }]) {
        await expectProblem(await get(auth, theirs.id), 404, 'not-found');
        await expectProblem(await patch(auth, theirs.id, { displayName: 'Taken' }), 404, 'not-found');
        await expectProblem(await setStatus(auth, theirs.id, 'busy'), 404, 'not-found');
        await expectProblem(await remove(auth, theirs.id), 404, 'not-found');
        const list = await call(t, 'GET', '/api/v1/agents?limit=200&skill=b-only', auth);
        expect(list.status).toBe(200);
        expect((await json(list)).data).toEqual([]);
        const text = await (await call(t, 'GET', '/api/v1/agents?limit=200', auth)).text();
        expect(text).not.toContain(theirs.id);
      }
      // A's agent user cannot set B's agent either, not even knowing the id.
      const aAgentUser = await createUser(t, a, 'agent');
      await expectProblem(await setStatus(as(aAgentUser), theirs.id, 'busy'), 404, 'not-found');

      expect(await fetchAgent(theirs.id, b)).toEqual(theirs);
      expect(await eventRows(b.id)).toEqual([]);
      // B's own agent user still can.
      expect((await setStatus(as(bUser), theirs.id, 'available')).status).toBe(200);
    });

    it('two companies may each have an agent on extension 100; each sees only its own', async () => {
      const b = await createCompany(t, 'iso-ext');
      const c = await createCompany(t, 'iso-ext');
      const inB = await createAgent(t, b, { extension: '100' });
      const inC = await createAgent(t, c, { extension: '100' });
      expect(inB.id).not.toBe(inC.id);
      expect(await listIds(owner(b))).toEqual([inB.id]);
      expect(await listIds(owner(c))).toEqual([inC.id]);
    });
  });

  describe('audit', () => {
    async function auditEntries(action: string, company = a): Promise<Record<string, unknown>[]> {
      const res = await call(t, 'GET', `/api/v1/audit-log?limit=200&action=${action}`, owner(company));
      expect(res.status).toBe(200);
      return (await json(res)).data;
    }

    it('records agent creation and deletion with actor and target', async () => {
      const manager = await createUser(t, a, 'manager');
      const key = await createApiKey(t, a, ['agents:write']);
      const byManager = await json(await create(as(manager), { displayName: 'audited', extension: '7777' }));
      const byKey = await json(await create({ key: key.key }, { displayName: 'audited by key' }));
      expect((await remove({ key: key.key }, byManager.id)).status).toBe(204);

      const created = await auditEntries('agent.created');
      expect(created.filter((e) => e.targetId === byManager.id)).toEqual([
        expect.objectContaining({
          companyId: a.id,
          action: 'agent.created',
          actorType: 'user',
          actorId: manager.id,
          targetType: 'agent',
          targetId: byManager.id,
          details: { userId: null, extension: '7777' },
        }),
      ]);
      expect(created.filter((e) => e.targetId === byKey.id)).toEqual([
        expect.objectContaining({ actorType: 'api_key', actorId: key.id, targetType: 'agent' }),
      ]);
      const deleted = await auditEntries('agent.deleted');
      expect(deleted.filter((e) => e.targetId === byManager.id)).toEqual([
        expect.objectContaining({
          action: 'agent.deleted',
          actorType: 'api_key',
          actorId: key.id,
          targetType: 'agent',
          targetId: byManager.id,
          details: { userId: null, extension: '7777', mappingsRemoved: 0, mappingsUnlinked: 0 },
        }),
      ]);
      expect(deleted.filter((e) => e.targetId === byKey.id)).toEqual([]);
    });

    it('records nothing for a refused creation or deletion', async () => {
      const c = await createCompany(t, 'audit-none');
      const agentUser = await createUser(t, c, 'agent');
      const agent = await createAgent(t, c);
      await expectProblem(await create(as(agentUser), { displayName: 'no' }), 403, 'forbidden');
      await expectProblem(
        await create(owner(c), { displayName: 'no', extension: 'bad ext' }),
        400,
        'validation-failed',
      );
      await expectProblem(await remove(as(agentUser), agent.id), 403, 'forbidden');
      await expectProblem(await remove(owner(c), UNKNOWN_ID), 404, 'not-found');
      const entries = await auditEntries('agent.created', c);
      expect(entries.map((e) => e.targetId)).toEqual([agent.id]);
      expect(await auditEntries('agent.deleted', c)).toEqual([]);
    });
  });
});
