import { randomUUID } from 'node:crypto';
import type { CallDetail } from '../src/calls/call-view.js';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import { WebhookInboxProcessorService } from '../src/webhooks/inbox/webhook-inbox-processor.service.js';
import {
  emitCallLifecycle,
  newCallSid,
  newMessageSid,
  startTwilioFake,
  twilioDelivery,
  twilioIncomingMessage,
  twilioJsonDelivery,
  twilioMessageStatus,
  twilioStatusCallback,
  type StatusCallbackOptions,
  type TwilioDelivery,
  type TwilioFake,
  type TwilioFakeRequest,
} from './fakes/twilio-fake.js';
import { query } from './support/database.js';
import { type Auth, expectProblem, json } from './support/http.js';
import { connect, type LiveClient, sleep } from './support/sockets.js';
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

/**
 * Twilio webhooks and click-to-call end to end: the real application, its real database, and the
 * fake Twilio REST API (test/fakes/twilio-fake.ts) that the driver reaches through TWILIO_BASE_URL.
 * Deliveries are signed against the public URL the app believes it has (TEST_PUBLIC_BASE_URL) and
 * posted to its real address.
 */

/** The customer (caller / callee). */
const CUSTOMER = '+15551230001';
/** The company's Twilio number: the connection's default caller id, the number customers dial. */
const COMPANY_NUMBER = '+15550001000';
/** The agent's phone: its identity at Twilio (user mapping). */
const AGENT_PHONE = '+15557770101';
/** A caller id chosen for one click-to-call. */
const OTHER_CALLER_ID = '+15550009999';
const OTHER_ACCOUNT_SID = `AC${'ab'.repeat(16)}`;
const OTHER_TOKEN = 'another-company-token-0123456789';
const WRONG_TOKEN = 'not-the-auth-token-0123456789';
/**
 * When the calls of this file start: a minute ago, on a whole second (Twilio's Timestamp is RFC 2822,
 * second precision). Real callbacks are stamped with the time they fire, and a signed Timestamp
 * outside WEBHOOK_MAX_AGE_MS is refused (403 stale-webhook), so the deliveries are dated now.
 */
const T0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;
const iso = (base: number, seconds: number) => new Date(base + seconds * 1000).toISOString();

interface InboxRow {
  id: string;
  connectionId: string;
  provider: string;
  route: string;
  kind: string;
  eventId: string;
  status: string;
  attempts: number;
  lastError: string | null;
  receivedAt: string;
  processedAt: string | null;
  payload: { route: string; query: Record<string, string>; params: Record<string, string>; receivedAt: string };
}

/** A call as GET /api/v1/calls/:id answers it (the timeline only there). */
type CallBody = Omit<CallDetail, 'timeline'> & { timeline: CallDetail['timeline'] };

const pathOf = (url: string) => {
  const u = new URL(url);
  return u.pathname + u.search;
};

/** The inbox event id of a form delivery (Twilio's ids: CallSid:CallStatus:SequenceNumber, MessageSid:status). */
function eventIdOf(d: TwilioDelivery): string {
  const p = d.params as Record<string, string>;
  if (d.route === 'sms') return `${p['MessageSid']}:${p['MessageStatus'] ?? p['SmsStatus']}`;
  return `${p['CallSid']}:${p['CallStatus']}:${p['SequenceNumber'] ?? p['Timestamp']}`;
}

/** Polls until `check` returns a value (not undefined), or fails after `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(15);
  }
}

/** The calls API, the inbox API, deliveries: bound to one app and one company. */
function harness(app: () => TestApp, admin: () => Auth) {
  const inbox = async (connectionId: string, auth: Auth = admin()): Promise<InboxRow[]> => {
    const res = await call(app(), 'GET', `/api/v1/webhook-inbox?connectionId=${connectionId}&limit=200`, auth);
    expect(res.status).toBe(200);
    return (await json(res)).data as InboxRow[];
  };
  const rowsOf = async (connectionId: string, eventId: string) =>
    (await inbox(connectionId)).filter((r) => r.eventId === eventId);
  /** Waits until the row of `eventId` is no longer pending. */
  const settled = (connectionId: string, eventId: string) =>
    until(`inbox row ${eventId}`, async () => {
      const [row] = await rowsOf(connectionId, eventId);
      return row && row.status !== 'pending' ? row : undefined;
    });
  const post = (d: TwilioDelivery, path = pathOf(d.url), headers: Record<string, string> = d.headers) =>
    app().fetch(path, { method: 'POST', headers, body: d.body });
  /** Posts a delivery (200 expected) and waits until it is processed. */
  const deliver = async (connectionId: string, d: TwilioDelivery, eventId = eventIdOf(d)) => {
    const res = await post(d);
    if (res.status !== 200) throw new Error(`delivery ${eventId}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer().catch(() => undefined);
    const row = await settled(connectionId, eventId);
    expect(row.status).toBe('processed');
    return row;
  };
  const getCall = async (id: string, auth: Auth = admin()): Promise<CallBody> => {
    const res = await call(app(), 'GET', `/api/v1/calls/${id}`, auth);
    expect(res.status).toBe(200);
    return (await json(res)) as CallBody;
  };
  const allCalls = async (): Promise<CallBody[]> =>
    (await json(await call(app(), 'GET', '/api/v1/calls?limit=200', admin()))).data as CallBody[];
  const callOf = async (providerCallId: string) => (await allCalls()).find((c) => c.providerCallId === providerCallId);
  return { inbox, rowsOf, settled, post, deliver, getCall, allCalls, callOf };
}

describe('Twilio: webhooks and click-to-call', () => {
  let fake: TwilioFake;
  let t: TestApp;
  let co: TestCompany;
  let other: TestCompany;
  let manager: TestUser;
  let agentUser: TestUser;
  let agent: TestAgent;
  /** The company's Twilio connection (the fake's account). */
  let conn: string;
  /** A Twilio connection of another company, with another account and token. */
  let otherConn: string;
  const open: LiveClient[] = [];
  const owner = (): Auth => ({ token: co.owner.accessToken });
  const asAgent = (): Auth => ({ token: agentUser.accessToken });
  const h = harness(
    () => t,
    () => owner(),
  );
  const statusUrl = (connectionId: string, search = '') =>
    `${TEST_PUBLIC_BASE_URL}/webhooks/twilio/${connectionId}/status${search}`;
  const smsUrl = (connectionId: string) => `${TEST_PUBLIC_BASE_URL}/webhooks/twilio/${connectionId}/sms`;
  const live = async (auth: Record<string, unknown>) => {
    const client = await connect(t.url, auth);
    open.push(client);
    return client;
  };
  /** The company events of one call a client received, as [type, agentId]. */
  const eventsOfCall = (client: LiveClient, callId: string) =>
    client.events
      .filter((e) => (e.data as { call?: { id: string } }).call?.id === callId)
      .map((e) => [e.type, e.agentId]);
  /** One status callback of the company's connection, signed. */
  const statusCallback = (o: Partial<StatusCallbackOptions> & { callSid: string; status: string }, url?: string) =>
    twilioDelivery(
      fake.authToken,
      url ?? statusUrl(conn),
      twilioStatusCallback({
        accountSid: fake.accountSid,
        direction: 'inbound',
        from: CUSTOMER,
        to: COMPANY_NUMBER,
        at: new Date(T0),
        sequenceNumber: 0,
        ...o,
      }),
    );
  const createConnection = async (
    app: TestApp,
    company: TestCompany,
    settings: Record<string, unknown>,
    authToken: string,
  ): Promise<string> => {
    const res = await call(
      app,
      'POST',
      '/api/v1/pbx-connections',
      { token: company.owner.accessToken },
      {
        provider: 'twilio',
        name: unique('Twilio'),
        settings,
        secrets: { authToken },
      },
    );
    const body = await json(res);
    if (res.status !== 201) throw new Error(`create connection: ${res.status} ${JSON.stringify(body)}`);
    return body.id as string;
  };
  const fakeRequests = (method: string, path: string): TwilioFakeRequest[] =>
    fake.requests.filter((r) => r.method === method && r.path === path);
  const callsPath = () => `/2010-04-01/Accounts/${fake.accountSid}/Calls.json`;
  const callPath = (sid: string) => `/2010-04-01/Accounts/${fake.accountSid}/Calls/${sid}.json`;

  beforeAll(async () => {
    fake = await startTwilioFake();
    t = await startTestApp({ env: { TWILIO_BASE_URL: fake.baseUrl } });
    co = await createCompany(t, 'twilio');
    other = await createCompany(t, 'twilio-other');
    manager = await createUser(t, co, 'manager');
    agentUser = await createUser(t, co, 'agent');
    agent = await createAgent(t, co, { userId: agentUser.id });
    conn = await createConnection(t, co, { accountSid: fake.accountSid, callerId: COMPANY_NUMBER }, fake.authToken);
    otherConn = await createConnection(t, other, { accountSid: OTHER_ACCOUNT_SID }, OTHER_TOKEN);
    const mapping = await call(t, 'POST', '/api/v1/user-mappings', owner(), {
      provider: 'twilio',
      externalId: AGENT_PHONE,
      agentId: agent.id,
    });
    expect(mapping.status).toBe(201);
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
    t.app.get(WebhookInboxProcessorService).resume();
    fake.setDown(false);
  });
  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  describe('inbound calls from status callbacks', () => {
    it('answered: rings the mapped agent, is answered by it, completes; record, timeline and socket events', async () => {
      const agentLive = await live({ token: agentUser.accessToken });
      const managerLive = await live({ token: manager.accessToken });
      const parentSid = newCallSid();
      const deliveries = emitCallLifecycle({
        scenario: 'inbound',
        authToken: fake.authToken,
        accountSid: fake.accountSid,
        parentUrl: statusUrl(conn),
        childUrl: statusUrl(conn),
        parentSid,
        agent: AGENT_PHONE,
        customer: CUSTOMER,
        companyNumber: COMPANY_NUMBER,
        outcome: 'answered',
        start: new Date(T0),
        talkSeconds: 30,
        callerName: 'ADA LOVELACE',
      });
      // The agent's leg: initiated, ringing, in-progress, completed; the caller's leg: completed.
      expect(deliveries.map((d) => d.params['CallStatus'])).toEqual([
        'initiated',
        'ringing',
        'in-progress',
        'completed',
        'completed',
      ]);
      for (const d of deliveries) await h.deliver(conn, d);

      const found = await h.callOf(parentSid);
      expect(found).toBeDefined();
      const c = await h.getCall(found!.id);
      expect(c).toMatchObject({
        provider: 'twilio',
        connectionId: conn,
        providerCallId: parentSid,
        direction: 'inbound',
        status: 'completed',
        from: CUSTOMER,
        to: COMPANY_NUMBER,
        callerName: 'ADA LOVELACE',
        agentId: agent.id,
        startedAt: iso(T0, 3),
        ringingAt: iso(T0, 3),
        answeredAt: iso(T0, 8),
        endedAt: iso(T0, 39),
        ringSeconds: 5,
        talkSeconds: 31,
        durationSeconds: 36,
        // Twilio's `completed` carries no reason; once ended, the reason is what the call ended as.
        endReason: 'completed',
        hangupCause: null,
        recordingUrl: null,
      });
      // The agent leg's initiated and completed say nothing about the call (no timeline entry).
      expect(c.timeline.map((e) => [e.kind, e.at])).toEqual([
        ['ringing', iso(T0, 3)],
        ['answered', iso(T0, 8)],
        ['ended', iso(T0, 39)],
      ]);

      await agentLive.waitFor(3);
      await managerLive.waitFor(3);
      await sleep(150);
      const expected = [
        ['call.ringing', agent.id],
        ['call.answered', agent.id],
        ['call.ended', agent.id],
      ];
      expect(eventsOfCall(agentLive, c.id)).toEqual(expected);
      expect(agentLive.events).toHaveLength(3);
      expect(eventsOfCall(managerLive, c.id)).toEqual(expected);
      expect(managerLive.events).toHaveLength(3);
      const ringing = agentLive.events[0]! as EventEnvelope<{ call: CallBody }>;
      expect(ringing).toMatchObject({ companyId: co.id, occurredAt: iso(T0, 3) });
      expect(ringing.data.call).toMatchObject({
        id: c.id,
        status: 'ringing',
        direction: 'inbound',
        from: CUSTOMER,
        agentId: agent.id,
        providerCallId: parentSid,
      });
      const ended = managerLive.events[2]! as EventEnvelope<{ call: CallBody }>;
      expect(ended.data.call).toMatchObject({ id: c.id, status: 'completed', to: COMPANY_NUMBER, talkSeconds: 31 });
    });

    it('no answer at the agent: the call rings and is missed', async () => {
      const agentLive = await live({ token: agentUser.accessToken });
      const parentSid = newCallSid();
      const deliveries = emitCallLifecycle({
        scenario: 'inbound',
        authToken: fake.authToken,
        accountSid: fake.accountSid,
        parentUrl: statusUrl(conn),
        childUrl: statusUrl(conn),
        parentSid,
        agent: AGENT_PHONE,
        customer: CUSTOMER,
        companyNumber: COMPANY_NUMBER,
        outcome: 'no-answer',
        start: new Date(T0),
      });
      for (const d of deliveries) await h.deliver(conn, d);
      const c = await h.getCall((await h.callOf(parentSid))!.id);
      expect(c).toMatchObject({
        direction: 'inbound',
        status: 'missed',
        from: CUSTOMER,
        to: COMPANY_NUMBER,
        agentId: agent.id,
        ringingAt: iso(T0, 3),
        answeredAt: null,
        endedAt: iso(T0, 34),
        ringSeconds: 31,
        talkSeconds: null,
        endReason: 'missed',
        hangupCause: null,
      });
      expect(c.timeline.map((e) => e.kind)).toEqual(['ringing', 'ended']);
      await agentLive.waitFor(2);
      await sleep(100);
      expect(eventsOfCall(agentLive, c.id)).toEqual([
        ['call.ringing', agent.id],
        ['call.ended', agent.id],
      ]);
    });

    it('the agent is busy: the caller was not answered, so the call is missed (the agent leg does not end it)', async () => {
      // twilio.mapper.ts: a <Dial> child's terminal status adds nothing (another agent could still
      // take the call); the caller's leg then completes, unanswered → missed.
      const parentSid = newCallSid();
      const deliveries = emitCallLifecycle({
        scenario: 'inbound',
        authToken: fake.authToken,
        accountSid: fake.accountSid,
        parentUrl: statusUrl(conn),
        childUrl: statusUrl(conn),
        parentSid,
        agent: AGENT_PHONE,
        customer: CUSTOMER,
        companyNumber: COMPANY_NUMBER,
        outcome: 'busy',
        start: new Date(T0),
      });
      expect(deliveries.map((d) => d.params['CallStatus'])).toEqual(['initiated', 'ringing', 'busy', 'completed']);
      for (const d of deliveries) await h.deliver(conn, d);
      const c = await h.getCall((await h.callOf(parentSid))!.id);
      expect(c).toMatchObject({
        status: 'missed',
        endReason: 'missed',
        agentId: agent.id,
        answeredAt: null,
        endedAt: iso(T0, 9),
      });
    });

    it("busy: the caller's own leg ends busy → busy, with the SIP cause; no agent, so no screen pop", async () => {
      const agentLive = await live({ token: agentUser.accessToken });
      const managerLive = await live({ token: manager.accessToken });
      const sid = newCallSid();
      await h.deliver(conn, statusCallback({ callSid: sid, status: 'ringing', sequenceNumber: 0 }));
      await h.deliver(
        conn,
        statusCallback({
          callSid: sid,
          status: 'busy',
          at: new Date(T0 + 2000),
          sequenceNumber: 1,
          callDuration: 0,
          sipResponseCode: '486',
        }),
      );
      const c = await h.getCall((await h.callOf(sid))!.id);
      expect(c).toMatchObject({
        providerCallId: sid,
        direction: 'inbound',
        status: 'busy',
        from: CUSTOMER,
        to: COMPANY_NUMBER,
        agentId: null,
        ringingAt: iso(T0, 0),
        answeredAt: null,
        endedAt: iso(T0, 2),
        endReason: 'busy',
        hangupCause: 'busy (SIP 486)',
      });
      expect(c.timeline.map((e) => e.kind)).toEqual(['ringing', 'ended']);
      await managerLive.waitFor(2);
      await sleep(100);
      expect(eventsOfCall(managerLive, c.id)).toEqual([
        ['call.ringing', null],
        ['call.ended', null],
      ]);
      expect(agentLive.events).toEqual([]);
    });
  });

  describe('click-to-call through Twilio', () => {
    it('calls the agent and the customer into one conference; both legs land on the one call; status, DTMF (the call stays up), hangup', async () => {
      const agentLive = await live({ token: agentUser.accessToken });
      const before = fake.requests.length;
      const res = await call(t, 'POST', '/api/v1/calls/click-to-call', asAgent(), {
        to: CUSTOMER,
        callerId: OTHER_CALLER_ID,
      });
      expect(res.status).toBe(202);
      const accepted = await json(res);
      expect(accepted).toEqual({
        callId: expect.any(String),
        status: 'queued',
        connectionId: conn,
        provider: 'twilio',
        providerCallId: expect.stringMatching(/^CA[0-9a-f]{32}$/),
      });
      const callId = accepted.callId as string;
      const parentSid = accepted.providerCallId as string;

      // What Twilio received: two authenticated Call creates, the agent's leg and the customer's,
      // each running TwiML that dials the same conference (named after our call id).
      const sent = fake.requests.slice(before);
      expect(sent.map((r) => `${r.method} ${r.path}`)).toEqual([`POST ${callsPath()}`, `POST ${callsPath()}`]);
      const [create, createCustomer] = sent as [TwilioFakeRequest, TwilioFakeRequest];
      const basic = Buffer.from(`${fake.accountSid}:${fake.authToken}`).toString('base64');
      expect(create.headers.authorization).toBe(`Basic ${basic}`);
      expect(createCustomer.headers.authorization).toBe(`Basic ${basic}`);
      const room = `switchboard-${callId}`;
      const agentCallback = `${statusUrl(conn)}?callId=${callId}&leg=agent`;
      const customerCallback = `${statusUrl(conn)}?callId=${callId}&leg=customer&parentCallSid=${parentSid}`;
      const events = ['initiated', 'ringing', 'answered', 'completed'];
      expect(create.params).toEqual({
        To: AGENT_PHONE,
        From: OTHER_CALLER_ID,
        Twiml: `<Response><Dial><Conference startConferenceOnEnter="true" endConferenceOnExit="true" beep="false">${room}</Conference></Dial></Response>`,
        StatusCallback: agentCallback,
        StatusCallbackEvent: events,
        StatusCallbackMethod: 'POST',
      });
      expect(createCustomer.params).toEqual({
        To: CUSTOMER,
        From: OTHER_CALLER_ID,
        Twiml: `<Response><Dial><Conference startConferenceOnEnter="false" endConferenceOnExit="false" beep="false">${room}</Conference></Dial></Response>`,
        StatusCallback: customerCallback,
        StatusCallbackEvent: events,
        StatusCallbackMethod: 'POST',
      });
      const child = fake.customerLegOf(parentSid)!.call;

      const queued = await h.getCall(callId, asAgent());
      expect(queued).toMatchObject({
        id: callId,
        provider: 'twilio',
        connectionId: conn,
        providerCallId: parentSid,
        direction: 'outbound',
        status: 'queued',
        from: OTHER_CALLER_ID,
        to: CUSTOMER,
        agentId: agent.id,
        ringingAt: null,
        answeredAt: null,
        endedAt: null,
        endReason: null,
      });
      const startedAt = Date.parse(queued.startedAt);

      // Live status while queued comes from Twilio; DTMF needs an answered call.
      expect(await json(await call(t, 'GET', `/api/v1/calls/${callId}/status`, asAgent()))).toEqual({
        callId,
        status: 'queued',
        endReason: null,
        answeredAt: null,
        endedAt: null,
        live: { state: 'queued', ended: false },
      });
      expect(fakeRequests('GET', callPath(parentSid))).toHaveLength(1);
      await expectProblem(
        await call(t, 'POST', `/api/v1/calls/${callId}/dtmf`, asAgent(), { digits: '1' }),
        409,
        'call-not-answered',
      );

      // The agent picks up (its TwiML puts it in the conference), then the customer answers.
      fake.answer(parentSid);
      fake.answer(child.sid);
      const conference = fake.conferences.get(room)!;
      expect(conference.status).toBe('in-progress');
      expect([...conference.participants.keys()].sort()).toEqual([parentSid, child.sid].sort());
      const start = Math.ceil(Date.now() / 1000) * 1000 + 1000;
      const deliveries = emitCallLifecycle({
        scenario: 'click-to-call',
        authToken: fake.authToken,
        accountSid: fake.accountSid,
        parentUrl: create.params['StatusCallback'] as string,
        childUrl: customerCallback,
        parentSid,
        childSid: child.sid,
        agent: AGENT_PHONE,
        customer: CUSTOMER,
        companyNumber: OTHER_CALLER_ID,
        start: new Date(start),
        // Dated now (Twilio stamps a callback when it fires) and at most 25 s ahead: a Timestamp past
        // WEBHOOK_CLOCK_LEEWAY_MS in the future is refused.
        talkSeconds: 15,
      });
      // agent: initiated, ringing, in-progress; customer: initiated, ringing, in-progress, completed; agent: completed
      expect(deliveries.map((d) => `${new URL(d.url).searchParams.get('leg')}:${d.params['CallStatus']}`)).toEqual([
        'agent:initiated',
        'agent:ringing',
        'agent:in-progress',
        'customer:initiated',
        'customer:ringing',
        'customer:in-progress',
        'customer:completed',
        'agent:completed',
      ]);
      for (const d of deliveries.slice(0, 6)) await h.deliver(conn, d);
      const answered = await h.getCall(callId, asAgent());
      expect(answered).toMatchObject({
        status: 'in_progress',
        direction: 'outbound',
        from: OTHER_CALLER_ID,
        to: CUSTOMER,
        agentId: agent.id,
        startedAt: queued.startedAt,
        ringingAt: iso(start, 1),
        answeredAt: iso(start, 9),
        endedAt: null,
      });
      // Not a second call: every callback of both legs is on the record made at originate.
      expect(
        (await h.allCalls()).filter((c) => c.providerCallId === parentSid || c.providerCallId === child.sid),
      ).toEqual([expect.objectContaining({ id: callId })]);
      expect(await json(await call(t, 'GET', `/api/v1/calls/${callId}/status`, asAgent()))).toEqual({
        callId,
        status: 'in_progress',
        endReason: null,
        answeredAt: iso(start, 9),
        endedAt: null,
        live: { state: 'in-progress', ended: false },
      });

      // DTMF: validated first (400), then the customer's leg gets TwiML that plays the digits and
      // brings it back into the conference.
      for (const digits of ['12x', '1'.repeat(33), '', 12]) {
        const body = await expectProblem(
          await call(t, 'POST', `/api/v1/calls/${callId}/dtmf`, asAgent(), { digits }),
          400,
          'validation-failed',
        );
        expect(body.errors.map((e: { field: string }) => e.field)).toEqual(['digits']);
      }
      const beforeDtmf = fake.requests.length;
      const dtmf = await call(t, 'POST', `/api/v1/calls/${callId}/dtmf`, asAgent(), { digits: '12*#' });
      expect(dtmf.status).toBe(202);
      expect(await json(dtmf)).toEqual({ callId, accepted: true });
      const dtmfRequests = fake.requests.slice(beforeDtmf);
      expect(dtmfRequests.map((r) => `${r.method} ${r.path}`)).toEqual([
        `GET ${callPath(parentSid)}`,
        `GET /2010-04-01/Accounts/${fake.accountSid}/Conferences.json`,
        `GET /2010-04-01/Accounts/${fake.accountSid}/Conferences/${conference.sid}/Participants.json`,
        `POST ${callPath(child.sid)}`,
      ]);
      expect(dtmfRequests[1]!.query).toMatchObject({ FriendlyName: room, Status: 'in-progress' });
      expect(dtmfRequests[3]!.params).toEqual({
        Twiml:
          '<Response><Play digits="12*#"/><Dial><Conference startConferenceOnEnter="false" endConferenceOnExit="false" beep="false">' +
          `${room}</Conference></Dial></Response>`,
      });
      // The digits were played to the customer, and the call is still up: both legs in progress,
      // both in the conference, which is still going.
      expect(fake.customerLegOf(parentSid)!.played).toEqual(['12*#']);
      expect(fake.calls.get(child.sid)!.call.status).toBe('in-progress');
      expect(fake.calls.get(parentSid)!.call.status).toBe('in-progress');
      expect(conference.status).toBe('in-progress');
      expect([...conference.participants.keys()].sort()).toEqual([parentSid, child.sid].sort());
      expect(fake.calls.get(parentSid)!.twimlUpdates).toEqual([]);
      expect(await json(await call(t, 'GET', `/api/v1/calls/${callId}/status`, asAgent()))).toMatchObject({
        status: 'in_progress',
        live: { state: 'in-progress', ended: false },
      });
      // The deprecated seed alias does the same (seed 000: `{ "digit" }`).
      const alias = await call(t, 'POST', `/api/calls/dtmf/${callId}`, asAgent(), { digit: '5' });
      expect(alias.status).toBe(202);
      expect(await json(alias)).toEqual({ callId, accepted: true });
      expect(fake.customerLegOf(parentSid)!.played).toEqual(['12*#', '5']);
      expect(conference.participants.size).toBe(2);
      expect(await json(await call(t, 'GET', `/api/calls/status/${callId}`, asAgent()))).toEqual(
        await json(await call(t, 'GET', `/api/v1/calls/${callId}/status`, asAgent())),
      );
      // Twilio's <Play digits> has no A-D: refused by the driver, nothing sent.
      const beforeAbcd = fake.requests.length;
      await expectProblem(
        await call(t, 'POST', `/api/v1/calls/${callId}/dtmf`, asAgent(), { digits: '1A' }),
        422,
        'pbx-rejected',
      );
      expect(fake.requests.length).toBe(beforeAbcd);

      // Hang up: Twilio gets Status=completed on the agent's leg; the agent ends the conference, so
      // the customer's leg ends too (nothing left to hang up among the conference's participants).
      const beforeHangup = fake.requests.length;
      const hangup = await call(t, 'POST', `/api/v1/calls/${callId}/hangup`, asAgent());
      expect(hangup.status).toBe(202);
      expect(await json(hangup)).toEqual({ callId, accepted: true });
      const hangupRequests = fake.requests.slice(beforeHangup);
      expect(hangupRequests[0]).toMatchObject({ method: 'POST', path: callPath(parentSid) });
      expect(hangupRequests[0]!.params).toEqual({ Status: 'completed' });
      expect(hangupRequests.slice(1).every((r) => r.method === 'GET')).toBe(true);
      expect(conference.status).toBe('completed');
      expect(fake.calls.get(parentSid)!.call.status).toBe('completed');
      expect(fake.calls.get(child.sid)!.call.status).toBe('completed');
      // Our record waits for Twilio's callbacks; the live state already says it is over.
      expect(await json(await call(t, 'GET', `/api/v1/calls/${callId}/status`, asAgent()))).toMatchObject({
        status: 'in_progress',
        live: { state: 'completed', ended: true },
      });

      for (const d of deliveries.slice(6)) await h.deliver(conn, d);
      const ended = await h.getCall(callId, asAgent());
      expect(ended).toMatchObject({
        id: callId,
        providerCallId: parentSid,
        direction: 'outbound',
        status: 'completed',
        from: OTHER_CALLER_ID,
        to: CUSTOMER,
        agentId: agent.id,
        startedAt: queued.startedAt,
        ringingAt: iso(start, 1),
        answeredAt: iso(start, 9),
        endedAt: iso(start, 25),
        ringSeconds: 8,
        talkSeconds: 16,
        durationSeconds: Math.round((start + 25_000 - startedAt) / 1000),
        endReason: 'completed',
        hangupCause: null,
      });
      // originate, agent initiated / ringing / in-progress, customer initiated / ringing /
      // in-progress; the customer's completed adds nothing; the agent's completed ends the call.
      expect(ended.timeline.map((e) => e.kind)).toEqual([
        'queued',
        'queued',
        'ringing',
        'updated',
        'queued',
        'ringing',
        'answered',
        'ended',
      ]);
      expect(ended.timeline.map((e) => e.at).slice(1)).toEqual([
        iso(start, 0),
        iso(start, 1),
        iso(start, 4),
        iso(start, 4),
        iso(start, 5),
        iso(start, 9),
        iso(start, 25),
      ]);
      expect(await json(await call(t, 'GET', `/api/v1/calls/${callId}/status`, asAgent()))).toEqual({
        callId,
        status: 'completed',
        endReason: 'completed',
        answeredAt: iso(start, 9),
        endedAt: iso(start, 25),
        live: null,
      });

      await agentLive.waitFor(4);
      await sleep(100);
      expect(eventsOfCall(agentLive, callId)).toEqual([
        ['call.updated', agent.id],
        ['call.ringing', agent.id],
        ['call.answered', agent.id],
        ['call.ended', agent.id],
      ]);
      expect(agentLive.events).toHaveLength(4);

      // Over: no more commands.
      await expectProblem(await call(t, 'POST', `/api/v1/calls/${callId}/hangup`, asAgent()), 409, 'call-ended');
      await expectProblem(
        await call(t, 'POST', `/api/v1/calls/${callId}/dtmf`, asAgent(), { digits: '1' }),
        409,
        'call-ended',
      );
    });

    it("the customer is busy: caller id from the connection, the call ends busy (fake's clickToCallDeliveries)", async () => {
      const managerLive = await live({ token: manager.accessToken });
      const before = fake.requests.length;
      const res = await call(
        t,
        'POST',
        '/api/v1/calls/click-to-call',
        { token: manager.accessToken },
        {
          to: CUSTOMER,
          agentId: agent.id,
        },
      );
      expect(res.status).toBe(202);
      const { callId, providerCallId: parentSid } = (await json(res)) as { callId: string; providerCallId: string };
      const create = fake.requests.slice(before).find((r) => r.method === 'POST' && r.path === callsPath())!;
      expect(create.params).toMatchObject({
        To: AGENT_PHONE,
        From: COMPANY_NUMBER,
        StatusCallback: `${statusUrl(conn)}?callId=${callId}&leg=agent`,
      });
      expect(fake.customerLegOf(parentSid)!.created).toMatchObject({
        To: CUSTOMER,
        From: COMPANY_NUMBER,
        StatusCallback: `${statusUrl(conn)}?callId=${callId}&leg=customer&parentCallSid=${parentSid}`,
      });
      expect((await h.getCall(callId)).from).toBeNull();

      const start = Math.ceil(Date.now() / 1000) * 1000 + 1000;
      const deliveries = fake.clickToCallDeliveries(parentSid, { outcome: 'busy', start: new Date(start) });
      for (const d of deliveries) await h.deliver(conn, d);
      const c = await h.getCall(callId);
      expect(c).toMatchObject({
        id: callId,
        providerCallId: parentSid,
        direction: 'outbound',
        status: 'busy',
        from: COMPANY_NUMBER,
        to: CUSTOMER,
        agentId: agent.id,
        ringingAt: iso(start, 1),
        answeredAt: null,
        endedAt: iso(start, 10),
        talkSeconds: null,
        endReason: 'busy',
        hangupCause: 'busy (SIP 486)',
      });
      expect((await h.allCalls()).filter((x) => x.providerCallId === parentSid)).toHaveLength(1);

      await managerLive.waitFor(5);
      await sleep(100);
      expect(eventsOfCall(managerLive, callId)).toEqual([
        ['call.updated', agent.id], // recorded at originate
        ['call.updated', agent.id], // the agent leg names the caller id
        ['call.ringing', agent.id],
        ['call.updated', agent.id], // the customer was busy
        ['call.ended', agent.id],
      ]);

      // Over: no live state asked of Twilio; commands refused.
      const beforeStatus = fake.requests.length;
      expect(await json(await call(t, 'GET', `/api/v1/calls/${callId}/status`, owner()))).toEqual({
        callId,
        status: 'busy',
        endReason: 'busy',
        answeredAt: null,
        endedAt: iso(start, 10),
        live: null,
      });
      await expectProblem(await call(t, 'POST', `/api/v1/calls/${callId}/hangup`, owner()), 409, 'call-ended');
      await expectProblem(
        await call(t, 'POST', `/api/v1/calls/${callId}/dtmf`, owner(), { digits: '5' }),
        409,
        'call-ended',
      );
      expect(fake.requests.length).toBe(beforeStatus);
    });
  });

  describe('Twilio down or refusing', () => {
    const clickToCall = () => call(t, 'POST', '/api/v1/calls/click-to-call', asAgent(), { to: CUSTOMER });
    const callIds = async () => (await h.allCalls()).map((c) => c.id);

    it('unreachable → 503 pbx-unavailable, and no call recorded', async () => {
      const before = await callIds();
      fake.setDown(true);
      const res = await clickToCall();
      const body = await expectProblem(res, 503, 'pbx-unavailable');
      expect(body.pbxError).toBe('TRANSIENT');
      expect(res.headers.get('retry-after')).toBe('5');
      fake.setDown(false);
      expect(await callIds()).toEqual(before);
    });

    it('refused credentials → 502 pbx-auth-failed; invalid To (21211) → 422 pbx-rejected; 429 and 5xx; nothing recorded', async () => {
      const before = await callIds();
      fake.failNext(401);
      expect((await expectProblem(await clickToCall(), 502, 'pbx-auth-failed')).pbxError).toBe('AUTH');

      fake.failNext(400, {
        code: 21211,
        message: `The 'To' number ${AGENT_PHONE} is not a valid phone number.`,
        more_info: 'https://www.twilio.com/docs/errors/21211',
        status: 400,
      });
      const rejected = await expectProblem(await clickToCall(), 422, 'pbx-rejected');
      expect(rejected.pbxError).toBe('REJECTED');
      // The vendor's text keeps only the last digits of a number.
      expect(JSON.stringify(rejected)).not.toContain(AGENT_PHONE);

      fake.failNext(429, undefined, { 'retry-after': '7' });
      const limited = await clickToCall();
      await expectProblem(limited, 503, 'pbx-rate-limited');
      expect(limited.headers.get('retry-after')).toBe('7');

      fake.failNext(500);
      await expectProblem(await clickToCall(), 502, 'pbx-bad-gateway');

      expect(await callIds()).toEqual(before);
    });

    it('POST /pbx-connections/:id/test: ok with good credentials, AUTH with a bad token, TRANSIENT when down', async () => {
      const res = await call(t, 'POST', `/api/v1/pbx-connections/${conn}/test`, owner());
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual({ ok: true, detail: `Twilio account ${fake.accountSid} is active (Full).` });
      expect(fake.requests.at(-1)).toMatchObject({
        method: 'GET',
        path: `/2010-04-01/Accounts/${fake.accountSid}.json`,
      });

      const bad = await createConnection(t, co, { accountSid: fake.accountSid }, WRONG_TOKEN);
      expect(await json(await call(t, 'POST', `/api/v1/pbx-connections/${bad}/test`, owner()))).toEqual({
        ok: false,
        code: 'AUTH',
        detail: 'The provider refused the credentials.',
      });
      // Two connections can place calls now: click-to-call must name one.
      await expectProblem(
        await call(t, 'POST', '/api/v1/calls/click-to-call', asAgent(), { to: CUSTOMER }),
        400,
        'validation-failed',
      );
      expect((await call(t, 'DELETE', `/api/v1/pbx-connections/${bad}`, owner())).status).toBe(204);

      fake.setDown(true);
      expect(await json(await call(t, 'POST', `/api/v1/pbx-connections/${conn}/test`, owner()))).toMatchObject({
        ok: false,
        code: 'TRANSIENT',
      });
    });
  });

  describe('verification', () => {
    /** A valid, signed status callback for the company's connection (a new call each time). */
    const valid = () => statusCallback({ callSid: newCallSid(), status: 'ringing' });
    const nothingStored = async (d: TwilioDelivery, connectionId = conn, auth: Auth = owner()) => {
      const rows = (await h.inbox(connectionId, auth)).filter((r) => r.eventId === eventIdOf(d));
      expect(rows).toEqual([]);
      expect(await h.callOf(d.params['CallSid'] as string)).toBeUndefined();
    };

    it('a missing X-Twilio-Signature → 401, nothing stored', async () => {
      const d = valid();
      const { 'x-twilio-signature': _, ...unsigned } = d.headers;
      await expectProblem(await h.post(d, undefined, unsigned), 401, 'invalid-signature');
      await nothingStored(d);
    });

    it('signed with the wrong token, over another URL, or with a field changed after signing → 401', async () => {
      const d = valid();
      const wrongToken = twilioDelivery(WRONG_TOKEN, d.url, d.params as Record<string, string>);
      await expectProblem(await h.post(wrongToken), 401, 'invalid-signature');

      // Signed (with the right token) for another connection's URL, posted to this one.
      const otherUrl = twilioDelivery(fake.authToken, statusUrl(randomUUID()), d.params as Record<string, string>);
      await expectProblem(await h.post(otherUrl, pathOf(d.url)), 401, 'invalid-signature');
      // Signed for the sms route, posted to the status route.
      const otherRoute = twilioDelivery(fake.authToken, smsUrl(conn), d.params as Record<string, string>);
      await expectProblem(await h.post(otherRoute, pathOf(d.url)), 401, 'invalid-signature');
      // Signed with a query marker, posted without it (the markers are covered by the signature).
      const marked = twilioDelivery(
        fake.authToken,
        statusUrl(conn, '?leg=customer'),
        d.params as Record<string, string>,
      );
      await expectProblem(await h.post(marked, pathOf(d.url)), 401, 'invalid-signature');

      const tampered = new URLSearchParams(d.body);
      tampered.set('CallStatus', 'completed');
      await expectProblem(await h.post({ ...d, body: tampered.toString() }), 401, 'invalid-signature');
      await nothingStored(d);
    });

    it("a valid delivery posted to another company's connection → 401 (its token differs), nothing stored there", async () => {
      const d = valid();
      const otherPath = `/webhooks/twilio/${otherConn}/status`;
      await expectProblem(await h.post(d, otherPath), 401, 'invalid-signature');
      // Even signed over that connection's URL: the token is this company's, not theirs.
      const resigned = twilioDelivery(fake.authToken, statusUrl(otherConn), d.params as Record<string, string>);
      await expectProblem(await h.post(resigned), 401, 'invalid-signature');
      await nothingStored(d, otherConn, { token: other.owner.accessToken });
      await nothingStored(d);
    });

    it('unknown connection, non-uuid id, provider mismatch, unknown route → 404', async () => {
      const d = valid();
      await expectProblem(await h.post(d, `/webhooks/twilio/${randomUUID()}/status`), 404, 'not-found');
      await expectProblem(await h.post(d, '/webhooks/twilio/not-a-uuid/status'), 404, 'not-found');
      await expectProblem(await h.post(d, `/webhooks/dialpad/${conn}`), 404, 'not-found');
      await expectProblem(await h.post(d, `/webhooks/dialpad/${conn}/status`), 404, 'not-found');
      await expectProblem(await h.post(d, `/webhooks/twilio/${conn}/voice`), 404, 'not-found');
      await expectProblem(await h.post(d, `/webhooks/twilio/${conn}`), 404, 'not-found');
      await nothingStored(d);
    });

    it('correctly signed but dated 2020 (its signed Timestamp) → 403 stale-webhook, nothing stored', async () => {
      const d = statusCallback({ callSid: newCallSid(), status: 'ringing', at: new Date('2020-06-01T12:00:00Z') });
      expect(d.params['Timestamp']).toBe('Mon, 01 Jun 2020 12:00:00 +0000');
      const problem = await expectProblem(await h.post(d), 403, 'stale-webhook');
      expect(problem.detail).toMatch(/Timestamp/);
      await nothingStored(d);
      // Re-signed with the Timestamp removed is a different request: it no longer matches its signature.
      const stripped = new URLSearchParams(d.body);
      stripped.delete('Timestamp');
      await expectProblem(await h.post({ ...d, body: stripped.toString() }), 401, 'invalid-signature');
      await nothingStored(d);
    });

    it('a signed Timestamp past the window or beyond the leeway in the future → 403; inside it → 200', async () => {
      const now = Math.floor(Date.now() / 1000) * 1000;
      const tooOld = statusCallback({ callSid: newCallSid(), status: 'ringing', at: new Date(now - 331_000) });
      await expectProblem(await h.post(tooOld), 403, 'stale-webhook');
      await nothingStored(tooOld);
      const future = statusCallback({ callSid: newCallSid(), status: 'ringing', at: new Date(now + 90_000) });
      await expectProblem(await h.post(future), 403, 'stale-webhook');
      await nothingStored(future);
      const fresh = statusCallback({ callSid: newCallSid(), status: 'ringing', at: new Date(now - 240_000) });
      await h.deliver(conn, fresh);
    });

    it('signed, but for another Twilio account → 400 malformed-webhook, nothing stored', async () => {
      const d = twilioDelivery(
        fake.authToken,
        statusUrl(conn),
        twilioStatusCallback({
          accountSid: OTHER_ACCOUNT_SID,
          callSid: newCallSid(),
          status: 'ringing',
          direction: 'inbound',
          from: CUSTOMER,
          to: COMPANY_NUMBER,
          at: new Date(T0),
          sequenceNumber: 0,
        }),
      );
      await expectProblem(await h.post(d), 400, 'malformed-webhook');
      await nothingStored(d);
    });

    it('the JSON variant (bodySHA256 in the URL, the URL signed) is accepted; a body not matching its hash is not', async () => {
      const sid = newCallSid();
      const fields = twilioStatusCallback({
        accountSid: fake.accountSid,
        callSid: sid,
        status: 'ringing',
        direction: 'inbound',
        from: CUSTOMER,
        to: COMPANY_NUMBER,
        at: new Date(T0),
        sequenceNumber: 0,
      });
      const d = twilioJsonDelivery(fake.authToken, statusUrl(conn), fields);
      expect(new URL(d.url).searchParams.get('bodySHA256')).toMatch(/^[0-9a-f]{64}$/);

      const forged = JSON.stringify({ ...fields, From: '+15559990000' });
      await expectProblem(await h.post({ ...d, body: forged }), 401, 'invalid-signature');

      const res = await h.post(d);
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual({ received: true, duplicate: false });
      const row = await h.settled(conn, `${sid}:ringing:0`);
      expect(row).toMatchObject({ status: 'processed', kind: 'call', route: 'status', attempts: 1 });
      // The bodySHA256 marker is not one of our query markers.
      expect(row.payload.query).toEqual({});
      const c = await h.getCall((await h.callOf(sid))!.id);
      expect(c).toMatchObject({ status: 'ringing', direction: 'inbound', from: CUSTOMER, to: COMPANY_NUMBER });
    });
  });

  describe('replay', () => {
    it('the same delivery twice: both 200, the second duplicate; one inbox row, one timeline entry, one event', async () => {
      const managerLive = await live({ token: manager.accessToken });
      const sid = newCallSid();
      const d = statusCallback({ callSid: sid, status: 'ringing' });
      const first = await h.post(d);
      expect(first.status).toBe(200);
      expect(await json(first)).toEqual({ received: true, duplicate: false });
      await h.settled(conn, eventIdOf(d));
      const second = await h.post(d);
      expect(second.status).toBe(200);
      expect(await json(second)).toEqual({ received: true, duplicate: true });

      await managerLive.waitFor(1);
      await sleep(200);
      const rows = await h.rowsOf(conn, eventIdOf(d));
      expect(rows.map((r) => [r.status, r.attempts])).toEqual([['processed', 1]]);
      const c = await h.getCall((await h.callOf(sid))!.id);
      expect(c.timeline.map((e) => e.kind)).toEqual(['ringing']);
      expect(managerLive.events.map((e) => [e.type, (e.data as { call: { id: string } }).call.id])).toEqual([
        ['call.ringing', c.id],
      ]);
    });
  });

  describe('SMS', () => {
    const messages = async (query = '') =>
      (await json(await call(t, 'GET', `/api/v1/messages?limit=200${query}`, owner()))).data as Record<
        string,
        unknown
      >[];

    it('an incoming message is listed (inbound, E.164, text) and pushed as message.received', async () => {
      const managerLive = await live({ token: manager.accessToken });
      const sid = newMessageSid();
      const d = twilioDelivery(
        fake.authToken,
        smsUrl(conn),
        twilioIncomingMessage({
          accountSid: fake.accountSid,
          from: CUSTOMER,
          to: COMPANY_NUMBER,
          body: 'Hello, is my order ready? 🚚',
          messageSid: sid,
        }),
      );
      const row = await h.deliver(conn, d);
      expect(row).toMatchObject({ kind: 'sms', route: 'sms', eventId: `${sid}:received` });
      const listed = (await messages()).filter((m) => m['providerMessageId'] === sid);
      expect(listed).toEqual([
        {
          id: expect.any(String),
          connectionId: conn,
          provider: 'twilio',
          providerMessageId: sid,
          direction: 'inbound',
          from: CUSTOMER,
          to: COMPANY_NUMBER,
          text: 'Hello, is my order ready? 🚚',
          status: 'received',
          agentId: null,
          sentAt: row.payload.receivedAt,
          createdAt: expect.any(String),
          updatedAt: expect.any(String),
        },
      ]);
      await managerLive.waitFor(1);
      await sleep(100);
      expect(managerLive.events).toHaveLength(1);
      expect(managerLive.events[0]).toMatchObject({
        type: 'message.received',
        companyId: co.id,
        agentId: null,
        data: { message: listed[0] },
      });
    });

    it('the answer to the messaging webhook is TwiML (Twilio expects an XML document, not JSON)', async () => {
      const d = twilioDelivery(
        fake.authToken,
        smsUrl(conn),
        twilioIncomingMessage({ accountSid: fake.accountSid, from: CUSTOMER, to: COMPANY_NUMBER, body: 'ping' }),
      );
      const res = await h.post(d);
      const text = await res.text();
      await h.settled(conn, eventIdOf(d));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^(text|application)\/xml\b/);
      // An empty TwiML document: receive, reply nothing.
      expect(text).toMatch(/^(<\?xml[^>]*\?>\s*)?<Response\s*(\/>|>\s*<\/Response>)\s*$/);
    });

    it('status callbacks of an outbound message: recorded once (one message.received), later statuses update it', async () => {
      const managerLive = await live({ token: manager.accessToken });
      const sid = newMessageSid();
      const status = (s: string) =>
        twilioDelivery(
          fake.authToken,
          smsUrl(conn),
          twilioMessageStatus({
            accountSid: fake.accountSid,
            messageSid: sid,
            from: COMPANY_NUMBER,
            to: CUSTOMER,
            status: s,
          }),
        );
      await h.deliver(conn, status('sent'));
      const [sent] = (await messages()).filter((m) => m['providerMessageId'] === sid);
      expect(sent).toMatchObject({
        direction: 'outbound',
        from: COMPANY_NUMBER,
        to: CUSTOMER,
        text: '',
        status: 'sent',
      });

      await h.deliver(conn, status('delivered'));
      const [delivered] = (await messages()).filter((m) => m['providerMessageId'] === sid);
      expect(delivered).toMatchObject({ id: sent!['id'], direction: 'outbound', status: 'delivered' });
      expect((await messages()).filter((m) => m['providerMessageId'] === sid)).toHaveLength(1);

      await managerLive.waitFor(1);
      await sleep(200);
      expect(managerLive.events.map((e) => e.type)).toEqual(['message.received']);
      expect(managerLive.events[0]!.data).toMatchObject({ message: { id: sent!['id'], status: 'sent' } });
    });
  });

  describe('processing after the commit', () => {
    it('a crash between commit and processing: the row stays pending; a restarted instance finishes it', async () => {
      // This instance stops claiming: it stands for one that crashed after the commit.
      await t.app.get(WebhookInboxProcessorService).pause();
      const sid = newCallSid();
      const d = statusCallback({ callSid: sid, status: 'ringing' });
      const res = await h.post(d);
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual({ received: true, duplicate: false });
      const [pending] = await h.rowsOf(conn, eventIdOf(d));
      expect(pending).toMatchObject({ status: 'pending', attempts: 0, processedAt: null });
      expect(await h.callOf(sid)).toBeUndefined();

      // The restart: another instance on the same database, whose workers claim pending rows at
      // once (no lease to expire, no age rule).
      const restarted = await startTestApp({
        databaseUrl: t.db.url,
        env: { TWILIO_BASE_URL: fake.baseUrl },
      });
      try {
        const row = await h.settled(conn, eventIdOf(d));
        expect(row).toMatchObject({ id: pending!.id, status: 'processed', attempts: 1, lastError: null });
        expect(row.processedAt).not.toBeNull();
        const c = await h.getCall((await h.callOf(sid))!.id);
        expect(c).toMatchObject({
          providerCallId: sid,
          connectionId: conn,
          status: 'ringing',
          direction: 'inbound',
          from: CUSTOMER,
          to: COMPANY_NUMBER,
          ringingAt: iso(T0, 0),
        });
        expect(c.timeline.map((e) => e.kind)).toEqual(['ringing']);
      } finally {
        await restarted.close();
      }
    });

    it('a processing failure is recorded with a backoff, and the next attempt applies it', async () => {
      const inbox = t.app.get(WebhookInboxProcessorService);
      await inbox.pause();
      const sid = newCallSid();
      const d = statusCallback({ callSid: sid, status: 'ringing' });
      expect((await h.post(d)).status).toBe(200);
      const [row] = await h.rowsOf(conn, eventIdOf(d));

      // The stored payload cannot be read (as a bug in a mapper would fail it): a row stored
      // without its records (the mapper refused it at ingest) is mapped when processed.
      const [stored] = await query<{ payload: unknown }>(t.db.url, 'SELECT payload FROM webhook_inbox WHERE id = $1', [
        row!.id,
      ]);
      await query(
        t.db.url,
        `UPDATE webhook_inbox SET payload = '{"route":"status"}'::jsonb, records = NULL WHERE id = $1`,
        [row!.id],
      );
      expect(await inbox.drain()).toBe(1);
      const [failed] = await h.rowsOf(conn, eventIdOf(d));
      expect(failed).toMatchObject({
        status: 'pending',
        attempts: 1,
        lastError: 'Stored Twilio webhook has an unexpected shape.',
        processedAt: null,
      });
      expect(await h.callOf(sid)).toBeUndefined();
      // Held for 2^attempts seconds: not claimable again yet.
      expect(await inbox.drain()).toBe(0);
      const [held] = await query<{ wait: number }>(
        t.db.url,
        'SELECT extract(epoch FROM next_attempt_at - now())::float AS wait FROM webhook_inbox WHERE id = $1',
        [row!.id],
      );
      expect(held!.wait).toBeGreaterThan(1);
      expect(held!.wait).toBeLessThanOrEqual(2);

      // Fixed, and the backoff elapsed: the next attempt applies it.
      await query(
        t.db.url,
        `UPDATE webhook_inbox SET payload = $2::jsonb, next_attempt_at = now() - interval '1 second' WHERE id = $1`,
        [row!.id, JSON.stringify(stored!.payload)],
      );
      expect(await inbox.drain()).toBe(1);
      const [done] = await h.rowsOf(conn, eventIdOf(d));
      expect(done).toMatchObject({ status: 'processed', attempts: 2, lastError: null });
      expect(await h.callOf(sid)).toMatchObject({ status: 'ringing', from: CUSTOMER });
    });
  });

  describe('rate limit', () => {
    it('over RATE_LIMIT_WEBHOOK_PER_MIN: 429 with Retry-After, nothing stored', async () => {
      const small = await startTestApp({ env: { TWILIO_BASE_URL: fake.baseUrl, RATE_LIMIT_WEBHOOK_PER_MIN: '3' } });
      try {
        const company = await createCompany(small, 'twilio-rl');
        const connection = await createConnection(small, company, { accountSid: fake.accountSid }, fake.authToken);
        const hs = harness(
          () => small,
          () => ({ token: company.owner.accessToken }),
        );
        const deliveries = Array.from({ length: 4 }, () =>
          statusCallback({ callSid: newCallSid(), status: 'ringing' }, statusUrl(connection)),
        );
        for (const d of deliveries.slice(0, 3)) {
          const res = await hs.post(d);
          expect(res.status).toBe(200);
          expect(res.headers.get('ratelimit-limit')).toBe('3');
        }
        const res = await hs.post(deliveries[3]!);
        await expectProblem(res, 429, 'too-many-requests');
        const retryAfter = Number(res.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(60);
        for (const d of deliveries.slice(0, 3)) await hs.settled(connection, eventIdOf(d));
        const rows = await hs.inbox(connection);
        expect(rows.map((r) => r.eventId).sort()).toEqual(deliveries.slice(0, 3).map(eventIdOf).sort());
        expect(await hs.callOf(deliveries[3]!.params['CallSid'] as string)).toBeUndefined();
      } finally {
        await small.close();
      }
    });
  });

  describe('the webhook inbox API', () => {
    it('lists rows with status, attempts and event id, phone numbers masked; admins only', async () => {
      const sid = newCallSid();
      const d = statusCallback({ callSid: sid, status: 'ringing', sequenceNumber: 1 });
      await h.deliver(conn, d);
      const res = await call(t, 'GET', `/api/v1/webhook-inbox?connectionId=${conn}&status=processed`, owner());
      expect(res.status).toBe(200);
      const page = await json(res);
      const rows = (page.data as InboxRow[]).filter((r) => r.eventId === `${sid}:ringing:1`);
      expect(rows).toEqual([
        {
          id: expect.any(String),
          connectionId: conn,
          provider: 'twilio',
          route: 'status',
          kind: 'call',
          eventId: `${sid}:ringing:1`,
          status: 'processed',
          attempts: 1,
          lastError: null,
          receivedAt: expect.any(String),
          processedAt: expect.any(String),
          payload: {
            route: 'status',
            query: {},
            params: expect.objectContaining({ CallSid: sid, CallStatus: 'ringing', AccountSid: fake.accountSid }),
            receivedAt: expect.any(String),
          },
        },
      ]);
      const row = rows[0]!;
      expect(Date.parse(row.processedAt!)).toBeGreaterThanOrEqual(Date.parse(row.receivedAt));
      expect(row.payload.params['From']).toBe(`+*******${CUSTOMER.slice(-4)}`);
      expect(row.payload.params['Caller']).toBe(`+*******${CUSTOMER.slice(-4)}`);
      expect(row.payload.params['To']).toBe(`+*******${COMPANY_NUMBER.slice(-4)}`);
      const text = JSON.stringify(page);
      expect(text).not.toContain(CUSTOMER);
      expect(text).not.toContain(CUSTOMER.slice(1));
      expect(text).not.toContain(COMPANY_NUMBER);
      expect(text).toContain(CUSTOMER.slice(-4));
      expect((page.data as InboxRow[]).every((r) => r.connectionId === conn && r.status === 'processed')).toBe(true);

      await expectProblem(
        await call(t, 'GET', '/api/v1/webhook-inbox', { token: manager.accessToken }),
        403,
        'forbidden',
      );
      await expectProblem(await call(t, 'GET', '/api/v1/webhook-inbox', asAgent()), 403, 'forbidden');
      // Another company sees none of these rows.
      const theirs = await json(
        await call(t, 'GET', '/api/v1/webhook-inbox?limit=200', { token: other.owner.accessToken }),
      );
      expect(theirs.data).toEqual([]);
    });
  });
});
