import type { EventEnvelope } from '../src/events/event-envelope.js';
import type { InboxItemDto } from '../src/webhooks/inbox/webhook-inbox.dto.js';
import type { CallDetail } from '../src/calls/call-view.js';
import {
  callbackRow,
  clickToCallDeliveries,
  inboundAnsweredDeliveries,
  inboundRow,
  missedCallDeliveries,
  type NetsapiensDelivery,
  netsapiensDelivery,
  type NetsapiensFake,
  type NetsapiensRow,
  netsapiensSignedUrl,
  outboundRow,
  startNetsapiensFake,
} from './fakes/netsapiens-fake.js';
import { query } from './support/database.js';
import { type Auth, expectProblem, json } from './support/http.js';
import { connect, type LiveClient } from './support/sockets.js';
import {
  call,
  createAgent,
  createCompany,
  createUser,
  type TestAgent,
  type TestCompany,
  type TestUser,
  unique,
} from './support/tenant.js';
import { startTestApp, TEST_PUBLIC_BASE_URL, type TestApp } from './support/test-app.js';

interface Connection {
  id: string;
  provider: string;
  name: string;
  settings: Record<string, unknown>;
  secretsSet: string[];
  webhookUrls: Record<string, string>;
}

/** A call as GET /api/v1/calls/:id answers it (the timeline only there). */
type CallBody = Omit<CallDetail, 'timeline'> & { timeline: CallDetail['timeline'] };

type InboxItem = Omit<InboxItemDto, 'payload'> & {
  payload: { events: NetsapiensRow[]; receivedAt: string; subscriptionId?: string };
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A time as NetSapiens writes it: whole seconds. */
const wholeSeconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
const plus = (d: Date, s: number) => new Date(d.getTime() + s * 1000);
const iso = (d: Date) => d.toISOString();
/** A fresh orig call id, as the platform makes them. */
const sipCallId = () => `${unique('ns').replace(/\W/g, '')}@core1.fake.netsapiens.test`;

describe('NetSapiens: subscription, webhooks and click-to-call (e2e, fake NetSapiens)', () => {
  let t: TestApp;
  let fake: NetsapiensFake;
  let co: TestCompany;
  let agentUser1: TestUser;
  let agentUser2: TestUser;
  let agentUser3: TestUser;
  /** NetSapiens user 1001, by extension. */
  let agent1: TestAgent;
  /** NetSapiens user 1002, by extension. */
  let agent2: TestAgent;
  /** NetSapiens user 1003 through a user mapping (its extension, 2003, is not a NetSapiens user). */
  let agent3: TestAgent;
  let conn: Connection;
  let secret: string;
  let subscriptionId: string;
  let postUrl: string;
  const open: LiveClient[] = [];
  const owner = (): Auth => ({ token: co.owner.accessToken });

  const live = async (auth: Record<string, unknown>) => {
    const client = await connect(t.url, auth);
    open.push(client);
    return client;
  };

  const createConnection = async (settings: Record<string, unknown>, secrets: Record<string, unknown>) => {
    const res = await call(t, 'POST', '/api/v1/pbx-connections', owner(), {
      provider: 'netsapiens',
      name: unique('NetSapiens'),
      settings,
      secrets,
    });
    const body = await json(res);
    expect({ status: res.status, body }).toMatchObject({ status: 201 });
    return body as Connection;
  };

  /** POSTs a delivery made for the public URL to the test app (same path and query string). */
  const post = (d: NetsapiensDelivery) => {
    const url = new URL(d.url);
    return t.fetch(url.pathname + url.search, { method: 'POST', headers: d.headers, body: d.body });
  };

  const inbox = async (connectionId: string, status?: string): Promise<InboxItem[]> => {
    const qs = new URLSearchParams({ connectionId, limit: '100', ...(status ? { status } : {}) });
    const res = await call(t, 'GET', `/api/v1/webhook-inbox?${qs.toString()}`, owner());
    expect(res.status).toBe(200);
    return (await json(res)).data as InboxItem[];
  };

  /** Waits until no row of the connection is pending (processed or failed), with a deadline. */
  const settled = async (connectionId: string, ms = 5_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const pending = await inbox(connectionId, 'pending');
      if (pending.length === 0) break;
      if (Date.now() > deadline) throw new Error(`inbox rows still pending after ${ms} ms: ${pending.length}`);
      await sleep(25);
    }
    expect(await inbox(connectionId, 'failed')).toEqual([]);
  };

  /** Delivers, expects a first receipt, and waits for its processing. */
  const deliver = async (d: NetsapiensDelivery, connectionId = conn.id) => {
    const res = await post(d);
    expect({ status: res.status, body: await json(res) }).toEqual({
      status: 200,
      body: { received: true, duplicate: false },
    });
    await settled(connectionId);
  };

  const getCall = async (id: string): Promise<CallBody> => {
    const res = await call(t, 'GET', `/api/v1/calls/${id}`, owner());
    expect(res.status).toBe(200);
    return (await json(res)) as CallBody;
  };

  /** The call of a provider call id on the connection (from the database: it may not exist). */
  const callIdOf = async (providerCallId: string, connectionId = conn.id) => {
    const rows = await query<{ id: string }>(
      t.db.url,
      'SELECT id FROM calls WHERE company_id = $1 AND connection_id = $2 AND provider_call_id = $3',
      [co.id, connectionId, providerCallId],
    );
    return rows.map((r) => r.id);
  };
  const callCount = async () =>
    Number(
      (await query<{ n: string }>(t.db.url, 'SELECT count(*) AS n FROM calls WHERE company_id = $1', [co.id]))[0]!.n,
    );
  const inboxCount = async (connectionId: string) =>
    Number(
      (
        await query<{ n: string }>(t.db.url, 'SELECT count(*) AS n FROM webhook_inbox WHERE connection_id = $1', [
          connectionId,
        ])
      )[0]!.n,
    );

  const summary = (e: EventEnvelope) => {
    const c = (e.data as { call: CallBody }).call;
    return { type: e.type, agentId: e.agentId, status: c.status, callAgentId: c.agentId };
  };

  beforeAll(async () => {
    fake = await startNetsapiensFake();
    t = await startTestApp();
    co = await createCompany(t, 'ns');
    agentUser1 = await createUser(t, co, 'agent');
    agentUser2 = await createUser(t, co, 'agent');
    agentUser3 = await createUser(t, co, 'agent');
    agent1 = await createAgent(t, co, { userId: agentUser1.id, extension: '1001' });
    agent2 = await createAgent(t, co, { userId: agentUser2.id, extension: '1002' });
    agent3 = await createAgent(t, co, { userId: agentUser3.id, extension: '2003' });
    const mapped = await call(t, 'POST', '/api/v1/user-mappings', owner(), {
      provider: 'netsapiens',
      externalId: '1003',
      agentId: agent3.id,
    });
    expect(mapped.status).toBe(201);
    conn = await createConnection({ baseUrl: fake.baseUrl, domain: fake.domain }, { apiKey: fake.apiKey });
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
    fake.setDown(false);
  });
  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  describe('subscription', () => {
    it('refuses deliveries while the connection has no webhook secret', async () => {
      expect(conn.secretsSet).toEqual(['apiKey']);
      expect(conn.webhookUrls).toEqual({ events: `${TEST_PUBLIC_BASE_URL}/webhooks/netsapiens/${conn.id}` });
      const d = netsapiensDelivery({
        postUrl: netsapiensSignedUrl(conn.webhookUrls.events!, 'a-token-of-at-least-16-chars'),
        events: [
          inboundRow({
            domain: fake.domain,
            callId: sipCallId(),
            start: new Date(),
            from: '15551230001',
            did: '15550001000',
            user: '1001',
          }),
        ],
      });
      await expectProblem(await post(d), 401, 'invalid-signature');
      expect(await inboxCount(conn.id)).toBe(0);
    });

    it('creates the `call` subscription posting to our URL with ?token=, saves its id and the secret', async () => {
      fake.requests.length = 0;
      const res = await call(t, 'POST', `/api/v1/pbx-connections/${conn.id}/netsapiens/subscribe`, owner());
      const body = await json(res);
      expect(res.status).toBe(200);

      // What NetSapiens received: one POST of a `call` subscription for the whole domain.
      expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        `POST /ns-api/v2/domains/${fake.domain}/subscriptions`,
      ]);
      const sent = fake.requests[0]!;
      expect(sent.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
      const sentBody = sent.body as Record<string, string>;
      expect(Object.keys(sentBody).sort()).toEqual(['domain', 'model', 'post-url', 'subscription-geo-support', 'user']);
      expect(sentBody).toMatchObject({
        model: 'call',
        domain: fake.domain,
        user: '*',
        'subscription-geo-support': 'yes',
      });
      const url = new URL(sentBody['post-url']!);
      expect(`${url.origin}${url.pathname}`).toBe(`${TEST_PUBLIC_BASE_URL}/webhooks/netsapiens/${conn.id}`);
      expect([...url.searchParams.keys()]).toEqual(['token']);
      secret = url.searchParams.get('token')!;
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes, base64url
      postUrl = sentBody['post-url']!;

      expect(fake.subscriptions.size).toBe(1);
      const [sub] = [...fake.subscriptions.values()];
      subscriptionId = sub!.id;
      expect(body).toEqual({
        subscriptionId,
        hookUrl: `${TEST_PUBLIC_BASE_URL}/webhooks/netsapiens/${conn.id}`,
      });

      const got = (await json(await call(t, 'GET', `/api/v1/pbx-connections/${conn.id}`, owner()))) as Connection;
      expect(got.settings).toEqual({ baseUrl: fake.baseUrl, domain: fake.domain, subscriptionId });
      expect(got.secretsSet).toEqual(['apiKey', 'webhookSecret']);
      expect(JSON.stringify(got)).not.toContain(secret);
      conn = got;
    });

    it('subscribing again is idempotent: NetSapiens answers 409, the existing subscription is kept', async () => {
      fake.requests.length = 0;
      const res = await call(t, 'POST', `/api/v1/pbx-connections/${conn.id}/netsapiens/subscribe`, owner());
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual({
        subscriptionId,
        hookUrl: `${TEST_PUBLIC_BASE_URL}/webhooks/netsapiens/${conn.id}`,
      });
      expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        `POST /ns-api/v2/domains/${fake.domain}/subscriptions`,
        `GET /ns-api/v2/domains/${fake.domain}/subscriptions`,
      ]);
      // The same token (the secret is kept), so the same post-url.
      expect((fake.requests[0]!.body as Record<string, string>)['post-url']).toBe(postUrl);
      expect(fake.subscriptions.size).toBe(1);
      const got = (await json(await call(t, 'GET', `/api/v1/pbx-connections/${conn.id}`, owner()))) as Connection;
      expect(got.settings).toEqual({ baseUrl: fake.baseUrl, domain: fake.domain, subscriptionId });
      expect(got.secretsSet).toEqual(['apiKey', 'webhookSecret']);
    });
  });

  describe('inbound calls', () => {
    it('an answered inbound call: ringing at the agent by extension, answered, completed', async () => {
      const agentSocket = await live({ token: agentUser1.accessToken });
      const otherAgentSocket = await live({ token: agentUser2.accessToken });
      const company = await live({ apiKey: co.apiKey });
      const start = wholeSeconds(Date.now() - 60_000);
      const callId = sipCallId();
      const [ringing, answered, removed] = inboundAnsweredDeliveries({
        postUrl,
        subscriptionId,
        domain: fake.domain,
        start,
        callId,
        from: '15551230001',
        callerName: 'Jane Customer',
        did: '15550001000',
        user: '1001',
        ringSeconds: 6,
      });

      await deliver(ringing!);
      const [id] = await callIdOf(callId);
      expect(id).toBeDefined();
      let c = await getCall(id!);
      expect(c).toMatchObject({
        provider: 'netsapiens',
        connectionId: conn.id,
        providerCallId: callId,
        direction: 'inbound',
        status: 'ringing',
        from: '+15551230001',
        to: '+15550001000',
        callerName: 'Jane Customer',
        agentId: agent1.id,
        startedAt: iso(start),
        ringingAt: iso(start),
        answeredAt: null,
        endedAt: null,
        endReason: null,
        hangupCause: null,
      });
      await agentSocket.waitFor(1);
      expect(summary(agentSocket.events[0]!)).toEqual({
        type: 'call.ringing',
        agentId: agent1.id,
        status: 'ringing',
        callAgentId: agent1.id,
      });
      expect((agentSocket.events[0]!.data as { call: CallBody }).call).toMatchObject({
        id,
        providerCallId: callId,
        direction: 'inbound',
        from: '+15551230001',
        to: '+15550001000',
        callerName: 'Jane Customer',
      });

      await deliver(answered!);
      c = await getCall(id!);
      expect(c).toMatchObject({
        status: 'in_progress',
        answeredAt: iso(plus(start, 6)),
        ringSeconds: 6,
        endedAt: null,
      });

      const before = Date.now();
      await deliver(removed!);
      const after = Date.now();
      c = await getCall(id!);
      expect(c).toMatchObject({
        direction: 'inbound',
        status: 'completed',
        from: '+15551230001',
        to: '+15550001000',
        callerName: 'Jane Customer',
        agentId: agent1.id,
        startedAt: iso(start),
        ringingAt: iso(start),
        answeredAt: iso(plus(start, 6)),
        ringSeconds: 6,
        endReason: 'completed',
        hangupCause: null,
      });
      // The call model carries no end time: the end is when the removal arrived.
      const ended = Date.parse(c.endedAt!);
      expect(ended).toBeGreaterThanOrEqual(before - 1);
      expect(ended).toBeLessThanOrEqual(after + 1);
      expect(c.talkSeconds).toBe(Math.round((ended - (start.getTime() + 6000)) / 1000));
      expect(c.timeline.map((e) => e.kind)).toEqual(['ringing', 'answered', 'ended']);
      expect(c.timeline.map((e) => e.at)).toEqual([iso(start), iso(plus(start, 6)), c.endedAt]);

      await agentSocket.waitFor(3);
      await company.waitFor(3);
      await sleep(100);
      expect(agentSocket.events.map(summary)).toEqual([
        { type: 'call.ringing', agentId: agent1.id, status: 'ringing', callAgentId: agent1.id },
        { type: 'call.answered', agentId: agent1.id, status: 'in_progress', callAgentId: agent1.id },
        { type: 'call.ended', agentId: agent1.id, status: 'completed', callAgentId: agent1.id },
      ]);
      expect(company.events.map((e) => e.id)).toEqual(agentSocket.events.map((e) => e.id));
      expect(otherAgentSocket.events).toEqual([]);

      // The inbox rows: three, processed once each, numbers masked in the listing.
      const rows = await inbox(conn.id);
      const mine = rows.filter((r) => r.payload.events[0]!.orig_callid === callId);
      expect(mine.map((r) => [r.status, r.attempts, r.kind, r.route])).toEqual([
        ['processed', 1, 'call', ''],
        ['processed', 1, 'call', ''],
        ['processed', 1, 'call', ''],
      ]);
      expect(mine.map((r) => r.eventId.split(':')[0]).sort()).toEqual(['answered', 'removed', 'ringing']);
      expect(mine[0]!.payload.subscriptionId).toBe(subscriptionId);
      expect(mine[0]!.payload.events[0]!.orig_from_user).toBe('*******0001');
    });

    it('a missed multi-ring call: rings both agents, ends missed, no answer', async () => {
      const one = await live({ token: agentUser1.accessToken });
      const two = await live({ token: agentUser2.accessToken });
      const company = await live({ apiKey: co.apiKey });
      const start = wholeSeconds(Date.now() - 30_000);
      const callId = sipCallId();
      const [ringing, removed] = missedCallDeliveries({
        postUrl,
        subscriptionId,
        domain: fake.domain,
        start,
        callId,
        from: '15551230002',
        did: '15550001000',
        users: ['1001', '1002'],
      });
      await deliver(ringing!);
      const [id] = await callIdOf(callId);
      let c = await getCall(id!);
      expect(c).toMatchObject({ status: 'ringing', direction: 'inbound', ringingAt: iso(start) });
      // Both legs ring; the later one (by event key) holds the call.
      expect(c.agentId).toBe(agent2.id);
      await one.waitFor(1);
      await two.waitFor(1);

      const before = Date.now();
      await deliver(removed!);
      const after = Date.now();
      c = await getCall(id!);
      expect(c).toMatchObject({
        provider: 'netsapiens',
        providerCallId: callId,
        direction: 'inbound',
        status: 'missed',
        from: '+15551230002',
        to: '+15550001000',
        callerName: null,
        startedAt: iso(start),
        ringingAt: iso(start),
        answeredAt: null,
        talkSeconds: null,
        endReason: 'missed',
        hangupCause: null,
      });
      const ended = Date.parse(c.endedAt!);
      expect(ended).toBeGreaterThanOrEqual(before - 1);
      expect(ended).toBeLessThanOrEqual(after + 1);
      expect(c.timeline.map((e) => e.kind)).toEqual(['ringing', 'ringing', 'ended', 'ended']);

      await company.waitFor(4);
      await sleep(150);
      // Each leg's removal ends the call for its agent: the first (1001) ends it (call.ended, at
      // agent 1), the second moves it back to agent 2 (call.updated, already missed).
      expect(c.agentId).toBe(agent2.id);
      expect(company.events.map(summary)).toEqual([
        { type: 'call.ringing', agentId: agent1.id, status: 'ringing', callAgentId: agent1.id },
        { type: 'call.ringing', agentId: agent2.id, status: 'ringing', callAgentId: agent2.id },
        { type: 'call.ended', agentId: agent1.id, status: 'missed', callAgentId: agent1.id },
        { type: 'call.updated', agentId: agent2.id, status: 'missed', callAgentId: agent2.id },
      ]);
      // Each agent got its own screen pop, and only its own events.
      expect(one.events.map((e) => e.id)).toEqual([company.events[0]!.id, company.events[2]!.id]);
      expect(two.events.map((e) => e.id)).toEqual([company.events[1]!.id, company.events[3]!.id]);
    });
  });

  describe('click-to-call', () => {
    it('rings the mapped NetSapiens user, then follows the deliveries of that call id to completed', async () => {
      const agentSocket = await live({ token: agentUser3.accessToken });
      const company = await live({ apiKey: co.apiKey });
      fake.requests.length = 0;
      const res = await call(t, 'POST', '/api/v1/calls/click-to-call', owner(), {
        to: '+15551234567',
        callerId: '+15550009999',
        agentId: agent3.id,
        connectionId: conn.id,
      });
      const body = await json(res);
      expect(res.status).toBe(202);
      expect(body).toEqual({
        callId: expect.stringMatching(/^[0-9a-f-]{36}$/),
        status: 'queued',
        connectionId: conn.id,
        provider: 'netsapiens',
        providerCallId: (body.callId as string).replace(/-/g, ''),
      });
      const providerCallId = body.providerCallId as string;

      // The fake: Make a new Call under the mapped user (1003, not the extension 2003).
      expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        `POST /ns-api/v2/domains/${fake.domain}/users/1003/calls`,
      ]);
      expect(fake.requests[0]!.body).toEqual({
        synchronous: 'no',
        'call-id': providerCallId,
        'call-term-user': '15551234567',
        'auto-answer-enabled': 'no',
        'caller-id-number': '15550009999',
      });
      expect(fake.calls.get(providerCallId)).toMatchObject({ user: '1003', termUser: '15551234567', ended: false });

      let c = await getCall(body.callId);
      expect(c).toMatchObject({
        id: body.callId,
        provider: 'netsapiens',
        connectionId: conn.id,
        providerCallId,
        direction: 'outbound',
        status: 'queued',
        from: '+15550009999',
        to: '+15551234567',
        agentId: agent3.id,
        ringingAt: null,
        answeredAt: null,
        endedAt: null,
        endReason: null,
      });
      expect(c.timeline.map((e) => e.kind)).toEqual(['queued']);

      // The platform's events for that call id: the agent's phone, then the customer's leg.
      const start = wholeSeconds(fake.calls.get(providerCallId)!.start.getTime() + 1000);
      const deliveries = clickToCallDeliveries({
        postUrl,
        subscriptionId,
        domain: fake.domain,
        start,
        callId: providerCallId,
        user: '1003',
        to: '15551234567',
        callerId: '15550009999',
      });
      for (const d of deliveries.slice(0, 3)) await deliver(d);
      c = await getCall(body.callId);
      expect(c).toMatchObject({ status: 'in_progress', answeredAt: iso(plus(start, 8)), endedAt: null });

      const before = Date.now();
      await deliver(deliveries[3]!);
      const after = Date.now();
      expect(await callIdOf(providerCallId)).toEqual([body.callId]);
      c = await getCall(body.callId);
      expect(c).toMatchObject({
        id: body.callId,
        providerCallId,
        direction: 'outbound',
        status: 'completed',
        from: '+15550009999',
        to: '+15551234567',
        agentId: agent3.id,
        ringingAt: iso(start),
        answeredAt: iso(plus(start, 8)),
        ringSeconds: 8,
        endReason: 'completed',
        hangupCause: null,
      });
      // Ended when the removal arrived, never before the answer (the builder's answer may lie ahead).
      const ended = Date.parse(c.endedAt!);
      const answeredMs = plus(start, 8).getTime();
      expect(ended).toBeGreaterThanOrEqual(Math.max(before - 1, answeredMs));
      expect(ended).toBeLessThanOrEqual(Math.max(after + 1, answeredMs));
      expect(c.timeline.map((e) => e.kind)).toEqual(['queued', 'ringing', 'ringing', 'answered', 'ended']);

      // The record made at the request is a change of a queued call (call.updated); then the
      // agent's phone rings (call.ringing, without numbers of its own); the customer's leg ringing
      // adds the caller name it shows (call.updated).
      await agentSocket.waitFor(5);
      await sleep(150);
      expect(agentSocket.events.map(summary)).toEqual([
        { type: 'call.updated', agentId: agent3.id, status: 'queued', callAgentId: agent3.id },
        { type: 'call.ringing', agentId: agent3.id, status: 'ringing', callAgentId: agent3.id },
        { type: 'call.updated', agentId: agent3.id, status: 'ringing', callAgentId: agent3.id },
        { type: 'call.answered', agentId: agent3.id, status: 'in_progress', callAgentId: agent3.id },
        { type: 'call.ended', agentId: agent3.id, status: 'completed', callAgentId: agent3.id },
      ]);
      expect(company.events.map((e) => e.id)).toEqual(agentSocket.events.map((e) => e.id));
    });

    it("keeps the call's numbers when the agent's leg is reported (times in whole seconds)", async () => {
      // The first leg of a click-to-call is the platform ringing the agent's phone: it shows the
      // customer's number as the caller and the agent's user as the destination. NetSapiens times
      // are whole seconds, so that leg, started in the same second as our request, is stamped at or
      // before the record's queued time.
      const place = async (to: string, callerId?: string) => {
        const res = await call(t, 'POST', '/api/v1/calls/click-to-call', owner(), {
          to,
          ...(callerId ? { callerId } : {}),
          agentId: agent3.id,
          connectionId: conn.id,
        });
        expect(res.status).toBe(202);
        const { callId, providerCallId } = (await json(res)) as { callId: string; providerCallId: string };
        const start = wholeSeconds(fake.calls.get(providerCallId)!.start.getTime());
        const deliveries = clickToCallDeliveries({
          postUrl,
          subscriptionId,
          domain: fake.domain,
          start,
          callId: providerCallId,
          user: '1003',
          to: to.slice(1),
          callerId: callerId?.slice(1) ?? '',
        });
        for (const d of deliveries.slice(0, 2)) await deliver(d);
        const c = await getCall(callId);
        return { direction: c.direction, status: c.status, agentId: c.agentId, from: c.from, to: c.to };
      };
      const withCallerId = await place('+15551234573', '+15550009999');
      const withoutCallerId = await place('+15551234574');
      expect({ withCallerId, withoutCallerId }).toEqual({
        withCallerId: {
          direction: 'outbound',
          status: 'ringing',
          agentId: agent3.id,
          from: '+15550009999',
          to: '+15551234573',
        },
        withoutCallerId: {
          direction: 'outbound',
          status: 'ringing',
          agentId: agent3.id,
          // Not the customer's number: the customer is the destination.
          from: expect.not.stringMatching(/^\+15551234574$/),
          to: '+15551234574',
        },
      });
    });

    it('status reads the live state from NetSapiens; hangup sends DELETE; DTMF is 422 pbx-unsupported', async () => {
      const res = await call(t, 'POST', '/api/v1/calls/click-to-call', owner(), {
        to: '+15551234568',
        agentId: agent1.id,
        connectionId: conn.id,
      });
      expect(res.status).toBe(202);
      const { callId, providerCallId } = (await json(res)) as { callId: string; providerCallId: string };
      // Without a mapping, the agent's extension is its NetSapiens user; no caller id sent.
      expect(fake.calls.get(providerCallId)!.request).toEqual({
        synchronous: 'no',
        'call-id': providerCallId,
        'call-term-user': '15551234568',
        'auto-answer-enabled': 'no',
      });

      fake.requests.length = 0;
      let status = await call(t, 'GET', `/api/v1/calls/${callId}/status`, owner());
      expect(status.status).toBe(200);
      expect(await json(status)).toEqual({
        callId,
        status: 'queued',
        endReason: null,
        answeredAt: null,
        endedAt: null,
        live: { state: 'progressing', ended: false },
      });
      expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        `GET /ns-api/v2/domains/${fake.domain}/calls`,
      ]);

      // The customer answers at the platform (no delivery yet): the live state says so.
      await fake.answer(providerCallId);
      status = await call(t, 'GET', `/api/v1/calls/${callId}/status`, owner());
      expect((await json(status)).live).toEqual({ state: 'active', ended: false });

      // DTMF: refused before any request to NetSapiens (v2 has no DTMF action). The call must be
      // answered for DTMF: deliver the answer first, so that the refusal is the provider's.
      const start = wholeSeconds(Date.now());
      await deliver(
        netsapiensDelivery({
          postUrl,
          subscriptionId,
          events: [
            outboundRow({
              domain: fake.domain,
              callId: providerCallId,
              start,
              answer: start,
              user: '1001',
              to: '15551234568',
              callerId: '',
            }),
          ],
        }),
      );
      expect((await getCall(callId)).status).toBe('in_progress');
      fake.requests.length = 0;
      // NetSapiens API v2 has no DTMF action: 501 unsupported-by-provider naming the vendor.
      const dtmf = await expectProblem(
        await call(t, 'POST', `/api/v1/calls/${callId}/dtmf`, owner(), { digits: '12#' }),
        501,
        'unsupported-by-provider',
      );
      expect(dtmf).toMatchObject({ provider: 'netsapiens', capability: 'dtmf' });
      const view = await json(await call(t, 'GET', `/api/v1/pbx-connections/${conn.id}`, owner()));
      expect(view.capabilities).toMatchObject({ dtmf: false });
      await expectProblem(
        await call(t, 'POST', `/api/v1/calls/${callId}/dtmf`, owner(), { digits: 'x1' }),
        400,
        'validation-failed',
      );
      expect(fake.requests).toEqual([]);

      // Hangup: DELETE of that call id under the user that placed it.
      const hangup = await call(t, 'POST', `/api/v1/calls/${callId}/hangup`, owner());
      expect(hangup.status).toBe(202);
      expect(await json(hangup)).toEqual({ callId, accepted: true });
      expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        `DELETE /ns-api/v2/domains/${fake.domain}/users/1001/calls/${providerCallId}`,
      ]);
      expect(fake.calls.get(providerCallId)!.ended).toBe(true);

      // Until the removal arrives the record is in progress; the platform no longer knows the call.
      status = await call(t, 'GET', `/api/v1/calls/${callId}/status`, owner());
      expect(await json(status)).toEqual({
        callId,
        status: 'in_progress',
        endReason: null,
        answeredAt: iso(start),
        endedAt: null,
        live: null,
        liveError: 'NOT_FOUND',
      });

      // The removal ends it; then hangup and status are answered from the record.
      await deliver(
        netsapiensDelivery({
          postUrl,
          subscriptionId,
          events: [
            outboundRow({
              domain: fake.domain,
              callId: providerCallId,
              start,
              answer: start,
              user: '1001',
              to: '15551234568',
              callerId: '',
              removed: true,
            }),
          ],
        }),
      );
      const c = await getCall(callId);
      expect(c).toMatchObject({ status: 'completed', endReason: 'completed', agentId: agent1.id, to: '+15551234568' });
      fake.requests.length = 0;
      await expectProblem(await call(t, 'POST', `/api/v1/calls/${callId}/hangup`, owner()), 409, 'call-ended');
      status = await call(t, 'GET', `/api/v1/calls/${callId}/status`, owner());
      expect(await json(status)).toMatchObject({ status: 'completed', live: null });
      expect(fake.requests).toEqual([]);
    });

    it('an unanswered click-to-call hung up from here ends canceled', async () => {
      const res = await call(t, 'POST', '/api/v1/calls/click-to-call', owner(), {
        to: '+15551234569',
        agentId: agent2.id,
        connectionId: conn.id,
      });
      const { callId, providerCallId } = (await json(res)) as { callId: string; providerCallId: string };
      fake.requests.length = 0;
      expect((await call(t, 'POST', `/api/v1/calls/${callId}/hangup`, owner())).status).toBe(202);
      expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        `DELETE /ns-api/v2/domains/${fake.domain}/users/1002/calls/${providerCallId}`,
      ]);
      const start = wholeSeconds(fake.calls.get(providerCallId)!.start.getTime() + 1000);
      await deliver(
        netsapiensDelivery({
          postUrl,
          subscriptionId,
          events: [
            callbackRow({ domain: fake.domain, callId: providerCallId, start, user: '1002', to: '15551234569' }),
          ],
        }),
      );
      await deliver(
        netsapiensDelivery({
          postUrl,
          subscriptionId,
          events: [
            outboundRow({
              domain: fake.domain,
              callId: providerCallId,
              start,
              user: '1002',
              to: '15551234569',
              callerId: '',
              removed: true,
            }),
          ],
        }),
      );
      const c = await getCall(callId);
      expect(c).toMatchObject({
        direction: 'outbound',
        status: 'canceled',
        endReason: 'canceled',
        answeredAt: null,
        agentId: agent2.id,
        to: '+15551234569',
      });
      expect(c.timeline.map((e) => e.kind)).toEqual(['queued', 'ringing', 'ringing', 'ended']);
    });
  });

  describe('provider failures', () => {
    it('NetSapiens down: click-to-call 503 pbx-unavailable and nothing recorded; /test says TRANSIENT', async () => {
      const calls = await callCount();
      const known = fake.calls.size;
      fake.setDown(true);
      const res = await call(t, 'POST', '/api/v1/calls/click-to-call', owner(), {
        to: '+15551234570',
        agentId: agent1.id,
        connectionId: conn.id,
      });
      const problem = await expectProblem(res, 503, 'pbx-unavailable');
      expect(problem.pbxError).toBe('TRANSIENT');
      expect(res.headers.get('retry-after')).toBe('5');
      expect(await callCount()).toBe(calls);
      expect(fake.calls.size).toBe(known);

      const test = await call(t, 'POST', `/api/v1/pbx-connections/${conn.id}/test`, owner());
      expect(await json(test)).toEqual({
        ok: false,
        code: 'TRANSIENT',
        detail: 'The provider could not be reached or failed; try again later.',
      });
      const sub = await call(t, 'POST', `/api/v1/pbx-connections/${conn.id}/netsapiens/subscribe`, owner());
      await expectProblem(sub, 503, 'pbx-unavailable');
      fake.setDown(false);
      const got = (await json(await call(t, 'GET', `/api/v1/pbx-connections/${conn.id}`, owner()))) as Connection;
      expect(got.settings.subscriptionId).toBe(subscriptionId);
    });

    it('a wrong API key: click-to-call 502 pbx-auth-failed, nothing recorded; /test ok true / ok false AUTH', async () => {
      const good = await call(t, 'POST', `/api/v1/pbx-connections/${conn.id}/test`, owner());
      expect(good.status).toBe(200);
      expect(await json(good)).toEqual({ ok: true, detail: `NetSapiens domain ${fake.domain} (Acme (fake))` });

      const bad = await createConnection(
        { baseUrl: fake.baseUrl, domain: fake.domain },
        { apiKey: 'nsd_wrong_api_key_000000000000', webhookSecret: 'another-webhook-secret-0123456789' },
      );
      expect(await json(await call(t, 'POST', `/api/v1/pbx-connections/${bad.id}/test`, owner()))).toEqual({
        ok: false,
        code: 'AUTH',
        detail: 'The provider refused the credentials.',
      });
      const calls = await callCount();
      fake.requests.length = 0;
      const res = await call(t, 'POST', '/api/v1/calls/click-to-call', owner(), {
        to: '+15551234571',
        agentId: agent1.id,
        connectionId: bad.id,
      });
      expect((await expectProblem(res, 502, 'pbx-auth-failed')).pbxError).toBe('AUTH');
      expect(fake.requests.map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
        ['POST', `/ns-api/v2/domains/${fake.domain}/users/1001/calls`, 'Bearer nsd_wrong_api_key_000000000000'],
      ]);
      expect(await callCount()).toBe(calls);

      const sub = await call(t, 'POST', `/api/v1/pbx-connections/${bad.id}/netsapiens/subscribe`, owner());
      await expectProblem(sub, 502, 'pbx-auth-failed');
      const got = (await json(await call(t, 'GET', `/api/v1/pbx-connections/${bad.id}`, owner()))) as Connection;
      expect(got.settings).toEqual({ baseUrl: fake.baseUrl, domain: fake.domain });
      await call(t, 'DELETE', `/api/v1/pbx-connections/${bad.id}`, owner());
    });
  });

  describe('verification', () => {
    const oneRing = (callId = sipCallId(), start = wholeSeconds(Date.now() - 5_000)) =>
      inboundRow({ domain: fake.domain, callId, start, from: '15551230003', did: '15550001000', user: '1002' });

    it('refuses a delivery without the token, with a wrong token, or from another subscription: 401, nothing stored', async () => {
      const before = await inboxCount(conn.id);
      const calls = await callCount();
      const events = [oneRing()];
      const missing = netsapiensDelivery({ postUrl: conn.webhookUrls.events!, subscriptionId, events });
      await expectProblem(await post(missing), 401, 'invalid-signature');
      const wrong = netsapiensDelivery({
        postUrl: netsapiensSignedUrl(conn.webhookUrls.events!, `${secret.slice(0, -1)}x`),
        subscriptionId,
        events,
      });
      await expectProblem(await post(wrong), 401, 'invalid-signature');
      const empty = netsapiensDelivery({ postUrl: `${conn.webhookUrls.events!}?token=`, subscriptionId, events });
      await expectProblem(await post(empty), 401, 'invalid-signature');
      const otherSub = netsapiensDelivery({ postUrl, subscriptionId: '99999999f38d00a5eed9d15603922fe9', events });
      await expectProblem(await post(otherSub), 401, 'invalid-signature');
      // The same rows with the right token are accepted (the refusals were the token's).
      await sleep(50);
      expect(await inboxCount(conn.id)).toBe(before);
      expect(await callCount()).toBe(calls);
      await deliver(netsapiensDelivery({ postUrl, subscriptionId, events }));
      expect(await inboxCount(conn.id)).toBe(before + 1);
    });

    it('a replayed delivery is answered duplicate and processed once (one timeline event, one socket event)', async () => {
      const company = await live({ apiKey: co.apiKey });
      const callId = sipCallId();
      const d = netsapiensDelivery({ postUrl, subscriptionId, events: [oneRing(callId)] });
      await deliver(d);
      const count = await inboxCount(conn.id);
      for (let i = 0; i < 2; i++) {
        const again = await post(d);
        expect({ status: again.status, body: await json(again) }).toEqual({
          status: 200,
          body: { received: true, duplicate: true },
        });
      }
      // Without the correlation header too: the event id is the content's.
      const bare = await post({ ...d, headers: { 'content-type': 'application/json' } });
      expect(await json(bare)).toEqual({ received: true, duplicate: true });
      await settled(conn.id);
      await company.waitFor(1);
      await sleep(200);
      expect(await inboxCount(conn.id)).toBe(count);
      const [id] = await callIdOf(callId);
      const c = await getCall(id!);
      expect(c.timeline.map((e) => e.kind)).toEqual(['ringing']);
      expect(c).toMatchObject({ status: 'ringing', agentId: agent2.id, from: '+15551230003' });
      expect(company.events.map((e) => [e.type, (e.data as { call: CallBody }).call.id])).toEqual([
        ['call.ringing', id],
      ]);
      const rows = (await inbox(conn.id)).filter((r) => r.payload.events[0]!.orig_callid === callId);
      expect(rows.map((r) => [r.status, r.attempts])).toEqual([['processed', 1]]);
    });

    it('a body that is not a JSON array of call objects, with a valid token: 400 malformed-webhook, nothing stored', async () => {
      const before = await inboxCount(conn.id);
      const headers = { 'content-type': 'application/json', 'x-correlation-id': subscriptionId };
      const bodies = [
        JSON.stringify(oneRing()), // an object, not an array
        '[]',
        JSON.stringify(['a string']),
        JSON.stringify([{ time_start: '2026-01-01 00:00:00' }]), // no orig call id
      ];
      for (const body of bodies) {
        await expectProblem(await post({ url: postUrl, headers, body }), 400, 'malformed-webhook');
      }
      expect(await inboxCount(conn.id)).toBe(before);
    });
  });

  describe('PBX_ALLOW_HTTP=false', () => {
    it('a plain-http baseUrl is not used: /test REJECTED, click-to-call 422 pbx-rejected, nothing sent', async () => {
      const strict = await startTestApp({ env: { PBX_ALLOW_HTTP: 'false' }, databaseUrl: t.db.url });
      try {
        fake.requests.length = 0;
        const calls = await callCount();
        const test = await call(strict, 'POST', `/api/v1/pbx-connections/${conn.id}/test`, owner());
        expect(await json(test)).toEqual({
          ok: false,
          code: 'REJECTED',
          detail: 'The provider refused the request: check the settings.',
        });
        const res = await call(strict, 'POST', '/api/v1/calls/click-to-call', owner(), {
          to: '+15551234572',
          agentId: agent1.id,
          connectionId: conn.id,
        });
        const problem = await expectProblem(res, 422, 'pbx-rejected');
        expect(problem.detail).toContain('https');
        await expectProblem(
          await call(strict, 'POST', `/api/v1/pbx-connections/${conn.id}/netsapiens/subscribe`, owner()),
          422,
          'pbx-rejected',
        );
        expect(fake.requests).toEqual([]);
        expect(await callCount()).toBe(calls);
      } finally {
        await strict.app.close();
      }
    });
  });
});
