import { randomUUID } from 'node:crypto';
import { CallApplyService } from '../src/calls/call-apply.service.js';
import { query } from './support/database.js';
import { json } from './support/http.js';
import { connect, type LiveClient, refusal, sleep } from './support/sockets.js';
import {
  call,
  createApiKey,
  createCompany,
  createUser,
  operator,
  type TestCompany,
  type TestUser,
} from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

async function linkAgent(t: TestApp, company: TestCompany, user: TestUser | null, extension: string): Promise<string> {
  const [row] = await query<{ id: string }>(
    t.db.url,
    'INSERT INTO agents (company_id, user_id, display_name, extension) VALUES ($1, $2, $3, $4) RETURNING id',
    [company.id, user?.id ?? null, `Agent ${extension}`, extension],
  );
  return row!.id;
}

/** A call that rings at an agent (by extension), through the real CallApplyService. */
async function ring(t: TestApp, company: TestCompany, extension: string, callId = randomUUID()) {
  await t.app.get(CallApplyService).apply({
    companyId: company.id,
    provider: 'asterisk',
    providerCallId: callId,
    eventKey: `${callId}:ring`,
    kind: 'ringing',
    at: new Date(),
    direction: 'inbound',
    from: '+15551230001',
    to: '+15550001234',
    agent: { extension },
  });
  return callId;
}

describe('live gateway', () => {
  let t: TestApp;
  let a: TestCompany;
  let b: TestCompany;
  let agent1: TestUser;
  let agent2: TestUser;
  let agent1Id: string;
  let agent2Id: string;
  let manager: TestUser;
  const open: LiveClient[] = [];
  const live = async (auth: Record<string, unknown>, extra?: Parameters<typeof connect>[2]) => {
    const client = await connect(t.url, auth, extra);
    open.push(client);
    return client;
  };

  beforeAll(async () => {
    t = await startTestApp();
    a = await createCompany(t, 'gw-a');
    b = await createCompany(t, 'gw-b');
    agent1 = await createUser(t, a, 'agent');
    agent2 = await createUser(t, a, 'agent');
    manager = await createUser(t, a, 'manager');
    agent1Id = await linkAgent(t, a, agent1, '1001');
    agent2Id = await linkAgent(t, a, agent2, '1002');
    await linkAgent(t, b, null, '1001');
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });
  afterAll(() => t.close());

  describe('handshake', () => {
    it('refuses a connection without a credential, with a problem in connect_error', async () => {
      const err = await refusal(t.url, {});
      expect(err.message).toBe('unauthorized');
      expect(err.data).toMatchObject({ type: 'urn:switchboard:problem:unauthorized', status: 401 });
    });

    it('refuses a bad token, an unknown key, a key without calls:read, a suspended company, an agent user without a profile', async () => {
      expect((await refusal(t.url, { token: 'nope' })).data.status).toBe(401);
      expect((await refusal(t.url, { apiKey: 'sbk_' + 'x'.repeat(43) })).data.status).toBe(401);
      const narrow = await createApiKey(t, a, ['users:read']);
      expect((await refusal(t.url, { apiKey: narrow.key })).data.type).toBe(
        'urn:switchboard:problem:insufficient-scope',
      );
      const lonely = await createUser(t, a, 'agent');
      expect((await refusal(t.url, { token: lonely.accessToken })).data.type).toBe('urn:switchboard:problem:no-agent');
      const other = await createCompany(t, 'gw-susp');
      await call(t, 'POST', `/internal/apps/${other.id}/suspend`, operator);
      expect((await refusal(t.url, { apiKey: other.apiKey })).data.type).toBe(
        'urn:switchboard:problem:company-suspended',
      );
      expect((await refusal(t.url, { token: other.owner.accessToken })).data.type).toBe(
        'urn:switchboard:problem:company-suspended',
      );
    });

    it('refuses an API key asking for an agent of another company', async () => {
      const [bAgent] = await query<{ id: string }>(t.db.url, 'SELECT id FROM agents WHERE company_id = $1', [b.id]);
      expect((await refusal(t.url, { apiKey: a.apiKey, agentId: bAgent!.id })).data.status).toBe(404);
    });

    it('accepts the credential as headers or the api_key query parameter too', async () => {
      const viaHeader = await live({}, { headers: { 'x-api-key': a.apiKey } });
      expect(viaHeader.ready.companyId).toBe(a.id);
      const viaQuery = await live({}, { query: { api_key: a.apiKey } });
      expect(viaQuery.ready.companyId).toBe(a.id);
    });
  });

  describe('rooms', () => {
    it('sends a screen pop to the agent it rings, to the company, and to nobody else', async () => {
      const m = await live({ token: manager.accessToken });
      const owner = await live({ token: a.owner.accessToken });
      const one = await live({ token: agent1.accessToken });
      const two = await live({ token: agent2.accessToken });
      const key = await live({ apiKey: a.apiKey });
      const keyForAgent1 = await live({ apiKey: a.apiKey, agentId: agent1Id });
      const otherCompany = await live({ token: b.owner.accessToken });
      const otherKey = await live({ apiKey: b.apiKey });
      expect(one.ready).toMatchObject({ companyId: a.id, agentId: agent1Id });
      expect(m.ready).toMatchObject({ companyId: a.id, agentId: null });

      const callId = await ring(t, a, '1001');
      for (const c of [m, owner, one, key, keyForAgent1]) await c.waitFor(1);
      const pop = one.events[0]!;
      expect(pop).toMatchObject({ type: 'call.ringing', companyId: a.id, agentId: agent1Id, seq: expect.any(Number) });
      expect(pop.data).toMatchObject({
        call: {
          providerCallId: callId,
          status: 'ringing',
          from: '+15551230001',
          to: '+15550001234',
          agentId: agent1Id,
        },
      });
      for (const c of [m, owner, key, keyForAgent1]) expect(c.events.map((e) => e.id)).toEqual([pop.id]);

      await ring(t, a, '1002');
      await two.waitFor(1);
      await m.waitFor(2);
      await sleep(200);
      expect(one.events).toHaveLength(1); // never another agent's screen pop
      expect(keyForAgent1.events).toHaveLength(1);
      expect(two.events.map((e) => e.agentId)).toEqual([agent2Id]);
      expect(otherCompany.events).toEqual([]);
      expect(otherKey.events).toEqual([]);
    });
  });

  describe('order and resume', () => {
    it('numbers events per company in order, and replays what a client missed before live events', async () => {
      const first = await live({ token: manager.accessToken });
      const before = first.ready.seq;
      await ring(t, a, '1001');
      await first.waitFor(1);
      const lastSeen = first.events[0]!.seq;
      expect(lastSeen).toBe(before + 1);
      first.close();

      // Three events happen while it is away.
      for (let i = 0; i < 3; i++) await ring(t, a, '1002');
      const back = await live({ token: manager.accessToken, lastSeq: lastSeen });
      expect(back.ready.seq).toBe(lastSeen + 3);
      await ring(t, a, '1001');
      await back.waitFor(4);
      await sleep(200);
      expect(back.events.map((e) => e.seq)).toEqual([lastSeen + 1, lastSeen + 2, lastSeen + 3, lastSeen + 4]);
    });

    it('replays to an agent only its own missed events', async () => {
      const c = await live({ token: agent1.accessToken });
      const from = c.ready.seq;
      c.close();
      await ring(t, a, '1002');
      await ring(t, a, '1001');
      const back = await live({ token: agent1.accessToken, lastSeq: from });
      await back.waitFor(1);
      await sleep(200);
      expect(back.events.map((e) => e.agentId)).toEqual([agent1Id]);
      expect(back.events[0]!.seq).toBe(from + 2);
    });

    it('delivers a burst from concurrent writers in order, without gap or duplicate', async () => {
      const c = await live({ apiKey: a.apiKey });
      const start = c.ready.seq;
      await Promise.all(Array.from({ length: 20 }, (_, i) => ring(t, a, i % 2 ? '1001' : '1002')));
      await c.waitFor(20);
      await sleep(200);
      expect(c.events.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => start + i + 1));
    });
  });

  describe('presence and status', () => {
    it('lists connected agents and counts clients and active calls', async () => {
      await live({ token: agent1.accessToken });
      await live({ token: agent1.accessToken });
      await live({ apiKey: a.apiKey });
      const res = await call(t, 'GET', '/api/v1/agents/connected', { token: manager.accessToken });
      expect(res.status).toBe(200);
      expect((await json(res)).data).toEqual([{ agentId: agent1Id, userId: agent1.id, connections: 2 }]);
      const status = await json(await call(t, 'GET', '/api/v1/status', { key: a.apiKey }));
      expect(status).toMatchObject({
        connectedAgents: 1,
        connectedClients: 3,
        activeCalls: expect.any(Number),
        lastSeq: expect.any(Number),
      });
      expect(status.activeCalls).toBeGreaterThan(0);
      expect(status.eventsProcessed).toBe(status.lastSeq);
      const other = await json(await call(t, 'GET', '/api/v1/agents/connected', { token: b.owner.accessToken }));
      expect(other.data).toEqual([]);
    });
  });
});

// Needs a running Redis: CI sets REDIS_URL (see .ci/run); without one this case is skipped.
const REDIS_URL = process.env.REDIS_URL;
(REDIS_URL ? describe : describe.skip)('two instances through Redis', () => {
  let one: TestApp;
  let two: TestApp;

  beforeAll(async () => {
    one = await startTestApp({ env: { REDIS_URL: REDIS_URL! } });
    two = await startTestApp({ env: { REDIS_URL: REDIS_URL! }, databaseUrl: one.db.url });
  });
  afterAll(async () => {
    await two?.app.close();
    await one?.close();
  });

  it('delivers an event produced on one instance once to a client of the other, and shares presence', async () => {
    const co = await createCompany(one, 'gw-redis');
    const agentUser = await createUser(one, co, 'agent');
    const agentId = await linkAgent(one, co, agentUser, '2001');
    const client = await connect(one.url, { apiKey: co.apiKey });
    const agentClient = await connect(one.url, { token: agentUser.accessToken });
    try {
      await ring(two, co, '2001');
      await client.waitFor(1);
      await agentClient.waitFor(1);
      await sleep(300);
      expect(client.events).toHaveLength(1);
      expect(agentClient.events).toHaveLength(1);
      expect(client.events[0]).toMatchObject({ type: 'call.ringing', agentId, seq: client.ready.seq + 1 });
      const listed = await json(await call(two, 'GET', '/api/v1/agents/connected', { key: co.apiKey }));
      expect(listed.data).toEqual([{ agentId, userId: agentUser.id, connections: 1 }]);
    } finally {
      client.close();
      agentClient.close();
    }
  });
});
