import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import pg from 'pg';
import { io, type Socket } from 'socket.io-client';
import type { CallEvent } from '../src/calls/call-event.js';
import { CallApplyService } from '../src/calls/call-apply.service.js';
import { runMigrations } from '../src/database/migrator.js';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import { EventsService } from '../src/events/events.service.js';
import { EventsGateway } from '../src/gateway/events.gateway.js';
import { AmiCallMapper, type AsteriskCallEvent } from '../src/pbx/asterisk/ami-call-mapper.js';
import { amiHeader, type AmiFields, AmiParser } from '../src/pbx/asterisk/ami-parser.js';
import {
  AMI_FIXTURE_NAMES,
  type AmiFixture,
  type AmiFixtureName,
  type AmiRecord,
  AmiSimulator,
  replayableEvents,
  serializeAmi,
} from '../test/support/ami-simulator.js';
import {
  adminQuery,
  count,
  cpuLine,
  cpuSample,
  type CpuShares,
  cpuShares,
  createCompany,
  isoNow,
  loadNote,
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

/**
 * The screen pop of an inbound Asterisk call: from the moment the AMI events of a new call
 * (the caller's Newchannel … DialBegin to PJSIP/1001, as recorded, with the recorded timing: three
 * writes over 2 ms) are written to the AMI socket to the moment the socket.io client of the agent with extension 1001 receives `call.ringing`
 * for that call. The real application holds a real Asterisk connection to the AMI simulator
 * (test/support/ami-simulator.ts); the simulator and the agent's client run in a worker thread
 * (not on the server's event loop), so both ends are stamped by one clock. One call at a time,
 * then 50 calls/s. Baseline in the same run: the same canonical call events given to
 * `CallApplyService.applyBatch` directly (no AMI socket, parser or session), to the same client.
 * Writes its section of BENCHMARKS.md (or, with `--out FILE`, that file only).
 *
 *   npm run bench:screen-pop     (BENCH_DATABASE_URL or DATABASE_URL: use that server, else embedded)
 */

const TARGET_P99_MS = 20;
const WARMUP_CALLS = 100;
/** AMI and baseline rounds alternate, so that both see the same machine (it may be shared). */
const ROUNDS = 5;
const SEQUENTIAL_PER_ROUND = 200;
const PACED_RATE = 50;
const PACED_PER_ROUND = 150;
/**
 * In the paced runs each call is hung up this long after its ringing events were written (half
 * an interval off the schedule, so that a hangup does not land together with a new call).
 */
const HANGUP_AFTER_MS = 510;
const RECEIPT_TIMEOUT_MS = 5_000;
/** An apply() this long or longer is counted as a stall. */
const SLOW_APPLY_MS = 25;
/** Rounds during which other processes used less than this (% of one core) count as quiet. */
const QUIET_OTHER_PCT = 25;
const HARD_LIMIT_MS = 480_000;
const EXTENSION = '1001';
/** Uniqueid prefixes: the calls through AMI, and those applied directly (baseline). */
const BASE_AMI = 1_800_000_000;
const BASE_DIRECT = 1_810_000_000;

const MARK_START = '<!-- bench:ami-screen-pop:start -->';
const MARK_END = '<!-- bench:ami-screen-pop:end -->';
const FIXTURES_DIR = fileURLToPath(new URL('../../test/fixtures/ami/', import.meta.url));

const now = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------
// The recorded call, made new for each call

/**
 * A recorded session, read from the repository's fixtures (the simulator's own loader looks
 * next to its compiled file, which has no fixtures under dist/).
 */
function loadFixture(name: AmiFixtureName): AmiFixture {
  const records = readFileSync(`${FIXTURES_DIR}${name}.jsonl`, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AmiRecord);
  return {
    name,
    ami: readFileSync(`${FIXTURES_DIR}${name}.ami`),
    records,
    banner: records.find((r) => r.banner !== undefined)!.banner!,
    received: records.filter((r) => r.fields).map((r) => ({ t: r.t, fields: r.fields! })),
    sent: records.filter((r) => r.sent).map((r) => ({ t: r.t, fields: r.sent! })),
  };
}

interface CallTemplate {
  /** The events from the caller's Newchannel to the DialBegin to the agent, as recorded. */
  ring: AmiFields[];
  /** When Asterisk sent each of them, ms after the first (the recording's timing). */
  ringAt: number[];
  /** The Hangup of both legs. */
  hangup: AmiFields[];
  /** Recorded values replaced in each new call. */
  callerUid: string;
  agentUid: string;
  callerChannel: string;
  agentChannel: string;
  callerNumber: string;
}

function callTemplate(): CallTemplate {
  const recorded = replayableEvents(loadFixture('inbound-answered'));
  const events = recorded.map((e) => e.fields);
  const name = (f: AmiFields) => amiHeader(f, 'Event');
  const start = events.findIndex((f) => name(f) === 'Newchannel');
  const dial = events.findIndex((f) => name(f) === 'DialBegin');
  const ring = events.slice(start, dial + 1);
  const dialBegin = ring[ring.length - 1]!;
  const t: CallTemplate = {
    ring,
    ringAt: recorded.slice(start, dial + 1).map((e) => e.t - recorded[start]!.t),
    hangup: events.filter((f) => name(f) === 'Hangup'),
    callerUid: amiHeader(ring[0]!, 'Uniqueid')!,
    agentUid: amiHeader(dialBegin, 'DestUniqueid')!,
    callerChannel: amiHeader(ring[0]!, 'Channel')!,
    agentChannel: amiHeader(dialBegin, 'DestChannel')!,
    callerNumber: amiHeader(ring[0]!, 'CallerIDNum')!,
  };
  if (!t.agentChannel.startsWith(`PJSIP/${EXTENSION}-`) || t.hangup.length !== 2 || start !== 0) {
    throw new Error('the inbound-answered fixture is not the call this benchmark expects');
  }
  return t;
}

interface AmiCall {
  /** The call's Linkedid: its providerCallId. */
  id: string;
  from: string;
  ring: AmiFields[];
  hangup: AmiFields[];
}

/** Call number `n`: fresh Uniqueid / Linkedid, channel names and caller number. */
function makeCall(t: CallTemplate, base: number, n: number): AmiCall {
  const callerUid = `${base}.${2 * n}`;
  const agentUid = `${base}.${2 * n + 1}`;
  const suffix = `${(base / 1e7).toString(16)}${n.toString(16).padStart(6, '0')}`;
  const from = `+1555${String(1_230_000 + n).padStart(7, '0')}`;
  const swaps: [string, string][] = [
    [t.callerChannel, t.callerChannel.replace(/-[0-9a-f]+$/, `-${suffix}`)],
    [t.agentChannel, t.agentChannel.replace(/-[0-9a-f]+$/, `-${suffix}`)],
    [t.callerNumber, from],
  ];
  const fresh = (fields: AmiFields): AmiFields =>
    fields.map(([k, v]): [string, string] => {
      if (v === t.callerUid) return [k, callerUid];
      if (v === t.agentUid) return [k, agentUid];
      let out = v;
      for (const [a, b] of swaps) out = out.replaceAll(a, b);
      return [k, out];
    });
  return { id: callerUid, from, ring: t.ring.map(fresh), hangup: t.hangup.map(fresh) };
}

const wire = (events: AmiFields[]) => Buffer.from(events.map(serializeAmi).join(''), 'latin1');

/**
 * The ringing events of a call as Asterisk wrote them (issue 11 §10): one write per recorded
 * millisecond, at its offset from the first (the recording has them over ~2 ms), not all at once.
 */
function ringWrites(t: CallTemplate, call: AmiCall): { at: number; bytes: Buffer }[] {
  const writes: { at: number; events: AmiFields[] }[] = [];
  call.ring.forEach((fields, i) => {
    const at = t.ringAt[i]!;
    const last = writes[writes.length - 1];
    if (last && last.at === at) last.events.push(fields);
    else writes.push({ at, events: [fields] });
  });
  return writes.map((w) => ({ at: w.at, bytes: wire(w.events) }));
}

/** "3 writes at +0, +1, +2 ms (16, 4, 1 events)": how a call's ringing events are written. */
function ringTiming(t: CallTemplate): string {
  const at = [...new Set(t.ringAt)];
  const n = at.map((a) => t.ringAt.filter((x) => x === a).length);
  return `${at.length} writes at ${at.map((a) => `+${a}`).join(', ')} ms (${n.join(', ')} events)`;
}

/** Runs each action at its time (ms from now), catching up when a timer fires late. */
function schedule(actions: { at: number; run: () => void }[]): Promise<void> {
  const sorted = [...actions].sort((a, b) => a.at - b.at);
  const start = performance.now();
  let next = 0;
  return new Promise((resolve) => {
    const tick = () => {
      while (next < sorted.length && start + sorted[next]!.at <= performance.now()) sorted[next++]!.run();
      if (next < sorted.length) setTimeout(tick, Math.max(0, start + sorted[next]!.at - performance.now()));
      else resolve();
    };
    tick();
  });
}

// ---------------------------------------------------------------------------------------------
// The outside world, in a worker thread: Asterisk (the AMI simulator) and the agent's desktop

type WorldRequest =
  | { type: 'sim-start' }
  | { type: 'sim-wait'; timeoutMs: number }
  | { type: 'sim-hangup-resynced' }
  | { type: 'connect'; url: string; token: string }
  | { type: 'ping'; t: number }
  | { type: 'ami-sequential'; first: number; count: number }
  | { type: 'ami-paced'; first: number; count: number; rate: number; hangupAfterMs: number }
  | { type: 'await'; callId: string; what: 'pop' | 'end'; timeoutMs: number }
  | { type: 'receipts'; ids: string[]; timeoutMs: number }
  | { type: 'tally' }
  | { type: 'close' };

interface AmiRun {
  ids: string[];
  /** Just before the write of the call's ringing events (worker clock, ms since the epoch). */
  t0: number[];
  /** When the write was due (paced runs), same clock. */
  due: number[];
  /** Receipt of the agent's `call.ringing` / `call.ended` (NaN: none within the timeout). */
  pop: number[];
  end: number[];
  /** Bytes and AMI events of one call's ringing write. */
  bytes: number;
  events: number;
}

interface Tally {
  pops: number;
  ends: number;
  duplicates: number;
  /** Events received by the agent's client that are not the pop or end of a benchmark call. */
  other: Record<string, number>;
  disconnected: boolean;
  amiClients: number;
}

function worldThread(): void {
  const template = callTemplate();
  let sim: AmiSimulator | undefined;
  let socket: Socket | undefined;
  let agentId: string | null = null;
  let closing = false;
  let disconnected = false;
  let duplicates = 0;
  const other: Record<string, number> = {};
  const received = { pop: new Map<string, number>(), end: new Map<string, number>() };
  const waiters = { pop: new Map<string, () => void>(), end: new Map<string, () => void>() };
  const fixtures = AMI_FIXTURE_NAMES.map(loadFixture);
  const resynced = fixtures
    .flatMap((f) => f.received)
    .map((r) => r.fields)
    .filter((f) => amiHeader(f, 'Event') === 'CoreShowChannel');

  const receipt = (what: 'pop' | 'end', id: string, timeoutMs: number): Promise<number> => {
    const got = received[what].get(id);
    if (got !== undefined) return Promise.resolve(got);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiters[what].delete(id);
        resolve(NaN);
      }, timeoutMs);
      waiters[what].set(id, () => {
        clearTimeout(timer);
        resolve(received[what].get(id)!);
      });
    });
  };

  const onEvent = (envelope: EventEnvelope<{ call?: { providerCallId?: string } }>) => {
    const t1 = now();
    const id = envelope.data.call?.providerCallId;
    const what = envelope.type === 'call.ringing' ? 'pop' : envelope.type === 'call.ended' ? 'end' : undefined;
    const ours = id !== undefined && /^18[01]\d{7}\.\d+$/.test(id);
    if (!what || !ours || envelope.agentId !== agentId) {
      const k = `${envelope.type}${ours ? '' : ' (not a benchmark call)'}`;
      other[k] = (other[k] ?? 0) + 1;
      return;
    }
    if (received[what].has(id)) {
      duplicates++;
      return;
    }
    received[what].set(id, t1);
    waiters[what].get(id)?.();
    waiters[what].delete(id);
  };

  const sequential = async (first: number, n: number): Promise<AmiRun> => {
    const run: AmiRun = { ids: [], t0: [], due: [], pop: [], end: [], bytes: 0, events: template.ring.length };
    for (let i = 0; i < n; i++) {
      const call = makeCall(template, BASE_AMI, first + i);
      const ring = ringWrites(template, call);
      const hangup = wire(call.hangup);
      run.bytes = ring.reduce((sum, w) => sum + w.bytes.length, 0);
      const t0 = now();
      // With the recorded timing: the first write now, the others 1 and 2 ms later.
      void schedule(ring.map((w) => ({ at: w.at, run: () => sim!.sendRaw(w.bytes) })));
      const pop = await receipt('pop', call.id, RECEIPT_TIMEOUT_MS);
      sim!.sendRaw(hangup);
      const end = await receipt('end', call.id, RECEIPT_TIMEOUT_MS);
      run.ids.push(call.id);
      run.t0.push(t0);
      run.due.push(t0);
      run.pop.push(pop);
      run.end.push(end);
    }
    return run;
  };

  const paced = async (first: number, n: number, rate: number, hangupAfterMs: number): Promise<AmiRun> => {
    const run: AmiRun = { ids: [], t0: [], due: [], pop: [], end: [], bytes: 0, events: template.ring.length };
    const calls = Array.from({ length: n }, (_, i) => {
      const call = makeCall(template, BASE_AMI, first + i);
      return { id: call.id, ring: ringWrites(template, call), hangup: wire(call.hangup) };
    });
    run.bytes = calls[0]?.ring.reduce((sum, w) => sum + w.bytes.length, 0) ?? 0;
    const origin = now();
    await schedule(
      calls.flatMap((call, i) => {
        const at = (i * 1000) / rate;
        const [head, ...rest] = call.ring;
        return [
          {
            at,
            run: () => {
              const t0 = now();
              sim!.sendRaw(head!.bytes);
              run.ids.push(call.id);
              run.t0.push(t0);
              run.due.push(origin + at);
            },
          },
          // The rest of the ringing events at their recorded offsets.
          ...rest.map((w) => ({ at: at + w.at, run: () => sim!.sendRaw(w.bytes) })),
          { at: at + hangupAfterMs, run: () => sim!.sendRaw(call.hangup) },
        ];
      }),
    );
    for (const id of run.ids) {
      run.pop.push(await receipt('pop', id, RECEIPT_TIMEOUT_MS));
      run.end.push(await receipt('end', id, RECEIPT_TIMEOUT_MS));
    }
    return run;
  };

  const handle = async (request: WorldRequest): Promise<unknown> => {
    switch (request.type) {
      case 'sim-start':
        sim = new AmiSimulator({ username: 'cti', secret: 'ctisecret', fixtures });
        return { port: await sim.start() };
      case 'sim-wait': {
        // Held by the application: logged in, and its resynchronisation (CoreShowChannels) asked.
        const until = performance.now() + request.timeoutMs;
        const ready = () =>
          sim!.authenticatedClients === 1 && sim!.actions.some((a) => amiHeader(a, 'Action') === 'CoreShowChannels');
        while (!ready()) {
          if (performance.now() > until) throw new Error('the application did not log in to the AMI simulator');
          await sleep(20);
        }
        return { linkedids: [...new Set(resynced.map((f) => amiHeader(f, 'Linkedid')!))], logins: sim!.logins };
      }
      case 'sim-hangup-resynced':
        // The channels the simulator's recorded CoreShowChannels reported: end that call.
        sim!.sendRaw(
          wire(
            resynced.map((f) => [
              ['Event', 'Hangup'],
              ['Privilege', 'call,all'],
              ['Channel', amiHeader(f, 'Channel')!],
              ['Uniqueid', amiHeader(f, 'Uniqueid')!],
              ['Linkedid', amiHeader(f, 'Linkedid')!],
              ['Cause', '16'],
              ['Cause-txt', 'Normal Clearing'],
            ]),
          ),
        );
        return {};
      case 'connect':
        return new Promise((resolve, reject) => {
          const s = io(request.url, {
            path: '/socket.io',
            transports: ['websocket'],
            auth: { token: request.token },
            reconnection: false,
            forceNew: true,
          });
          s.on('event', onEvent);
          s.on('disconnect', () => {
            if (!closing) disconnected = true;
          });
          s.once('connect_error', (error: Error & { data?: unknown }) => {
            s.close();
            reject(new Error(`${error.message} ${JSON.stringify(error.data ?? null)}`));
          });
          s.once('ready', (ready: { agentId: string | null; seq: number }) => {
            socket = s;
            agentId = ready.agentId;
            resolve(ready);
          });
        });
      case 'ping':
        return { tw: now() };
      case 'ami-sequential':
        return sequential(request.first, request.count);
      case 'ami-paced':
        return paced(request.first, request.count, request.rate, request.hangupAfterMs);
      case 'await':
        return { t: await receipt(request.what, request.callId, request.timeoutMs) };
      case 'receipts': {
        const pop: number[] = [];
        const end: number[] = [];
        for (const id of request.ids) {
          pop.push(await receipt('pop', id, request.timeoutMs));
          end.push(await receipt('end', id, request.timeoutMs));
        }
        return { pop, end };
      }
      case 'tally':
        return {
          pops: received.pop.size,
          ends: received.end.size,
          duplicates,
          other,
          disconnected,
          amiClients: sim?.authenticatedClients ?? 0,
        } satisfies Tally;
      case 'close':
        closing = true;
        socket?.close();
        await sim?.stop();
        return {};
    }
  };

  parentPort!.on('message', ({ id, request }: { id: number; request: WorldRequest }) => {
    handle(request).then(
      (value) => parentPort!.postMessage({ id, value }),
      (error: unknown) =>
        parentPort!.postMessage({ id, error: error instanceof Error ? error.message : String(error) }),
    );
  });
}

/** The main thread's handle on the worker. */
class World {
  private readonly worker = new Worker(new URL(import.meta.url));
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 0;

  constructor() {
    this.worker.on('message', ({ id, value, error }: { id: number; value?: unknown; error?: string }) => {
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (error !== undefined) p?.reject(new Error(`worker: ${error}`));
      else p?.resolve(value);
    });
    this.worker.on('error', (error) => {
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
    });
  }

  call<T>(request: WorldRequest): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, request });
    });
  }

  /** Offset of the worker's clock from this thread's (ms), from the ping with the shortest round trip. */
  async clockOffset(pings = 50): Promise<{ offset: number; rtt: number }> {
    let best = { offset: 0, rtt: Infinity };
    for (let i = 0; i < pings; i++) {
      const t = now();
      const { tw } = await this.call<{ tw: number }>({ type: 'ping', t });
      const back = now();
      if (back - t < best.rtt) best = { offset: tw - (t + back) / 2, rtt: back - t };
    }
    return best;
  }

  async close(): Promise<void> {
    await this.call({ type: 'close' }).catch(() => undefined);
    await this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// The application's side: what happened to each call (this thread's clock)

interface Trace {
  /** Every apply() of the call: its kind, whether it names an agent, when it began and ended. */
  applies: { kind: string; agent: boolean; start: number; end: number }[];
  /** When CallApplyService published the agent's call.ringing (its transaction has committed). */
  published?: number;
}

class Traces {
  readonly byCall = new Map<string, Trace>();

  of(id: string): Trace {
    let t = this.byCall.get(id);
    if (!t) this.byCall.set(id, (t = { applies: [] }));
    return t;
  }
}

/**
 * Every SQL statement's round trip (pg.Client#query, from the call to its result) while on:
 * where the time of an apply() goes.
 */
class SqlProfile {
  readonly byStatement = new Map<string, number[]>();
  private original: ((...args: unknown[]) => unknown) | undefined;
  private active = false;

  install(): void {
    const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
    const original = (this.original = proto.query);
    const record = (text: string, took: number) => {
      if (!this.active) return;
      const label = text.replace(/\s+/g, ' ').trim().slice(0, 48);
      let list = this.byStatement.get(label);
      if (!list) this.byStatement.set(label, (list = []));
      list.push(took);
    };
    proto.query = function (this: unknown, ...args: unknown[]) {
      const started = performance.now();
      const result = original.apply(this, args);
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        const first = args[0];
        const text = typeof first === 'string' ? first : ((first as { text?: string } | null)?.text ?? '?');
        void (result as Promise<unknown>).then(
          () => record(text, performance.now() - started),
          () => undefined,
        );
      }
      return result;
    };
  }

  on(): void {
    this.active = true;
  }

  off(): void {
    this.active = false;
  }

  uninstall(): void {
    if (this.original) (pg.Client.prototype as unknown as { query: unknown }).query = this.original;
  }
}

/**
 * The server thread's event-loop delay while on: a 1 ms interval's lateness, into one histogram
 * across rounds (monitorEventLoopDelay's first sample after a re-enable spans the pause).
 */
class LoopDelay {
  readonly histogram = createHistogram();
  private timer: NodeJS.Timeout | undefined;
  private last = 0;

  start(): void {
    this.last = performance.now();
    this.timer = setInterval(() => {
      const t = performance.now();
      this.histogram.record(Math.max(1, Math.round((t - this.last - 1) * 1e6)));
      this.last = t;
    }, 1);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** The rounds of one mode (AMI or direct, one at a time or paced), taken together. */
class Mode {
  readonly loop = new LoopDelay();
  readonly segments: { run: AmiRun; cpu: CpuShares; seconds: number }[] = [];

  /** Runs `work` as one round of this mode: event-loop delay and CPU measured around it. */
  async round(postmaster: number | null, work: () => Promise<AmiRun>): Promise<AmiRun> {
    const cpu0 = cpuSample(postmaster);
    const started = performance.now();
    this.loop.start();
    const run = await work();
    this.loop.stop();
    this.segments.push({
      run,
      cpu: cpuShares(cpu0, cpuSample(postmaster)),
      seconds: (performance.now() - started) / 1000,
    });
    return run;
  }

  merged(): AmiRun {
    const all: AmiRun = { ids: [], t0: [], due: [], pop: [], end: [], bytes: 0, events: 0 };
    for (const { run } of this.segments) {
      all.ids.push(...run.ids);
      all.t0.push(...run.t0);
      all.due.push(...run.due);
      all.pop.push(...run.pop);
      all.end.push(...run.end);
      all.bytes = run.bytes;
      all.events = run.events;
    }
    return all;
  }

  /** CPU shares over all rounds (weighted by their length). */
  cpu(): CpuShares {
    const total = this.segments.reduce((s, g) => s + g.seconds, 0);
    const mean = (f: (c: CpuShares) => number | null) => {
      let sum = 0;
      for (const g of this.segments) {
        const v = f(g.cpu);
        if (v === null) return null;
        sum += v * g.seconds;
      }
      return sum / total;
    };
    return {
      machine: mean((c) => c.machine)!,
      self: mean((c) => c.self)!,
      pg: mean((c) => c.pg),
      other: mean((c) => c.other),
      cores: this.segments[0]?.cpu.cores ?? 0,
    };
  }
}

interface Measured {
  calls: number;
  /** t0 → the agent's call.ringing. */
  pop: Stats;
  /** t0 → the first apply() of the call (AMI: socket, parser, mapper, session queue; direct: queue). */
  toApply: Stats;
  /** The first apply() (the caller's channel: an unassigned call.ringing). */
  firstApply: Stats;
  /**
   * t0 → first apply(), split: the time an apply() of another call (or an earlier event) was
   * running (waiting in the queue), and the rest (AMI: socket, event loop, parser, mapper).
   */
  queueBusy: Stats;
  queueIdle: Stats;
  /** From the first apply()'s end to the second's start (the hand-over between them). */
  between: Stats;
  /** The second apply() (the dial to the agent) from its start to the publish of the agent's call.ringing. */
  agentApply: Stats;
  /** The publish of the agent's call.ringing → its receipt by the agent's client. */
  delivery: Stats;
  /** Every apply() of the calls (ringing, ringing, ended). */
  anyApply: Stats;
  /** How many of them took SLOW_APPLY_MS or more. */
  slowApplies: number;
  /** Paced runs: how late the write (or enqueue) came after its due time. */
  late: Stats;
  lost: number;
  endsLost: number;
  /** apply() calls per call (2 ringing + 1 ended expected). */
  appliesPerCall: number;
  /** p99 of each round, and the CPU other processes used during it (% of one core). */
  rounds: { p99: number; other: number | null }[];
  /** The rounds during which other processes used under QUIET_OTHER_PCT of a core, together. */
  quiet: { rounds: number; pop: Stats };
  loop: Stats;
  cpu: CpuShares;
}

function loopStats(h: RecordableHistogram): Stats {
  return {
    n: h.count,
    p50: h.percentile(50) / 1e6,
    p90: h.percentile(90) / 1e6,
    p99: h.percentile(99) / 1e6,
    max: h.max / 1e6,
    mean: h.mean / 1e6,
  };
}

/**
 * The figures of a mode. `t0`, `pop`, `due` are in the worker's clock; the traces in this
 * thread's; `offset` = worker − this thread.
 */
function measure(mode: Mode, traces: Traces, offset: number): Measured {
  const run = mode.merged();
  const pop: number[] = [];
  const toApply: number[] = [];
  const firstApply: number[] = [];
  const between: number[] = [];
  const agentApply: number[] = [];
  const delivery: number[] = [];
  const anyApply: number[] = [];
  const late: number[] = [];
  const queueBusy: number[] = [];
  const queueIdle: number[] = [];
  let lost = 0;
  let endsLost = 0;
  let applies = 0;
  // Every apply() of the mode's calls, by start: one queue runs them one at a time.
  const intervals = run.ids
    .flatMap((id) => traces.byCall.get(id)?.applies ?? [])
    .map((a) => [a.start, a.end] as const)
    .sort((a, b) => a[0] - b[0]);
  const busyBetween = (from: number, to: number) => {
    let busy = 0;
    for (const [s, e] of intervals) {
      if (s >= to) break;
      if (e > from) busy += Math.min(e, to) - Math.max(s, from);
    }
    return busy;
  };
  run.ids.forEach((id, i) => {
    const t0 = run.t0[i]!;
    late.push(t0 - run.due[i]!);
    if (Number.isNaN(run.end[i]!)) endsLost++;
    const trace = traces.byCall.get(id);
    applies += trace?.applies.length ?? 0;
    for (const a of trace?.applies ?? []) anyApply.push(a.end - a.start);
    if (Number.isNaN(run.pop[i]!) || !trace) {
      lost++;
      return;
    }
    pop.push(run.pop[i]! - t0);
    const first = trace.applies[0];
    const agent = trace.applies.find((a) => a.kind.includes('ringing') && a.agent);
    if (first) {
      toApply.push(first.start + offset - t0);
      firstApply.push(first.end - first.start);
      const busy = busyBetween(t0 - offset, first.start);
      queueBusy.push(busy);
      queueIdle.push(first.start + offset - t0 - busy);
    }
    if (first && agent && agent !== first) between.push(agent.start - first.end);
    if (agent && trace.published !== undefined) {
      agentApply.push(trace.published - agent.start);
      delivery.push(run.pop[i]! - (trace.published + offset));
    }
  });
  const delays = (r: AmiRun) => r.pop.map((p, i) => p - r.t0[i]!).filter((d) => !Number.isNaN(d));
  const rounds = mode.segments.map(({ run: r, cpu }) => ({ p99: stats(delays(r)).p99, other: cpu.other }));
  const quiet = mode.segments.filter((g) => g.cpu.other !== null && g.cpu.other < QUIET_OTHER_PCT);
  return {
    calls: run.ids.length,
    pop: stats(pop),
    toApply: stats(toApply),
    queueBusy: stats(queueBusy),
    queueIdle: stats(queueIdle),
    firstApply: stats(firstApply),
    between: stats(between),
    agentApply: stats(agentApply),
    delivery: stats(delivery),
    anyApply: stats(anyApply),
    slowApplies: anyApply.filter((d) => d >= SLOW_APPLY_MS).length,
    late: stats(late),
    lost,
    endsLost,
    appliesPerCall: applies / run.ids.length,
    rounds,
    quiet: { rounds: quiet.length, pop: stats(quiet.flatMap((g) => delays(g.run))) },
    loop: loopStats(mode.loop.histogram),
    cpu: mode.cpu(),
  };
}

// ---------------------------------------------------------------------------------------------
// Report

interface StatementRow {
  label: string;
  perCall: number;
  stats: Stats;
  totalMs: number;
}

interface Report {
  date: string;
  machine: Awaited<ReturnType<typeof machine>>;
  database: string;
  pgSettings: string;
  clock: { offset: number; rtt: number };
  ami: { sequential: Measured; paced: Measured };
  direct: { sequential: Measured; paced: Measured };
  writeBytes: number;
  writeEvents: number;
  /** The events of one call's write the parser keeps (not noise). */
  kept: string[];
  /** In process, no I/O: parsing one call's write and mapping what is kept (µs). */
  parseMapUs: number;
  tally: Tally;
  pool: number;
  statements: StatementRow[];
  /** WAL written during the measured rounds (bytes) and how long they took (s). */
  wal: { bytes: number; seconds: number };
  /** wal_init_zero was turned off (our own embedded server). */
  walInitZeroOff: boolean;
  /** Of the AMI one-at-a-time rounds: all apply() time, and the SQL round trips' share of it. */
  applyMs: number;
  sqlMs: number;
}

function row(label: string, s: Stats, unit = 'calls'): string {
  return `| ${label} | ${count(s.n)} ${unit} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.max)} | ${ms(s.mean)} |`;
}

const verdict = (m: Measured) => (m.pop.p99 < TARGET_P99_MS && m.lost === 0 ? 'met' : 'NOT met');
const pct = (v: number | null) => (v === null ? '?' : `${Math.round(v)} %`);
const utilisation = (m: Measured) => Math.round((PACED_RATE * m.appliesPerCall * m.anyApply.mean) / 10);
const quietLine = (label: string, m: Measured) =>
  m.quiet.rounds === 0
    ? `${label}: no such round`
    : `${label} p99 ${ms(m.quiet.pop.p99)} ms (${m.quiet.rounds} of ${m.rounds.length} rounds, ${count(m.quiet.pop.n)} calls)`;
const roundsLine = (m: Measured) => m.rounds.map((r) => `${ms(r.p99, 1)} (${pct(r.other)})`).join(', ');

function section(r: Report): string {
  const { sequential: as, paced: ap } = r.ami;
  const { sequential: ds, paced: dp } = r.direct;
  const other = Object.entries(r.tally.other)
    .map(([k, v]) => `${k} × ${v}`)
    .join(', ');
  const clean = [as, ap, ds, dp].every((m) => m.lost === 0 && m.endsLost === 0) && r.tally.duplicates === 0;
  const sqlShare = r.applyMs > 0 ? (100 * r.sqlMs) / r.applyMs : NaN;
  const commit = r.statements.find((s) => s.label === 'COMMIT');
  return [
    MARK_START,
    '## AMI screen pop: delay from the AMI events on the socket to the agent’s `call.ringing`',
    '',
    `Measured ${r.date} by \`npm run bench:screen-pop\` (\`bench/ami-screen-pop.ts\`); re-running replaces this section.`,
    `${loadNote().loaded ? '**Loaded machine**: ' : ''}${loadNote().text} when the section was written.`,
    '',
    `**Target** (from the issue): screen pop p99 under ${TARGET_P99_MS} ms, from an AMI event on the socket to the socket.io screen pop.`,
    '',
    `- **One call at a time**: p50 **${ms(as.pop.p50)} ms**, p99 **${ms(as.pop.p99)} ms** (max ${ms(as.pop.max)} ms) ` +
      `over ${count(as.calls)} calls: target **${verdict(as)}**.`,
    `- **${PACED_RATE} calls/s**: p50 **${ms(ap.pop.p50)} ms**, p99 **${ms(ap.pop.p99)} ms** (max ${ms(ap.pop.max)} ms) ` +
      `over ${count(ap.calls)} calls: target **${verdict(ap)}**.`,
    `- **Without AMI** (baseline, same run, rounds interleaved with the AMI ones: the same call events given to ` +
      `\`CallApplyService.applyBatch\` directly): one at a time p50 **${ms(ds.pop.p50)} ms**, p99 **${ms(ds.pop.p99)} ms**; ` +
      `${PACED_RATE} calls/s p50 **${ms(dp.pop.p50)} ms**, p99 **${ms(dp.pop.p99)} ms**.`,
    `- **The AMI part** (TCP on loopback, the event loop, \`AmiParser\` with its noise filter, \`AmiCallMapper\`, ` +
      `the session's queue), from the write to the first \`apply()\`: one at a time p50 ${ms(as.toApply.p50)} ms, p99 ` +
      `${ms(as.toApply.p99)} ms; at ${PACED_RATE} calls/s p50 ${ms(ap.toApply.p50)} ms, p99 ${ms(ap.toApply.p99)} ms, ` +
      `of which the AMI path itself (no \`apply()\` running meanwhile) p50 ${ms(ap.queueIdle.p50)} ms, p99 ` +
      `${ms(ap.queueIdle.p99)} ms, and the rest waiting behind other calls' \`apply()\` (p99 ${ms(ap.queueBusy.p99)} ms). ` +
      `In process, without I/O, parsing one call's ${r.writeEvents} events and mapping the ${r.kept.length} kept ` +
      `takes ${r.parseMapUs.toFixed(0)} µs.`,
    `- **Where the time goes** (one at a time, medians): AMI to the first \`apply()\` ${ms(as.toApply.p50)} ms; the ` +
      `first \`apply()\` (what of the call had arrived when it began — with the recorded timing the caller's ` +
      `Newchannel comes first, the DialBegin to PJSIP/${EXTENSION} 2 ms later, so they may be stored apart: ` +
      `the call created, the agent resolved by extension, the call assigned, the agent's \`call.ringing\`) ` +
      `${ms(as.firstApply.p50)} ms; from its start to the publication of the agent's \`call.ringing\` ` +
      `${ms(as.agentApply.p50)} ms; from the commit to the agent's client ${ms(as.delivery.p50)} ms. The session ` +
      `stores everything that waits when a store begins in one transaction (\`CallApplyService.applyBatch\`): ` +
      `events arriving while one runs wait for the next. SQL round trips are ` +
      `${Number.isFinite(sqlShare) ? Math.round(sqlShare) : '?'} % of the \`apply()\` time` +
      (commit ? `; \`COMMIT\` alone p50 ${ms(commit.stats.p50)} ms, p99 ${ms(commit.stats.p99)} ms` : '') +
      ` (${r.pgSettings}; the statements below).`,
    `- **At ${PACED_RATE} calls/s the queue decides**: the session stores its connection's events one batch at a ` +
      `time, in order, for all calls (a batch: all that waited, of any calls). An \`apply()\` (one transaction) took ${ms(ap.anyApply.mean)} ms on average in the ` +
      `AMI rounds, ${ap.appliesPerCall.toFixed(0)} per call: at ${PACED_RATE} calls/s the queue ` +
      `is busy about ${utilisation(ap)} % of the time (baseline rounds: ${ms(dp.anyApply.mean)} ms, ${utilisation(dp)} %), ` +
      `so a call's events wait whenever an earlier call's \`apply()\` runs long: write → first \`apply()\` p99 ` +
      `${ms(ap.toApply.p99)} ms (baseline ${ms(dp.toApply.p99)} ms). At that cost one connection takes at most about ` +
      `${Math.floor(1000 / (ap.appliesPerCall * ap.anyApply.mean))} calls/s.`,
    `- **The shared machine** (other work ran on it meanwhile): p99 per round (their CPU meanwhile, % of ` +
      `one core of ${r.machine.cores}): AMI one at a time ${roundsLine(as)}; baseline ${roundsLine(ds)}; AMI ` +
      `${PACED_RATE} calls/s ${roundsLine(ap)}; baseline ${roundsLine(dp)}. Rounds with other processes under ` +
      `${QUIET_OTHER_PCT} % of a core, taken together: ${quietLine('AMI one at a time', as)}; ` +
      `${quietLine('baseline', ds)}; ${quietLine(`AMI ${PACED_RATE} calls/s`, ap)}; ${quietLine('baseline', dp)}.`,
    `- Stalls: \`apply()\` calls of ${SLOW_APPLY_MS} ms or more: AMI one at a time ${as.slowApplies} of ` +
      `${count(as.anyApply.n)}, ${PACED_RATE} calls/s ${ap.slowApplies} of ${count(ap.anyApply.n)}; baseline one at a ` +
      `time ${ds.slowApplies} of ${count(ds.anyApply.n)}, ${PACED_RATE} calls/s ${dp.slowApplies} of ` +
      `${count(dp.anyApply.n)}. At ${PACED_RATE} calls/s one stall holds up every call queued behind it. WAL written ` +
      `during the measured rounds: ${(r.wal.bytes / 2 ** 20).toFixed(1)} MiB in ${r.wal.seconds.toFixed(0)} s ` +
      `(${(r.wal.bytes / 2 ** 24).toFixed(1)} segments of 16 MiB)` +
      (r.walInitZeroOff
        ? '; `wal_init_zero = off` (see Method).'
        : '; `wal_init_zero = on`: each new segment is zero-filled.'),
    `- Delivery: every call popped at the agent exactly once and ended: **${clean ? 'yes' : 'NO'}** (pops lost: ` +
      `AMI ${as.lost} + ${ap.lost}, direct ${ds.lost} + ${dp.lost}; ends lost: AMI ${as.endsLost} + ${ap.endsLost}, ` +
      `direct ${ds.endsLost} + ${dp.endsLost}; duplicates ${r.tally.duplicates}; \`apply()\` calls per call: ` +
      `AMI ${as.appliesPerCall.toFixed(2)}, direct ${ds.appliesPerCall.toFixed(2)}). Other events the agent's client ` +
      `received: ${other || 'none'}.`,
    `- CPU: AMI one at a time ${cpuLine(as.cpu)}; AMI ${PACED_RATE} calls/s ${cpuLine(ap.cpu)}; baseline one at a ` +
      `time ${cpuLine(ds.cpu)}; baseline ${PACED_RATE} calls/s ${cpuLine(dp.cpu)}.`,
    '',
    '### Method',
    '',
    '- The real application: `createApp` (Fastify, socket.io gateway at `/socket.io`, the Asterisk supervisor, ' +
      '`NODE_ENV=production`, `LOG_LEVEL=warn`, `JOBS_ENABLED=false`, no Redis, rate limits 1,000,000/min, ' +
      `\`PASSWORD_HASH_COST=10\` for the one login, connection pool ${r.pool}) on 127.0.0.1, against a fresh ` +
      `migrated database on ${r.database}` +
      (r.walInitZeroOff
        ? ', with `wal_init_zero = off`: a fresh cluster has no WAL segments to recycle, and zero-filling each new ' +
          '16 MB segment holds the commits of that moment for tens of milliseconds, which a long-running server, ' +
          'reusing its old segments, does not do (as in the webhook benchmark; `--wal-init-zero` keeps it on)'
        : '') +
      `. One company (\`POST /internal/apps\`); through its API key a user with ` +
      `role \`agent\` and its agent profile with extension ${EXTENSION} (\`POST /api/v1/users\`, \`POST /api/v1/agents\`), ` +
      'and an Asterisk connection (`POST /api/v1/pbx-connections`, `provider: asterisk`) to the AMI simulator ' +
      '(`test/support/ami-simulator.ts`): the application holds it as in production (advisory lock, `AmiClient` ' +
      'login with its event mask, `CoreShowChannels` resynchronisation; the call the recorded `CoreShowChannels` ' +
      'reports is ended with its Hangups before the measurement).',
    '- The agent’s desktop: one socket.io client signed in as the agent user (`auth: { token }`, websocket ' +
      'transport), which the gateway gives that agent’s events only. It and the simulator run in a worker thread, ' +
      'not on the server’s event loop; the write and the receipt are stamped there, by one clock ' +
      '(`performance.timeOrigin + performance.now()`).',
    `- Each call: the recorded inbound call of \`test/fixtures/ami/inbound-answered\` from the caller's ` +
      `\`Newchannel\` to the \`DialBegin\` to \`PJSIP/${EXTENSION}\`: ${r.writeEvents} events (${r.kept.length} ` +
      `kept by the parser: ${r.kept.join(', ')}; the rest noise it skips: VarSet, Newexten, NewConnectedLine), ` +
      `${count(r.writeBytes)} bytes, with a new Uniqueid / Linkedid, channel names and caller number per call, written ` +
      `to the AMI socket WITH THE RECORDED TIMING: ${ringTiming(callTemplate())}, the events Asterisk sent in the same ` +
      'millisecond together (issue 11 §10: one write of all of them, as before, let them always be applied in one ' +
      'transaction and flattered the figure). t0 just before the first write; t1 first thing in ' +
      'the client’s `event` handler for the `call.ringing` whose `agentId` is the agent and whose call’s ' +
      '`providerCallId` is that Linkedid. Then the Hangup of both legs (the call ends, abandoned; the client gets ' +
      'its `call.ended`).',
    `- One at a time: ${count(WARMUP_CALLS)} warm-up calls through AMI and ${count(WARMUP_CALLS)} direct, then ` +
      `${ROUNDS} rounds of ${SEQUENTIAL_PER_ROUND} AMI and ${SEQUENTIAL_PER_ROUND} direct calls (the order alternating ` +
      'per round); the next call starts when the previous one’s `call.ended` arrived. ' +
      `${PACED_RATE} calls/s: ${ROUNDS} rounds of ${PACED_PER_ROUND} AMI and ${PACED_PER_ROUND} direct calls, ` +
      `alternating, each on a fixed schedule (not waiting for anything), each call hung up ${HANGUP_AFTER_MS} ms ` +
      `after its ringing write, so about ${Math.round((PACED_RATE * HANGUP_AFTER_MS) / 1000)} calls are open at once.`,
    '- Baseline: the same application, company, agent and client; calls made the same way (another Uniqueid range), ' +
      'mapped by an `AmiCallMapper` before t0, and their canonical events (the same two `ringing` and one `ended`, ' +
      'with the connection’s ids, as the session gives them) handed to `CallApplyService.applyBatch` as the session does (the ringing events of one call together, then its hangups), in ' +
      'order, from the server’s thread; t0 just before the first (paced: when the call’s events are put in a queue ' +
      'like the session’s, one event at a time). The receipt is stamped in the worker; the worker’s clock agrees ' +
      `with the server thread’s to ${(r.clock.offset * 1000).toFixed(0)} µs (ping with the shortest round trip, ` +
      `${(r.clock.rtt * 1000).toFixed(0)} µs), which is taken off.`,
    '- The split of the time: `CallApplyService.applyBatch` and `EventsService.publish` wrapped by the benchmark on the ' +
      'running application (the session calls the same instance): when each `apply()` began and ended, and when ' +
      'the agent’s `call.ringing` was published (after its commit; the gateway’s fan-out runs inside it). SQL: ' +
      '`pg.Client#query` wrapped during the AMI one-at-a-time rounds, from the call to its result.',
    '- Everything (server, PostgreSQL, the worker) shares the machine below, with whatever else runs on it (the ' +
      'CPU lines above say how much that was).',
    '',
    '### Machine',
    '',
    ...machineLines(r.machine),
    '',
    '### Figures (milliseconds)',
    '',
    '| what | samples | p50 | p90 | p99 | max | mean |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('**AMI write → agent’s `call.ringing`, one at a time**', as.pop),
    row(`**AMI write → agent’s \`call.ringing\`, ${PACED_RATE} calls/s**`, ap.pop),
    row('baseline: `apply()` → agent’s `call.ringing`, one at a time', ds.pop),
    row(`baseline: enqueue → agent’s \`call.ringing\`, ${PACED_RATE} calls/s`, dp.pop),
    row('AMI write → first `apply()` begins, one at a time', as.toApply),
    row(`AMI write → first \`apply()\` begins, ${PACED_RATE} calls/s`, ap.toApply),
    row(`baseline enqueue → first \`apply()\` begins, ${PACED_RATE} calls/s`, dp.toApply),
    row('… of which another `apply()` was running (queued), AMI, one at a time', as.queueBusy),
    row('… of which no `apply()` was running (AMI socket, loop, parser, mapper), one at a time', as.queueIdle),
    row(`… of which another \`apply()\` was running (queued), AMI, ${PACED_RATE} calls/s`, ap.queueBusy),
    row(
      `… of which no \`apply()\` was running (AMI socket, loop, parser, mapper), ${PACED_RATE} calls/s`,
      ap.queueIdle,
    ),
    row(`… of which another \`apply()\` was running (queued), baseline, ${PACED_RATE} calls/s`, dp.queueBusy),
    row(`… of which no \`apply()\` was running, baseline, ${PACED_RATE} calls/s`, dp.queueIdle),
    row('first `apply()` (Newchannel), AMI, one at a time', as.firstApply),
    row('first `apply()` end → second `apply()` begins, AMI, one at a time', as.between),
    row('second `apply()` (DialBegin) → commit, AMI, one at a time', as.agentApply),
    row('commit → agent’s client, AMI, one at a time', as.delivery),
    row('first `apply()` (Newchannel), baseline, one at a time', ds.firstApply),
    row('second `apply()` (DialBegin) → commit, baseline, one at a time', ds.agentApply),
    row('commit → agent’s client, baseline, one at a time', ds.delivery),
    row(`first \`apply()\`, AMI, ${PACED_RATE} calls/s`, ap.firstApply),
    row(`second \`apply()\` → commit, AMI, ${PACED_RATE} calls/s`, ap.agentApply),
    row(`commit → agent’s client, AMI, ${PACED_RATE} calls/s`, ap.delivery),
    row('any `apply()` (ringing, ringing, ended), AMI, one at a time', as.anyApply, 'applies'),
    row('any `apply()`, baseline, one at a time', ds.anyApply, 'applies'),
    row(`any \`apply()\`, AMI, ${PACED_RATE} calls/s`, ap.anyApply, 'applies'),
    row(`any \`apply()\`, baseline, ${PACED_RATE} calls/s`, dp.anyApply, 'applies'),
    row(`write after its due time (the worker’s timer), AMI, ${PACED_RATE} calls/s`, ap.late),
    row('server event-loop delay, AMI one at a time', as.loop, 'samples'),
    row(`server event-loop delay, AMI ${PACED_RATE} calls/s`, ap.loop, 'samples'),
    '',
    `SQL statements during the AMI one-at-a-time rounds (${count(as.calls)} calls, 3 \`apply()\` each), by total time:`,
    '',
    '| statement (first 48 characters) | per call | p50 | p99 | max | total ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...r.statements.map(
      (s) =>
        `| \`${s.label.replace(/\|/g, '\\|')}\` | ${s.perCall.toFixed(2)} | ${ms(s.stats.p50)} | ${ms(s.stats.p99)} | ` +
        `${ms(s.stats.max)} | ${ms(s.totalMs, 0)} |`,
    ),
    MARK_END,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The run

function outArg(): string | null {
  const i = process.argv.indexOf('--out');
  return i >= 0 ? (process.argv[i + 1] ?? null) : null;
}

async function api<T>(port: number, key: string | null, method: string, path: string, body: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { ...(key ? { 'x-api-key': key } : {}), 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 200 && res.status !== 201) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Parsing one call's write and mapping what is kept, in process (µs per call). */
function parseAndMap(template: CallTemplate): number {
  const bytes = Array.from({ length: 2000 }, (_, n) => wire(makeCall(template, 1_820_000_000, n).ring));
  const mapper = new AmiCallMapper();
  const at = new Date();
  const parser = new AmiParser({ keepVarSet: ['CTI_REQUEST_ID'], onMessage: (f) => void mapper.map(f, at) });
  for (const b of bytes.slice(0, 500)) parser.push(b);
  const started = performance.now();
  for (const b of bytes.slice(500)) parser.push(b);
  return ((performance.now() - started) * 1000) / 1500;
}

function main(): void {
  runBench('ami-screen-pop', HARD_LIMIT_MS, async (ctx) => {
    const template = callTemplate();
    ctx.step('starting PostgreSQL');
    const db = await startDatabase();
    ctx.opened(() => db.close());
    await runMigrations(db.url);
    const walInitZeroOff = db.ownServer && !process.argv.includes('--wal-init-zero');
    if (walInitZeroOff) {
      await adminQuery(db.url, 'ALTER SYSTEM SET wal_init_zero = off');
      await adminQuery(db.url, 'SELECT pg_reload_conf()');
    }

    const world = new World();
    ctx.opened(() => world.close());
    const { port: amiPort } = await world.call<{ port: number }>({ type: 'sim-start' });

    ctx.step('application: starting');
    const running = await startApp(db.url, { PASSWORD_HASH_COST: '10' });
    ctx.opened(() => running.close());
    const port = running.port;
    const company = await createCompany(port, 'Bench screen pop');
    const email = 'agent-1001@bench.test';
    const password = randomBytes(12).toString('base64url');
    const user = await api<{ id: string }>(port, company.apiKey, 'POST', '/api/v1/users', {
      email,
      password,
      displayName: 'Alice Agent',
      role: 'agent',
    });
    const agent = await api<{ id: string }>(port, company.apiKey, 'POST', '/api/v1/agents', {
      displayName: 'Alice Agent',
      userId: user.id,
      extension: EXTENSION,
    });
    ctx.step(`application: an Asterisk connection to the AMI simulator on 127.0.0.1:${amiPort}`);
    const connection = await api<{ id: string }>(port, company.apiKey, 'POST', '/api/v1/pbx-connections', {
      provider: 'asterisk',
      name: 'Bench Asterisk',
      settings: { host: '127.0.0.1', port: amiPort, username: 'cti' },
      secrets: { secret: 'ctisecret' },
    });
    const calls = running.app.get(CallApplyService);
    const { linkedids } = await world.call<{ linkedids: string[] }>({ type: 'sim-wait', timeoutMs: 15_000 });
    const active = () => calls.activeProviderCallIds(company.id, connection.id);
    await until(async () => {
      const open = await active();
      return linkedids.every((id) => open.includes(id));
    }, 'the call found by the resynchronisation');
    await world.call({ type: 'sim-hangup-resynced' });
    await until(async () => (await active()).length === 0, 'the resynchronised call to end');

    const login = await api<{ accessToken: string }>(port, null, 'POST', '/api/v1/auth/login', { email, password });
    const ready = await world.call<{ agentId: string | null }>({
      type: 'connect',
      url: `http://127.0.0.1:${port}`,
      token: login.accessToken,
    });
    if (ready.agentId !== agent.id) throw new Error(`the client is not the agent's: ${ready.agentId}`);
    const streamClients = [...running.app.get(EventsGateway).streams.clientsOf(company.id)];
    if (streamClients.length !== 1 || streamClients[0]!.agentId !== agent.id) {
      throw new Error('the gateway does not have exactly the agent’s client');
    }
    const clock = await world.clockOffset();

    // Instrumentation: the session calls this same CallApplyService instance.
    const traces = new Traces();
    const ours = (id: string) => /^18[01]\d{7}\.\d+$/.test(id);
    // `apply` goes through `applyAll` too: one trace per transaction.
    const applyAll = calls.applyBatch.bind(calls);
    calls.applyBatch = async (batch: readonly CallEvent[]) => {
      const start = now();
      try {
        return await applyAll(batch);
      } finally {
        const id = batch[0]?.providerCallId;
        if (id && ours(id)) {
          traces.of(id).applies.push({
            kind: batch.map((e) => e.kind).join('+'),
            agent: batch.some((e) => e.agent !== undefined),
            start,
            end: now(),
          });
        }
      }
    };
    const events = running.app.get(EventsService);
    const publish = events.publish.bind(events);
    events.publish = (envelopes: EventEnvelope[]) => {
      const at = now();
      for (const e of envelopes) {
        const id = (e.data as { call?: { providerCallId?: string } }).call?.providerCallId;
        if (e.type === 'call.ringing' && e.agentId === agent.id && id && ours(id)) traces.of(id).published = at;
      }
      publish(envelopes);
    };
    const sql = new SqlProfile();
    sql.install();
    ctx.opened(async () => sql.uninstall());

    // The baseline's calls: the same events, mapped as the session maps them, applied directly.
    const mapper = new AmiCallMapper();
    const canonical = (e: AsteriskCallEvent): CallEvent => {
      const { clickToCall: _, ...rest } = e;
      return { ...rest, companyId: company.id, connectionId: connection.id };
    };
    const direct = (n: number) => {
      const call = makeCall(template, BASE_DIRECT, n);
      const at = new Date();
      const ring = call.ring.flatMap((f) => mapper.map(f, at)).map(canonical);
      const hangup = call.hangup.flatMap((f) => mapper.map(f, at)).map(canonical);
      if (ring.length !== 2 || !ring[1]!.agent || hangup.length !== 1) {
        throw new Error(`the mapper gave ${ring.length} ringing and ${hangup.length} ended events`);
      }
      return { id: call.id, ring, hangup };
    };
    const postmaster = await postmasterPid(db.url);
    let nextAmi = 0;
    let nextDirect = 0;

    const amiSequential = (n: number) => {
      const first = nextAmi;
      nextAmi += n;
      return world.call<AmiRun>({ type: 'ami-sequential', first, count: n });
    };
    const amiPaced = (n: number) => {
      const first = nextAmi;
      nextAmi += n;
      return world.call<AmiRun>({
        type: 'ami-paced',
        first,
        count: n,
        rate: PACED_RATE,
        hangupAfterMs: HANGUP_AFTER_MS,
      });
    };
    const directSequential = async (n: number): Promise<AmiRun> => {
      const run: AmiRun = { ids: [], t0: [], due: [], pop: [], end: [], bytes: 0, events: 0 };
      for (let i = 0; i < n; i++) {
        const call = direct(nextDirect++);
        const t0 = now();
        await calls.applyBatch(call.ring);
        const pop = await world.call<{ t: number }>({
          type: 'await',
          callId: call.id,
          what: 'pop',
          timeoutMs: RECEIPT_TIMEOUT_MS,
        });
        await calls.applyBatch(call.hangup);
        const end = await world.call<{ t: number }>({
          type: 'await',
          callId: call.id,
          what: 'end',
          timeoutMs: RECEIPT_TIMEOUT_MS,
        });
        run.ids.push(call.id);
        run.t0.push(t0 + clock.offset);
        run.due.push(t0 + clock.offset);
        run.pop.push(pop.t);
        run.end.push(end.t);
      }
      return run;
    };
    const directPaced = async (n: number): Promise<AmiRun> => {
      const run: AmiRun = { ids: [], t0: [], due: [], pop: [], end: [], bytes: 0, events: 0 };
      const prepared = Array.from({ length: n }, () => direct(nextDirect++));
      let queue: Promise<unknown> = Promise.resolve();
      const errors: unknown[] = [];
      const enqueue = (work: () => Promise<unknown>) => {
        queue = queue.then(work).catch((error: unknown) => errors.push(error));
      };
      const origin = now();
      await schedule(
        prepared.flatMap((call, i) => {
          const at = (i * 1000) / PACED_RATE;
          return [
            {
              at,
              run: () => {
                const t0 = now();
                run.ids.push(call.id);
                run.t0.push(t0 + clock.offset);
                run.due.push(origin + at + clock.offset);
                enqueue(() => calls.applyBatch(call.ring));
              },
            },
            {
              at: at + HANGUP_AFTER_MS,
              run: () => {
                enqueue(() => calls.applyBatch(call.hangup));
              },
            },
          ];
        }),
      );
      await queue;
      if (errors.length > 0) throw new Error(`apply failed ${errors.length} times: ${String(errors[0])}`);
      const got = await world.call<{ pop: number[]; end: number[] }>({
        type: 'receipts',
        ids: run.ids,
        timeoutMs: RECEIPT_TIMEOUT_MS,
      });
      run.pop = got.pop;
      run.end = got.end;
      return run;
    };

    ctx.step(`warm-up: ${WARMUP_CALLS} calls through AMI, ${WARMUP_CALLS} applied directly`);
    const warm = await amiSequential(WARMUP_CALLS);
    await directSequential(WARMUP_CALLS);

    const modes = { amiSeq: new Mode(), directSeq: new Mode(), amiPaced: new Mode(), directPaced: new Mode() };
    const lsn = async () => String((await adminQuery(db.url, 'SELECT pg_current_wal_lsn() AS l')).rows[0].l);
    const walStart = await lsn();
    const measuredFrom = performance.now();
    const line = (what: string, run: AmiRun) => {
      const s = stats(run.pop.map((p, i) => p - run.t0[i]!).filter((d) => !Number.isNaN(d)));
      ctx.step(`  ${what}: p50 ${ms(s.p50)} ms, p99 ${ms(s.p99)} ms, max ${ms(s.max)} ms (${s.n} calls)`);
    };
    for (let round = 0; round < ROUNDS; round++) {
      ctx.step(
        `one call at a time, round ${round + 1} of ${ROUNDS}: ${SEQUENTIAL_PER_ROUND} AMI, ${SEQUENTIAL_PER_ROUND} direct`,
      );
      const ami = async () => {
        sql.on();
        const run = await modes.amiSeq.round(postmaster, () => amiSequential(SEQUENTIAL_PER_ROUND));
        sql.off();
        line('AMI', run);
      };
      const base = async () =>
        line('direct', await modes.directSeq.round(postmaster, () => directSequential(SEQUENTIAL_PER_ROUND)));
      if (round % 2 === 0) {
        await ami();
        await base();
      } else {
        await base();
        await ami();
      }
    }
    for (let round = 0; round < ROUNDS; round++) {
      ctx.step(
        `${PACED_RATE} calls/s, round ${round + 1} of ${ROUNDS}: ${PACED_PER_ROUND} AMI, ${PACED_PER_ROUND} direct`,
      );
      const ami = async () => line('AMI', await modes.amiPaced.round(postmaster, () => amiPaced(PACED_PER_ROUND)));
      const base = async () =>
        line('direct', await modes.directPaced.round(postmaster, () => directPaced(PACED_PER_ROUND)));
      if (round % 2 === 0) {
        await ami();
        await base();
      } else {
        await base();
        await ami();
      }
    }

    const walSeconds = (performance.now() - measuredFrom) / 1000;
    const walBytes = Number(
      (await adminQuery(db.url, 'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS b', [walStart])).rows[0].b,
    );
    const tally = await world.call<Tally>({ type: 'tally' });
    if (tally.disconnected) throw new Error('the agent’s client was disconnected');
    if (tally.amiClients !== 1) throw new Error(`${tally.amiClients} AMI clients at the end, expected 1`);
    // What the session's parser keeps of one call's write (its default noise list, our VarSet).
    const kept: string[] = [];
    new AmiParser({
      keepVarSet: ['CTI_REQUEST_ID'],
      onMessage: (f) => kept.push(amiHeader(f, 'Event') ?? '?'),
    }).push(wire(makeCall(template, BASE_AMI, 0).ring));

    const amiSeq = measure(modes.amiSeq, traces, clock.offset);
    const statements: StatementRow[] = [...sql.byStatement.entries()]
      .map(([label, took]) => ({
        label,
        perCall: took.length / amiSeq.calls,
        stats: stats(took),
        totalMs: took.reduce((s, v) => s + v, 0),
      }))
      .sort((a, b) => b.totalMs - a.totalMs);
    let applyMs = 0;
    for (const id of modes.amiSeq.merged().ids) {
      for (const a of traces.byCall.get(id)?.applies ?? []) applyMs += a.end - a.start;
    }
    const settings = await adminQuery(
      db.url,
      `SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_init_zero', 'wal_sync_method') ORDER BY name`,
    );
    const report: Report = {
      date: isoNow(),
      machine: await machine(db.url),
      database: db.where,
      pgSettings: `PostgreSQL ${(settings.rows as { name: string; setting: string }[]).map((s) => `\`${s.name}=${s.setting}\``).join(', ')}`,
      clock,
      ami: { sequential: amiSeq, paced: measure(modes.amiPaced, traces, clock.offset) },
      direct: {
        sequential: measure(modes.directSeq, traces, clock.offset),
        paced: measure(modes.directPaced, traces, clock.offset),
      },
      writeBytes: warm.bytes,
      writeEvents: warm.events,
      kept,
      parseMapUs: parseAndMap(template),
      tally,
      pool: running.config.DATABASE_POOL_MAX,
      statements,
      applyMs,
      wal: { bytes: walBytes, seconds: walSeconds },
      walInitZeroOff,
      sqlMs: statements.reduce((s, r) => s + r.totalMs, 0),
    };
    const text = section(report);
    const out = outArg();
    if (out) writeFileSync(out, `${text}\n`);
    else writeSection(MARK_START, MARK_END, text);
    console.log('\n' + text);
  });
}

if (isMainThread) main();
else worldThread();
