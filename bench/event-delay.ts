import 'reflect-metadata';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { constants, monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { Server } from 'socket.io';
import type { CallEvent } from '../src/calls/call-event.js';
import type { CallEventKind } from '../src/calls/call-state.js';
import { CallApplyService } from '../src/calls/call-apply.service.js';
import { runMigrations } from '../src/database/migrator.js';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import { EventsService } from '../src/events/events.service.js';
import { EventsGateway } from '../src/gateway/events.gateway.js';
import {
  type BenchContext,
  count,
  cpuLine,
  cpuSample,
  type CpuShares,
  cpuShares,
  createCompany,
  isoNow,
  loadNote,
  type Machine,
  machine,
  machineLines,
  ms,
  postmasterPid,
  runBench,
  sleep,
  startApp,
  startDatabase,
  type Stats,
  stats,
  writeSection,
} from './support/harness.js';
import type {
  ClientSpec,
  ClientTally,
  SocketWorkerReply,
  SocketWorkerRequest,
} from './support/socket-clients.worker.js';

/**
 * The delay from applying a call event (CallApplyService.apply: one transaction, then the gateway's
 * per-company ordered fan-out) to its receipt by socket.io clients: 1,000 API-key clients across
 * 100 companies, 200 events/s, of which one busy company takes half (100/s, so its event counter
 * row is contended by concurrent applies) and the other half is spread over the other 99; against
 * a bare socket.io server emitting the same envelopes at the same rate to the same clients in the
 * same run. Writes its section of BENCHMARKS.md.
 *
 *   npm run bench:events     (BENCH_DATABASE_URL or DATABASE_URL: use that server, else embedded)
 */

const COMPANIES = 100;
const CLIENTS_PER_COMPANY = 10;
const WORKERS = 2;
const RATE = 200;
const WARMUP_S = 5;
const MEASURE_S = 30;
const WARMUP_EVENTS = RATE * WARMUP_S;
const TOTAL_EVENTS = RATE * (WARMUP_S + MEASURE_S);
const TARGET_P99_MS = 20;
const CONNECT_CONCURRENCY = 50;
const HARD_LIMIT_MS = 420_000;
const KINDS: CallEventKind[] = ['ringing', 'answered', 'ended'];
const SOCKET_IO_VERSION = (createRequire(import.meta.url)('socket.io/package.json') as { version: string }).version;

const MARK_START = '<!-- bench:event-delay:start -->';
const MARK_END = '<!-- bench:event-delay:end -->';

/** The busy company of the busy load. */
const BUSY = 0;

/** Which company each event goes to, and which event of its company it is (0, 1, 2 …). */
interface LoadPattern {
  name: 'busy' | 'spread';
  companyOf(n: number): number;
  indexInCompany(n: number): number;
}

/** Every second event for the busy company (its counter row contended); the rest rotate over the other 99. */
const BUSY_LOAD: LoadPattern = {
  name: 'busy',
  companyOf: (n) => (n % 2 === 0 ? BUSY : 1 + (((n - 1) / 2) % (COMPANIES - 1))),
  indexInCompany: (n) => (n % 2 === 0 ? n / 2 : Math.floor((n - 1) / 2 / (COMPANIES - 1))),
};

/** The events rotate evenly over all companies (no company's counter is ever contended). */
const SPREAD_LOAD: LoadPattern = {
  name: 'spread',
  companyOf: (n) => n % COMPANIES,
  indexInCompany: (n) => Math.floor(n / COMPANIES),
};

const now = () => performance.timeOrigin + performance.now();
/** (company, seq) → one number, for maps. */
const key = (company: number, seq: number) => company * 1_000_000 + seq;

// ---------------------------------------------------------------------------------------------
// Client workers

class SocketWorker {
  private readonly worker = new Worker(new URL('./support/socket-clients.worker.js', import.meta.url));
  /** Replies come in the order of the requests. */
  private readonly waiting: ((reply: SocketWorkerReply) => void)[] = [];
  specs: ClientSpec[] = [];

  constructor() {
    this.worker.on('message', (reply: SocketWorkerReply) => this.waiting.shift()?.(reply));
    this.worker.on('error', (error) => console.error('bench socket worker failed:', error));
  }

  request<T extends SocketWorkerReply['type']>(
    message: SocketWorkerRequest,
  ): Promise<Extract<SocketWorkerReply, { type: T }>> {
    return new Promise((resolve) => {
      this.waiting.push((reply) => resolve(reply as Extract<SocketWorkerReply, { type: T }>));
      this.worker.postMessage(message);
    });
  }

  async connect(url: string, specs: ClientSpec[]): Promise<void> {
    this.specs = specs;
    const reply = await this.request<'connected'>({
      type: 'connect',
      url,
      clients: specs,
      concurrency: CONNECT_CONCURRENCY,
    });
    if (reply.error || reply.count !== specs.length) {
      throw new Error(`socket clients: ${reply.count}/${specs.length} connected: ${reply.error ?? ''}`);
    }
  }

  /** Offset of the worker's clock from this thread's (ms), from the ping with the shortest round trip. */
  async clockOffset(pings = 50): Promise<{ offset: number; rtt: number }> {
    let best = { offset: 0, rtt: Infinity };
    for (let i = 0; i < pings; i++) {
      const t = now();
      const pong = await this.request<'pong'>({ type: 'ping', t });
      const back = now();
      if (back - t < best.rtt) best = { offset: pong.tw - (t + back) / 2, rtt: back - t };
    }
    return best;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** Every client of every company, spread so that each worker holds some clients of every company. */
function clientSpecs(auth: (company: number) => Record<string, unknown>): ClientSpec[][] {
  const perWorker: ClientSpec[][] = Array.from({ length: WORKERS }, () => []);
  for (let c = 0; c < COMPANIES; c++) {
    for (let k = 0; k < CLIENTS_PER_COMPANY; k++) perWorker[k % WORKERS]!.push({ company: c, auth: auth(c) });
  }
  return perWorker;
}

async function connectAll(workers: SocketWorker[], url: string, auth: (company: number) => Record<string, unknown>) {
  const specs = clientSpecs(auth);
  await Promise.all(workers.map((w, i) => w.connect(url, specs[i]!)));
}

/** Waits until the clients have received `expected` events in all (or `ms` passed). */
async function settle(workers: SocketWorker[], expected: number, timeoutMs = 10_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const counts = await Promise.all(workers.map((w) => w.request<'count'>({ type: 'count' })));
    const received = counts.reduce((s, c) => s + c.received, 0);
    if (received >= expected || performance.now() > deadline) {
      await sleep(200); // anything late (a duplicate) still counts
      return received;
    }
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// Load

/** Fires `fire(n)` for n = 0 … total − 1 at `rate` per second (catching up when a tick is late). */
function drive(total: number, rate: number, fire: (n: number) => void): Promise<void> {
  const interval = 1000 / rate;
  const start = performance.now();
  let next = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const t = performance.now();
      while (next < total && start + next * interval <= t) fire(next++);
      if (next < total) setTimeout(tick, Math.max(0, start + next * interval - performance.now()));
      else resolve();
    };
    tick();
  });
}

// ---------------------------------------------------------------------------------------------
// One run (the application, or the bare socket.io server)

interface Timeline {
  /** Just before apply() / emit, per event (ms since the epoch). */
  t0: Float64Array;
  /** (company, seq) → event number. */
  eventOf: Map<number, number>;
  /** Events of each company (all of them, warm-up included). */
  perCompany: number[];
  /** Events whose apply() failed (not delivered; the baseline skips them too). */
  failed: Set<number>;
  load: LoadPattern;
}

interface RunResult {
  /** t0 → receipt, measured events only (every client). */
  delay: Stats;
  /** The same, the busy company's clients only. */
  busyDelay: Stats;
  /** The same, the other companies' clients only. */
  spreadDelay: Stats;
  /** The delays per event number, for the split of the application's path. */
  receipts: { n: number; t1: number }[];
  expectedReceipts: number;
  received: number;
  losses: number;
  duplicates: number;
  outOfOrder: number;
  unexpected: number;
  disconnected: number;
  rate: number;
  loopDelay: Stats;
  /** How long the server's in-process hand-over to the sockets took, per event. */
  fanOut: Stats;
  /** p99 of each second of the measured load (by t0), from measureStart. */
  perSecondP99: number[];
  measureStart: number;
  cpu: CpuShares;
  gc: GcSummary;
  /** Garbage collection in the client threads (all of them) during the measured load. */
  clientGc: GcSummary;
  /** The client threads' pauses of 5 ms or more: the second of the measured load they fell in. */
  clientGcLongest: { second: number; ms: number }[];
}

interface GcSummary {
  count: number;
  major: number;
  /** When each major (mark-compact) collection ended its pause (ms since the epoch). */
  majorAt: number[];
  totalMs: number;
  maxMs: number;
}

/** Garbage-collection pauses of this thread (the server's) while it runs. */
function watchGc(): { stop(): GcSummary } {
  const pauses: { at: number; duration: number; kind: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      pauses.push({
        at: performance.timeOrigin + e.startTime + e.duration,
        duration: e.duration,
        kind: (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0,
      });
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    stop() {
      observer.disconnect();
      return {
        count: pauses.length,
        major: pauses.filter((p) => p.kind === constants.NODE_PERFORMANCE_GC_MAJOR).length,
        majorAt: pauses.filter((p) => p.kind === constants.NODE_PERFORMANCE_GC_MAJOR).map((p) => p.at),
        totalMs: pauses.reduce((sum, p) => sum + p.duration, 0),
        maxMs: Math.max(0, ...pauses.map((p) => p.duration)),
      };
    },
  };
}

async function collect(
  workers: SocketWorker[],
  timeline: Timeline,
): Promise<Omit<RunResult, 'rate' | 'loopDelay' | 'cpu' | 'fanOut' | 'gc'>> {
  const delays: number[] = [];
  const busyDelays: number[] = [];
  const spreadDelays: number[] = [];
  const bySecond: number[][] = Array.from({ length: MEASURE_S }, () => []);
  const clientGc: { at: number; ms: number }[] = [];
  const measureStart = timeline.t0[WARMUP_EVENTS]!;
  const receipts: { n: number; t1: number }[] = [];
  let received = 0;
  let losses = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let unexpected = 0;
  let disconnected = 0;
  for (const w of workers) {
    const reply = await w.request<'collected'>({ type: 'collect' });
    for (let i = 0; i < reply.gc.length; i += 2) {
      const at = reply.gc[i]!;
      if (at >= measureStart && at < timeline.t0[TOTAL_EVENTS - 1]!) clientGc.push({ at, ms: reply.gc[i + 1]! });
    }
    const r = reply.receipts;
    for (let i = 0; i < r.length; i += 3) {
      const client = w.specs[r[i]!]!;
      const n = timeline.eventOf.get(key(client.company, r[i + 1]!));
      received++;
      if (n === undefined) {
        unexpected++;
        continue;
      }
      receipts.push({ n, t1: r[i + 2]! });
      if (n >= WARMUP_EVENTS) {
        const delay = r[i + 2]! - timeline.t0[n]!;
        delays.push(delay);
        (client.company === BUSY ? busyDelays : spreadDelays).push(delay);
        bySecond[Math.min(MEASURE_S - 1, Math.floor((timeline.t0[n]! - measureStart) / 1000))]!.push(delay);
      }
    }
    for (const tally of reply.clients as ClientTally[]) {
      if (tally.readySeq !== 0) throw new Error(`a client was ready at seq ${tally.readySeq}, expected 0`);
      const unique = tally.received - tally.duplicates;
      losses += Math.max(0, timeline.perCompany[tally.company]! - unique);
      duplicates += tally.duplicates;
      outOfOrder += tally.outOfOrder;
      if (tally.disconnected) disconnected++;
    }
  }
  return {
    delay: stats(delays),
    busyDelay: stats(busyDelays),
    spreadDelay: stats(spreadDelays),
    perSecondP99: bySecond.map((d) => stats(d).p99),
    measureStart,
    clientGc: {
      count: clientGc.length,
      major: 0,
      majorAt: [],
      totalMs: clientGc.reduce((sum, p) => sum + p.ms, 0),
      maxMs: Math.max(0, ...clientGc.map((p) => p.ms)),
    },
    clientGcLongest: clientGc
      .filter((p) => p.ms >= 5)
      .map((p) => ({ second: Math.floor((p.at - measureStart) / 1000), ms: p.ms })),
    receipts,
    expectedReceipts: (TOTAL_EVENTS - timeline.failed.size) * CLIENTS_PER_COMPANY,
    received,
    losses,
    duplicates,
    outOfOrder,
    unexpected,
    disconnected,
  };
}

function achievedRate(t0: Float64Array): number {
  const first = t0[WARMUP_EVENTS]!;
  const last = t0[TOTAL_EVENTS - 1]!;
  return ((TOTAL_EVENTS - 1 - WARMUP_EVENTS) / (last - first)) * 1000;
}

/**
 * The envelopes the application produced, kept for the baseline as JSON in one buffer outside
 * the JavaScript heap: holding thousands of envelope objects would grow the server's old
 * generation and bring on garbage collections that the application itself would not have.
 */
class EnvelopeStore {
  private readonly buffer = Buffer.allocUnsafeSlow(32 * 2 ** 20);
  private readonly start: Uint32Array;
  readonly length: Uint32Array;
  readonly seq: Float64Array;
  private used = 0;

  constructor(size: number) {
    this.start = new Uint32Array(size);
    this.length = new Uint32Array(size);
    this.seq = new Float64Array(size);
  }

  put(n: number, envelope: EventEnvelope): void {
    const json = JSON.stringify(envelope);
    const bytes = this.buffer.write(json, this.used);
    if (bytes !== Buffer.byteLength(json)) throw new Error('the envelope store is full');
    this.start[n] = this.used;
    this.length[n] = bytes;
    this.seq[n] = envelope.seq;
    this.used += bytes;
  }

  get(n: number): EventEnvelope {
    return JSON.parse(this.buffer.toString('utf8', this.start[n], this.start[n]! + this.length[n]!)) as EventEnvelope;
  }
}

interface AppRun extends RunResult {
  /** t0 → EventsService.publish called (the transaction has committed). */
  toCommitted: Stats;
  /** publish called → receipt (the gateway's ordered fan-out, socket.io, delivery). */
  publishedToReceipt: Stats;
  /** SQL statements (each one round trip) per apply(), counted on a quiet application after the load. */
  statementsPerApply: number;
  /** DATABASE_POOL_MAX of the application. */
  pool: number;
  /** The same apply() sequence, one at a time with nothing else running: t0 → commit. */
  quietCommit: Stats;
  envelopes: EnvelopeStore;
  timeline: Timeline;
  meanBytes: number;
  errors: string[];
}

async function runApp(
  ctx: BenchContext,
  databaseUrl: string,
  workers: SocketWorker[],
  load: LoadPattern,
): Promise<AppRun> {
  const { companyOf, indexInCompany } = load;
  ctx.step('application: starting');
  const running = await startApp(databaseUrl);
  const closeApp = ctx.opened(() => running.close());
  ctx.step(`application: ${COMPANIES} companies through POST /internal/apps`);
  const companies: { id: string; apiKey: string }[] = [];
  for (let c = 0; c < COMPANIES; c++)
    companies.push(await createCompany(running.port, `Bench events ${load.name} ${c}`));
  const indexOf = new Map(companies.map((c, i) => [c.id, i]));

  ctx.step(
    `application: connecting ${count(COMPANIES * CLIENTS_PER_COMPANY)} clients (API keys) from ${WORKERS} workers`,
  );
  await connectAll(workers, `http://127.0.0.1:${running.port}`, (c) => ({ apiKey: companies[c]!.apiKey }));
  const gateway = running.app.get(EventsGateway);
  for (const company of companies) {
    const n = gateway.streams.clientsOf(company.id).size;
    if (n !== CLIENTS_PER_COMPANY)
      throw new Error(`the gateway has ${n} live clients for a company, expected ${CLIENTS_PER_COMPANY}`);
  }

  // Instrumentation: CallApplyService calls EventsService.publish right after its transaction
  // commits; the gateway's fan-out runs synchronously inside it (produced$ subscriber).
  const events = running.app.get(EventsService);
  const publish = events.publish.bind(events);
  const publishedAt = new Map<number, number>();
  const fanOut: number[] = [];
  events.publish = (envelopes: EventEnvelope[]) => {
    const at = now();
    for (const e of envelopes) publishedAt.set(key(indexOf.get(e.companyId)!, e.seq), at);
    publish(envelopes);
    fanOut.push(now() - at);
  };
  const postmaster = await postmasterPid(databaseUrl);

  const calls = running.app.get(CallApplyService);
  const timeline: Timeline = {
    t0: new Float64Array(TOTAL_EVENTS),
    eventOf: new Map(),
    perCompany: new Array<number>(COMPANIES).fill(0),
    failed: new Set(),
    load,
  };
  const envelopes = new EnvelopeStore(TOTAL_EVENTS);
  const errors: string[] = [];
  const inFlight = new Set<Promise<void>>();
  const fire = (n: number) => {
    const c = companyOf(n);
    const j = indexInCompany(n); // the company's j-th event: call j/3, ringing → answered → ended
    const kind = KINDS[j % 3]!;
    const providerCallId = `bench-${c}-${Math.floor(j / 3)}`;
    const event: CallEvent = {
      companyId: companies[c]!.id,
      provider: 'asterisk',
      providerCallId,
      eventKey: `${providerCallId}:${kind}`,
      kind,
      at: new Date(),
      direction: 'inbound',
      from: `+1555${String(1_000_000 + ((n * 7919) % 9_000_000)).padStart(7, '0')}`,
      to: `+1555000${String(c).padStart(4, '0')}`,
      callerName: 'Bench Caller',
      ...(kind === 'ended' ? { hangupCause: 'normal_clearing' } : {}),
    };
    timeline.t0[n] = now();
    const p = calls.apply(event).then(
      (result) => {
        if (result.events.length !== 1) {
          errors.push(`event ${n} (${kind}) produced ${result.events.length} envelopes`);
          timeline.failed.add(n);
          return;
        }
        const envelope = result.events[0]!;
        envelopes.put(n, envelope);
        timeline.eventOf.set(key(c, envelope.seq), n);
        timeline.perCompany[c]!++;
      },
      (error: unknown) => {
        errors.push(`event ${n}: ${error instanceof Error ? error.message : String(error)}`);
        timeline.failed.add(n);
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  ctx.step(`application, ${load.name} load: ${RATE} events/s, ${WARMUP_S} s warm-up + ${MEASURE_S} s measured`);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let cpuStart = cpuSample(postmaster);
  let gcWatch: ReturnType<typeof watchGc> | undefined;
  await drive(TOTAL_EVENTS, RATE, (n) => {
    if (n === WARMUP_EVENTS) {
      loop.enable();
      cpuStart = cpuSample(postmaster);
      gcWatch = watchGc();
    }
    fire(n);
  });
  await Promise.all([...inFlight]);
  loop.disable();
  const cpu = cpuShares(cpuStart, cpuSample(postmaster));
  const gc = gcWatch!.stop();
  const received = await settle(workers, TOTAL_EVENTS * CLIENTS_PER_COMPANY);
  events.publish = publish;
  // Failures are reported (the target is then not met); only a run with nothing applied stops here.
  if (errors.length === TOTAL_EVENTS) {
    throw new Error(`apply failed ${errors.length} times: ${errors.slice(0, 3).join('; ')}`);
  }
  ctx.step(`application: ${count(received)} receipts; collecting`);
  const result = await collect(workers, timeline);
  await Promise.all(workers.map((w) => w.request<'closed'>({ type: 'close' })));
  const quiet = await quietApplies(calls, companies[0]!.id);
  await closeApp();

  const toCommitted: number[] = [];
  let bytes = 0;
  for (let n = WARMUP_EVENTS; n < TOTAL_EVENTS; n++) {
    if (timeline.failed.has(n)) continue;
    const at = publishedAt.get(key(companyOf(n), envelopes.seq[n]!));
    if (at === undefined) throw new Error(`event ${n} was never published`);
    toCommitted.push(at - timeline.t0[n]!);
    bytes += envelopes.length[n]!;
  }
  const publishedToReceipt = result.receipts
    .filter((r) => r.n >= WARMUP_EVENTS)
    .map((r) => r.t1 - publishedAt.get(key(companyOf(r.n), envelopes.seq[r.n]!))!);
  return {
    ...result,
    rate: achievedRate(timeline.t0),
    loopDelay: loopStats(loop),
    cpu,
    gc,
    toCommitted: stats(toCommitted),
    publishedToReceipt: stats(publishedToReceipt),
    fanOut: stats(fanOut.slice(WARMUP_EVENTS)),
    statementsPerApply: quiet.statements,
    pool: running.config.DATABASE_POOL_MAX,
    quietCommit: quiet.commit,
    envelopes,
    timeline,
    meanBytes: bytes / Math.max(1, toCommitted.length),
    errors,
  };
}

/**
 * With no clients and no load: ringing/answered/ended of 100 calls one at a time, counting the
 * SQL statements each apply() sends (pg.Client#query calls) and timing it.
 */
async function quietApplies(
  calls: CallApplyService,
  companyId: string,
): Promise<{ statements: number; commit: Stats }> {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const query = proto.query;
  let statements = 0;
  proto.query = function (this: unknown, ...args: unknown[]) {
    statements++;
    return query.apply(this, args);
  };
  const times: number[] = [];
  try {
    for (let i = 0; i < 100; i++) {
      for (const kind of KINDS) {
        const t0 = now();
        await calls.apply({
          companyId,
          provider: 'asterisk',
          providerCallId: `quiet-${i}`,
          eventKey: `quiet-${i}:${kind}`,
          kind,
          at: new Date(),
          direction: 'inbound',
          from: '+15551230000',
          to: '+15550000000',
        });
        times.push(now() - t0);
      }
    }
  } finally {
    proto.query = query;
  }
  return { statements: statements / times.length, commit: stats(times.slice(30)) };
}

function loopStats(h: ReturnType<typeof monitorEventLoopDelay>): Stats {
  return {
    n: h.count,
    p50: h.percentile(50) / 1e6,
    p90: h.percentile(90) / 1e6,
    p99: h.percentile(99) / 1e6,
    max: h.max / 1e6,
    mean: h.mean / 1e6,
  };
}

/** A bare socket.io server (no auth, a room per company) emitting the application's envelopes. */
async function runBaseline(
  ctx: BenchContext,
  workers: SocketWorker[],
  app: AppRun,
  postmaster: number | null,
): Promise<RunResult> {
  ctx.step('baseline: bare socket.io server');
  const http = createServer();
  const io = new Server(http, { path: '/socket.io', serveClient: false });
  io.on('connection', (socket) => {
    const company = Number((socket.handshake.auth as { company?: unknown }).company);
    void socket.join(`company:${company}`);
    socket.emit('ready', { companyId: String(company), agentId: null, seq: 0 });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const closeIo = ctx.opened(() => new Promise<void>((resolve) => void io.close(() => resolve())));
  const address = http.address();
  if (!address || typeof address !== 'object') throw new Error('the bare server is not listening');
  await connectAll(workers, `http://127.0.0.1:${address.port}`, (c) => ({ company: c }));

  const timeline: Timeline = {
    t0: new Float64Array(TOTAL_EVENTS),
    eventOf: app.timeline.eventOf,
    perCompany: app.timeline.perCompany,
    failed: app.timeline.failed,
    load: app.timeline.load,
  };
  // One company's applies in flight at once may commit out of the order they were fired, so the
  // application published its events in seq order, not in event order: in each company's slots of
  // the schedule, the baseline emits that company's envelopes in seq order too.
  const emitAt = new Int32Array(TOTAL_EVENTS).fill(-1);
  const slotsOf = new Map<number, number[]>();
  for (let n = 0; n < TOTAL_EVENTS; n++) {
    if (app.timeline.failed.has(n)) continue;
    const c = timeline.load.companyOf(n);
    const slots = slotsOf.get(c) ?? [];
    slots.push(n);
    slotsOf.set(c, slots);
  }
  for (const slots of slotsOf.values()) {
    const bySeq = [...slots].sort((x, y) => app.envelopes.seq[x]! - app.envelopes.seq[y]!);
    slots.forEach((slot, i) => (emitAt[slot] = bySeq[i]!));
  }
  ctx.step(`baseline: the same ${count(TOTAL_EVENTS)} envelopes at ${RATE}/s to the company rooms`);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let cpuStart = cpuSample(postmaster);
  const fanOut: number[] = [];
  let gcWatch: ReturnType<typeof watchGc> | undefined;
  await drive(TOTAL_EVENTS, RATE, (n) => {
    if (n === WARMUP_EVENTS) {
      loop.enable();
      cpuStart = cpuSample(postmaster);
      gcWatch = watchGc();
    }
    const room = `company:${timeline.load.companyOf(n)}`;
    const m = emitAt[n]!;
    if (m < 0) {
      timeline.t0[n] = now(); // the application never published it: nothing to emit
      return;
    }
    const envelope = app.envelopes.get(m);
    const t0 = now();
    timeline.t0[m] = t0;
    io.to(room).emit('event', envelope);
    if (n >= WARMUP_EVENTS) fanOut.push(now() - t0);
  });
  loop.disable();
  const cpu = cpuShares(cpuStart, cpuSample(postmaster));
  const gc = gcWatch!.stop();
  await settle(workers, TOTAL_EVENTS * CLIENTS_PER_COMPANY);
  const result = await collect(workers, timeline);
  await Promise.all(workers.map((w) => w.request<'closed'>({ type: 'close' })));
  await closeIo();
  return { ...result, rate: achievedRate(timeline.t0), loopDelay: loopStats(loop), cpu, gc, fanOut: stats(fanOut) };
}

// ---------------------------------------------------------------------------------------------
// Report

interface Report {
  date: string;
  machine: Machine;
  database: string;
  app: AppRun;
  /** The same application and rate, the events spread evenly over the companies (no busy one). */
  spread: AppRun;
  baseline: RunResult;
  clock: { offset: number; rtt: number }[];
  load: { before: string; after: string; loaded: boolean };
}

/** Failure messages, grouped (the event number taken off), the most frequent first. */
function summarise(errors: string[]): string {
  const by = new Map<string, number>();
  for (const e of errors) {
    const m = e.replace(/^event \d+(?: \(\w+\))?: ?/, '').slice(0, 100);
    by.set(m, (by.get(m) ?? 0) + 1);
  }
  return [...by]
    .sort((x, y) => y[1] - x[1])
    .slice(0, 3)
    .map(([m, n]) => `${count(n)} × “${m}”`)
    .join(', ');
}

function row(label: string, s: Stats, unit = 'receipts'): string {
  return `| ${label} | ${count(s.n)} ${unit} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.max)} | ${ms(s.mean)} |`;
}

function integrity(r: RunResult): string {
  return (
    `${count(r.received)} of ${count(r.expectedReceipts)} receipts; losses ${r.losses}, duplicates ${r.duplicates}, ` +
    `out of order ${r.outOfOrder}, unknown ${r.unexpected}, clients disconnected ${r.disconnected}`
  );
}

const clean = (r: RunResult) =>
  r.losses === 0 &&
  r.duplicates === 0 &&
  r.outOfOrder === 0 &&
  r.unexpected === 0 &&
  r.disconnected === 0 &&
  r.received === r.expectedReceipts;

function gcLine(g: GcSummary, kinds = true): string {
  return (
    `${count(g.count)} pauses${kinds ? ` (${g.major} major)` : ''}, ${ms(g.totalMs, 0)} ms in all, ` +
    `the longest ${ms(g.maxMs, 1)} ms`
  );
}

/** Which seconds over the target had a major GC of the server's thread (ending in it or up to 0.5 s before). */
function gcSeconds(r: RunResult): string {
  const withGc = (second: number) =>
    r.gc.majorAt.some((at) => {
      const t = (at - r.measureStart) / 1000;
      return t >= second - 0.5 && t < second + 1;
    });
  const over = r.perSecondP99.map((v, i) => [v, i] as const).filter(([v]) => v >= TARGET_P99_MS);
  const majors = r.gc.majorAt.map((at) => ((at - r.measureStart) / 1000).toFixed(1));
  return (
    `${over.length} of ${r.perSecondP99.length} seconds had p99 at or over ${TARGET_P99_MS} ms` +
    (over.length ? ` (${over.map(([, i]) => i).join(', ')})` : '') +
    `; major collections ended at ${majors.length ? majors.join(', ') : 'none'} s; ` +
    `${over.filter(([, i]) => withGc(i)).length} of those seconds had one ending in them or in the half second before`
  );
}

function longGc(r: RunResult): string {
  if (r.clientGcLongest.length === 0) return '';
  return ` (5 ms or more: ${r.clientGcLongest.map((p) => `${ms(p.ms, 0)} ms in second ${p.second}`).join(', ')})`;
}

function secondsLine(r: RunResult): string {
  const sorted = [...r.perSecondP99].sort((a, b) => a - b);
  const over = r.perSecondP99.filter((v) => v >= TARGET_P99_MS).length;
  return (
    `median ${ms(sorted[Math.floor(sorted.length / 2)]!)} ms, best ${ms(sorted[0]!)} ms, worst ` +
    `${ms(sorted[sorted.length - 1]!)} ms; ${over} of ${sorted.length} seconds at or over ${TARGET_P99_MS} ms`
  );
}

function section(r: Report): string {
  const met = r.app.delay.p99 < TARGET_P99_MS && clean(r.app) && r.app.errors.length === 0;
  const measured = MEASURE_S * RATE;
  const a = r.app;
  return [
    MARK_START,
    '## Live events: delay from applying a call event to its receipt by socket clients',
    '',
    `Measured ${r.date} by \`npm run bench:events\` (\`bench/event-delay.ts\`); re-running replaces this section.`,
    '',
    `**Target**: p99 event delay under ${TARGET_P99_MS} ms with ${count(COMPANIES * CLIENTS_PER_COMPANY)} ` +
      `connected clients across ${COMPANIES} companies at ${RATE} events/s, one busy company taking half of them.`,
    '',
    `- **Application**: p50 **${ms(a.delay.p50)} ms**, p99 **${ms(a.delay.p99)} ms** (max ${ms(a.delay.max)} ms) ` +
      `over ${count(a.delay.n)} receipts at ${a.rate.toFixed(1)} events/s: target **${met ? 'met' : 'NOT met'}**` +
      (r.load.loaded ? ' (**loaded machine**: absolute figures inflated; compare with the same-run baseline)' : '') +
      '.',
    ...(a.errors.length > 0
      ? [
          `- **${count(a.errors.length)} of ${count(TOTAL_EVENTS)} applies FAILED** (not delivered, left out of the ` +
            `delays, and skipped by the baseline): ${summarise(a.errors)}.`,
        ]
      : []),
    `- **The same rate spread evenly over the ${COMPANIES} companies** (no busy company, same run, a fresh ` +
      `application): p50 **${ms(r.spread.delay.p50)} ms**, p99 **${ms(r.spread.delay.p99)} ms**` +
      (r.spread.errors.length
        ? `, ${count(r.spread.errors.length)} applies failed (${summarise(r.spread.errors)})`
        : '') +
      '.' +
      (r.spread.errors.length && a.errors.length
        ? ` Both loads saturate the connection pool (${a.pool} connections; a query waits 5 s at most for one) ` +
          'on this machine: this run cannot isolate what the busy company adds.'
        : ''),
    `- **The busy company** (${RATE / 2} events/s, applies in flight at once contend for its event counter row): ` +
      `p50 **${ms(a.busyDelay.p50)} ms**, p99 **${ms(a.busyDelay.p99)} ms**; the ${COMPANIES - 1} others ` +
      `(${RATE / 2} events/s between them): p50 ${ms(a.spreadDelay.p50)} ms, p99 ${ms(a.spreadDelay.p99)} ms.`,
    `- **Bare socket.io** (baseline, same run, same clients, same envelopes, same rate): p50 ` +
      `**${ms(r.baseline.delay.p50)} ms**, p99 **${ms(r.baseline.delay.p99)} ms** (busy company p99 ` +
      `${ms(r.baseline.busyDelay.p99)} ms, others ${ms(r.baseline.spreadDelay.p99)} ms).`,
    `- Where the application’s time goes: the transaction of \`apply()\` (t0 → commit, ` +
      `${a.statementsPerApply.toFixed(1)} SQL statements, one round trip each) p50 ${ms(a.toCommitted.p50)} ms, ` +
      `p99 ${ms(a.toCommitted.p99)} ms; from the commit to the receipt (the gateway’s ordered per-client ` +
      `fan-out, socket.io, delivery) p50 ${ms(a.publishedToReceipt.p50)} ms, p99 ` +
      `${ms(a.publishedToReceipt.p99)} ms, the same order as the bare server. The same \`apply()\` one at a ` +
      `time on the quiet application (no clients, no load): p50 ${ms(a.quietCommit.p50)} ms, p99 ` +
      `${ms(a.quietCommit.p99)} ms.`,
    `- p99 of each measured second: application ${secondsLine(a)}; baseline ${secondsLine(r.baseline)}. ` +
      `Application, second by second: ${a.perSecondP99.map((v) => v.toFixed(0)).join(' ')} ms.`,
    `- Seconds over the target and the server’s major (mark-compact) garbage collections: ${gcSeconds(a)}.`,
    `- Garbage collection during the measured load: on the server’s thread, application run ${gcLine(a.gc)}, ` +
      `baseline run ${gcLine(r.baseline.gc)}; in the ${WORKERS} client threads, application run ` +
      `${gcLine(a.clientGc, false)}${longGc(a)}, baseline run ${gcLine(r.baseline.clientGc, false)}${longGc(r.baseline)}.`,
    `- CPU during the measured load: application run ${cpuLine(a.cpu)}; baseline run ${cpuLine(r.baseline.cpu)}.`,
    `- Delivery: application ${integrity(a)}; baseline ${integrity(r.baseline)}. Every client received every ` +
      `event of its company exactly once and in sequence order: **${clean(a) && clean(r.baseline) ? 'yes' : 'NO'}**.`,
    '',
    '### Method',
    '',
    '- The real application: `createApp` (Fastify, socket.io gateway at `/socket.io`, `NODE_ENV=production`, ' +
      '`LOG_LEVEL=warn`, `JOBS_ENABLED=false`, no Redis, rate limits 1,000,000/min) on 127.0.0.1, against a ' +
      `fresh migrated database on ${r.database}. ${COMPANIES} companies made through \`POST /internal/apps\`; ` +
      `${CLIENTS_PER_COMPANY} socket.io clients per company with its primary API key (\`auth: { apiKey }\`, ` +
      `websocket transport): ${count(COMPANIES * CLIENTS_PER_COMPANY)} sockets, held by ${WORKERS} worker threads ` +
      `(${count((COMPANIES * CLIENTS_PER_COMPANY) / WORKERS)} each, every worker some clients of every company; ` +
      'not on the server’s event loop), each waiting for `ready`. Checked before the load: the gateway has ' +
      `${CLIENTS_PER_COMPANY} live stream clients per company.`,
    `- Load: ${RATE} call events per second: every second one for the busy company (${RATE / 2}/s: its calls ` +
      `ringing, answered, ended, 10 ms apart), the others rotating over the other ${COMPANIES - 1} companies ` +
      `(each gets one every ${((COMPANIES - 1) / (RATE / 2)).toFixed(2)} s: a new call ringing, then answered, ` +
      'then ended), each one ' +
      '`app.get(CallApplyService).apply({...})` in the server’s process, paced by a timer and not awaited (several ' +
      `in flight; connection pool ${a.pool}). ${WARMUP_S} s warm-up (${count(WARMUP_EVENTS)} events, not in ` +
      `the figures, checked for delivery), then ${MEASURE_S} s measured (${count(measured)} events × ` +
      `${CLIENTS_PER_COMPANY} clients).`,
    '- Delay: t0 = `performance.timeOrigin + performance.now()` just before `apply()` is called; t1 = the same ' +
      'clock, first thing in the client’s `event` handler in its worker thread. Events are matched by ' +
      '(company, `seq`). The worker clocks agree with the main thread’s to ' +
      `${r.clock.map((c) => `${(c.offset * 1000).toFixed(0)} µs`).join(' and ')} (ping with the shortest round ` +
      `trip, ${r.clock.map((c) => `${(c.rtt * 1000).toFixed(0)} µs`).join(' and ')}). The commit time is when ` +
      '`CallApplyService` calls `EventsService.publish` (wrapped by the benchmark; the gateway’s fan-out runs inside ' +
      'it, synchronously).',
    '- Per client: the sequence numbers received are checked for duplicates, order and gaps, and the count ' +
      'against the events applied to its company (warm-up included).',
    `- Baseline: a bare \`socket.io\` server (the same package and version, ${SOCKET_IO_VERSION}) on 127.0.0.1 in the same ` +
      'process, no authentication, one room per company; the same worker threads connect the same 1,000 clients ' +
      '(`auth: { company }`), and it emits the envelopes the application produced in this run (kept as JSON ' +
      'outside the JavaScript heap meanwhile, so as not to load the server’s garbage collector; same content, ' +
      `mean ${Math.round(a.meanBytes)} bytes of JSON) with \`io.to(room).emit('event', envelope)\` at the same ` +
      'schedule (within each company, in the order of the application’s sequence numbers: concurrent applies of ' +
      'the busy company may commit out of the order they were fired; failed applies are skipped); t0 just ' +
      'before the emit.',
    '- Everything (server, PostgreSQL, the clients’ threads) shares the machine below, with whatever else runs ' +
      'on it (the CPU line above says how much that was).',
    '- **Left out**: the webhook inbox and its batch processing (events are applied by calling the service ' +
      'in process: see the pipeline benchmark for ingest → socket); Redis (one instance, no socket.io adapter); ' +
      'reconnects and replays; PostgreSQL on the same machine.',
    '',
    '### Machine',
    '',
    ...machineLines(r.machine),
    `- Load: before ${r.load.before}; after ${r.load.after}`,
    '',
    '### Figures (milliseconds)',
    '',
    '| what | samples | p50 | p90 | p99 | max | mean |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('**application, busy load: `apply()` → client receipt**', a.delay),
    row('application, busy company only', a.busyDelay),
    row(`application, the other ${COMPANIES - 1} companies`, a.spreadDelay),
    row('application, spread load (no busy company)', r.spread.delay),
    row('baseline: bare socket.io `emit` → client receipt (busy load)', r.baseline.delay),
    row('baseline, busy company only', r.baseline.busyDelay),
    row('application: `apply()` → commit (its transaction)', a.toCommitted, 'events'),
    row('application: commit → client receipt (fan-out and delivery)', a.publishedToReceipt),
    row('application: the in-process hand-over to the 10 sockets (`publish()`)', a.fanOut, 'events'),
    row('baseline: the in-process hand-over to the 10 sockets (`io.to(room).emit`)', r.baseline.fanOut, 'events'),
    row('application, quiet (one at a time, no clients): `apply()` → commit', a.quietCommit, 'events'),
    row('server event-loop delay, application’s measured load', a.loopDelay, 'samples'),
    row('server event-loop delay, baseline’s measured load', r.baseline.loopDelay, 'samples'),
    '',
    `Achieved rate: application ${a.rate.toFixed(1)} events/s, baseline ${r.baseline.rate.toFixed(1)} events/s ` +
      `(${count(measured)} measured events each).`,
    MARK_END,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

runBench('event-delay', HARD_LIMIT_MS, async (ctx) => {
  const before = loadNote();
  ctx.step('starting PostgreSQL');
  const db = await startDatabase();
  ctx.opened(() => db.close());
  await runMigrations(db.url);
  const workers = Array.from({ length: WORKERS }, () => new SocketWorker());
  for (const w of workers) ctx.opened(() => w.close());
  const clock = await Promise.all(workers.map((w) => w.clockOffset()));

  // The old, even load first (same run, for comparison), then the busy one (the headline).
  const spread = await runApp(ctx, db.url, workers, SPREAD_LOAD);
  ctx.step(`spread load: p50 ${ms(spread.delay.p50)} ms, p99 ${ms(spread.delay.p99)} ms; ${integrity(spread)}`);
  const app = await runApp(ctx, db.url, workers, BUSY_LOAD);
  ctx.step(`busy load: p50 ${ms(app.delay.p50)} ms, p99 ${ms(app.delay.p99)} ms; ${integrity(app)}`);
  const baseline = await runBaseline(ctx, workers, app, await postmasterPid(db.url));
  ctx.step(`baseline: p50 ${ms(baseline.delay.p50)} ms, p99 ${ms(baseline.delay.p99)} ms; ${integrity(baseline)}`);

  const after = loadNote();
  const load = { before: before.text, after: after.text, loaded: before.loaded || after.loaded };
  const report: Report = {
    date: isoNow(),
    machine: await machine(db.url),
    database: db.where,
    app,
    spread,
    baseline,
    clock,
    load,
  };
  const text = section(report);
  writeSection(MARK_START, MARK_END, text);
  console.log('\n' + text);
});
