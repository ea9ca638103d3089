import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import type { CallDetail } from '../src/calls/call-view.js';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import { amiHeader } from '../src/pbx/asterisk/ami-parser.js';
import { AsteriskSupervisor } from '../src/pbx/asterisk/asterisk-supervisor.service.js';
import {
  AmiSimulator,
  type AmiFixture,
  loadAmiFixture,
  renumberEvent,
  replayableEvents,
  serializeAmi,
} from './support/ami-simulator.js';
import { adminUrl, createTestDatabase, query, type TestDatabase } from './support/database.js';
import { json } from './support/http.js';
import { connect, type LiveClient, sleep } from './support/sockets.js';
import { call, createAgent, createCompany, type TestCompany, unique } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * Issue 11 §5: PostgreSQL refuses for 10 s in the middle of a call received over AMI, and nothing
 * is lost. The application reaches PostgreSQL through a TCP proxy on 127.0.0.1 that the test
 * stops (every open connection cut, new ones refused: what a database restart or a network cut
 * looks like from here) and starts again; the AMI simulator keeps sending the call meanwhile.
 * Afterwards the call must be the one an outage-free run of the same recording gives (field by
 * field, timeline and socket events in order), and the AMI connection must not have been let go.
 */

const ENV = {
  ASTERISK_LOCK_POLL_MS: '300',
  AMI_PING_INTERVAL_MS: '500',
  AMI_PING_TIMEOUT_MS: '1000',
  AMI_RECONNECT_MAX_MS: '500',
  AMI_AUTH_RETRY_MS: '1000',
  AMI_APPLY_RETRY_MAX_MS: '1000',
  AMI_PENDING_MAX_EVENTS: '100',
};
const PENDING_MAX = 100;
const OUTAGE_MS = 10_000;
const CONTEXT = 'internal';

/** A TCP proxy to PostgreSQL that can be cut (stop) and restored (start) on the same port. */
class PgProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
    this.server = server;
  }

  /** Every connection cut, new ones refused (the port is closed). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** How many replayable events come up to and including the first one named `event`. */
function eventsThrough(f: AmiFixture, event: string): number {
  const i = replayableEvents(f).findIndex((e) => amiHeader(e.fields, 'Event') === event);
  if (i < 0) throw new Error(`${f.name}: no ${event}`);
  return i + 1;
}

/** The fields of a call compared exactly (ids and times differ between two runs). */
const shape = (c: CallDetail) => ({
  provider: c.provider,
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
  timeline: c.timeline.map((e) => ({ kind: e.kind, agentId: e.data.agentId ?? null })),
});

const summary = (e: EventEnvelope) => {
  const c = (e.data as { call: CallDetail }).call;
  return { type: e.type, agentId: e.agentId, status: c.status, hangupCause: c.hangupCause };
};

describe('AMI: PostgreSQL refuses for 10 s in the middle of a call (e2e)', () => {
  let db: TestDatabase;
  let proxy: PgProxy;
  let t: TestApp;
  let co: TestCompany;
  let agent1001: string;
  const sims: AmiSimulator[] = [];
  const sockets: LiveClient[] = [];
  const f = loadAmiFixture('inbound-answered');
  const LINKEDID = '1795235277.3';

  beforeAll(async () => {
    db = await createTestDatabase('ami_outage');
    const target = new URL(adminUrl());
    proxy = new PgProxy(target.hostname, Number(target.port || 5432));
    await proxy.start();
    const viaProxy = new URL(db.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    t = await startTestApp({ env: ENV, databaseUrl: viaProxy.toString() });
    co = await createCompany(t, 'amiout');
    agent1001 = (await createAgent(t, co, { extension: '1001' })).id;
    await createAgent(t, co, { extension: '1002' }); // the unanswered calls ring there
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await t?.close();
    for (const sim of sims) await sim.stop();
    await proxy?.stop();
    await db?.drop();
  });

  /** A simulator and a connection of the company to it, logged in and resynchronised. */
  async function connected(): Promise<{ sim: AmiSimulator; id: string }> {
    const sim = new AmiSimulator();
    sim.setChannels([]);
    await sim.start();
    sims.push(sim);
    const res = await call(
      t,
      'POST',
      '/api/v1/pbx-connections',
      { key: co.apiKey },
      {
        provider: 'asterisk',
        name: unique('pbx'),
        settings: { host: '127.0.0.1', port: sim.port, username: 'cti', context: CONTEXT },
        secrets: { secret: 'ctisecret' },
      },
    );
    expect(res.status).toBe(201);
    const id = (await json(res)).id as string;
    await until('the resync', () =>
      sim.actions.some((a) => amiHeader(a, 'Action') === 'CoreShowChannels') ? true : undefined,
    );
    return { sim, id };
  }

  /** The call as the API shows it, read directly (not through the proxy) for the row's state. */
  const row = async (connectionId: string) =>
    (
      await query<{ id: string; status: string }>(db.url, 'SELECT id, status FROM calls WHERE call_key = $1', [
        `${connectionId}:${LINKEDID}`,
      ])
    )[0];

  async function finished(connectionId: string, ms = 10_000): Promise<CallDetail> {
    const r = await until(
      'the call ended',
      async () => {
        const x = await row(connectionId);
        return x && x.status === 'completed' ? x : undefined;
      },
      ms,
    );
    const res = await call(t, 'GET', `/api/v1/calls/${r.id}`, { key: co.apiKey });
    expect(res.status).toBe(200);
    return (await json(res)) as CallDetail;
  }

  const eventsOf = (client: LiveClient, callId: string) =>
    client.events.filter((e) => (e.data as { call?: { id?: string } }).call?.id === callId);

  it('the call is complete after the outage, equal to the same call without one, socket events in order', async () => {
    // The reference: the same recording, no outage, on a connection of its own.
    const clean = await connected();
    const watchClean = await connect(t.url, { apiKey: co.apiKey });
    sockets.push(watchClean);
    await clean.sim.replay(f);
    const reference = await finished(clean.id);
    expect(shape(reference)).toMatchObject({
      status: 'completed',
      agentId: agent1001,
      answered: true,
      ended: true,
      hangupCause: '16 Normal Clearing',
    });
    await until('the reference events', () => (eventsOf(watchClean, reference.id).length >= 4 ? true : undefined));
    const referenceEvents = eventsOf(watchClean, reference.id).map(summary);

    // The same call on another connection, PostgreSQL cut once it rings at the agent.
    const { sim, id } = await connected();
    const watch = await connect(t.url, { apiKey: co.apiKey });
    sockets.push(watch);
    const cut = eventsThrough(f, 'DialBegin');
    await sim.replay(f, { to: cut });
    await until('the ringing call stored', async () => ((await row(id))?.status === 'ringing' ? true : undefined));

    await proxy.stop();
    const down = Date.now();
    // The rest of the call (answer, bridge, hangups) arrives while PostgreSQL refuses.
    await sim.replay(f, { from: cut });
    await sleep(OUTAGE_MS - (Date.now() - down));
    // Really refused meanwhile: nothing of the rest was stored (read directly, around the proxy).
    expect((await row(id))?.status).toBe('ringing');
    const session = t.app
      .get(AsteriskSupervisor)
      .held()
      .find((s) => s.id === id);
    expect(session?.state).toBe('connected');
    await proxy.start();

    const after = await finished(id, 15_000);
    expect(shape(after)).toEqual(shape(reference));
    expect(after.id).not.toBe(reference.id);
    await until('the events after the outage', () =>
      eventsOf(watch, after.id).length >= referenceEvents.length ? true : undefined,
    );
    const events = eventsOf(watch, after.id);
    expect(events.map(summary)).toEqual(referenceEvents);
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));

    // The connection was kept through the outage: one login, no second resync.
    expect(sim.logins).toBe(1);
    expect(sim.actions.filter((a) => amiHeader(a, 'Action') === 'CoreShowChannels')).toHaveLength(1);
    // The retries were said, and the recovery too.
    const lines = t.logs.lines;
    expect(lines.some((l) => l.msg === 'AMI events not stored yet: retrying')).toBe(true);
    expect(lines.some((l) => l.msg === 'AMI events stored after failed attempts')).toBe(true);
    expect(lines.some((l) => l.msg === 'AMI events given up: not stored before the session stopped')).toBe(false);
  }, 60_000);

  it('back-pressure: past AMI_PENDING_MAX_EVENTS waiting events the socket is no longer read, and nothing is dropped', async () => {
    const { sim, id } = await connected();
    // 150 unanswered calls (4 call events each: ringing, ringing at 1002, ended, ended), ids of their own.
    const recorded = replayableEvents(loadAmiFixture('inbound-unanswered'));
    const CALLS = 150;
    const EPOCH = 1_960_000_000;
    const stream = Array.from({ length: CALLS }, (_, k) =>
      recorded.map((e) => serializeAmi(renumberEvent(e.fields, EPOCH + k, k))).join(''),
    );
    const backlog = () =>
      t.app
        .get(AsteriskSupervisor)
        .backlog()
        .find((b) => b.id === id)!;
    await until('the resync stored', () => (backlog().resyncing ? undefined : true));

    await proxy.stop();
    const streamed = sim.stream(stream);
    const paused = await until('the socket paused', () => (backlog().paused ? backlog() : undefined));
    expect(paused.pending).toBeGreaterThanOrEqual(PENDING_MAX);
    await sleep(1_000);
    // Not reading: the backlog stays at the bound plus what the last read brought (one read is at
    // most 64 KiB, ~15 calls' events of which 4 each are kept), far below the 600 of the stream.
    const held = backlog();
    expect(held.paused).toBe(true);
    expect(held.pending).toBeLessThan(PENDING_MAX + 100);
    await proxy.start();
    await streamed;

    const stored = async () =>
      (
        await query<{ calls: number; events: number }>(
          db.url,
          `SELECT count(DISTINCT c.id)::int AS calls, count(e.id)::int AS events
           FROM calls c JOIN call_events e ON e.call_id = c.id
           WHERE c.connection_id = $1 AND c.status = 'missed' AND c.hangup_cause = '16 Normal Clearing'
             AND c.agent_id IS NOT NULL`,
          [id],
        )
      )[0]!;
    await until('every call stored', async () => ((await stored()).calls === CALLS ? true : undefined), 30_000).catch(
      async (error: Error) => {
        const seen = await query(
          db.url,
          `SELECT status, hangup_cause, agent_id IS NOT NULL AS agent, count(*)::int AS n FROM calls
           WHERE connection_id = $1 GROUP BY 1, 2, 3`,
          [id],
        );
        throw new Error(`${error.message}: ${JSON.stringify(seen)}; backlog ${JSON.stringify(backlog())}`);
      },
    );
    expect(await stored()).toEqual({ calls: CALLS, events: 4 * CALLS });
    await until('the backlog empty', () => (backlog().pending === 0 && !backlog().paused ? true : undefined));
    expect(backlog()).toEqual({ id, pending: 0, paused: false, resyncing: false });
    expect(sim.logins).toBe(1);
  }, 60_000);
});
