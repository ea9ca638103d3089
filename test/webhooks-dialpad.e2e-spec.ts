import { createHash } from 'node:crypto';
import type { InboxItemDto } from '../src/webhooks/inbox/webhook-inbox.dto.js';
import { DataSource } from 'typeorm';
import { SecretBox } from '../src/common/crypto/secret-box.js';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import { PbxConnectionsService } from '../src/pbx/connections/pbx-connections.service.js';
import { ProviderSetupService } from '../src/pbx/connections/provider-setup.service.js';
import { DIALPAD_MAPPED_CALL_STATES } from '../src/pbx/dialpad/dialpad.wire.js';
import {
  buildDialpadCallEvent,
  buildDialpadSmsEvent,
  type CallEventOptions,
  DIALPAD_FAKE_API_KEY,
  DIALPAD_FAKE_CLIENT_ID,
  DIALPAD_FAKE_CLIENT_SECRET,
  DIALPAD_FAKE_USER_ID,
  type DialpadFake,
  type DialpadFakeRequest,
  signDialpadJwt,
  signedDialpadWebhook,
  startDialpadFake,
} from './fakes/dialpad-fake.js';
import { expectProblem, json } from './support/http.js';
import { connect, type LiveClient, sleep } from './support/sockets.js';
import {
  call,
  createAgent,
  createCompany,
  createUser,
  type TestCompany,
  type TestUser,
  unique,
} from './support/tenant.js';
import { startTestApp, TEST_PBX_SECRETS_KEY, TEST_PUBLIC_BASE_URL, type TestApp } from './support/test-app.js';

/** The web app allowed to receive the browser after the OAuth callback. */
const APP_ORIGIN = 'https://app.example.test';
const CUSTOMER = '+15555550123';
/** The agent's Dialpad line (the fake's user phone, the default `internal_number`). */
const LINE = '+15555550100';
const MAIN_SECRET = 'main-webhook-secret-0123456789abcdef';
const OTHER_SECRET = 'other-webhook-secret-0123456789abcdef';

type InboxItem = Omit<InboxItemDto, 'payload'> & { payload: Record<string, unknown> };

interface Connection {
  id: string;
  provider: string;
  name: string;
  settings: Record<string, unknown>;
  secretsSet: string[];
  webhookUrls: Record<string, string>;
}

describe('Dialpad: webhooks, OAuth, subscriptions and click-to-call against the real app', () => {
  let t: TestApp;
  let fake: DialpadFake;
  let co: TestCompany;
  let agentUser: TestUser;
  let agentId: string;
  /** apiKey + webhookSecret: webhooks and click-to-call. */
  let main: Connection;
  /** Another connection of the company with another webhook secret. */
  let other: Connection;
  let socket: LiveClient;
  let seq = 0;

  const owner = () => ({ token: co.owner.accessToken });
  const box = new SecretBox(TEST_PBX_SECRETS_KEY);
  const sql = <T = Record<string, unknown>>(text: string, params: unknown[] = []) =>
    t.app.get(DataSource).query(text, params) as Promise<T[]>;

  /** A fresh Dialpad id (digits), unique within this file. */
  const dialpadId = (base: string) => `${base}${String(++seq).padStart(4, '0')}`;

  async function createConnection(settings: Record<string, unknown>, secrets: Record<string, unknown>) {
    const res = await call(t, 'POST', '/api/v1/pbx-connections', owner(), {
      provider: 'dialpad',
      name: unique('Dialpad'),
      settings,
      secrets,
    });
    const body = await json(res);
    expect({ status: res.status, body }).toMatchObject({ status: 201 });
    return body as Connection;
  }

  async function getConnection(id: string): Promise<Connection> {
    const res = await call(t, 'GET', `/api/v1/pbx-connections/${id}`, owner());
    expect(res.status).toBe(200);
    return (await json(res)) as Connection;
  }

  /** The connection's secrets as stored (opened with the test key). */
  async function storedSecrets(id: string): Promise<{ sealed: string; secrets: Record<string, unknown> }> {
    const [row] = await sql<{ secrets_sealed: string }>('SELECT secrets_sealed FROM pbx_connections WHERE id = $1', [
      id,
    ]);
    return { sealed: row!.secrets_sealed, secrets: box.open<Record<string, unknown>>(row!.secrets_sealed, id) };
  }

  /** POSTs a delivery to the real app (the URL Dialpad would call is the public one; JWTs do not sign URLs). */
  const post = (connectionId: string, body: string, contentType = 'application/jwt') =>
    t.fetch(`/webhooks/dialpad/${connectionId}`, { method: 'POST', headers: { 'content-type': contentType }, body });

  /** A signed delivery, as Dialpad sends it (the JWT as the body, application/jwt). */
  const deliver = (connectionId: string, secret: string, payload: Record<string, unknown>) => {
    const d = signedDialpadWebhook(secret, payload);
    return t.fetch(`/webhooks/dialpad/${connectionId}`, { method: 'POST', headers: d.headers, body: d.body });
  };

  async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 5_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }

  async function inbox(connectionId: string): Promise<InboxItem[]> {
    const res = await call(t, 'GET', `/api/v1/webhook-inbox?connectionId=${connectionId}&limit=200`, owner());
    expect(res.status).toBe(200);
    return (await json(res)).data as InboxItem[];
  }

  /** Waits until the inbox row of an event is processed (fails at once if it failed). */
  function processed(connectionId: string, eventId: string): Promise<InboxItem> {
    return until(`inbox ${eventId} processed`, async () => {
      const row = (await inbox(connectionId)).find((r) => r.eventId === eventId);
      if (row && row.status !== 'pending' && row.status !== 'processed') {
        throw new Error(`inbox row ${eventId} is ${row.status}: ${row.lastError}`);
      }
      return row?.status === 'processed' ? row : undefined;
    });
  }

  const inboxCount = async (connectionId: string) =>
    Number(
      (await sql<{ n: string }>('SELECT count(*) AS n FROM webhook_inbox WHERE connection_id = $1', [connectionId]))[0]!
        .n,
    );
  const callCount = async () =>
    Number((await sql<{ n: string }>('SELECT count(*) AS n FROM calls WHERE company_id = $1', [co.id]))[0]!.n);

  async function callByProviderId(connectionId: string, providerCallId: string) {
    const rows = await sql<{ id: string }>(
      'SELECT id FROM calls WHERE company_id = $1 AND connection_id = $2 AND provider_call_id = $3',
      [co.id, connectionId, providerCallId],
    );
    return rows;
  }

  async function callDetail(id: string) {
    const res = await call(t, 'GET', `/api/v1/calls/${id}`, owner());
    expect(res.status).toBe(200);
    return json(res);
  }

  /** The events the agent's socket got about one call (or voicemail / message), waiting for `n` of them. */
  async function eventsAbout(match: (e: EventEnvelope) => boolean, n: number): Promise<EventEnvelope[]> {
    const got = await until(`${n} socket events`, async () => {
      const found = socket.events.filter(match);
      return found.length >= n ? found : undefined;
    });
    await sleep(100); // and no more than that
    expect(socket.events.filter(match)).toHaveLength(got.length);
    return got;
  }
  const ofCall = (callId: string) => (e: EventEnvelope) =>
    e.type.startsWith('call.') && (e.data as { call?: { id?: string } }).call?.id === callId;

  /** Fake requests made since `from` (an index into fake.requests). */
  const requestsSince = (from: number, path?: string): DialpadFakeRequest[] =>
    fake.requests.slice(from).filter((r) => path === undefined || r.path === path);

  const inboundEvent = (o: CallEventOptions) =>
    buildDialpadCallEvent({ external: CUSTOMER, internal: LINE, contactName: 'Carla Customer', ...o });
  const callEventId = (callId: string, state: string, at: number) => `call:${callId}:${state}:${at}`;

  beforeAll(async () => {
    fake = await startDialpadFake();
    t = await startTestApp({
      env: {
        DIALPAD_BASE_URL: fake.baseUrl,
        DIALPAD_SANDBOX_BASE_URL: fake.baseUrl,
        DIALPAD_CLIENT_ID: DIALPAD_FAKE_CLIENT_ID,
        DIALPAD_CLIENT_SECRET: DIALPAD_FAKE_CLIENT_SECRET,
        CORS_ORIGINS: APP_ORIGIN,
        PBX_HTTP_TIMEOUT_MS: '3000',
      },
    });
    co = await createCompany(t, 'dialpad');
    agentUser = await createUser(t, co, 'agent');
    agentId = (await createAgent(t, co, { userId: agentUser.id, extension: '2001' })).id;
    const mapping = await call(t, 'POST', '/api/v1/user-mappings', owner(), {
      provider: 'dialpad',
      externalId: DIALPAD_FAKE_USER_ID,
      agentId,
    });
    expect(mapping.status).toBe(201);
    main = await createConnection({}, { apiKey: DIALPAD_FAKE_API_KEY, webhookSecret: MAIN_SECRET });
    other = await createConnection({}, { apiKey: DIALPAD_FAKE_API_KEY, webhookSecret: OTHER_SECRET });
    socket = await connect(t.url, { token: agentUser.accessToken });
    expect(socket.ready).toMatchObject({ companyId: co.id, agentId });
  });
  afterAll(async () => {
    socket?.close();
    await t?.close();
    await fake?.close();
  });

  describe('webhook events', () => {
    it('an inbound call ringing at the agent, answered, hung up: the record, its timeline and the screen pop', async () => {
      const callId = dialpadId('61000000000');
      const t0 = Date.now() - 120_000;
      const ringing = inboundEvent({ callId, state: 'ringing', at: t0 });
      const connected = inboundEvent({ callId, state: 'connected', at: t0 + 5_000, dateConnected: t0 + 5_000 });
      const hangup = inboundEvent({
        callId,
        state: 'hangup',
        at: t0 + 65_000,
        dateConnected: t0 + 5_000,
        dateEnded: t0 + 65_000,
      });

      // Ringing: the JWT as the body, application/jwt.
      const r1 = await deliver(main.id, MAIN_SECRET, ringing);
      expect({ status: r1.status, body: await json(r1) }).toEqual({
        status: 200,
        body: { received: true, duplicate: false },
      });
      const row = await processed(main.id, callEventId(callId, 'ringing', t0));
      expect(row).toMatchObject({
        connectionId: main.id,
        provider: 'dialpad',
        route: '',
        kind: 'call',
        status: 'processed',
        attempts: 1,
        lastError: null,
      });
      // The listing masks phone numbers to their last 4 digits.
      expect(row.payload).toMatchObject({ external_number: '+*******0123', state: 'ringing' });
      const [created] = await callByProviderId(main.id, callId);
      expect(created).toBeDefined();
      const id = created!.id;
      const afterRing = await callDetail(id);
      expect(afterRing).toMatchObject({
        id,
        provider: 'dialpad',
        connectionId: main.id,
        providerCallId: callId,
        direction: 'inbound',
        status: 'ringing',
        from: CUSTOMER,
        to: LINE,
        callerName: 'Carla Customer',
        agentId,
        ringingAt: new Date(t0).toISOString(),
        answeredAt: null,
        endedAt: null,
        endReason: null,
      });

      // Connected: the JWT as a JSON string, application/json.
      const jwt = signedDialpadWebhook(MAIN_SECRET, connected).body;
      const r2 = await post(main.id, JSON.stringify(jwt), 'application/json');
      expect({ status: r2.status, body: await json(r2) }).toEqual({
        status: 200,
        body: { received: true, duplicate: false },
      });
      await processed(main.id, callEventId(callId, 'connected', t0 + 5_000));
      expect(await callDetail(id)).toMatchObject({
        status: 'in_progress',
        answeredAt: new Date(t0 + 5_000).toISOString(),
        endedAt: null,
      });

      const r3 = await deliver(main.id, MAIN_SECRET, hangup);
      expect(r3.status).toBe(200);
      await processed(main.id, callEventId(callId, 'hangup', t0 + 65_000));

      const done = await callDetail(id);
      expect(done).toMatchObject({
        id,
        provider: 'dialpad',
        connectionId: main.id,
        providerCallId: callId,
        direction: 'inbound',
        status: 'completed',
        from: CUSTOMER,
        to: LINE,
        callerName: 'Carla Customer',
        agentId,
        startedAt: new Date(t0).toISOString(),
        ringingAt: new Date(t0).toISOString(),
        answeredAt: new Date(t0 + 5_000).toISOString(),
        endedAt: new Date(t0 + 65_000).toISOString(),
        ringSeconds: 5,
        talkSeconds: 60,
        durationSeconds: 65,
        // Dialpad gives no hangup cause; the end reason is what the call ended as.
        endReason: 'completed',
        hangupCause: null,
        recordingUrl: null,
      });
      expect(done.timeline.map((e: { kind: string; at: string }) => [e.kind, e.at])).toEqual([
        ['ringing', new Date(t0).toISOString()],
        ['answered', new Date(t0 + 5_000).toISOString()],
        ['ended', new Date(t0 + 65_000).toISOString()],
      ]);
      expect(done.timeline[0].data).toMatchObject({ kind: 'ringing', direction: 'inbound', agentId });
      expect((await call(t, 'GET', '/api/v1/calls?status=completed', owner()).then(json)).data).toEqual(
        expect.arrayContaining([expect.objectContaining({ id, providerCallId: callId })]),
      );

      // The agent's socket: the screen pop for its agent, then the answer and the end.
      const events = await eventsAbout(ofCall(id), 3);
      expect(events.map((e) => [e.type, e.agentId, e.companyId])).toEqual([
        ['call.ringing', agentId, co.id],
        ['call.answered', agentId, co.id],
        ['call.ended', agentId, co.id],
      ]);
      expect(events[0]!.data).toMatchObject({
        call: {
          id,
          providerCallId: callId,
          status: 'ringing',
          direction: 'inbound',
          from: CUSTOMER,
          to: LINE,
          agentId,
        },
        contact: null,
      });
      expect(events[1]!.data).toMatchObject({ call: { id, status: 'in_progress', agentId } });
      expect(events[2]!.data).toMatchObject({ call: { id, status: 'completed', talkSeconds: 60, agentId } });
    });

    it('a call nobody answers ends missed', async () => {
      const callId = dialpadId('61000000001');
      const t0 = Date.now() - 100_000;
      await deliver(main.id, MAIN_SECRET, inboundEvent({ callId, state: 'ringing', at: t0 }));
      await processed(main.id, callEventId(callId, 'ringing', t0));
      const missed = inboundEvent({ callId, state: 'missed', at: t0 + 30_000, dateEnded: t0 + 30_000 });
      expect((await deliver(main.id, MAIN_SECRET, missed)).status).toBe(200);
      await processed(main.id, callEventId(callId, 'missed', t0 + 30_000));

      const [row] = await callByProviderId(main.id, callId);
      const c = await callDetail(row!.id);
      expect(c).toMatchObject({
        direction: 'inbound',
        status: 'missed',
        from: CUSTOMER,
        to: LINE,
        agentId,
        ringingAt: new Date(t0).toISOString(),
        answeredAt: null,
        endedAt: new Date(t0 + 30_000).toISOString(),
        ringSeconds: 30,
        talkSeconds: null,
        durationSeconds: 30,
        endReason: 'missed',
        hangupCause: null,
      });
      expect(c.timeline.map((e: { kind: string }) => e.kind)).toEqual(['ringing', 'ended']);
      const events = await eventsAbout(ofCall(row!.id), 2);
      expect(events.map((e) => [e.type, e.agentId, (e.data as { call: { status: string } }).call.status])).toEqual([
        ['call.ringing', agentId, 'ringing'],
        ['call.ended', agentId, 'missed'],
      ]);
    });

    it('a voicemail: the call ends voicemail, the voicemail is listed once with its transcription, then deleted', async () => {
      const callId = dialpadId('61000000002');
      const t0 = Date.now() - 90_000;
      const link = `https://dialpad.example.test/voicemail/${callId}.mp3`;
      await deliver(main.id, MAIN_SECRET, inboundEvent({ callId, state: 'ringing', at: t0 }));
      await processed(main.id, callEventId(callId, 'ringing', t0));
      const voicemail = inboundEvent({
        callId,
        state: 'voicemail',
        at: t0 + 20_000,
        dateEnded: t0 + 20_000,
        voicemailLink: link,
        voicemailDurationMs: 14_000,
      });
      const vmRes = await deliver(main.id, MAIN_SECRET, voicemail);
      expect(vmRes.status).toBe(200);
      expect((await processed(main.id, callEventId(callId, 'voicemail', t0 + 20_000))).kind).toBe('voicemail');
      const uploaded = inboundEvent({
        callId,
        state: 'voicemail_uploaded',
        at: t0 + 40_000,
        dateEnded: t0 + 20_000,
        voicemailLink: link,
        voicemailDurationMs: 14_000,
        transcription: 'Hi, this is Carla, please call me back.',
      });
      expect((await deliver(main.id, MAIN_SECRET, uploaded)).status).toBe(200);
      await processed(main.id, callEventId(callId, 'voicemail_uploaded', t0 + 40_000));

      const [row] = await callByProviderId(main.id, callId);
      const id = row!.id;
      const c = await callDetail(id);
      expect(c).toMatchObject({
        direction: 'inbound',
        status: 'voicemail',
        from: CUSTOMER,
        to: LINE,
        agentId,
        answeredAt: null,
        endedAt: new Date(t0 + 20_000).toISOString(),
        endReason: 'voicemail',
        hangupCause: null,
      });
      expect(c.timeline.map((e: { kind: string }) => e.kind)).toEqual(['ringing', 'ended', 'updated']);

      const list = await json(await call(t, 'GET', '/api/v1/voicemails', owner()));
      const mine = list.data.filter((v: { callId: string }) => v.callId === id);
      expect(mine).toHaveLength(1);
      const vm = mine[0];
      expect(vm).toEqual({
        id: expect.any(String),
        connectionId: main.id,
        provider: 'dialpad',
        providerVoicemailId: `call:${callId}`,
        callId: id,
        agentId,
        from: CUSTOMER,
        to: LINE,
        durationSeconds: 14,
        recordingUrl: link,
        transcription: 'Hi, this is Carla, please call me back.',
        receivedAt: new Date(t0 + 20_000).toISOString(),
        createdAt: expect.any(String),
      });
      // The agent sees its own voicemail too.
      const asAgent = await json(await call(t, 'GET', '/api/v1/voicemails', { token: agentUser.accessToken }));
      expect(asAgent.data.map((v: { id: string }) => v.id)).toContain(vm.id);

      // voicemail.received once (the upload completed the same voicemail without announcing it again).
      const announced = await eventsAbout(
        (e) => e.type === 'voicemail.received' && (e.data as { voicemail: { id: string } }).voicemail.id === vm.id,
        1,
      );
      expect(announced[0]).toMatchObject({
        type: 'voicemail.received',
        agentId,
        companyId: co.id,
        data: { voicemail: { id: vm.id, callId: id, from: CUSTOMER, to: LINE, recordingUrl: link, agentId } },
      });
      const callEvents = await eventsAbout(ofCall(id), 2);
      expect(callEvents.map((e) => e.type)).toEqual(['call.ringing', 'call.ended']);

      const got = await call(t, 'GET', `/api/v1/voicemails/${vm.id}`, owner());
      expect(got.status).toBe(200);
      expect(await json(got)).toEqual(vm);
      const del = await call(t, 'DELETE', `/api/v1/voicemails/${vm.id}`, owner());
      expect(del.status).toBe(204);
      await expectProblem(await call(t, 'GET', `/api/v1/voicemails/${vm.id}`, owner()), 404, 'not-found');
      await expectProblem(await call(t, 'DELETE', `/api/v1/voicemails/${vm.id}`, owner()), 404, 'not-found');
    });

    it('an SMS event: listed in /api/v1/messages and announced as message.received', async () => {
      const smsId = dialpadId('62000000000');
      const at = Date.now() - 80_000;
      const sms = buildDialpadSmsEvent({ id: smsId, at, text: 'Can you call me back about my order?' });
      const res = await deliver(main.id, MAIN_SECRET, sms);
      expect({ status: res.status, body: await json(res) }).toEqual({
        status: 200,
        body: { received: true, duplicate: false },
      });
      expect((await processed(main.id, `sms:${smsId}:pending`)).kind).toBe('sms');

      const list = await json(await call(t, 'GET', '/api/v1/messages', owner()));
      const mine = list.data.filter((m: { providerMessageId: string }) => m.providerMessageId === smsId);
      expect(mine).toEqual([
        {
          id: expect.any(String),
          connectionId: main.id,
          provider: 'dialpad',
          providerMessageId: smsId,
          direction: 'inbound',
          from: CUSTOMER,
          to: LINE,
          text: 'Can you call me back about my order?',
          status: 'pending',
          agentId,
          sentAt: new Date(at).toISOString(),
          createdAt: expect.any(String),
          updatedAt: expect.any(String),
        },
      ]);
      const announced = await eventsAbout(
        (e) => e.type === 'message.received' && (e.data as { message: { id: string } }).message.id === mine[0].id,
        1,
      );
      expect(announced[0]).toMatchObject({
        type: 'message.received',
        agentId,
        companyId: co.id,
        data: { message: { providerMessageId: smsId, direction: 'inbound', from: CUSTOMER, text: mine[0].text } },
      });
    });
  });

  describe('verification', () => {
    const ringingOf = (callId: string, at = Date.now()) => inboundEvent({ callId, state: 'ringing', at });

    async function refused(res: Response): Promise<void> {
      await expectProblem(res, 401, 'invalid-signature');
    }

    it('refuses a bad signature, a malformed JWT, alg none, and another connection’s secret: 401, nothing stored', async () => {
      const before = await inboxCount(main.id);
      const calls = await callCount();
      const claims = ringingOf(dialpadId('61000000003'));

      await refused(await post(main.id, signDialpadJwt('not-the-webhook-secret-at-all', claims)));
      // A signature of the right secret over other content.
      const good = signDialpadJwt(MAIN_SECRET, claims);
      const [h, , s] = good.split('.');
      const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, state: 'connected' })).toString('base64url')}.${s}`;
      await refused(await post(main.id, tampered));
      await refused(await post(main.id, 'abc.def'));
      // alg none: with the HMAC still attached, and unsigned (empty signature).
      const none = signDialpadJwt(MAIN_SECRET, claims, { alg: 'none', typ: 'JWT' });
      await refused(await post(main.id, none));
      await refused(await post(main.id, `${none.split('.').slice(0, 2).join('.')}.`));
      // Another algorithm with the same secret.
      await refused(await post(main.id, signDialpadJwt(MAIN_SECRET, claims, { alg: 'HS384', typ: 'JWT' })));
      // Signed with the other connection's secret, posted to this one.
      await refused(await post(main.id, signDialpadJwt(OTHER_SECRET, claims)));
      // An unsigned JSON event.
      await refused(await post(main.id, JSON.stringify(claims), 'application/json'));

      expect(await inboxCount(main.id)).toBe(before);
      expect(await callCount()).toBe(calls);

      // The same token is good where it belongs; a JWT expired within the leeway is still accepted.
      const otherRes = await post(other.id, signDialpadJwt(OTHER_SECRET, claims));
      expect({ status: otherRes.status, body: await json(otherRes) }).toEqual({
        status: 200,
        body: { received: true, duplicate: false },
      });
      const withinSkew = signedDialpadWebhook(MAIN_SECRET, ringingOf(dialpadId('61000000003')), {
        nowMs: Date.now() - 75_000,
        expSeconds: 60,
      });
      expect((await post(main.id, withinSkew.body)).status).toBe(200);
      expect(await inboxCount(main.id)).toBe(before + 1);
    });

    it('refuses a correctly signed but stale event 403 stale-webhook, nothing stored: expired, no time at all, dated 2020, from the future', async () => {
      const before = await inboxCount(main.id);
      const stale = async (body: string, why: RegExp) => {
        const problem = await expectProblem(await post(main.id, body), 403, 'stale-webhook');
        expect(problem.detail).toMatch(why);
      };
      const claims = ringingOf(dialpadId('61000000005'));
      // exp 10 minutes ago (beyond WEBHOOK_CLOCK_LEEWAY_MS).
      const expired = signedDialpadWebhook(MAIN_SECRET, claims, { nowMs: Date.now() - 11 * 60_000, expSeconds: 60 });
      await stale(expired.body, /expired/);
      // No exp, no iat and no event_timestamp: a signed event with no time could be replayed for ever.
      const { event_timestamp: _t, ...timeless } = claims;
      await stale(signDialpadJwt(MAIN_SECRET, timeless), /no time/);
      // event_timestamp (epoch ms, Dialpad's CallProto) in 2020, and 2 minutes in the future.
      await stale(
        signDialpadJwt(MAIN_SECRET, { ...claims, event_timestamp: Date.parse('2020-06-01T12:00:00Z') }),
        /older/,
      );
      await stale(signDialpadJwt(MAIN_SECRET, { ...claims, event_timestamp: Date.now() + 120_000 }), /future/);
      // iat, when present, is judged instead: 10 minutes old.
      await stale(signDialpadJwt(MAIN_SECRET, { ...claims, iat: Math.floor(Date.now() / 1000) - 600 }), /iat/);
      expect(await inboxCount(main.id)).toBe(before);
      expect(await callByProviderId(main.id, dialpadId('61000000005'))).toEqual([]);

      // Fresh: 4 minutes old by event_timestamp, or with a fresh iat: accepted and stored.
      const fresh = await post(
        main.id,
        signDialpadJwt(MAIN_SECRET, { ...claims, event_timestamp: Date.now() - 240_000 }),
      );
      expect({ status: fresh.status, body: await json(fresh) }).toEqual({
        status: 200,
        body: { received: true, duplicate: false },
      });
      const withIat = ringingOf(dialpadId('61000000006'));
      const iatOk = await post(
        main.id,
        signDialpadJwt(MAIN_SECRET, { ...withIat, iat: Math.floor(Date.now() / 1000) }),
      );
      expect(iatOk.status).toBe(200);
      expect(await inboxCount(main.id)).toBe(before + 2);
    });

    it('answers a verified event that cannot be read 400 malformed-webhook, and unknown connections 404', async () => {
      const before = await inboxCount(main.id);
      const noState = { call_id: 6100000000009999, direction: 'inbound', event_timestamp: Date.now() };
      await expectProblem(await post(main.id, signDialpadJwt(MAIN_SECRET, noState)), 400, 'malformed-webhook');
      expect(await inboxCount(main.id)).toBe(before);
      // A NUL inside the signed JWT passes the edge's checks (it is base64url there) and reaches us
      // only once decoded: refused before PostgreSQL, which stores no NUL in jsonb.
      const nul = { ...ringingOf(dialpadId('61000000005')), contact: { name: 'Ada\u0000Lovelace' } };
      const nulProblem = await expectProblem(
        await post(main.id, signDialpadJwt(MAIN_SECRET, nul)),
        400,
        'malformed-webhook',
      );
      expect(nulProblem.detail).toContain('NUL');
      expect(await inboxCount(main.id)).toBe(before);
      const claims = ringingOf(dialpadId('61000000004'));
      await expectProblem(
        await post('00000000-0000-4000-8000-000000000000', signDialpadJwt(MAIN_SECRET, claims)),
        404,
        'not-found',
      );
      const wrongProvider = await t.fetch(`/webhooks/netsapiens/${main.id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/jwt' },
        body: signDialpadJwt(MAIN_SECRET, claims),
      });
      await expectProblem(wrongProvider, 404, 'not-found');
    });

    it('a replayed delivery is answered 200 duplicate:true and processed once', async () => {
      const callId = dialpadId('61000000005');
      const at = Date.now() - 70_000;
      const delivery = signedDialpadWebhook(MAIN_SECRET, inboundEvent({ callId, state: 'ringing', at }));
      const send = () => post(main.id, delivery.body);
      const first = await send();
      expect(await json(first)).toEqual({ received: true, duplicate: false });
      const row = await processed(main.id, callEventId(callId, 'ringing', at));
      const second = await send();
      expect({ status: second.status, body: await json(second) }).toEqual({
        status: 200,
        body: { received: true, duplicate: true },
      });
      // Also when the replay comes as a JSON string.
      const third = await post(main.id, JSON.stringify(delivery.body), 'application/json');
      expect(await json(third)).toEqual({ received: true, duplicate: true });
      await sleep(150);

      const rows = (await inbox(main.id)).filter((r) => r.eventId === callEventId(callId, 'ringing', at));
      expect(rows.map((r) => [r.id, r.status, r.attempts])).toEqual([[row.id, 'processed', 1]]);
      const calls = await callByProviderId(main.id, callId);
      expect(calls).toHaveLength(1);
      const c = await callDetail(calls[0]!.id);
      expect(c.timeline.map((e: { kind: string }) => e.kind)).toEqual(['ringing']);
      const events = await eventsAbout(ofCall(c.id), 1);
      expect(events.map((e) => e.type)).toEqual(['call.ringing']);
    });
  });

  describe('OAuth', () => {
    async function authorize(connectionId: string, query = '') {
      return t.fetch(`/api/v1/pbx-connections/${connectionId}/dialpad/authorize${query}`, {
        headers: { authorization: `Bearer ${co.owner.accessToken}` },
        redirect: 'manual',
      });
    }

    /** Starts the flow and plays the browser step at the fake: the state and the code to call back with. */
    async function consent(connectionId: string, query = ''): Promise<{ state: string; code: string; url: URL }> {
      const res = await authorize(connectionId, query);
      expect(res.status).toBe(302);
      const url = new URL(res.headers.get('location')!);
      const code = unique('code');
      fake.issueCode({
        code,
        codeChallenge: url.searchParams.get('code_challenge')!,
        redirectUri: url.searchParams.get('redirect_uri')!,
      });
      return { state: url.searchParams.get('state')!, code, url };
    }

    const callback = (params: Record<string, string>) =>
      t.fetch(`/oauth/dialpad/callback?${new URLSearchParams(params).toString()}`, { redirect: 'manual' });

    it('authorize redirects to Dialpad with state and PKCE; the callback stores the tokens sealed; the state is single-use', async () => {
      const conn = await createConnection({}, { webhookSecret: 'oauth-webhook-secret-0123456789' });
      const started = Date.now();
      const res = await authorize(conn.id);
      expect(res.status).toBe(302);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const location = res.headers.get('location')!;
      const body = await json(res);
      expect(body).toEqual({ authorizeUrl: location, expiresAt: expect.any(String) });
      const expiresIn = Date.parse(body.expiresAt) - started;
      expect(expiresIn).toBeGreaterThan(9 * 60_000);
      expect(expiresIn).toBeLessThanOrEqual(10 * 60_000 + 5_000);
      // For a browser's fetch (which cannot read a redirect to another site): the same as 200.
      const plain = await authorize(conn.id, '?redirect=false');
      expect(plain.status).toBe(200);
      expect(plain.headers.get('location')).toBeNull();
      const plainBody = await json(plain);
      expect(new URL(plainBody.authorizeUrl).searchParams.get('state')).not.toBe(
        new URL(location).searchParams.get('state'),
      );
      expect(`${new URL(plainBody.authorizeUrl).origin}${new URL(plainBody.authorizeUrl).pathname}`).toBe(
        `${fake.baseUrl}/oauth2/authorize`,
      );
      const url = new URL(location);
      expect(`${url.origin}${url.pathname}`).toBe(`${fake.baseUrl}/oauth2/authorize`);
      const q = Object.fromEntries(url.searchParams);
      expect(q).toEqual({
        response_type: 'code',
        client_id: DIALPAD_FAKE_CLIENT_ID,
        redirect_uri: `${TEST_PUBLIC_BASE_URL}/oauth/dialpad/callback`,
        state: expect.stringMatching(/^[A-Za-z0-9_-]{32,}$/),
        code_challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        code_challenge_method: 'S256',
      });

      fake.issueCode({ code: 'the-code', codeChallenge: q.code_challenge!, redirectUri: q.redirect_uri! });
      const from = fake.requests.length;
      const done = await callback({ code: 'the-code', state: q.state! });
      expect({ status: done.status, body: await json(done) }).toEqual({
        status: 200,
        body: { connected: true, connectionId: conn.id },
      });
      const [exchange] = requestsSince(from, '/oauth2/token');
      expect(exchange!.body).toEqual({
        grant_type: 'authorization_code',
        code: 'the-code',
        code_verifier: expect.any(String),
        redirect_uri: `${TEST_PUBLIC_BASE_URL}/oauth/dialpad/callback`,
        client_id: DIALPAD_FAKE_CLIENT_ID,
        client_secret: DIALPAD_FAKE_CLIENT_SECRET,
      });
      const verifier = (exchange!.body as { code_verifier: string }).code_verifier;
      expect(createHash('sha256').update(verifier).digest('base64url')).toBe(q.code_challenge);

      const after = await getConnection(conn.id);
      expect(after.settings).toEqual({ environment: 'production', auth: 'oauth' });
      expect(after.secretsSet).toEqual(['accessToken', 'expiresAt', 'refreshToken', 'webhookSecret']);
      const { sealed, secrets } = await storedSecrets(conn.id);
      expect(secrets).toEqual({
        webhookSecret: 'oauth-webhook-secret-0123456789',
        accessToken: expect.stringMatching(/^at-/),
        refreshToken: expect.stringMatching(/^rt-/),
        expiresAt: expect.any(String),
      });
      expect(fake.validTokens.has(secrets.accessToken as string)).toBe(true);
      const expiry = Date.parse(secrets.expiresAt as string) - Date.now();
      expect(expiry).toBeGreaterThan(3_500_000);
      expect(expiry).toBeLessThanOrEqual(3_600_000);
      for (const value of [secrets.accessToken, secrets.refreshToken] as string[]) {
        expect(sealed).not.toContain(value);
        expect(JSON.stringify(after)).not.toContain(value);
        expect(JSON.stringify(await json(await call(t, 'GET', '/api/v1/pbx-connections', owner())))).not.toContain(
          value,
        );
      }

      // The state is spent: the same callback again, an unknown state, no state.
      await expectProblem(await callback({ code: 'the-code', state: q.state! }), 400, 'invalid-oauth-state');
      await expectProblem(await callback({ code: 'the-code', state: 'x'.repeat(43) }), 400, 'invalid-oauth-state');
      await expectProblem(await callback({ code: 'the-code' }), 400, 'invalid-oauth-state');
      expect(requestsSince(from, '/oauth2/token')).toHaveLength(1);
      expect((await storedSecrets(conn.id)).secrets).toEqual(secrets);
    });

    it('a refusal at Dialpad is 400 oauth-denied (and spends the state); returnTo must be under CORS_ORIGINS', async () => {
      const conn = await createConnection({}, {});
      const { state } = await consent(conn.id);
      const from = fake.requests.length;
      await expectProblem(await callback({ error: 'access_denied', state }), 400, 'oauth-denied');
      await expectProblem(await callback({ code: 'late', state }), 400, 'invalid-oauth-state');
      expect(requestsSince(from)).toHaveLength(0);
      const unchanged = await getConnection(conn.id);
      expect(unchanged.settings).toEqual({ environment: 'production', auth: 'api_key' });
      expect(unchanged.secretsSet).toEqual([]);

      for (const returnTo of ['https://evil.example.com/settings', `${APP_ORIGIN}.evil.example.com/x`]) {
        await expectProblem(
          await authorize(conn.id, `?returnTo=${encodeURIComponent(returnTo)}`),
          400,
          'validation-failed',
        );
      }

      // Under an allowed origin: the callback sends the browser back there.
      const ok = await consent(conn.id, `?returnTo=${encodeURIComponent(`${APP_ORIGIN}/settings/phone`)}`);
      const back = await callback({ code: ok.code, state: ok.state });
      expect(back.status).toBe(302);
      expect(back.headers.get('location')).toBe(`${APP_ORIGIN}/settings/phone?dialpad=connected`);
      expect(await json(back)).toEqual({ connected: true, connectionId: conn.id });
      expect((await getConnection(conn.id)).settings).toMatchObject({ auth: 'oauth' });
    });

    it('refreshes a token near expiry (sweep and on use); the new token is the one used; deauthorize revokes, and with Dialpad down changes nothing', async () => {
      const conn = await createConnection({}, {});
      const ok = await consent(conn.id);
      expect((await callback({ code: ok.code, state: ok.state })).status).toBe(200);
      const first = (await storedSecrets(conn.id)).secrets;
      const connections = t.app.get(PbxConnectionsService);
      const setup = t.app.get(ProviderSetupService);
      const expireIn = (ms: number) =>
        connections.withLocked(co.id, conn.id, async () => ({
          secrets: { expiresAt: new Date(Date.now() + ms).toISOString() },
        }));

      // Not due: the sweep leaves it alone.
      let from = fake.requests.length;
      expect(await setup.refreshDue()).toBe(0);
      expect(requestsSince(from, '/oauth2/token')).toHaveLength(0);

      // Due within the sweep's 5 minutes.
      await expireIn(60_000);
      from = fake.requests.length;
      expect(await setup.refreshDue()).toBe(1);
      const grants = requestsSince(from, '/oauth2/token');
      expect(grants.map((r) => r.body)).toEqual([
        {
          grant_type: 'refresh_token',
          refresh_token: first.refreshToken,
          client_id: DIALPAD_FAKE_CLIENT_ID,
          client_secret: DIALPAD_FAKE_CLIENT_SECRET,
        },
      ]);
      const second = (await storedSecrets(conn.id)).secrets;
      expect(second.accessToken).not.toBe(first.accessToken);
      expect(second.refreshToken).not.toBe(first.refreshToken);
      expect(Date.parse(second.expiresAt as string) - Date.now()).toBeGreaterThan(3_500_000);
      expect(fake.validTokens.has(first.accessToken as string)).toBe(false);

      // The next API call uses the new token.
      from = fake.requests.length;
      const c2c = await call(t, 'POST', '/api/v1/calls/click-to-call', owner(), {
        to: '+15555550142',
        agentId,
        connectionId: conn.id,
      });
      expect(c2c.status).toBe(202);
      expect(requestsSince(from).map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
        ['POST', '/api/v2/call', `Bearer ${second.accessToken}`],
      ]);

      // Expired already: refreshed on use, before the request.
      await expireIn(-1_000);
      from = fake.requests.length;
      const again = await call(t, 'POST', '/api/v1/calls/click-to-call', owner(), {
        to: '+15555550143',
        agentId,
        connectionId: conn.id,
      });
      expect(again.status).toBe(202);
      const third = (await storedSecrets(conn.id)).secrets;
      expect(third.accessToken).not.toBe(second.accessToken);
      expect(requestsSince(from).map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
        ['POST', '/oauth2/token', undefined],
        ['POST', '/api/v2/call', `Bearer ${third.accessToken}`],
      ]);

      // Deauthorize with Dialpad down: 503, the tokens stay.
      fake.setDown(true);
      try {
        await expectProblem(
          await call(t, 'POST', `/api/v1/pbx-connections/${conn.id}/dialpad/deauthorize`, owner()),
          503,
          'pbx-unavailable',
        );
      } finally {
        fake.setDown(false);
      }
      expect((await storedSecrets(conn.id)).secrets).toEqual(third);
      expect((await getConnection(conn.id)).secretsSet).toEqual(['accessToken', 'expiresAt', 'refreshToken']);

      from = fake.requests.length;
      const res = await call(t, 'POST', `/api/v1/pbx-connections/${conn.id}/dialpad/deauthorize`, owner());
      expect({ status: res.status, body: await json(res) }).toEqual({ status: 200, body: { deauthorized: true } });
      expect(requestsSince(from).map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
        ['POST', '/oauth2/deauthorize', `Bearer ${third.accessToken}`],
      ]);
      expect(fake.validTokens.has(third.accessToken as string)).toBe(false);
      const gone = await getConnection(conn.id);
      expect(gone.secretsSet).toEqual([]);
      expect(gone.settings).toEqual({ environment: 'production', auth: 'oauth' });
      expect((await storedSecrets(conn.id)).secrets).toEqual({});

      // Without tokens, calls through it are refused before reaching Dialpad.
      from = fake.requests.length;
      const calls = await callCount();
      await expectProblem(
        await call(t, 'POST', '/api/v1/calls/click-to-call', owner(), {
          to: '+15555550144',
          agentId,
          connectionId: conn.id,
        }),
        409,
        'connection-incomplete',
      );
      expect(requestsSince(from)).toHaveLength(0);
      expect(await callCount()).toBe(calls);
    });
  });

  describe('subscribe', () => {
    it('creates the webhook and the call and SMS subscriptions; events signed with that secret are accepted', async () => {
      const conn = await createConnection({}, { apiKey: DIALPAD_FAKE_API_KEY });
      const hookUrl = `${TEST_PUBLIC_BASE_URL}/webhooks/dialpad/${conn.id}`;
      expect(conn.webhookUrls).toEqual({ events: hookUrl });
      let from = fake.requests.length;
      const res = await call(t, 'POST', `/api/v1/pbx-connections/${conn.id}/dialpad/subscribe`, owner());
      expect(res.status).toBe(200);
      const ids = await json(res);
      expect(ids).toEqual({
        hookUrl,
        webhookId: expect.stringMatching(/^\d+$/),
        callSubscriptionId: expect.stringMatching(/^\d+$/),
        smsSubscriptionId: expect.stringMatching(/^\d+$/),
      });
      const made = requestsSince(from);
      expect(made.map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
        ['POST', '/api/v2/webhooks', `Bearer ${DIALPAD_FAKE_API_KEY}`],
        ['POST', '/api/v2/subscriptions/call', `Bearer ${DIALPAD_FAKE_API_KEY}`],
        ['POST', '/api/v2/subscriptions/sms', `Bearer ${DIALPAD_FAKE_API_KEY}`],
      ]);
      const webhookBody = made[0]!.body as { hook_url: string; secret: string };
      expect(webhookBody).toEqual({ hook_url: hookUrl, secret: expect.any(String) });
      expect(webhookBody.secret.length).toBeGreaterThanOrEqual(16);
      const callBody = made[1]!.body as Record<string, unknown>;
      expect({
        ...callBody,
        endpoint_id: String(callBody.endpoint_id),
        webhook_id: String(callBody.webhook_id),
      }).toEqual({
        endpoint_id: ids.webhookId,
        webhook_id: ids.webhookId,
        call_states: [...DIALPAD_MAPPED_CALL_STATES],
        enabled: true,
      });
      // The int64 id goes as a JSON number of exactly its digits.
      expect(made[1]!.text).toContain(`"endpoint_id":${ids.webhookId}`);
      const smsBody = made[2]!.body as Record<string, unknown>;
      expect({ ...smsBody, endpoint_id: String(smsBody.endpoint_id), webhook_id: String(smsBody.webhook_id) }).toEqual({
        endpoint_id: ids.webhookId,
        webhook_id: ids.webhookId,
        direction: 'all',
        enabled: true,
      });
      expect(fake.webhooks.get(ids.webhookId)).toEqual({
        id: ids.webhookId,
        hookUrl,
        secret: webhookBody.secret,
      });
      expect(fake.subscriptions.get(ids.callSubscriptionId)).toMatchObject({ kind: 'call', endpointId: ids.webhookId });
      expect(fake.subscriptions.get(ids.smsSubscriptionId)).toMatchObject({ kind: 'sms', endpointId: ids.webhookId });

      const after = await getConnection(conn.id);
      expect(after.settings).toEqual({
        environment: 'production',
        auth: 'api_key',
        webhookId: ids.webhookId,
        callSubscriptionId: ids.callSubscriptionId,
        smsSubscriptionId: ids.smsSubscriptionId,
      });
      expect(after.secretsSet).toEqual(['apiKey', 'webhookSecret']);
      expect(JSON.stringify(after)).not.toContain(webhookBody.secret);
      expect((await storedSecrets(conn.id)).secrets.webhookSecret).toBe(webhookBody.secret);

      // What the fake would emit goes to the public URL: sign it with the secret the fake
      // recorded and post it to the app ourselves.
      const secret = fake.webhooks.get(ids.webhookId)!.secret!;
      const callId = dialpadId('61000000006');
      const at = Date.now() - 50_000;
      const delivered = await deliver(conn.id, secret, inboundEvent({ callId, state: 'ringing', at }));
      expect({ status: delivered.status, body: await json(delivered) }).toEqual({
        status: 200,
        body: { received: true, duplicate: false },
      });
      await processed(conn.id, callEventId(callId, 'ringing', at));
      const [row] = await callByProviderId(conn.id, callId);
      expect(await callDetail(row!.id)).toMatchObject({ status: 'ringing', agentId, from: CUSTOMER });
      const smsId = dialpadId('62000000001');
      expect((await deliver(conn.id, secret, buildDialpadSmsEvent({ id: smsId }))).status).toBe(200);
      await processed(conn.id, `sms:${smsId}:pending`);
      // A delivery signed with another secret is refused.
      await expectProblem(
        await deliver(conn.id, MAIN_SECRET, inboundEvent({ callId, state: 'connected', at: at + 1_000 })),
        401,
        'invalid-signature',
      );

      // Subscribing again replaces them: same secret, new ids, the old ones deleted at Dialpad.
      from = fake.requests.length;
      const again = await json(await call(t, 'POST', `/api/v1/pbx-connections/${conn.id}/dialpad/subscribe`, owner()));
      expect(again.webhookId).not.toBe(ids.webhookId);
      const redone = requestsSince(from);
      expect((redone[0]!.body as { secret: string }).secret).toBe(webhookBody.secret);
      expect(redone.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual([
        `/api/v2/subscriptions/call/${ids.callSubscriptionId}`,
        `/api/v2/subscriptions/sms/${ids.smsSubscriptionId}`,
        `/api/v2/webhooks/${ids.webhookId}`,
      ]);
      expect(fake.webhooks.has(ids.webhookId)).toBe(false);
      expect([...fake.webhooks.keys()]).toContain(again.webhookId);
    });
  });

  describe('click-to-call through Dialpad', () => {
    const clickToCall = (body: Record<string, unknown>) =>
      call(t, 'POST', '/api/v1/calls/click-to-call', owner(), { agentId, connectionId: main.id, ...body });

    it('places the call, follows its webhook events on the same record, hangs up, reports live status; no DTMF', async () => {
      const from = fake.requests.length;
      const res = await clickToCall({ to: '+15555550177' });
      expect(res.status).toBe(202);
      const accepted = await json(res);
      expect(accepted).toEqual({
        callId: expect.any(String),
        status: 'queued',
        connectionId: main.id,
        provider: 'dialpad',
        providerCallId: expect.stringMatching(/^\d+$/),
      });
      const { callId: id, providerCallId } = accepted;
      const placed = requestsSince(from);
      expect(placed.map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
        ['POST', '/api/v2/call', `Bearer ${DIALPAD_FAKE_API_KEY}`],
      ]);
      const body = placed[0]!.body as Record<string, unknown>;
      expect({ ...body, user_id: String(body.user_id) }).toEqual({
        user_id: DIALPAD_FAKE_USER_ID,
        phone_number: '+15555550177',
        custom_data: JSON.stringify({ switchboard_call_id: id }),
      });
      expect(placed[0]!.text).toContain(`"user_id":${DIALPAD_FAKE_USER_ID}`);
      expect(fake.calls.get(providerCallId)).toMatchObject({ userId: DIALPAD_FAKE_USER_ID, state: 'calling' });

      expect(await callDetail(id)).toMatchObject({
        id,
        provider: 'dialpad',
        connectionId: main.id,
        providerCallId,
        direction: 'outbound',
        status: 'queued',
        from: null,
        to: '+15555550177',
        agentId,
        answeredAt: null,
        endedAt: null,
        endReason: null,
      });

      // Dialpad's events for that call_id land on the same record.
      const t1 = Date.now();
      const calling = fake.callEvent(providerCallId, 'calling', t1);
      expect(calling.custom_data).toBe(JSON.stringify({ switchboard_call_id: id }));
      expect((await deliver(main.id, MAIN_SECRET, calling)).status).toBe(200);
      await processed(main.id, callEventId(providerCallId, 'calling', t1));
      fake.setCallState(providerCallId, 'connected');
      const t2 = t1 + 4_000;
      expect((await deliver(main.id, MAIN_SECRET, fake.callEvent(providerCallId, 'connected', t2))).status).toBe(200);
      await processed(main.id, callEventId(providerCallId, 'connected', t2));
      expect(await callByProviderId(main.id, providerCallId)).toEqual([{ id }]);
      expect(await callDetail(id)).toMatchObject({
        id,
        direction: 'outbound',
        status: 'in_progress',
        from: LINE,
        to: '+15555550177',
        agentId,
        answeredAt: new Date(t2).toISOString(),
        endedAt: null,
      });

      // Live status from Dialpad.
      const status = await call(t, 'GET', `/api/v1/calls/${id}/status`, owner());
      expect({ status: status.status, body: await json(status) }).toEqual({
        status: 200,
        body: {
          callId: id,
          status: 'in_progress',
          endReason: null,
          answeredAt: new Date(t2).toISOString(),
          endedAt: null,
          live: { state: 'connected', ended: false },
        },
      });

      // No DTMF in Dialpad's API: 501 unsupported-by-provider naming Dialpad (the connection says
      // capabilities.dtmf=false); bad digits are refused before that.
      await expectProblem(
        await call(t, 'POST', `/api/v1/calls/${id}/dtmf`, owner(), { digits: '12x' }),
        400,
        'validation-failed',
      );
      const beforeDtmf = fake.requests.length;
      const unsupported = await expectProblem(
        await call(t, 'POST', `/api/v1/calls/${id}/dtmf`, owner(), { digits: '12#' }),
        501,
        'unsupported-by-provider',
      );
      expect(unsupported).toMatchObject({ provider: 'dialpad', capability: 'dtmf' });
      const view = await json(await call(t, 'GET', `/api/v1/pbx-connections/${main.id}`, owner()));
      expect(view.capabilities).toMatchObject({ originate: true, hangup: true, dtmf: false, status: true });
      expect(unsupported.detail).toMatch(/dialpad/);
      // The deprecated seed alias answers the same.
      await expectProblem(
        await call(t, 'POST', `/api/calls/dtmf/${id}`, owner(), { digit: '1' }),
        501,
        'unsupported-by-provider',
      );
      expect(requestsSince(beforeDtmf)).toHaveLength(0);

      // Hang up: Dialpad is asked; the record ends with Dialpad's event.
      const hangFrom = fake.requests.length;
      const hung = await call(t, 'POST', `/api/v1/calls/${id}/hangup`, owner());
      expect({ status: hung.status, body: await json(hung) }).toEqual({
        status: 202,
        body: { callId: id, accepted: true },
      });
      expect(requestsSince(hangFrom).map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
        ['PUT', `/api/v2/call/${providerCallId}/actions/hangup`, `Bearer ${DIALPAD_FAKE_API_KEY}`],
      ]);
      expect(fake.calls.get(providerCallId)!.state).toBe('hangup');
      expect(await json(await call(t, 'GET', `/api/v1/calls/${id}/status`, owner()))).toMatchObject({
        status: 'in_progress',
        live: { state: 'hangup', ended: true },
      });
      // 20 s of talk: Dialpad stamps an event when it happens, and one more than
      // WEBHOOK_CLOCK_LEEWAY_MS ahead of our clock is refused as stale.
      const t3 = t2 + 20_000;
      expect((await deliver(main.id, MAIN_SECRET, fake.callEvent(providerCallId, 'hangup', t3))).status).toBe(200);
      await processed(main.id, callEventId(providerCallId, 'hangup', t3));
      const ended = await callDetail(id);
      expect(ended).toMatchObject({
        status: 'completed',
        answeredAt: new Date(t2).toISOString(),
        endedAt: new Date(t3).toISOString(),
        talkSeconds: 20,
        endReason: 'completed',
        hangupCause: null,
      });
      expect(ended.timeline.map((e: { kind: string }) => e.kind)).toEqual(['queued', 'ringing', 'answered', 'ended']);
      expect(await json(await call(t, 'GET', `/api/v1/calls/${id}/status`, owner()))).toEqual({
        callId: id,
        status: 'completed',
        endReason: 'completed',
        answeredAt: new Date(t2).toISOString(),
        endedAt: new Date(t3).toISOString(),
        live: null,
      });
      await expectProblem(await call(t, 'POST', `/api/v1/calls/${id}/hangup`, owner()), 409, 'call-ended');
    });

    it('Dialpad down → 503, refused credentials → 502, an OAuth connection without tokens → 502: nothing recorded', async () => {
      const calls = await callCount();
      fake.setDown(true);
      try {
        const down = await clickToCall({ to: '+15555550178' });
        expect(down.headers.get('retry-after')).toBe('5');
        await expectProblem(down, 503, 'pbx-unavailable');
      } finally {
        fake.setDown(false);
      }
      expect(await callCount()).toBe(calls);

      fake.failNext(401, undefined, { path: '/api/v2/call' });
      await expectProblem(await clickToCall({ to: '+15555550179' }), 502, 'pbx-auth-failed');
      expect(await callCount()).toBe(calls);

      const noTokens = await createConnection({ auth: 'oauth' }, { webhookSecret: 'no-tokens-secret-0123456789' });
      const from = fake.requests.length;
      // A missing local credential is ours to fix, not a provider error.
      const incomplete = await expectProblem(
        await clickToCall({ to: '+15555550180', connectionId: noTokens.id }),
        409,
        'connection-incomplete',
      );
      expect(incomplete.pbxError).toBe('NOT_CONFIGURED');
      expect(requestsSince(from)).toHaveLength(0);
      expect(await callCount()).toBe(calls);

      // And it still works once Dialpad is back.
      const ok = await clickToCall({ to: '+15555550181' });
      expect(ok.status).toBe(202);
      expect(await callCount()).toBe(calls + 1);
    });
  });
});
