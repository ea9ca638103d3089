import { amiHeader, type AmiFields } from '../src/pbx/asterisk/ami-parser.js';
import type { CallDetail } from '../src/calls/call-view.js';
import { AsteriskSupervisor } from '../src/pbx/asterisk/asterisk-supervisor.service.js';
import type { AsteriskDriver } from '../src/pbx/asterisk/asterisk.driver.js';
import { PbxRegistry } from '../src/pbx/pbx-registry.js';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import {
  AmiSimulator,
  type AmiFixture,
  type AmiFixtureName,
  liveChannels,
  loadAmiFixture,
  replayableEvents,
} from './support/ami-simulator.js';
import { query } from './support/database.js';
import { expectProblem, json } from './support/http.js';
import { connect, type LiveClient, sleep } from './support/sockets.js';
import { call, createAgent, createCompany, createUser, type TestCompany, unique } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * Asterisk end to end: the real application (supervisor, AMI session, call mapper, calls) against
 * the AMI simulator replaying the recorded sessions of test/fixtures/ami over TCP on 127.0.0.1.
 */

const ENV = {
  ASTERISK_LOCK_POLL_MS: '300',
  AMI_PING_INTERVAL_MS: '500',
  AMI_PING_TIMEOUT_MS: '1000',
  AMI_RECONNECT_MAX_MS: '500',
  AMI_AUTH_RETRY_MS: '1000',
  ASTERISK_COMMAND_TIMEOUT_MS: '5000',
};
const CONTEXT = 'internal';
const COMPANY_NUMBER = '+15550001234';
const CUSTOMER = '+15551230001';

/** A call as GET /api/v1/calls/:id answers it. */
type CallBody = CallDetail;

interface StatusBody {
  connectionId: string;
  provider: string;
  state: string;
  reason: string | null;
  since: string | null;
  holder: string | null;
}

const fixtures = new Map<AmiFixtureName, AmiFixture>();
const fixture = (name: AmiFixtureName): AmiFixture => {
  if (!fixtures.has(name)) fixtures.set(name, loadAmiFixture(name));
  return fixtures.get(name)!;
};

/** How many replayable events of a fixture come up to and including the n-th one named `event`. */
function eventsThrough(f: AmiFixture, event: string, nth = 1): number {
  let seen = 0;
  const events = replayableEvents(f);
  for (let i = 0; i < events.length; i++) {
    if (amiHeader(events[i]!.fields, 'Event') === event && ++seen === nth) return i + 1;
  }
  throw new Error(`${f.name}: no ${nth}th ${event}`);
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

const actionsNamed = (sim: AmiSimulator, name: string) => sim.actions.filter((a) => amiHeader(a, 'Action') === name);
const iso = (v: string | null) => (v === null ? null : Date.parse(v));

/** The fields of a call the tests compare exactly. */
const shape = (c: CallBody) => ({
  id: c.id,
  provider: c.provider,
  connectionId: c.connectionId,
  providerCallId: c.providerCallId,
  direction: c.direction,
  status: c.status,
  from: c.from,
  to: c.to,
  callerName: c.callerName,
  agentId: c.agentId,
  answered: c.answeredAt !== null,
  ended: c.endedAt !== null,
  endReason: c.endReason,
  hangupCause: c.hangupCause,
});

/** Milestones in order, durations computed from them. */
function expectConsistentTimes(c: CallBody): void {
  const ringing = iso(c.ringingAt);
  const answered = iso(c.answeredAt);
  const ended = iso(c.endedAt);
  const started = iso(c.startedAt)!;
  for (const t of [ringing, answered, ended]) if (t !== null) expect(t).toBeGreaterThanOrEqual(started);
  if (ringing !== null && answered !== null) expect(answered).toBeGreaterThanOrEqual(ringing);
  if (answered !== null && ended !== null) expect(ended).toBeGreaterThanOrEqual(answered);
  expect(c.talkSeconds).toBe(answered !== null && ended !== null ? Math.round((ended - answered) / 1000) : null);
  expect(c.durationSeconds).toBe(ended !== null ? Math.round((ended - started) / 1000) : null);
}

const eventsOfCall = (client: LiveClient, callId: string) =>
  client.events.filter((e) => (e.data as { call?: { id?: string } }).call?.id === callId);
const summary = (e: EventEnvelope) => {
  const c = (e.data as { call: CallBody }).call;
  return { type: e.type, agentId: e.agentId, callAgentId: c.agentId, status: c.status };
};

/** A company with its agents, an AMI simulator per connection, and helpers over the HTTP API. */
class Harness {
  readonly sims: AmiSimulator[] = [];
  readonly connections: { t: TestApp; id: string }[] = [];

  constructor(
    readonly t: TestApp,
    readonly co: TestCompany,
  ) {}

  get key() {
    return { key: this.co.apiKey };
  }

  /** A simulator listening, nothing live (CoreShowChannels answers an empty list). */
  async simulator(): Promise<AmiSimulator> {
    const sim = new AmiSimulator();
    sim.setChannels([]);
    await sim.start();
    this.sims.push(sim);
    return sim;
  }

  async connection(sim: AmiSimulator, secret = 'ctisecret', t = this.t): Promise<string> {
    const res = await call(t, 'POST', '/api/v1/pbx-connections', this.key, {
      provider: 'asterisk',
      name: unique('pbx'),
      settings: {
        host: '127.0.0.1',
        port: sim.port,
        username: 'cti',
        context: CONTEXT,
        originateCallerId: COMPANY_NUMBER,
      },
      secrets: { secret },
    });
    const body = await json(res);
    expect(res.status).toBe(201);
    this.connections.push({ t, id: body.id as string });
    return body.id as string;
  }

  /** A simulator and a connection to it, logged in and resynchronised. */
  async connected(): Promise<{ sim: AmiSimulator; id: string }> {
    const sim = await this.simulator();
    const id = await this.connection(sim);
    await this.waitState(id, 'connected');
    await until('the resync', () => (actionsNamed(sim, 'CoreShowChannels').length >= 1 ? true : undefined));
    return { sim, id };
  }

  async status(id: string, t = this.t): Promise<StatusBody> {
    const res = await call(t, 'GET', `/api/v1/pbx-connections/${id}/status`, this.key);
    expect(res.status).toBe(200);
    return (await json(res)) as StatusBody;
  }

  async waitState(id: string, state: string, ms = 5_000, t = this.t): Promise<StatusBody> {
    const seen: string[] = [];
    try {
      return await until(
        `connection ${id} ${state}`,
        async () => {
          const s = await this.status(id, t);
          const line = `${s.state} (${s.reason})`;
          if (seen[seen.length - 1] !== line) seen.push(line);
          return s.state === state ? s : undefined;
        },
        ms,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; seen: ${seen.join(' → ')}`, { cause: error });
    }
  }

  async callById(callId: string, t = this.t): Promise<CallBody> {
    const res = await call(t, 'GET', `/api/v1/calls/${callId}`, this.key);
    expect(res.status).toBe(200);
    return (await json(res)) as CallBody;
  }

  /** The call of a connection by its Linkedid, once `ready` holds. */
  async waitCall(
    connectionId: string,
    providerCallId: string,
    ready: (c: CallBody) => boolean,
    ms = 5_000,
  ): Promise<CallBody> {
    let last: CallBody | undefined;
    try {
      return await until(
        `call ${providerCallId}`,
        async () => {
          const [row] = await query<{ id: string }>(
            this.t.db.url,
            'SELECT id FROM calls WHERE company_id = $1 AND call_key = $2',
            [this.co.id, `${connectionId}:${providerCallId}`],
          );
          if (!row) return undefined;
          last = await this.callById(row.id);
          return ready(last) ? last : undefined;
        },
        ms,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; last seen: ${JSON.stringify(last && shape(last))}`, {
        cause: error,
      });
    }
  }

  async waitCallId(callId: string, ready: (c: CallBody) => boolean, t = this.t): Promise<CallBody> {
    let last: CallBody | undefined;
    try {
      return await until(`call ${callId}`, async () => {
        last = await this.callById(callId, t);
        return ready(last) ? last : undefined;
      });
    } catch (error) {
      throw new Error(`${(error as Error).message}; last seen: ${JSON.stringify(last && shape(last))}`, {
        cause: error,
      });
    }
  }

  /** Removes the connections (their holder logs off), then stops the simulators. */
  async cleanup(): Promise<void> {
    for (const c of this.connections.splice(0)) {
      await call(c.t, 'DELETE', `/api/v1/pbx-connections/${c.id}`, this.key).catch(() => undefined);
    }
    for (const sim of this.sims.splice(0)) {
      await until('the logoff', () => (sim.authenticatedClients === 0 ? true : undefined), 3_000).catch(
        () => undefined,
      );
      await sim.stop();
    }
  }
}

describe('Asterisk over AMI (e2e: the application against the AMI simulator)', () => {
  let t: TestApp;
  let h: Harness;
  let agent1001: string;
  let agent1002: string;
  let agent1009: string;
  let agentUserToken: string;
  const sockets: LiveClient[] = [];
  const live = async (auth: Record<string, unknown>) => {
    const client = await connect(t.url, auth);
    sockets.push(client);
    return client;
  };

  beforeAll(async () => {
    t = await startTestApp({ env: ENV });
    const co = await createCompany(t, 'ast');
    h = new Harness(t, co);
    const user = await createUser(t, co, 'agent');
    agentUserToken = user.accessToken;
    agent1001 = (await createAgent(t, co, { extension: '1001', userId: user.id })).id;
    agent1002 = (await createAgent(t, co, { extension: '1002' })).id;
    agent1009 = (await createAgent(t, co, { extension: '1009' })).id;
  });
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.close();
    await h.cleanup();
  });
  afterAll(async () => {
    await t.close();
  });

  it('the status API follows the holder: a dozen connections logged in at once all read connected', async () => {
    // Regression: the state writes of a connection (connecting → connected within milliseconds)
    // used to be able to commit out of order, leaving 'connecting' in the row for good.
    const made: { sim: AmiSimulator; id: string }[] = [];
    for (let i = 0; i < 12; i++) {
      const sim = await h.simulator();
      made.push({ sim, id: await h.connection(sim) });
    }
    await until('every login', () => (made.every((m) => m.sim.logins === 1) ? true : undefined));
    const held = () =>
      new Map(
        t.app
          .get(AsteriskSupervisor)
          .held()
          .map((x) => [x.id, x.state]),
      );
    await until('every session connected', () =>
      made.every((m) => held().get(m.id) === 'connected') ? true : undefined,
    );
    let states: string[] = [];
    await until(
      'every status connected',
      async () => {
        states = await Promise.all(made.map(async (m) => (await h.status(m.id)).state));
        return states.every((s) => s === 'connected') ? true : undefined;
      },
      3_000,
    ).catch(() => undefined);
    expect(states).toEqual(made.map(() => 'connected'));
  });

  describe('the recorded scenarios, replayed to a connected application', () => {
    // One connection for the scenarios of this block (their Linkedids differ), removed after them.
    let shared: Harness;
    let sim: AmiSimulator;
    let connectionId: string;

    beforeAll(async () => {
      shared = new Harness(t, h.co);
      ({ sim, id: connectionId } = await shared.connected());
    });
    afterAll(() => shared.cleanup());

    it('connects: status connected, held by this instance, in /health/ready', async () => {
      const status = await h.status(connectionId);
      expect(status).toEqual({
        connectionId,
        provider: 'asterisk',
        state: 'connected',
        reason: `logged in to 127.0.0.1:${sim.port} as cti (Asterisk Call Manager/11.0.0)`,
        since: expect.any(String),
        holder: t.app.get(AsteriskSupervisor).instanceId,
      });
      expect(sim.logins).toBe(1);
      expect(sim.authenticatedClients).toBe(1);
      const login = actionsNamed(sim, 'Login')[0]!;
      expect(amiHeader(login, 'Username')).toBe('cti');
      expect(amiHeader(login, 'Secret')).toBe('ctisecret');
      expect(amiHeader(login, 'Events')).toBe('system,call,dialplan');
      const ready = await call(t, 'GET', '/health/ready');
      expect(ready.status).toBe(200);
      const body = await json(ready);
      expect(body.info.asterisk.connections).toContainEqual({
        id: connectionId,
        state: 'connected',
        reason: status.reason,
      });
    });

    it('inbound-answered: screen pop at agent 1001, answered, completed with "16 Normal Clearing"', async () => {
      const agent = await live({ token: agentUserToken });
      const company = await live({ apiKey: h.co.apiKey });
      await sim.replay(fixture('inbound-answered'));
      const c = await h.waitCall(connectionId, '1795235277.3', (x) => x.status === 'completed');
      expect(shape(c)).toEqual({
        id: c.id,
        provider: 'asterisk',
        connectionId,
        providerCallId: '1795235277.3',
        direction: 'inbound',
        status: 'completed',
        from: CUSTOMER,
        to: '+15550001234',
        callerName: null,
        agentId: agent1001,
        answered: true,
        ended: true,
        endReason: 'completed',
        hangupCause: '16 Normal Clearing',
      });
      expectConsistentTimes(c);
      expect(c.timeline.map((e) => e.kind)).toEqual(['ringing', 'ringing', 'answered', 'ended']);
      expect(c.timeline.map((e) => e.data.agentId ?? null)).toEqual([null, agent1001, agent1001, agent1001]);

      await company.waitFor(4);
      expect(eventsOfCall(company, c.id).map(summary)).toEqual([
        { type: 'call.ringing', agentId: null, callAgentId: null, status: 'ringing' },
        { type: 'call.ringing', agentId: agent1001, callAgentId: agent1001, status: 'ringing' },
        { type: 'call.answered', agentId: agent1001, callAgentId: agent1001, status: 'in_progress' },
        { type: 'call.ended', agentId: agent1001, callAgentId: agent1001, status: 'completed' },
      ]);
      await agent.waitFor(3);
      expect(eventsOfCall(agent, c.id).map(summary)).toEqual([
        { type: 'call.ringing', agentId: agent1001, callAgentId: agent1001, status: 'ringing' },
        { type: 'call.answered', agentId: agent1001, callAgentId: agent1001, status: 'in_progress' },
        { type: 'call.ended', agentId: agent1001, callAgentId: agent1001, status: 'completed' },
      ]);
      const pop = agent.events[0]!.data as { call: CallBody };
      expect({ from: pop.call.from, to: pop.call.to, providerCallId: pop.call.providerCallId }).toEqual({
        from: CUSTOMER,
        to: '+15550001234',
        providerCallId: '1795235277.3',
      });
      expect((agent.events[2]!.data as { call: CallBody }).call.hangupCause).toBe('16 Normal Clearing');
    });

    it('inbound-unanswered: rang at agent 1002, missed', async () => {
      const company = await live({ apiKey: h.co.apiKey });
      await sim.replay(fixture('inbound-unanswered'));
      const c = await h.waitCall(connectionId, '1795235296.6', (x) => x.hangupCause !== null);
      expect(shape(c)).toEqual({
        id: c.id,
        provider: 'asterisk',
        connectionId,
        providerCallId: '1795235296.6',
        direction: 'inbound',
        status: 'missed',
        from: CUSTOMER,
        to: '+15550002001',
        callerName: null,
        agentId: agent1002,
        answered: false,
        ended: true,
        endReason: 'missed',
        hangupCause: '16 Normal Clearing',
      });
      expectConsistentTimes(c);
      expect(c.timeline.map((e) => e.kind)).toEqual(['ringing', 'ringing', 'ended', 'ended']);
      expect(c.timeline.map((e) => e.data.endReason ?? null)).toEqual([null, null, 'missed', 'missed']);
      await company.waitFor(4);
      expect(eventsOfCall(company, c.id).map(summary)).toEqual([
        { type: 'call.ringing', agentId: null, callAgentId: null, status: 'ringing' },
        { type: 'call.ringing', agentId: agent1002, callAgentId: agent1002, status: 'ringing' },
        { type: 'call.ended', agentId: agent1002, callAgentId: agent1002, status: 'missed' },
        { type: 'call.updated', agentId: agent1002, callAgentId: agent1002, status: 'missed' },
      ]);
    });

    it('inbound-abandoned: the caller hung up while agent 1002 rang', async () => {
      await sim.replay(fixture('inbound-abandoned'));
      const c = await h.waitCall(connectionId, '1795235311.10', (x) => x.hangupCause !== null);
      expect(shape(c)).toEqual({
        id: c.id,
        provider: 'asterisk',
        connectionId,
        providerCallId: '1795235311.10',
        direction: 'inbound',
        status: 'abandoned',
        from: CUSTOMER,
        to: '+15550002001',
        callerName: null,
        agentId: agent1002,
        answered: false,
        ended: true,
        endReason: 'abandoned',
        hangupCause: '127 Interworking, unspecified',
      });
      expectConsistentTimes(c);
      expect(c.timeline.map((e) => e.kind)).toEqual(['ringing', 'ringing', 'ended', 'ended']);
    });

    it('click-to-call: Originate as specified, events on the same call, status, DTMF on the customer leg, hangup of the agent leg', async () => {
      const agent = await live({ token: agentUserToken });
      const c2c = fixture('click-to-call');
      sim.script(c2c);
      const res = await call(t, 'POST', '/api/v1/calls/click-to-call', h.key, {
        to: CUSTOMER,
        agentId: agent1001,
        connectionId,
      });
      expect(res.status).toBe(202);
      const accepted = await json(res);
      const callId = accepted.callId as string;
      expect(accepted).toEqual({
        callId: expect.stringMatching(/^[0-9a-f-]{36}$/),
        status: expect.any(String),
        connectionId,
        provider: 'asterisk',
        providerCallId: '1795235317.13',
      });
      // Depending on which of our record and the DialBegin came first.
      expect(['queued', 'ringing', 'in_progress']).toContain(accepted.status);

      const originates = actionsNamed(sim, 'Originate');
      expect(originates).toHaveLength(1);
      expect(originates[0]).toEqual([
        ['Action', 'Originate'],
        ['ActionID', expect.stringMatching(/^sb-orig-[0-9a-f-]{36}$/)],
        ['Channel', 'PJSIP/1001'],
        ['Context', CONTEXT],
        ['Exten', CUSTOMER],
        ['Priority', '1'],
        ['Async', 'true'],
        ['Timeout', '20000'],
        ['CallerID', `"Click to Call" <${COMPANY_NUMBER}>`],
        ['Variable', `CTI_REQUEST_ID=${callId}`],
      ]);

      const up = await h.waitCallId(callId, (x) => x.status === 'in_progress');
      expect(shape(up)).toEqual({
        id: callId,
        provider: 'asterisk',
        connectionId,
        providerCallId: '1795235317.13',
        direction: 'outbound',
        status: 'in_progress',
        from: COMPANY_NUMBER,
        to: CUSTOMER,
        callerName: null,
        agentId: agent1001,
        answered: true,
        ended: false,
        endReason: null,
        hangupCause: null,
      });
      // One record only: the replayed events landed on the call of the request.
      const rows = await query(t.db.url, 'SELECT id FROM calls WHERE connection_id = $1 AND provider_call_id = $2', [
        connectionId,
        '1795235317.13',
      ]);
      expect(rows).toEqual([{ id: callId }]);

      // The live status asks Asterisk (CoreShowChannels): both legs up.
      sim.setChannels(liveChannels(c2c, eventsThrough(c2c, 'BridgeEnter', 2)));
      const st = await call(t, 'GET', `/api/v1/calls/${callId}/status`, h.key);
      expect(st.status).toBe(200);
      expect(await json(st)).toEqual({
        callId,
        status: 'in_progress',
        endReason: null,
        answeredAt: up.answeredAt,
        endedAt: null,
        live: { state: 'up', ended: false },
      });

      const dtmf = await call(t, 'POST', `/api/v1/calls/${callId}/dtmf`, h.key, { digits: '5' });
      expect(dtmf.status).toBe(202);
      expect(await json(dtmf)).toEqual({ callId, accepted: true });
      expect(actionsNamed(sim, 'PlayDTMF')).toEqual([
        [
          ['Action', 'PlayDTMF'],
          ['ActionID', expect.stringMatching(/^sb-[0-9a-f]{8}-\d+$/)],
          ['Channel', 'PJSIP/carrier-00000009'],
          ['Digit', '5'],
          ['Duration', '250'],
        ],
      ]);

      const hangup = await call(t, 'POST', `/api/v1/calls/${callId}/hangup`, h.key);
      expect(hangup.status).toBe(202);
      expect(await json(hangup)).toEqual({ callId, accepted: true });
      expect(actionsNamed(sim, 'Hangup')).toEqual([
        [
          ['Action', 'Hangup'],
          ['ActionID', expect.stringMatching(/^sb-[0-9a-f]{8}-\d+$/)],
          ['Channel', 'PJSIP/1001-00000008'],
          ['Cause', '16'],
        ],
      ]);

      const ended = await h.waitCallId(callId, (x) => x.status === 'completed');
      expect(shape(ended)).toEqual({
        ...shape(up),
        status: 'completed',
        ended: true,
        endReason: 'completed',
        hangupCause: '16 Normal Clearing',
      });
      expectConsistentTimes(ended);
      expect(ended.timeline.map((e) => e.kind).sort()).toEqual(['answered', 'ended', 'queued', 'ringing']);
      await agent.waitFor(3);
      expect(
        eventsOfCall(agent, callId)
          .map(summary)
          .filter((e) => e.type !== 'call.updated'),
      ).toEqual([
        { type: 'call.ringing', agentId: agent1001, callAgentId: agent1001, status: 'ringing' },
        { type: 'call.answered', agentId: agent1001, callAgentId: agent1001, status: 'in_progress' },
        { type: 'call.ended', agentId: agent1001, callAgentId: agent1001, status: 'completed' },
      ]);

      // Ended: no more control.
      await expectProblem(await call(t, 'POST', `/api/v1/calls/${callId}/hangup`, h.key), 409, 'call-ended');
      sim.clearScripts();
      sim.setChannels([]);
    });

    it('originate-failures: no answer (reason 3) and unknown endpoint (reason 0) → failed with the reason', async () => {
      sim.script(fixture('originate-failures'));
      const before = actionsNamed(sim, 'Originate').length;

      const res1 = await call(t, 'POST', '/api/v1/calls/click-to-call', h.key, {
        to: CUSTOMER,
        agentId: agent1002,
        connectionId,
      });
      expect(res1.status).toBe(202);
      const first = await json(res1);
      expect(first.providerCallId).toBe('1795235327.16');
      const noAnswer = await h.waitCallId(first.callId as string, (x) => x.endedAt !== null);
      expect(shape(noAnswer)).toEqual({
        id: first.callId,
        provider: 'asterisk',
        connectionId,
        providerCallId: '1795235327.16',
        direction: 'outbound',
        status: 'failed',
        from: COMPANY_NUMBER,
        to: CUSTOMER,
        callerName: null,
        agentId: agent1002,
        answered: false,
        ended: true,
        endReason: 'failed',
        hangupCause: 'originate failed: no answer (reason 3)',
      });
      expectConsistentTimes(noAnswer);

      const res2 = await call(t, 'POST', '/api/v1/calls/click-to-call', h.key, {
        to: CUSTOMER,
        agentId: agent1009,
        connectionId,
      });
      expect(res2.status).toBe(202);
      const second = await json(res2);
      const sent = actionsNamed(sim, 'Originate').slice(before);
      expect(sent.map((a) => amiHeader(a, 'Channel'))).toEqual(['PJSIP/1002', 'PJSIP/1009']);
      expect(second.providerCallId).toBe(`originate:${amiHeader(sent[1]!, 'ActionID')}`);
      expect(['queued', 'failed']).toContain(second.status);
      const unknown = await h.waitCallId(second.callId as string, (x) => x.endedAt !== null);
      expect(shape(unknown)).toEqual({
        id: second.callId,
        provider: 'asterisk',
        connectionId,
        providerCallId: second.providerCallId,
        direction: 'outbound',
        status: 'failed',
        from: COMPANY_NUMBER,
        to: CUSTOMER,
        callerName: null,
        agentId: agent1009,
        answered: false,
        ended: true,
        endReason: 'failed',
        hangupCause: 'originate failed: channel unavailable or unknown (reason 0)',
      });
      expect(unknown.timeline.map((e) => e.kind).sort()).toEqual(['ended', 'queued']);
      sim.clearScripts();
    });
  });

  it('wrong credentials: failed with the reason, one login per AMI_AUTH_RETRY_MS, the application keeps serving', async () => {
    const sim = await h.simulator();
    const started = Date.now();
    const id = await h.connection(sim, 'not-the-secret');
    const failed = await h.waitState(id, 'failed');
    expect(failed.reason).toBe('authentication failed: Authentication failed; retrying in 1000 ms');
    expect(failed.holder).toBe(t.app.get(AsteriskSupervisor).instanceId);
    await until('a second attempt', () => (actionsNamed(sim, 'Login').length >= 2 ? true : undefined), 3_000);
    await sleep(1_200);
    const elapsed = Date.now() - started;
    const attempts = actionsNamed(sim, 'Login').length;
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(1 + Math.ceil(elapsed / 1000));
    expect(sim.logins).toBe(0);
    expect(actionsNamed(sim, 'Login').every((a) => amiHeader(a, 'Secret') === 'not-the-secret')).toBe(true);

    const ready = await call(t, 'GET', '/health/ready');
    expect(ready.status).toBe(200);
    const body = await json(ready);
    const held = (body.info.asterisk.connections as { id: string; state: string; reason?: string }[]).find(
      (c) => c.id === id,
    );
    expect(held).toEqual({ id, state: 'failed', reason: expect.stringContaining('authentication failed') });
    // Commands are refused as unavailable, and nothing is recorded.
    const callsBefore = await query(t.db.url, 'SELECT id FROM calls WHERE connection_id = $1', [id]);
    await expectProblem(
      await call(t, 'POST', '/api/v1/calls/click-to-call', h.key, {
        to: CUSTOMER,
        agentId: agent1001,
        connectionId: id,
      }),
      503,
      'pbx-unavailable',
    );
    expect(await query(t.db.url, 'SELECT id FROM calls WHERE connection_id = $1', [id])).toEqual(callsBefore);
    expect(actionsNamed(sim, 'Originate')).toEqual([]);
  });

  describe('dropped mid-call, then back', () => {
    const f = () => fixture('inbound-answered');
    const bridged = () => eventsThrough(f(), 'BridgeEnter', 2);

    /** Replays up to the bridge, cuts; the reconnection is slowed so 'reconnecting' can be seen. */
    async function dropMidCall(sim: AmiSimulator, id: string, channelsOnReturn: AmiFields[]): Promise<CallBody> {
      await sim.replay(f(), { dropAfter: bridged() });
      const c = await h.waitCall(id, '1795235277.3', (x) => x.status === 'in_progress');
      sim.setChannels(channelsOnReturn);
      return c;
    }

    it('the call is still live on return: it stays in progress and its hangup is still mapped', async () => {
      const { sim, id } = await h.connected();
      sim.setResponseDelay('Login', 600);
      const before = await dropMidCall(sim, id, liveChannels(f(), bridged()));
      const reconnecting = await h.waitState(id, 'reconnecting');
      expect(reconnecting.reason).toMatch(/^connection (closed|reset) by Asterisk; retrying in \d+ ms$/);
      sim.setResponseDelay('Login', 0);
      await h.waitState(id, 'connected');
      expect(sim.logins).toBe(2);
      await until('the resync', () => (actionsNamed(sim, 'CoreShowChannels').length >= 2 ? true : undefined));
      await sleep(100);
      const after = await h.callById(before.id);
      expect(shape(after)).toEqual(shape(before));
      expect(after.status).toBe('in_progress');
      expect(after.timeline.map((e) => e.kind)).toEqual(['ringing', 'ringing', 'answered']);

      await sim.replay(f(), { from: bridged() });
      const ended = await h.waitCall(id, '1795235277.3', (x) => x.status === 'completed');
      expect(shape(ended)).toEqual({
        ...shape(before),
        status: 'completed',
        ended: true,
        endReason: 'completed',
        hangupCause: '16 Normal Clearing',
      });
      expect(ended.timeline.map((e) => e.kind)).toEqual(['ringing', 'ringing', 'answered', 'ended']);
    });

    it('the call is gone on return: ended "lost during disconnect" (completed: it was answered)', async () => {
      const { sim, id } = await h.connected();
      const agent = await live({ token: agentUserToken });
      const before = await dropMidCall(sim, id, []);
      const ended = await h.waitCall(id, '1795235277.3', (x) => x.endedAt !== null);
      expect(shape(ended)).toEqual({
        ...shape(before),
        status: 'completed',
        ended: true,
        endReason: 'completed',
        hangupCause: 'lost during disconnect',
      });
      expectConsistentTimes(ended);
      expect(ended.timeline.map((e) => e.kind)).toEqual(['ringing', 'ringing', 'answered', 'ended']);
      expect(ended.timeline[3]!.data.raw).toEqual({ resync: 'not among the channels after reconnecting' });
      await h.waitState(id, 'connected');
      expect(sim.logins).toBe(2);
      await agent.waitFor(3);
      expect(eventsOfCall(agent, ended.id).map(summary)).toEqual([
        { type: 'call.ringing', agentId: agent1001, callAgentId: agent1001, status: 'ringing' },
        { type: 'call.answered', agentId: agent1001, callAgentId: agent1001, status: 'in_progress' },
        { type: 'call.ended', agentId: agent1001, callAgentId: agent1001, status: 'completed' },
      ]);
    });

    it('a live call the application never saw: created on return (ringing + answered), then mapped to its end', async () => {
      const { sim, id } = await h.connected();
      sim.setChannels(liveChannels(f(), bridged()));
      sim.dropConnections();
      const found = await h.waitCall(id, '1795235277.3', (x) => x.status === 'in_progress');
      expect(shape(found)).toEqual({
        id: found.id,
        provider: 'asterisk',
        connectionId: id,
        providerCallId: '1795235277.3',
        direction: 'inbound',
        status: 'in_progress',
        from: CUSTOMER,
        to: '+15550001234',
        callerName: null,
        agentId: agent1001,
        answered: true,
        ended: false,
        endReason: null,
        hangupCause: null,
      });
      expect(found.timeline.map((e) => [e.kind, e.data.raw])).toEqual([
        ['ringing', { resync: 'found among the channels after reconnecting' }],
        ['answered', { resync: 'found among the channels after reconnecting' }],
      ]);
      await h.waitState(id, 'connected');
      expect(sim.logins).toBe(2);

      await sim.replay(f(), { from: bridged() });
      const ended = await h.waitCall(id, '1795235277.3', (x) => x.status === 'completed');
      expect(shape(ended)).toEqual({
        ...shape(found),
        status: 'completed',
        ended: true,
        endReason: 'completed',
        hangupCause: '16 Normal Clearing',
      });
    });
  });

  it('malformed AMI input is skipped: the connection is kept and the next call is still mapped', async () => {
    const { sim, id } = await h.connected();
    sim.sendRaw('Event: Hangup\r\nthis is not a header\r\n\r\n');
    sim.sendRaw(`Event: UserEvent\r\nData: ${'z'.repeat(70_000)}\r\n\r\n`);
    sim.sendRaw(Buffer.from([0x00, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a]));
    await sim.replay(fixture('inbound-abandoned'));
    const c = await h.waitCall(id, '1795235311.10', (x) => x.hangupCause !== null);
    expect(shape(c)).toEqual({
      id: c.id,
      provider: 'asterisk',
      connectionId: id,
      providerCallId: '1795235311.10',
      direction: 'inbound',
      status: 'abandoned',
      from: CUSTOMER,
      to: '+15550002001',
      callerName: null,
      agentId: agent1002,
      answered: false,
      ended: true,
      endReason: 'abandoned',
      hangupCause: '127 Interworking, unspecified',
    });
    expect(sim.authenticatedClients).toBe(1);
    expect(sim.connections).toBe(1);
    expect(sim.logins).toBe(1);
    expect((await h.status(id)).state).toBe('connected');
    // Each was logged as a warning (the log stream is written asynchronously: wait for it).
    const warnings = () =>
      t.logs.lines.filter((l) => l.msg === 'AMI input skipped' && l.connectionId === id).map((l) => l.code);
    await until('the warnings', () => (warnings().length >= 3 ? true : undefined), 2_000).catch(() => undefined);
    expect(warnings()).toEqual(['line-without-colon', 'line-too-long', 'line-without-colon']);
  });

  it('connection deleted → the holder logs off at once; secret changed → it reconnects with the new one', async () => {
    const { sim, id } = await h.connected();
    expect(sim.logins).toBe(1);

    sim.setSecret('rotated-secret');
    const patched = await call(t, 'PATCH', `/api/v1/pbx-connections/${id}`, h.key, {
      secrets: { secret: 'rotated-secret' },
    });
    expect(patched.status).toBe(200);
    await until('the new login', () => (sim.logins === 2 ? true : undefined));
    await h.waitState(id, 'connected');
    const logins = actionsNamed(sim, 'Login');
    expect(logins.map((a) => amiHeader(a, 'Secret'))).toEqual(['ctisecret', 'rotated-secret']);
    expect(actionsNamed(sim, 'Logoff')).toHaveLength(1);
    expect(sim.authenticatedClients).toBe(1);

    const connectionsBefore = sim.connections;
    const deletedAt = Date.now();
    const res = await call(t, 'DELETE', `/api/v1/pbx-connections/${id}`, h.key);
    expect(res.status).toBe(204);
    await until('the logoff', () => (sim.authenticatedClients === 0 ? true : undefined), 3_000);
    const took = Date.now() - deletedAt;
    expect(took).toBeLessThan(Number(ENV.ASTERISK_LOCK_POLL_MS) + 700);
    expect(actionsNamed(sim, 'Logoff')).toHaveLength(2);
    await sleep(700);
    expect(sim.connections).toBe(connectionsBefore);
    expect(sim.authenticatedClients).toBe(0);
    const ready = await json(await call(t, 'GET', '/health/ready'));
    expect((ready.info.asterisk.connections as { id: string }[]).map((c) => c.id)).not.toContain(id);
    await expectProblem(await call(t, 'GET', `/api/v1/pbx-connections/${id}/status`, h.key), 404, 'not-found');
    h.connections.splice(0);
  });

  // Last: starting more applications in this process makes Nest's process-wide logger theirs, so
  // the logs of `t` (read by the malformed-input test) would no longer be captured after it.
  it('two instances on one database: one holds the connection, commands reach it from the other, the other takes over', async () => {
    const a = await startTestApp({ env: ENV });
    const running: TestApp[] = [a];
    let hh: Harness | undefined;
    try {
      const b = await startTestApp({ env: ENV, databaseUrl: a.db.url });
      running.push(b);
      const supervisor = (x: TestApp) => x.app.get(AsteriskSupervisor);
      // Each application has its own AMI gateway: its driver reaches its own supervisor, which
      // runs a command itself only when it holds the connection (else it asks the holder).
      for (const x of running) {
        expect((x.app.get(PbxRegistry).driver('asterisk') as AsteriskDriver).gateway()).toBe(supervisor(x));
      }
      const via = (x: TestApp) => x;
      const co = await createCompany(a, 'ast-ha');
      hh = new Harness(a, co);
      const agentId = (await createAgent(a, co, { extension: '1001' })).id;
      const sim = await hh.simulator();
      const c2c = fixture('click-to-call');
      sim.script(c2c);
      const id = await hh.connection(sim);
      const first = await hh.waitState(id, 'connected');
      const byInstance = new Map([a, b].map((x) => [supervisor(x).instanceId, x]));
      expect(byInstance.size).toBe(2);
      expect(byInstance.has(first.holder!)).toBe(true);
      const holder = byInstance.get(first.holder!)!;
      const other = holder === a ? b : a;
      const otherId = supervisor(other).instanceId;
      // Both try to take it every 300 ms: after a few rounds, still one login.
      await sleep(900);
      expect(sim.logins).toBe(1);
      expect(sim.connections).toBe(1);
      expect(sim.authenticatedClients).toBe(1);
      expect(await hh.status(id, other)).toEqual({ ...first, since: expect.any(String) });
      const heldBy = async (x: TestApp) =>
        ((await json(await call(x, 'GET', '/health/ready'))).info.asterisk.connections as { id: string }[]).map(
          (c) => c.id,
        );
      expect(await heldBy(holder)).toEqual([id]);
      expect(await heldBy(other)).toEqual([]);

      // A command sent to the other instance goes to the holder (NOTIFY request / reply).
      const res = await call(via(other), 'POST', '/api/v1/calls/click-to-call', hh.key, { to: CUSTOMER, agentId });
      expect(res.status).toBe(202);
      const accepted = await json(res);
      expect(accepted.providerCallId).toBe('1795235317.13');
      const callId = accepted.callId as string;
      expect(actionsNamed(sim, 'Originate').map((o) => amiHeader(o, 'Variable'))).toEqual([`CTI_REQUEST_ID=${callId}`]);
      const up = await hh.waitCallId(callId, (x) => x.status === 'in_progress', other);
      expect(shape(up)).toEqual({
        id: callId,
        provider: 'asterisk',
        connectionId: id,
        providerCallId: '1795235317.13',
        direction: 'outbound',
        status: 'in_progress',
        from: COMPANY_NUMBER,
        to: CUSTOMER,
        callerName: null,
        agentId,
        answered: true,
        ended: false,
        endReason: null,
        hangupCause: null,
      });
      const dtmf = await call(via(other), 'POST', `/api/v1/calls/${callId}/dtmf`, hh.key, { digits: '5' });
      expect(dtmf.status).toBe(202);
      expect(actionsNamed(sim, 'PlayDTMF').map((x) => amiHeader(x, 'Channel'))).toEqual(['PJSIP/carrier-00000009']);

      // The holder stops: the other takes over, finds the call still live, and hangs it up itself.
      sim.setChannels(liveChannels(c2c, eventsThrough(c2c, 'BridgeEnter', 2)));
      const stoppedAt = Date.now();
      await holder.app.close();
      running.splice(running.indexOf(holder), 1);
      const after = await until(
        'the takeover',
        async () => {
          const st = await hh!.status(id, other);
          return st.state === 'connected' && st.holder === otherId ? st : undefined;
        },
        10_000,
      );
      const takeover = Date.now() - stoppedAt;
      expect(takeover).toBeLessThan(10_000);
      expect(after).toEqual({
        connectionId: id,
        provider: 'asterisk',
        state: 'connected',
        reason: first.reason,
        since: expect.any(String),
        holder: otherId,
      });
      expect(sim.logins).toBe(2);
      expect(actionsNamed(sim, 'Logoff')).toHaveLength(1);
      expect(sim.authenticatedClients).toBe(1);
      expect(await heldBy(other)).toEqual([id]);
      await until('the resync', () => (actionsNamed(sim, 'CoreShowChannels').length >= 2 ? true : undefined));
      await sleep(100);
      expect((await hh.callById(callId, other)).status).toBe('in_progress');

      const hangup = await call(via(other), 'POST', `/api/v1/calls/${callId}/hangup`, hh.key);
      expect(hangup.status).toBe(202);
      expect(actionsNamed(sim, 'Hangup').map((x) => amiHeader(x, 'Channel'))).toEqual(['PJSIP/1001-00000008']);
      const ended = await hh.waitCallId(callId, (x) => x.status === 'completed', other);
      expect(shape(ended)).toEqual({
        ...shape(up),
        status: 'completed',
        ended: true,
        endReason: 'completed',
        hangupCause: '16 Normal Clearing',
      });
      // The connection was made through `a`, which may be the one stopped.
      hh.connections.splice(0, hh.connections.length, { t: other, id });
    } finally {
      await hh?.cleanup();
      for (const x of running.reverse()) await x.app.close().catch(() => undefined);
      await a.db.drop();
    }
  });
});
