import 'reflect-metadata';
import { Inject, Module, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { Agent, request } from 'node:http';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { runMigrations } from '../src/database/migrator.js';
import { WebhookInboxProcessorService } from '../src/webhooks/inbox/webhook-inbox-processor.service.js';
import { WebhookInboxService } from '../src/webhooks/inbox/webhook-inbox.service.js';
import { twilioSignature } from '../src/pbx/twilio/twilio.signature.js';
import {
  adminQuery,
  type BenchContext,
  count,
  cpuLine,
  cpuSample,
  type CpuShares,
  cpuShares,
  isoNow,
  loadNote,
  type Machine,
  machine,
  machineLines,
  ms,
  postmasterPid,
  type RunningApp,
  runBench,
  sleep,
  startApp,
  startDatabase,
  type Stats,
  stats,
  writeSection,
} from './support/harness.js';
import { ACCOUNT_SID, AUTH_TOKEN, createTwilioConnection } from './support/inbox-rows.js';

/**
 * Webhook ingestion: `POST /webhooks/twilio/:connectionId/status` of the real application
 * (verify the Twilio signature, map, a durable group-committed write to the inbox, 2xx; the inbox
 * workers process the rows meanwhile) against a bare Fastify route on the same server that parses
 * the same form body and writes the same row into a table of the same shape with the same group
 * commit as the application's InboxWriter (up to 200 rows per INSERT, 2 INSERTs in flight: the
 * honest floor), through the same pool, in the same run: closed loop (maximum throughput,
 * alternating rounds), open loop at a fixed 1,000 requests/s (latency, p99, and the inbox's pending
 * count second by second: does processing keep up with ingest?), then two diagnostics (the
 * application at 1,000/s with its processing paused; that backlog processed alone). Every request
 * is a distinct, correctly signed Twilio status callback. The HTTP client runs in a worker thread
 * started from this same file. Writes its section of BENCHMARKS.md.
 *
 *   npm run bench:webhooks   (BENCH_DATABASE_URL or DATABASE_URL: use that server, else embedded)
 */

const RATE = 1000;
const OPEN = { warmupS: 3, measureS: 20 };
const CLOSED = { concurrency: 32, rounds: 3, warmupMs: 1000, measureMs: 4000, capacity: 30_000 };
/** Before the rounds, each route is driven this long (closed loop, not measured): JIT, caches, pool. */
const WARMUP_MS = 2000;
/** The diagnostic run (the application with its processing paused), open loop. */
const DIAGNOSTIC = { measureS: 10 };
/** Open-loop client: at most this many sockets (keep-alive); more requests in flight wait for one. */
const OPEN_SOCKETS = 64;
/** Open loop: a request not answered this long after its scheduled time is abandoned (an error). */
const REQUEST_TIMEOUT_MS = 10_000;
const TARGET_RATIO = 0.7;
const TARGET_P99_MS = 25;
const RATE_LIMIT_WEBHOOK = 1_000_000;
/** Calls per block: each block sends every call's first delivery, then every call's second, …. */
const BLOCK_CALLS = 200;
const DELIVERIES_PER_CALL = 5;
/** After an application run: how long to wait at most for the inbox's queue to empty once its rows are gone. */
const BACKLOG_LIMIT_MS = 20_000;
/** Diagnostic: how long the inbox's processing alone is timed, on rows the diagnostic run left pending. */
const PROCESSING_ALONE_MS = 30_000;
const HARD_LIMIT_MS = 240_000;
/** Other processes' CPU (per cent of one core, mean over the measured windows) from which the section warns. */
const SHARED_CPU_WARNING = 20;
const BARE_PREFIX = '/__bench/webhook-bare';
const SCRATCH_TABLE = 'bench_webhook_scratch';

const MARK_START = '<!-- bench:webhook-ingest:start -->';
const MARK_END = '<!-- bench:webhook-ingest:end -->';

// ---------------------------------------------------------------------------------------------
// Deliveries: a realistic inbound call lifecycle per CallSid, as Twilio sends it (the agent's
// <Dial> leg initiated, ringing, in-progress, completed; then the caller's leg completed), the
// fields and their order as in Twilio's status callbacks, each one signed with the auth token.

interface ClientConfig {
  port: number;
  connectionId: string;
  publicBaseUrl: string;
  authToken: string;
  accountSid: string;
}

const appPath = (connectionId: string) => `/webhooks/twilio/${connectionId}/status`;
const barePath = (connectionId: string) => `${BARE_PREFIX}/${connectionId}/status`;

function twilioTime(date: Date): string {
  return date.toUTCString().replace('GMT', '+0000');
}

/** The form fields of delivery `i` of a run (`salt`: 8 hex digits, distinct per run). */
function deliveryFields(salt: string, accountSid: string, i: number): Record<string, string> {
  const perBlock = BLOCK_CALLS * DELIVERIES_PER_CALL;
  const block = Math.floor(i / perBlock);
  const phase = Math.floor((i % perBlock) / BLOCK_CALLS);
  const call = block * BLOCK_CALLS + (i % BLOCK_CALLS);
  const parentSid = `CA${salt}${call.toString(16).padStart(23, '0')}0`;
  const childSid = `CA${salt}${call.toString(16).padStart(23, '0')}1`;
  const caller = `+1415555${String(call % 10_000).padStart(4, '0')}`;
  const agent = `client:agent-${call % 50}`;
  // Recent times (bodies are built just before each run): the application refuses a signed
  // Twilio callback whose Timestamp is outside its window (WEBHOOK_MAX_AGE_MS, 5 min by default).
  const start = Math.floor(Date.now() / 1000) * 1000 - 120_000 + (call % 60) * 1000;
  const at = (s: number) => twilioTime(new Date(start + s * 1000));
  const leg =
    phase < 4
      ? { sid: childSid, parent: parentSid, direction: 'outbound-dial', from: caller, to: agent }
      : { sid: parentSid, parent: undefined, direction: 'inbound', from: caller, to: '+14155550100' };
  const status = ['initiated', 'ringing', 'in-progress', 'completed', 'completed'][phase]!;
  const p: Record<string, string> = {
    Called: leg.to,
    ToState: '',
    CallerCountry: 'US',
    Direction: leg.direction,
    Timestamp: at([2, 3, 8, 38, 39][phase]!),
    CallbackSource: 'call-progress-events',
    CallerState: 'CA',
    ToZip: '',
    CallSid: leg.sid,
    To: leg.to,
    CallerZip: '94105',
    ToCountry: 'US',
    CalledZip: '',
    ApiVersion: '2010-04-01',
    CalledCity: '',
    CallStatus: status,
    From: leg.from,
    AccountSid: accountSid,
    CalledCountry: 'US',
    CallerCity: 'SAN FRANCISCO',
    ToCity: '',
    FromCountry: 'US',
    Caller: leg.from,
    FromCity: 'SAN FRANCISCO',
    CalledState: '',
    FromZip: '94105',
    FromState: 'CA',
    SequenceNumber: String(phase < 4 ? phase : 0),
  };
  if (leg.parent) p['ParentCallSid'] = leg.parent;
  if (status === 'completed') {
    p['CallDuration'] = phase === 3 ? '30' : '37';
    p['Duration'] = '1';
    p['SipResponseCode'] = '200';
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// The client (a worker thread running this file: it must not share the server's event loop)

type Target = 'app' | 'bare';

interface OpenJob {
  type: 'open';
  id: number;
  target: Target;
  salt: string;
  rate: number;
  warmup: number;
  measured: number;
}

interface ClosedJob {
  type: 'closed';
  id: number;
  target: Target;
  salt: string;
  concurrency: number;
  warmupMs: number;
  measureMs: number;
  capacity: number;
}

type ClientJob = OpenJob | ClosedJob;

interface ClientResult {
  id: number;
  /** Measured requests: latency (ms) from the scheduled send (open) or the send (closed) to the last byte. */
  latencies: Float64Array<ArrayBuffer>;
  /** Open loop: how late each measured request left (ms after its scheduled time). */
  sendLag: Float64Array<ArrayBuffer>;
  /** Completion time (ms since the start of the measured window) of each measured request. */
  doneAt: Float64Array<ArrayBuffer>;
  /** Responses of the measured window by status code (0: no response: a socket error or abandoned). */
  statuses: Record<number, number>;
  /** Measured requests abandoned after REQUEST_TIMEOUT_MS (open loop; included in statuses as 0). */
  timedOut: number;
  /** 2xx responses of the measured window. */
  ok: number;
  /** Every request sent (warm-up included), and how many 2xx said `"duplicate":false`. */
  sent: number;
  fresh: number;
  /** 2xx answers (warm-up included) that did not say `"duplicate":false`. */
  duplicates: number;
  /** Length of the measured window (ms): open loop, from the first scheduled measured send to the last 2xx. */
  windowMs: number;
  /** Event-loop utilisation of the client thread during the measured window (0…1). */
  clientElu: number;
  /** Time spent building and signing the bodies before the run (ms), and how many. */
  prepareMs: number;
  prepared: number;
  error?: string;
}

interface Prepared {
  path: string;
  bodies: Buffer[];
  signatures: string[];
}

function prepare(cfg: ClientConfig, target: Target, salt: string, n: number): Prepared {
  const path = target === 'app' ? appPath(cfg.connectionId) : barePath(cfg.connectionId);
  const url = cfg.publicBaseUrl + path;
  const bodies: Buffer[] = new Array<Buffer>(n);
  const signatures: string[] = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const fields = deliveryFields(salt, cfg.accountSid, i);
    bodies[i] = Buffer.from(new URLSearchParams(fields).toString());
    signatures[i] = twilioSignature(cfg.authToken, url, fields);
  }
  return { path, bodies, signatures };
}

function clientMain(cfg: ClientConfig): void {
  /** 2xx answers that did not say `"duplicate":false` (of every request, warm-up included). */
  let duplicates = 0;
  const started = (id: number) => parentPort!.postMessage({ started: id });
  const post = (
    agent: Agent,
    p: Prepared,
    i: number,
    done: (status: number, fresh: boolean, timedOut: boolean) => void,
    timeoutMs?: number,
  ): void => {
    const body = p.bodies[i]!;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (status: number, fresh: boolean, timedOut = false) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done(status, fresh, timedOut);
    };
    const req = request(
      {
        host: '127.0.0.1',
        port: cfg.port,
        path: p.path,
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': body.length,
          'x-twilio-signature': p.signatures[i]!,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('error', () => finish(0, false));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300 && !text.includes('"duplicate":false')) duplicates++;
          finish(status, text.includes('"duplicate":false'));
        });
      },
    );
    req.on('error', () => finish(0, false));
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        finish(0, false, true);
        req.destroy();
      }, timeoutMs);
    }
    req.end(body);
  };

  const open = async (job: OpenJob): Promise<ClientResult> => {
    duplicates = 0;
    const total = job.warmup + job.measured;
    const t = performance.now();
    const p = prepare(cfg, job.target, job.salt, total);
    const prepareMs = performance.now() - t;
    started(job.id);
    const agent = new Agent({ keepAlive: true, maxSockets: OPEN_SOCKETS });
    const latencies = new Float64Array(job.measured);
    const sendLag = new Float64Array(job.measured);
    const doneAt = new Float64Array(job.measured);
    const statuses: Record<number, number> = {};
    const interval = 1000 / job.rate;
    const start = performance.now() + 20;
    const measureStart = start + job.warmup * interval;
    let fresh = 0;
    let finished = 0;
    let timedOut = 0;
    let ok = 0;
    let lastOk = 0;
    let elu0 = performance.eventLoopUtilization();
    await new Promise<void>((resolve) => {
      let next = 0;
      const fire = (n: number) => {
        const scheduled = start + n * interval;
        const m = n - job.warmup;
        if (m === 0) elu0 = performance.eventLoopUtilization();
        if (m >= 0) sendLag[m] = performance.now() - scheduled;
        post(
          agent,
          p,
          n,
          (status, isFresh, abandoned) => {
            const end = performance.now();
            if (isFresh) fresh++;
            if (m >= 0) {
              latencies[m] = end - scheduled;
              doneAt[m] = end - measureStart;
              statuses[status] = (statuses[status] ?? 0) + 1;
              if (abandoned) timedOut++;
              if (status >= 200 && status < 300) {
                ok++;
                lastOk = Math.max(lastOk, end - measureStart);
              }
            }
            if (++finished === total) resolve();
          },
          Math.max(1, scheduled + REQUEST_TIMEOUT_MS - performance.now()),
        );
      };
      const tick = () => {
        const now = performance.now();
        while (next < total && start + next * interval <= now) fire(next++);
        if (next < total) setTimeout(tick, Math.max(0, start + next * interval - performance.now()));
      };
      setTimeout(tick, Math.max(0, start - performance.now()));
    });
    const clientElu = performance.eventLoopUtilization(elu0).utilization;
    agent.destroy();
    return {
      id: job.id,
      latencies,
      sendLag,
      doneAt,
      statuses,
      timedOut,
      ok,
      sent: total,
      fresh,
      duplicates,
      windowMs: lastOk,
      clientElu,
      prepareMs,
      prepared: total,
    };
  };

  const closed = async (job: ClosedJob): Promise<ClientResult> => {
    duplicates = 0;
    const t = performance.now();
    const p = prepare(cfg, job.target, job.salt, job.capacity);
    const prepareMs = performance.now() - t;
    started(job.id);
    const agent = new Agent({ keepAlive: true, maxSockets: job.concurrency });
    const latencies: number[] = [];
    const doneAt: number[] = [];
    const statuses: Record<number, number> = {};
    let fresh = 0;
    let ok = 0;
    let nextIndex = 0;
    const start = performance.now();
    const measureStart = start + job.warmupMs;
    const end = measureStart + job.measureMs;
    let elu0 = performance.eventLoopUtilization();
    const eluTimer = setTimeout(() => (elu0 = performance.eventLoopUtilization()), job.warmupMs);
    const loop = async () => {
      while (nextIndex < job.capacity) {
        const sentAt = performance.now();
        if (sentAt >= end) return;
        const i = nextIndex++;
        const [status, isFresh] = await new Promise<[number, boolean]>((resolve) =>
          post(agent, p, i, (s, f) => resolve([s, f])),
        );
        const doneTime = performance.now();
        if (isFresh) fresh++;
        if (doneTime >= measureStart && doneTime < end) {
          latencies.push(doneTime - sentAt);
          doneAt.push(doneTime - measureStart);
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (status >= 200 && status < 300) ok++;
        }
      }
    };
    await Promise.all(Array.from({ length: job.concurrency }, loop));
    clearTimeout(eluTimer);
    const clientElu = performance.eventLoopUtilization(elu0).utilization;
    agent.destroy();
    return {
      id: job.id,
      latencies: Float64Array.from(latencies),
      sendLag: new Float64Array(0),
      doneAt: Float64Array.from(doneAt),
      statuses,
      timedOut: 0,
      ok,
      sent: nextIndex,
      fresh,
      duplicates,
      windowMs: job.measureMs,
      clientElu,
      prepareMs,
      prepared: job.capacity,
      ...(nextIndex >= job.capacity ? { error: `ran out of prepared requests (${job.capacity})` } : {}),
    };
  };

  parentPort!.on('message', (job: ClientJob) => {
    (job.type === 'open' ? open(job) : closed(job)).then(
      (result) =>
        parentPort!.postMessage(result, [result.latencies.buffer, result.sendLag.buffer, result.doneAt.buffer]),
      (error: unknown) =>
        parentPort!.postMessage({
          id: job.id,
          latencies: new Float64Array(0),
          sendLag: new Float64Array(0),
          doneAt: new Float64Array(0),
          statuses: {},
          timedOut: 0,
          ok: 0,
          sent: 0,
          fresh: 0,
          duplicates: 0,
          windowMs: 0,
          clientElu: 0,
          prepareMs: 0,
          prepared: 0,
          error: error instanceof Error ? error.message : String(error),
        } satisfies ClientResult),
    );
  });
}

class Client {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { started(): void; done(result: ClientResult): void }>();
  private nextId = 1;

  constructor(cfg: ClientConfig) {
    this.worker = new Worker(new URL(import.meta.url), { workerData: { webhookBenchClient: cfg } });
    this.worker.on('message', (message: ClientResult | { started: number }) => {
      if ('started' in message) {
        this.waiting.get(message.started)?.started();
        return;
      }
      this.waiting.get(message.id)?.done(message);
      this.waiting.delete(message.id);
    });
    this.worker.on('error', (error) => console.error('bench client worker failed:', error));
  }

  /** `started`: the bodies are built, the first request leaves now; `done`: the figures. */
  run<J extends ClientJob>(job: Omit<J, 'id'>): { started: Promise<void>; done: Promise<ClientResult> } {
    const id = this.nextId++;
    let started!: () => void;
    const startedP = new Promise<void>((resolve) => (started = resolve));
    const done = new Promise<ClientResult>((resolve) => {
      this.waiting.set(id, {
        started,
        done: (result) => {
          started();
          resolve(result);
        },
      });
      this.worker.postMessage({ ...job, id });
    });
    return { started: startedP, done };
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// The baseline: a bare Fastify route on the application's own Fastify instance (registered while
// Nest initialises, before the instance is ready), through the application's pool.

const bare = { writer: null as BareBatchWriter | null, companyId: '' };

interface BareRow {
  connectionId: string;
  eventId: string;
  callKey: string;
  payloadJson: string;
}

/**
 * The group commit of src/webhooks/inbox/inbox-writer.ts (same constants, same multi-row
 * `INSERT … ON CONFLICT DO NOTHING RETURNING`, each caller answered once its row is committed),
 * into the scratch table: what the bare route writes with, so that the baseline batches exactly
 * as the application does. Kept in step with InboxWriter by hand (it writes to webhook_inbox only).
 */
class BareBatchWriter {
  static readonly MAX_BATCH = 200;
  static readonly MAX_IN_FLIGHT = 2;
  private readonly queue: { row: BareRow; resolve: (id: string | null) => void; reject: (e: unknown) => void }[] = [];
  private inFlight = 0;

  constructor(private readonly dataSource: DataSource) {}

  write(row: BareRow): Promise<string | null> {
    return new Promise((resolve, reject) => {
      this.queue.push({ row, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < BareBatchWriter.MAX_IN_FLIGHT && this.queue.length > 0) {
      const batch = this.queue.splice(0, BareBatchWriter.MAX_BATCH);
      this.inFlight++;
      void this.flush(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async flush(batch: typeof this.queue): Promise<void> {
    const values: string[] = [];
    const params: unknown[] = [];
    for (const { row } of batch) {
      const n = params.length;
      values.push(
        `($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}, $${n + 6}, $${n + 7}::jsonb, $${n + 8}, $${n + 9}, $${n + 10}::jsonb)`,
      );
      params.push(bare.companyId, row.connectionId, 'twilio', 'status', 'call', row.eventId, row.payloadJson);
      params.push(row.callKey, 0, null);
    }
    try {
      const inserted = (await this.dataSource.query(
        `INSERT INTO ${SCRATCH_TABLE} (company_id, connection_id, provider, route, kind, event_id, payload, call_key, partition, records)
         VALUES ${values.join(', ')}
         ON CONFLICT (connection_id, event_id) DO NOTHING RETURNING id, connection_id, event_id`,
        params,
      )) as { id: string; connection_id: string; event_id: string }[];
      const ids = new Map(inserted.map((r) => [`${r.connection_id}\n${r.event_id}`, r.id]));
      for (const w of batch) {
        const key = `${w.row.connectionId}\n${w.row.eventId}`;
        const id = ids.get(key) ?? null;
        if (id !== null) ids.delete(key);
        w.resolve(id);
      }
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }
}

@Module({})
export class BareWebhookRouteModule implements OnModuleInit {
  constructor(@Inject(HttpAdapterHost) private readonly host: HttpAdapterHost) {}

  onModuleInit(): void {
    const fastify = this.host.httpAdapter.getInstance<FastifyInstance>();
    fastify.post<{ Params: { connectionId: string }; Body: Record<string, string> }>(
      `${BARE_PREFIX}/:connectionId/status`,
      async (req) => {
        const params = req.body;
        const payload = { route: 'status', query: {}, params, receivedAt: new Date().toISOString() };
        const eventId = `${params['CallSid']}:${params['CallStatus']}:${params['SequenceNumber']}`;
        const id = await bare.writer!.write({
          connectionId: req.params.connectionId,
          eventId,
          callKey: `twilio:${params['CallSid']}`,
          payloadJson: JSON.stringify(payload),
        });
        return { received: true, duplicate: id === null };
      },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface Run {
  /** Marks this run's CallSids (and so its inbox rows). */
  salt: string;
  target: Target;
  mode: 'open' | 'closed';
  /** Diagnostic: the inbox's processing was paused for this run (`WebhookInboxProcessorService.pause()`). */
  processingOff: boolean;
  /** Application runs: pending inbox rows (all of them) each second of the run, from the start of the load. */
  pendingSeries: number[];
  /** Open-loop application runs: ms from the end of the load until none of its rows was pending (null: not within BACKLOG_LIMIT_MS). */
  drainAfterMs: number | null;
  latency: Stats;
  /** The measured latencies themselves (to pool the rounds of the closed loop). */
  latencies: Float64Array;
  /** 2xx answers of the measured window, and the window (ms). */
  ok: number;
  windowMs: number;
  /** 2xx answers per second over the measured window. */
  rps: number;
  /** Answers of each measured second. */
  perSecond: number[];
  /** Open loop: p99 of the requests scheduled in each measured second. */
  perSecondP99: number[];
  /** Open loop: how late the client issued each request after its scheduled time. */
  sendLag: Stats | null;
  statuses: Record<number, number>;
  errors: number;
  timedOut: number;
  measured: number;
  duplicates: number;
  cpu: CpuShares;
  loop: Stats;
  pool: PoolState;
  waits: WaitTally;
  /** Application runs: what the inbox's ingest and process did during the run (warm-up included). */
  tally: InboxTally;
  /** Checkpoints the database server began during the run (warm-up included). */
  checkpoints: number;
  /** When they began, seen within 250 ms: seconds from the start of the measured window (negative: in the warm-up). */
  checkpointAt: number[];
  clientElu: number;
  prepareMs: number;
  prepared: number;
  /** Application runs: the run's inbox rows when its load ended. */
  inbox?: InboxState;
}

interface InboxState {
  rows: number;
  processed: number;
  pending: number;
  failed: number;
  /** Rows whose processing failed at least once and was put back with its error (`last_error`). */
  errored: number;
  /** received_at → processed_at of the processed rows (ms). */
  lag: Stats;
  /** Rows processed per second, from the run's first received row to the end of its load. */
  processedPerS: number;
}

/** The application's pg pool (TypeORM's driver pool), sampled every 10 ms. */
interface PoolState {
  size: number;
  /** Queries waiting for a connection of the pool: mean and largest. */
  waitingMean: number;
  waitingMax: number;
}

/** What the database's client backends were doing, sampled every 50 ms (active ones only). */
interface WaitTally {
  samples: number;
  /** wait (`type:event`, or `CPU`) → how many backends were seen in it, and the statement seen most. */
  byWait: { wait: string; seen: number; statement: string }[];
  /** Active backends seen in all. */
  active: number;
  /** Autovacuum workers seen, and when (s from the start of the sampling, first and last seen). */
  autovacuum: { what: string; from: number; to: number }[];
}

interface PgPool {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
  options: { max: number };
}

/**
 * What `WebhookInboxService.ingest` and `WebhookInboxProcessorService.processBatch` did (the benchmark
 * wraps both; errors that reached the caller, by message: a row whose own processing fails is
 * caught there, see InboxState).
 */
interface InboxTally {
  ingested: number;
  ingestErrors: Record<string, number>;
  processErrors: Record<string, number>;
}

interface Env {
  ctx: BenchContext;
  client: Client;
  db: string;
  postmaster: number | null;
  pool: PgPool;
  inbox: WebhookInboxService;
  processor: WebhookInboxProcessorService;
  tally: InboxWatch;
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

function watchPool(pool: PgPool): { stop(): PoolState } {
  let samples = 0;
  let waiting = 0;
  let waitingMax = 0;
  const timer = setInterval(() => {
    samples++;
    waiting += pool.waitingCount;
    waitingMax = Math.max(waitingMax, pool.waitingCount);
  }, 10);
  return {
    stop() {
      clearInterval(timer);
      return { size: pool.options.max, waitingMean: samples ? waiting / samples : 0, waitingMax };
    },
  };
}

/** Samples pg_stat_activity on its own connection (not the application's pool). */
async function watchWaits(databaseUrl: string): Promise<{ stop(): Promise<WaitTally> }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const tally = new Map<string, { seen: number; statements: Map<string, number> }>();
  const autovacuum = new Map<string, { from: number; to: number }>();
  let samples = 0;
  let active = 0;
  let stopping = false;
  const start = performance.now();
  const done = (async () => {
    while (!stopping) {
      const { rows: all } = await client.query<{ wait: string; statement: string; type: string }>(
        `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait, backend_type AS type,
                regexp_replace(left(query, 200), '\\s+', ' ', 'g') AS statement
           FROM pg_stat_activity
          WHERE datname = current_database() AND backend_type IN ('client backend', 'autovacuum worker')
            AND state = 'active' AND pid <> pg_backend_pid()`,
      );
      const at = (performance.now() - start) / 1000;
      for (const r of all.filter((x) => x.type === 'autovacuum worker')) {
        const seen = autovacuum.get(r.statement);
        if (seen) seen.to = at;
        else autovacuum.set(r.statement, { from: at, to: at });
      }
      const rows = all.filter((x) => x.type === 'client backend');
      samples++;
      active += rows.length;
      for (const r of rows) {
        const entry = tally.get(r.wait) ?? { seen: 0, statements: new Map<string, number>() };
        entry.seen++;
        const statement = r.statement.slice(0, 60).trim();
        entry.statements.set(statement, (entry.statements.get(statement) ?? 0) + 1);
        tally.set(r.wait, entry);
      }
      await sleep(50);
    }
  })();
  return {
    async stop() {
      stopping = true;
      await done;
      await client.end();
      const byWait = [...tally]
        .map(([wait, e]) => ({
          wait,
          seen: e.seen,
          statement: [...e.statements].sort((x, y) => y[1] - x[1])[0]?.[0] ?? '',
        }))
        .sort((x, y) => y.seen - x.seen);
      return {
        samples,
        byWait,
        active,
        autovacuum: [...autovacuum].map(([what, t]) => ({ what: what.replace(/^autovacuum: /, ''), ...t })),
      };
    },
  };
}

interface InboxWatch {
  /** The tally since the last call, and a fresh one from now. */
  take(): InboxTally;
  /** Resolves when no batch has been running for `quietMs` (or after `limitMs`). */
  quiet(quietMs: number, limitMs: number): Promise<void>;
}

/** Wraps the inbox's `ingest` and the processor's `processBatch` (instance properties over the prototype's methods) to count. */
function watchInbox(inbox: WebhookInboxService, processor: WebhookInboxProcessorService): InboxWatch {
  const fresh = (): InboxTally => ({ ingested: 0, ingestErrors: {}, processErrors: {} });
  let tally = fresh();
  let running = 0;
  let lastEnd = performance.now();
  const failed = (error: unknown, into: Record<string, number>) => {
    const message = (error instanceof Error ? error.message : String(error)).slice(0, 80);
    into[message] = (into[message] ?? 0) + 1;
  };
  const ingest = inbox.ingest.bind(inbox);
  inbox.ingest = async (...args: Parameters<WebhookInboxService['ingest']>) => {
    try {
      const result = await ingest(...args);
      tally.ingested++;
      return result;
    } catch (error) {
      failed(error, tally.ingestErrors);
      throw error;
    }
  };
  // Every worker goes through `processBatch` (an instance property over the prototype's method,
  // so `this.processBatch` inside the processor finds the wrapper).
  const processBatch = processor.processBatch.bind(processor);
  processor.processBatch = async () => {
    running++;
    try {
      return await processBatch();
    } catch (error) {
      failed(error, tally.processErrors);
      throw error;
    } finally {
      running--;
      lastEnd = performance.now();
    }
  };
  return {
    take() {
      const taken = tally;
      tally = fresh();
      return taken;
    },
    async quiet(quietMs, limitMs) {
      const start = performance.now();
      while (performance.now() - start < limitMs) {
        if (running === 0 && performance.now() - lastEnd >= quietMs) return;
        await sleep(50);
      }
    },
  };
}

/** Checkpoints the server has begun (PostgreSQL 17: pg_stat_checkpointer; before: pg_stat_bgwriter). */
async function checkpoints(client: pg.Client): Promise<number> {
  try {
    const { rows } = await client.query('SELECT (num_timed + num_requested)::int AS n FROM pg_stat_checkpointer');
    return (rows[0] as { n: number }).n;
  } catch {
    const { rows } = await client.query('SELECT (checkpoints_timed + checkpoints_req)::int AS n FROM pg_stat_bgwriter');
    return (rows[0] as { n: number }).n;
  }
}

const newSalt = () =>
  Math.floor(Math.random() * 2 ** 32)
    .toString(16)
    .padStart(8, '0');

async function inboxState(db: string, salt: string, endedAt: Date): Promise<InboxState> {
  const { rows } = await adminQuery(
    db,
    `SELECT count(*)::int AS rows,
            count(*) FILTER (WHERE status = 'processed')::int AS processed,
            count(*) FILTER (WHERE status = 'pending')::int AS pending,
            count(*) FILTER (WHERE status = 'failed')::int AS failed,
            count(*) FILTER (WHERE last_error IS NOT NULL)::int AS errored,
            extract(epoch FROM $2::timestamptz - min(received_at)) AS seconds
       FROM webhook_inbox WHERE event_id LIKE $1`,
    [`CA${salt}%`, endedAt],
  );
  const lag = await adminQuery(
    db,
    `SELECT extract(epoch FROM processed_at - received_at) * 1000 AS ms FROM webhook_inbox
      WHERE event_id LIKE $1 AND status = 'processed'`,
    [`CA${salt}%`],
  );
  const r = rows[0] as {
    rows: number;
    processed: number;
    pending: number;
    failed: number;
    errored: number;
    seconds: string;
  };
  return {
    rows: r.rows,
    processed: r.processed,
    pending: r.pending,
    failed: r.failed,
    errored: r.errored,
    lag: stats(lag.rows.map((x: { ms: string }) => Number(x.ms))),
    processedPerS: Number(r.seconds) > 0 ? r.processed / Number(r.seconds) : 0,
  };
}

/**
 * Ends an application run's backlog so that it does not load the next run: the run's rows still
 * pending are deleted, then the inbox's queue empties on its own (claiming a deleted row finds
 * nothing).
 */
async function clearBacklog(env: Env, salt: string): Promise<void> {
  await adminQuery(env.db, `DELETE FROM webhook_inbox WHERE event_id LIKE $1 AND status = 'pending'`, [`CA${salt}%`]);
  await env.tally.quiet(300, BACKLOG_LIMIT_MS);
}

interface Plan {
  processingOff?: boolean;
  /** Closed loop. */
  warmupMs?: number;
  measureMs?: number;
  /** Open loop. */
  measureS?: number;
}

async function measure(env: Env, target: Target, mode: 'open' | 'closed', plan: Plan = {}): Promise<Run> {
  const salt = newSalt();
  const processingOff = plan.processingOff ?? false;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const warmupMs = mode === 'open' ? OPEN.warmupS * 1000 : (plan.warmupMs ?? CLOSED.warmupMs);
  const measureS = plan.measureS ?? OPEN.measureS;
  env.tally.take();
  const statsClient = new pg.Client({ connectionString: env.db });
  await statsClient.connect();
  const checkpointsBefore = await checkpoints(statsClient);
  if (processingOff) await env.processor.pause();
  const job =
    mode === 'open'
      ? env.client.run<OpenJob>({
          type: 'open',
          target,
          salt,
          rate: RATE,
          warmup: RATE * OPEN.warmupS,
          measured: RATE * measureS,
        })
      : env.client.run<ClosedJob>({
          type: 'closed',
          target,
          salt,
          concurrency: CLOSED.concurrency,
          capacity: CLOSED.capacity,
          warmupMs,
          measureMs: plan.measureMs ?? CLOSED.measureMs,
        });
  // The client builds and signs its bodies first, then says it starts sending: the measured
  // window (CPU, event-loop delay, pool, database waits) begins after the warm-up from then.
  await job.started;
  let cpuStart = cpuSample(env.postmaster);
  let poolWatch: ReturnType<typeof watchPool> | undefined;
  let waitWatch: Promise<Awaited<ReturnType<typeof watchWaits>>> | undefined;
  const timer = setTimeout(() => {
    loop.enable();
    cpuStart = cpuSample(env.postmaster);
    poolWatch = watchPool(env.pool);
    waitWatch = watchWaits(env.db);
  }, warmupMs);
  // When checkpoints begin (s from the start of the measured window), polled every 250 ms.
  const measureFrom = performance.now() + warmupMs;
  const checkpointAt: number[] = [];
  let polling = true;
  const poller = (async () => {
    let last = checkpointsBefore;
    while (polling) {
      const n = await checkpoints(statsClient);
      if (n > last) checkpointAt.push((performance.now() - measureFrom) / 1000);
      last = n;
      await sleep(250);
    }
  })();
  // Ingest and processing together: the inbox's pending rows once a second (application runs).
  const pendingSeries: number[] = [];
  const pendingPoller = (async () => {
    if (target !== 'app') return;
    const pendingClient = new pg.Client({ connectionString: env.db });
    await pendingClient.connect();
    try {
      for (let next = performance.now(); polling; next += 1000) {
        pendingSeries.push(await pendingCount(pendingClient));
        await sleep(Math.max(0, next + 1000 - performance.now()));
      }
    } finally {
      await pendingClient.end();
    }
  })();
  const result = await job.done;
  const endedAt = new Date();
  const endedAtMs = performance.now();
  polling = false;
  await poller;
  await pendingPoller;
  const checkpointsDuring = (await checkpoints(statsClient)) - checkpointsBefore;
  await statsClient.end();
  clearTimeout(timer);
  loop.disable();
  const cpu = cpuShares(cpuStart, cpuSample(env.postmaster));
  const pool = poolWatch?.stop() ?? { size: env.pool.options.max, waitingMean: 0, waitingMax: 0 };
  const waits = waitWatch ? await (await waitWatch).stop() : { samples: 0, byWait: [], active: 0, autovacuum: [] };
  if (result.error) throw new Error(`${target} ${mode}: ${result.error}`);

  const measured = result.latencies.length;
  const seconds = Math.max(1, Math.ceil((mode === 'open' ? measureS * 1000 : result.windowMs) / 1000));
  const perSecond = new Array<number>(seconds).fill(0);
  for (const d of result.doneAt) {
    const second = Math.floor(d / 1000);
    if (second < seconds) perSecond[second]!++;
  }
  const run: Run = {
    salt,
    target,
    mode,
    processingOff,
    pendingSeries,
    drainAfterMs: null,
    latency: stats(result.latencies),
    latencies: result.latencies,
    ok: result.ok,
    windowMs: result.windowMs,
    rps: result.windowMs > 0 ? (result.ok / result.windowMs) * 1000 : 0,
    perSecond,
    perSecondP99:
      mode === 'open'
        ? Array.from({ length: measureS }, (_, i) => stats(result.latencies.subarray(i * RATE, (i + 1) * RATE)).p99)
        : [],
    sendLag: mode === 'open' ? stats(result.sendLag) : null,
    statuses: result.statuses,
    errors: measured - result.ok,
    timedOut: result.timedOut,
    measured,
    duplicates: result.duplicates,
    cpu,
    loop: loopStats(loop),
    pool,
    waits,
    tally: env.tally.take(),
    checkpoints: checkpointsDuring,
    checkpointAt,
    clientElu: result.clientElu,
    prepareMs: result.prepareMs,
    prepared: result.prepared,
  };
  if (target === 'app') {
    run.inbox = await inboxState(env.db, salt, endedAt);
    if (mode === 'open' && !processingOff) run.drainAfterMs = await drained(env.db, salt, endedAtMs, BACKLOG_LIMIT_MS);
    // The diagnostic's rows are left for the processing-alone diagnostic (and the processor stays paused).
    if (!processingOff) await clearBacklog(env, salt);
  }
  return run;
}

async function pendingCount(client: pg.Client): Promise<number> {
  const { rows } = await client.query(`SELECT count(*)::int AS n FROM webhook_inbox WHERE status = 'pending'`);
  return (rows[0] as { n: number }).n;
}

/** Waits until none of the run's rows is pending; ms from `since`, or null after `limitMs`. */
async function drained(db: string, salt: string, since: number, limitMs: number): Promise<number | null> {
  const client = new pg.Client({ connectionString: db });
  await client.connect();
  try {
    while (performance.now() - since < limitMs) {
      const { rows } = await client.query(
        `SELECT EXISTS (SELECT 1 FROM webhook_inbox WHERE event_id LIKE $1 AND status = 'pending') AS any`,
        [`CA${salt}%`],
      );
      if (!(rows[0] as { any: boolean }).any) return performance.now() - since;
      await sleep(50);
    }
    return null;
  } finally {
    await client.end();
  }
}

interface ProcessingAlone {
  rows: number;
  rps: number;
  workers: number;
  batch: number;
  /** All of the run's rows were processed within the time allowed. */
  finished: boolean;
  waits: WaitTally;
}

/**
 * Diagnostic: the inbox's processing alone (no HTTP load): the processor, paused during the
 * diagnostic run, resumes with the rows that run left pending and its own workers
 * (`WEBHOOK_PROCESS_WORKERS` × batches of `WEBHOOK_PROCESS_BATCH`), timed until none of them is
 * pending (at most PROCESSING_ALONE_MS); the rest, if any, is then deleted.
 */
async function processingAlone(env: Env, salt: string, workers: number, batch: number): Promise<ProcessingAlone> {
  const waitWatch = await watchWaits(env.db);
  const before = env.processor.processedCount;
  const start = performance.now();
  env.processor.resume();
  const took = await drained(env.db, salt, start, PROCESSING_ALONE_MS);
  const elapsed = took ?? performance.now() - start;
  const processed = env.processor.processedCount - before;
  const waits = await waitWatch.stop();
  await clearBacklog(env, salt);
  return { rows: processed, rps: (processed / elapsed) * 1000, workers, batch, finished: took !== null, waits };
}

/** The closed-loop rounds of one route, pooled. */
interface Pooled {
  runs: Run[];
  latency: Stats;
  rps: number;
  errors: number;
  duplicates: number;
  cpu: CpuShares;
  pool: PoolState;
  waits: WaitTally;
  clientElu: number;
}

function pooled(runs: Run[]): Pooled {
  const all: number[] = [];
  for (const r of runs) all.push(...r.latencies);
  const mean = (f: (r: Run) => number) => runs.reduce((sum, r) => sum + f(r), 0) / runs.length;
  const waits = new Map<string, { seen: number; statement: string }>();
  for (const r of runs) {
    for (const w of r.waits.byWait) {
      const entry = waits.get(w.wait);
      if (entry) entry.seen += w.seen;
      else waits.set(w.wait, { ...w });
    }
  }
  const totalOk = runs.reduce((sum, r) => sum + r.ok, 0);
  const totalMs = runs.reduce((sum, r) => sum + r.windowMs, 0);
  const other = runs.every((r) => r.cpu.other !== null) ? mean((r) => r.cpu.other!) : null;
  const pg = runs.every((r) => r.cpu.pg !== null) ? mean((r) => r.cpu.pg!) : null;
  return {
    runs,
    latency: stats(all),
    rps: (totalOk / totalMs) * 1000,
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    duplicates: runs.reduce((sum, r) => sum + r.duplicates, 0),
    cpu: { machine: mean((r) => r.cpu.machine), self: mean((r) => r.cpu.self), pg, other, cores: runs[0]!.cpu.cores },
    pool: {
      size: runs[0]!.pool.size,
      waitingMean: mean((r) => r.pool.waitingMean),
      waitingMax: Math.max(...runs.map((r) => r.pool.waitingMax)),
    },
    waits: {
      samples: runs.reduce((sum, r) => sum + r.waits.samples, 0),
      active: runs.reduce((sum, r) => sum + r.waits.active, 0),
      byWait: [...waits]
        .map(([wait, e]) => ({ wait, seen: e.seen, statement: e.statement }))
        .sort((x, y) => y.seen - x.seen),
      autovacuum: runs.flatMap((r) => r.waits.autovacuum),
    },
    clientElu: mean((r) => r.clientElu),
  };
}

// ---------------------------------------------------------------------------------------------
// Setup

/** The real route refuses a bad signature (401, nothing stored) and takes a good one; the bare route answers. */
async function checkRoutes(running: RunningApp, cfg: ClientConfig): Promise<void> {
  const base = `http://127.0.0.1:${running.port}`;
  const fields = deliveryFields('ffffffff', cfg.accountSid, 0);
  const body = new URLSearchParams(fields).toString();
  const url = cfg.publicBaseUrl + appPath(cfg.connectionId);
  const send = (path: string, signature: string) =>
    fetch(base + path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
      body,
    });
  const forged = await send(appPath(cfg.connectionId), twilioSignature('not-the-token-0123456789', url, fields));
  if (forged.status !== 401) throw new Error(`a forged signature got ${forged.status}, expected 401`);
  const good = await send(appPath(cfg.connectionId), twilioSignature(cfg.authToken, url, fields));
  const goodBody = await good.text();
  if (good.status !== 200 || !goodBody.includes('"duplicate":false')) {
    throw new Error(`a signed delivery got ${good.status} ${goodBody}`);
  }
  const again = await send(appPath(cfg.connectionId), twilioSignature(cfg.authToken, url, fields));
  if (!(await again.text()).includes('"duplicate":true')) throw new Error('a redelivery was not a duplicate');
  const b = await send(barePath(cfg.connectionId), 'unused');
  const bBody = await b.text();
  if (b.status !== 200 || !bBody.includes('"duplicate":false')) throw new Error(`bare route: ${b.status} ${bBody}`);
}

// ---------------------------------------------------------------------------------------------
// Report

interface Report {
  date: string;
  machine: Machine;
  database: string;
  rateLimit: number;
  /** The database server is ours (embedded): its settings were changed. */
  ownServer: boolean;
  /** WEBHOOK_PROCESS_WORKERS and WEBHOOK_PROCESS_BATCH of the application. */
  processing: { workers: number; batch: number };
  load: { before: string; after: string; loaded: boolean };
  open: { app: Run; bare: Run };
  closed: { app: Pooled; bare: Pooled };
  /** Diagnostic: the application with its processing paused. */
  ingestOnly: Run;
  /** Diagnostic: the inbox's processing alone, on the rows the diagnostic run left pending. */
  alone: ProcessingAlone;
  payloadBytes: { app: number; bare: number };
}

const pct = (v: number) => `${Math.round(v * 100)} %`;
/** Two decimals, or three when two would hide which side of the target it is on. */
const ratioText = (v: number) =>
  v >= TARGET_RATIO === Number(v.toFixed(2)) >= TARGET_RATIO ? v.toFixed(2) : v.toFixed(3);

function statusText(statuses: Record<number, number>): string {
  return Object.entries(statuses)
    .map(([s, n]) => `${s === '0' ? 'no answer' : s} × ${count(n)}`)
    .join(', ');
}

function pooledStatuses(p: Pooled): Record<number, number> {
  const out: Record<number, number> = {};
  for (const r of p.runs) for (const [s, n] of Object.entries(r.statuses)) out[Number(s)] = (out[Number(s)] ?? 0) + n;
  return out;
}

function row(label: string, x: { latency: Stats; rps: number; errors: number }): string {
  const s = x.latency;
  return (
    `| ${label} | ${count(s.n)} | ${x.rps.toFixed(0)} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ` +
    `${ms(s.max)} | ${count(x.errors)} |`
  );
}

function errorsText(errors: Record<string, number>): string {
  const entries = Object.entries(errors);
  return entries.length ? entries.map(([m, n]) => `${count(n)} × “${m}”`).join(', ') : 'none';
}

/** Seconds of an open-loop run (by scheduled send) whose p99 was at or over the target, with it. */
function secondsOver(r: Run): string {
  const over = r.perSecondP99.map((v, i) => [i, v] as const).filter(([, v]) => v >= TARGET_P99_MS);
  return over.length ? over.map(([i, v]) => `${i}: ${ms(v, 0)} ms`).join(', ') : 'none';
}

function autovacuumText(r: Run): string {
  const seen = r.waits.autovacuum;
  if (seen.length === 0) return 'none seen';
  return seen.map((a) => `\`${a.what}\` ${a.from.toFixed(1)}–${a.to.toFixed(1)} s`).join(', ');
}

function checkpointText(r: Run): string {
  if (r.checkpoints === 0) return 'none';
  const at = r.checkpointAt.map((t) => `${t.toFixed(1)} s`).join(', ');
  return `${r.checkpoints}${at ? ` (at ${at} of the measured window)` : ''}`;
}

function waitsLine(w: WaitTally): string {
  const total = w.byWait.reduce((sum, x) => sum + x.seen, 0);
  if (total === 0) return 'no active backend seen';
  return (
    `${(w.active / Math.max(1, w.samples)).toFixed(1)} active on average; ` +
    w.byWait
      .slice(0, 4)
      .map((x) => `${pct(x.seen / total)} \`${x.wait}\` (mostly \`${x.statement.replace(/`/g, "'")}…\`)`)
      .join(', ')
  );
}

function processingLine(r: Run): string {
  const i = r.inbox!;
  return (
    `${count(i.rows)} rows ingested, ${count(i.processed)} processed by the end of the load ` +
    `(${i.processedPerS.toFixed(0)} rows/s), ${count(i.pending)} still pending, ${count(i.failed)} failed, ` +
    `${count(i.errored)} with an error; from ` +
    `the 2xx to processed p50 ${ms(i.lag.p50, 0)} ms, p99 ${ms(i.lag.p99, 0)} ms`
  );
}

/** Pending rows over the second half of an open-loop run: growth per second, and whether processing kept up. */
function steadyState(r: Run): { growth: number; ingestReached: boolean; keepsUp: boolean; last: number } {
  const series = r.pendingSeries;
  const last = series[series.length - 1] ?? 0;
  const mid = Math.floor(series.length / 2);
  const growth = series.length > 2 ? (last - series[mid]!) / (series.length - 1 - mid) : 0;
  // Only a run whose ingest reached the rate can show that processing keeps up with it.
  const ingestReached = r.rps >= RATE * 0.95 && r.errors === 0;
  return { growth, ingestReached, keepsUp: ingestReached && growth < RATE * 0.05 && r.drainAfterMs !== null, last };
}

function section(r: Report): string {
  const c = r.closed;
  const ratio = c.app.rps / c.bare.rps;
  const roundRatios = c.app.runs.map((a, i) => a.rps / c.bare.runs[i]!.rps);
  const o = r.open.app;
  const ob = r.open.bare;
  const d = r.ingestOnly;
  const ratioMet = ratio >= TARGET_RATIO && c.app.errors === 0;
  const p99Met = o.latency.p99 < TARGET_P99_MS && o.errors === 0;
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const dups = c.app.duplicates + c.bare.duplicates + o.duplicates + ob.duplicates + d.duplicates;
  const appRounds = c.app.runs;
  const concurrency =
    `\`WEBHOOK_PROCESS_WORKERS\` = ${r.processing.workers} workers, batches of at most ` +
    `\`WEBHOOK_PROCESS_BATCH\` = ${r.processing.batch} rows`;
  const steady = steadyState(o);
  const others = [...c.app.runs, ...c.bare.runs, o, ob, d].map((x) => x.cpu.other ?? 0);
  const othersMean = others.reduce((sum, x) => sum + x, 0) / others.length;
  return [
    MARK_START,
    '## Webhook ingestion: verify, durable insert, 2xx',
    '',
    `Measured ${r.date} by \`npm run bench:webhooks\` (\`bench/webhook-ingest.ts\`); re-running replaces this section.`,
    '',
    `**Target** (from the issue): at least ${TARGET_RATIO} of the bare route's throughput, the bare route ` +
      'batching its INSERTs exactly as the application does; p99 under ' +
      `${TARGET_P99_MS} ms at a fixed ${count(RATE)} requests/s; and processing keeping up with that ingest ` +
      '(pending flat).',
    '',
    ...(r.load.loaded
      ? [
          `**Loaded machine**: ${r.load.before} when the run began (${r.load.after} at its end): other work ` +
            'shared it; absolute figures are inflated and the tails most. The ratios and the same-run baseline are ' +
            'what to read; the lead re-runs on an idle machine.',
          '',
        ]
      : []),
    ...(othersMean >= SHARED_CPU_WARNING
      ? [
          `**Caution**: the machine was shared: other processes used ${Math.round(othersMean)} % of a core on ` +
            `average during the measured windows (up to ${Math.round(Math.max(...others))} %, of ` +
            `${c.app.cpu.cores * 100} %); they disturb these figures, the tails most. Compare with a run on a quiet ` +
            'machine.',
          '',
        ]
      : []),
    `- **Throughput** (closed loop, ${CLOSED.concurrency} connections, ${CLOSED.rounds} alternating rounds): ` +
      `application **${c.app.rps.toFixed(0)} requests/s**, bare route ${c.bare.rps.toFixed(0)} requests/s: ` +
      `**${ratioText(ratio)}** of the bare route (per round ${roundRatios.map((x) => x.toFixed(2)).join(', ')}): ` +
      `target **${verdict(ratioMet)}**.`,
    `- **Latency at ${count(RATE)} requests/s** (open loop): application p50 **${ms(o.latency.p50)} ms**, p99 ` +
      `**${ms(o.latency.p99)} ms** (max ${ms(o.latency.max)} ms), ${o.rps.toFixed(0)} requests/s answered 2xx, ` +
      `${count(o.errors)} errors` +
      (o.timedOut
        ? ` (${count(o.timedOut)} unanswered after ${REQUEST_TIMEOUT_MS / 1000} s, abandoned: their latency counts ` +
          `as ${REQUEST_TIMEOUT_MS / 1000} s)`
        : '') +
      `: target **${verdict(p99Met)}**. Bare route at the same rate: p50 ${ms(ob.latency.p50)} ms, p99 ` +
      `${ms(ob.latency.p99)} ms, ${ob.rps.toFixed(0)} requests/s, ${count(ob.errors)} errors` +
      (ob.latency.p99 >= TARGET_P99_MS
        ? ` — over the target without the application too, in this run (seconds with their p99 at or over ` +
          `${TARGET_P99_MS} ms: ${secondsOver(ob)}; other processes used ` +
          `${Math.round(ob.cpu.other ?? NaN)} % of a core meanwhile).`
        : '.') +
      (o.latency.p99 >= TARGET_P99_MS ? ` Application seconds over the target: ${secondsOver(o)}.` : '') +
      ` Checkpoints the database began during each run: application ${checkpointText(o)}, bare ` +
      `${checkpointText(ob)}, processing off ${checkpointText(d)} (after one begins, the first change to each page ` +
      `writes the whole page to the WAL). Autovacuum at work in the measured window: application ` +
      `${autovacuumText(o)}; bare ${autovacuumText(ob)}; processing off ${autovacuumText(d)}.`,
    `- **Ingest and processing together at ${count(RATE)}/s** (the inbox workers running in the same process, ` +
      `${concurrency}): ` +
      (steady.keepsUp
        ? '**processing keeps up**'
        : steady.ingestReached
          ? '**processing does NOT keep up**'
          : `**not shown by this run**: ingest itself did not reach ${count(RATE)}/s (${o.rps.toFixed(0)} 2xx/s, ` +
            `${count(o.errors)} errors), so the processing was never offered that rate`) +
      `: pending rows second by second from the start of the load ${o.pendingSeries.map((n) => count(n)).join(' ')} (over the second half ` +
      `${steady.growth >= 0 ? '+' : '−'}${count(Math.abs(Math.round(steady.growth)))} rows/s); after the load, ` +
      (o.drainAfterMs === null
        ? `rows still pending ${BACKLOG_LIMIT_MS / 1000} s later. `
        : `the last of its rows processed ${ms(o.drainAfterMs, 0)} ms later. `) +
      `${processingLine(o)}. Closed loop, per application round (rows left pending deleted before the next run): ` +
      appRounds
        .map(
          (a) =>
            `${count(a.inbox!.rows)} ingested, ${count(a.inbox!.processed)} processed, ${count(a.inbox!.pending)} pending`,
        )
        .join('; ') +
      '. After each application run its rows still pending were deleted, so that no backlog carries into the next ' +
      'run.' +
      (Object.keys(o.tally.ingestErrors).length + Object.keys(o.tally.processErrors).length
        ? ` Failures at ${count(RATE)}/s: ingestion ${errorsText(o.tally.ingestErrors)}; processing ` +
          `${errorsText(o.tally.processErrors)}.`
        : ''),
    `- **The processing alone** (diagnostic, same run): the processor resumed on the backlog the diagnostic below ` +
      `left (${r.alone.workers} workers, batches of at most ${r.alone.batch} rows, no HTTP load): ` +
      `**${r.alone.rps.toFixed(0)} rows/s** (${count(r.alone.rows)} rows` +
      (r.alone.finished ? ', all of them' : `, not all within ${PROCESSING_ALONE_MS / 1000} s`) +
      `); backends: ${waitsLine(r.alone.waits)}. Each batch is claimed (\`FOR UPDATE SKIP LOCKED\`) and applied ` +
      'set-based in one transaction (`CallApplyService`), one counter bump per company.',
    `- **Without the processing** (diagnostic, same run): the application at ${count(RATE)}/s with its processing ` +
      `paused (\`WebhookInboxProcessorService.pause()\`, ${DIAGNOSTIC.measureS} s): p50 ` +
      `${ms(d.latency.p50)} ms, p99 **${ms(d.latency.p99)} ms** (max ${ms(d.latency.max)} ms), ${count(d.errors)} ` +
      `errors, against p99 ${ms(o.latency.p99)} ms with it and ${ms(ob.latency.p99)} ms for the bare route. ` +
      `Queries waiting for one of the pool's ${o.pool.size} connections, on average: application ` +
      `${o.pool.waitingMean.toFixed(1)} (at most ${o.pool.waitingMax}), processing off ` +
      `${d.pool.waitingMean.toFixed(1)} (at most ${d.pool.waitingMax}), bare ${ob.pool.waitingMean.toFixed(1)} ` +
      `(at most ${ob.pool.waitingMax}); closed loop, application rounds ${c.app.pool.waitingMean.toFixed(1)}, bare ` +
      `${c.bare.pool.waitingMean.toFixed(1)}. What the database's backends were doing at ${count(RATE)}/s ` +
      `(sampled every 50 ms): application ${waitsLine(o.waits)}; processing off ${waitsLine(d.waits)}; bare ` +
      `${waitsLine(ob.waits)}.`,
    `- CPU, closed loop (mean of the rounds): application ${cpuLine(c.app.cpu)}; bare ${cpuLine(c.bare.cpu)}. ` +
      `Open loop: application ${cpuLine(o.cpu)}; bare ${cpuLine(ob.cpu)}.`,
    `- The client: its thread was busy ${pct(o.clientElu)} (application) and ${pct(ob.clientElu)} (bare) of the ` +
      `open-loop window, ${pct(c.app.clientElu)} and ${pct(c.bare.clientElu)} of the closed-loop rounds; open ` +
      `loop, it issued requests p99 ${ms(o.sendLag!.p99)} ms (application run) and ${ms(ob.sendLag!.p99)} ms ` +
      `(bare) after their scheduled time. Building and signing the bodies before a run: ${count(o.prepared)} in ` +
      `${ms(o.prepareMs, 0)} ms (open loop).`,
    '',
    '### Method',
    '',
    '- The real application: `createApp` (Fastify, helmet, request ids, metrics hook, global access guard, ' +
      'validation pipe, problem filter), `NODE_ENV=production`, `LOG_LEVEL=warn`, `JOBS_ENABLED=false`, no Redis ' +
      `(in-process rate limiter), **\`RATE_LIMIT_WEBHOOK_PER_MIN=${r.rateLimit}\`** for this benchmark (the ` +
      'default, 1,000 per connection and minute, would refuse most of this load with 429), connection pool ' +
      `${c.app.pool.size} (\`DATABASE_POOL_MAX\`), ${concurrency}, the defaults otherwise, on 127.0.0.1, against a ` +
      `fresh migrated database on ${r.database}` +
      (r.ownServer
        ? ', with `wal_init_zero = off`: a fresh cluster has no recycled WAL segments, and zero-filling each new ' +
          '16 MB segment held every commit for about 50 ms every few seconds (measured when this benchmark was ' +
          'written, INSERTs alone through a pool at 1,000/s: per-second p99 of 47–56 ms in those seconds, 2–6 ms ' +
          'in the others), which a long-running server, reusing its old segments, does not do.'
        : '.'),
    '- One company (`POST /internal/apps`) and one Twilio connection made through the API (`POST ' +
      '/api/v1/pbx-connections`, `provider: twilio`, settings `accountSid`, secrets `authToken`). Checked first: a ' +
      'forged signature → 401; a signed delivery → 200 `duplicate: false`; the same again → `duplicate: true`.',
    '- The real path: `POST /webhooks/twilio/:connectionId/status`: the connection (kept in memory 5 s), the ' +
      'per-connection rate limit, `X-Twilio-Signature` (HMAC-SHA1 over `PUBLIC_BASE_URL` + path and the sorted ' +
      'form fields, each URL variant Twilio may have signed), the vendor mapping (stored with the row), the write ' +
      'to `webhook_inbox` (`InboxWriter`: `INSERT … ON CONFLICT DO NOTHING RETURNING`, one row when idle; under ' +
      'load the rows that arrive while an INSERT is in flight go together in the next one, up to 200, two ' +
      'INSERTs in flight, each caller answered once committed), the 2xx. **Meanwhile the inbox workers process ' +
      `the rows** in the same process and through the same pool (${concurrency}; claim and apply in one ` +
      'transaction): that work is part of the measured load.',
    '- Deliveries: every request a distinct Twilio call status callback (its own CallSid / CallStatus / ' +
      'SequenceNumber, so each one is inserted, never a duplicate: ' +
      (dups === 0 ? 'every 2xx said `duplicate: false`' : `**${count(dups)} 2xx did not say \`duplicate: false\`**`) +
      '), with the fields Twilio sends, form-encoded, signed with the connection’s auth token ' +
      '(`twilioSignature` of `src/pbx/twilio/twilio.signature.ts`), stored as about ' +
      `${r.payloadBytes.app} bytes of JSON. Each call is an inbound call answered by an agent: the agent’s ` +
      "`<Dial>` leg initiated, ringing, in-progress, completed, then the caller's leg completed (3 of the 5 make a " +
      `call event), sent in blocks of ${BLOCK_CALLS} calls so that one call's deliveries come ` +
      `${((BLOCK_CALLS / RATE) * 1000).toFixed(0)} ms apart at ${count(RATE)}/s. All bodies and signatures of a ` +
      'run are built before it starts.',
    `- Baseline: a bare Fastify route (\`POST ${BARE_PREFIX}/:connectionId/status\`) registered on the ` +
      'application’s own Fastify instance before it is ready (same server, content-type parser, helmet and global ' +
      'hooks; not Nest’s router, guard or pipes); it takes the parsed form body, builds the same JSON payload and ' +
      `writes the row with **the same group commit as the application** (a copy of \`InboxWriter\`: up to ` +
      `${BareBatchWriter.MAX_BATCH} rows per multi-row INSERT, ${BareBatchWriter.MAX_IN_FLIGHT} INSERTs in ` +
      'flight, each request answered once its row is committed), through the same pool ' +
      '(`app.get(DataSource).query`) into ' +
      `\`${SCRATCH_TABLE}\` (\`LIKE webhook_inbox INCLUDING ALL\` plus the same foreign key: same columns, ` +
      `defaults, unique key and indexes; ${r.payloadBytes.bare} bytes of JSON per row, \`call_key\` set, ` +
      '`records` left null), then answers 200. No verification, no lookup, no mapping, no background work: ' +
      'the floor of a durable, batched ingest on this machine.',
    '- **Left out**: Redis (the rate limiter is in process; a shared one adds a round trip per webhook); more than ' +
      'one connection or company (one partition key space, one company counter); socket delivery of the ' +
      'processed events (no clients connected: see the pipeline and event-delay benchmarks); a remote ' +
      'PostgreSQL (here on the same machine, so every commit’s WAL flush is local).',
    "- Client: `node:http` with a keep-alive `Agent`, in a worker thread (not on the server's event loop), over " +
      'loopback. Latency: open loop, from the scheduled send (a request waiting for a socket or a late client ' +
      'counts against the server: no coordinated omission); closed loop, from `request()`; to the last byte of ' +
      `the body. Errors: any answer but 2xx, or none; open loop, a request unanswered ${REQUEST_TIMEOUT_MS / 1000} s ` +
      'after its scheduled time is abandoned and counted as an error (its latency then counts as that long).',
    `- Closed loop (maximum throughput): ${CLOSED.concurrency} connections, each sending its next request when the ` +
      `previous one is answered; ${CLOSED.rounds} rounds of bare route and application, alternating which goes ` +
      `first, each ${CLOSED.warmupMs / 1000} s warm-up then ${CLOSED.measureMs / 1000} s measured: 2xx answers ` +
      `per second; ratio = application / bare over all rounds. Before the rounds, ${WARMUP_MS / 1000} s of each ` +
      'route, not measured.',
    `- Open loop: ${count(RATE)} requests/s on a fixed schedule (not waiting for answers; up to ${OPEN_SOCKETS} ` +
      `sockets), ${OPEN.warmupS} s warm-up then ${OPEN.measureS} s measured (${count(RATE * OPEN.measureS)} ` +
      'requests); requests/s = 2xx answers / time from the first measured send to the last 2xx. Bare route, ' +
      `then the application, then the diagnostics: the application with its processing paused ` +
      `(${OPEN.warmupS} s + ${DIAGNOSTIC.measureS} s), then the processing alone on the rows it left (the rest ` +
      'deleted after).',
    '- Pool: `waitingCount` of the pg pool under TypeORM’s DataSource, every 10 ms. Backends: ' +
      '`pg_stat_activity` (active client backends of the database, their wait event, else `CPU`: running, or ' +
      'waiting for a core when the machine is busy), every 50 ms, ' +
      'on a connection of its own. Both over the measured windows. The processing figures come from the inbox ' +
      'rows of each run (pending rows counted once a second on a connection of its own), and from wrapping ' +
      '`WebhookInboxService.ingest` and `WebhookInboxProcessorService.processBatch` to count their failures.',
    '- Everything (server, PostgreSQL, the client thread) shares the machine below, with whatever else runs on ' +
      'it (the CPU lines above say how much that was).',
    '',
    '### Machine',
    '',
    ...machineLines(r.machine),
    `- Load: before ${r.load.before}; after ${r.load.after}`,
    '',
    '### Figures (milliseconds)',
    '',
    '| what | requests | 2xx/s | p50 | p90 | p99 | max | errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    row(`**application, closed loop ${CLOSED.concurrency} connections** (${CLOSED.rounds} rounds)`, c.app),
    row(`bare route (baseline), closed loop ${CLOSED.concurrency} connections (${CLOSED.rounds} rounds)`, c.bare),
    row(`**application, open loop ${count(RATE)}/s**`, o),
    row(`bare route (baseline), open loop ${count(RATE)}/s`, ob),
    row(`application, processing paused (diagnostic), open loop ${count(RATE)}/s`, d),
    '',
    '| server event-loop delay | samples | p50 | p99 | max |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...(
      [
        [`application, open loop ${count(RATE)}/s`, o],
        [`bare route, open loop ${count(RATE)}/s`, ob],
        [`application, processing off, open loop ${count(RATE)}/s`, d],
      ] as const
    ).map(
      ([label, x]) => `| ${label} | ${count(x.loop.n)} | ${ms(x.loop.p50)} | ${ms(x.loop.p99)} | ${ms(x.loop.max)} |`,
    ),
    '',
    `Answers: application closed loop ${statusText(pooledStatuses(c.app))}; bare ${statusText(pooledStatuses(c.bare))}; ` +
      `application open loop ${statusText(o.statuses)}; bare ${statusText(ob.statuses)}; diagnostic ` +
      `${statusText(d.statuses)}.`,
    `Answered per second, open loop (by the time of the answer, from the first measured send): application ` +
      `${o.perSecond.join(' ')}; bare ${ob.perSecond.join(' ')}. Closed-loop rounds, 2xx/s: application ` +
      `${c.app.runs.map((x) => x.rps.toFixed(0)).join(', ')}; bare ${c.bare.runs.map((x) => x.rps.toFixed(0)).join(', ')}.`,
    MARK_END,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(ctx: BenchContext): Promise<void> {
  const before = loadNote();
  ctx.step('starting PostgreSQL');
  const db = await startDatabase();
  ctx.opened(() => db.close());
  await runMigrations(db.url);
  if (db.ownServer) {
    // A fresh cluster has no recycled WAL segments: zero-filling each new 16 MB segment holds every
    // commit for tens of milliseconds (a long-running server reuses its old segments instead).
    await adminQuery(db.url, 'ALTER SYSTEM SET wal_init_zero = off');
    await adminQuery(db.url, 'SELECT pg_reload_conf()');
  }
  await adminQuery(
    db.url,
    `CREATE TABLE ${SCRATCH_TABLE} (LIKE webhook_inbox INCLUDING ALL);
     ALTER TABLE ${SCRATCH_TABLE} ADD FOREIGN KEY (connection_id) REFERENCES pbx_connections (id) ON DELETE CASCADE`,
  );

  ctx.step('starting the application');
  const running = await startApp(db.url, { RATE_LIMIT_WEBHOOK_PER_MIN: String(RATE_LIMIT_WEBHOOK) }, [
    BareWebhookRouteModule,
  ]);
  ctx.opened(() => running.close());
  const dataSource = running.app.get(DataSource);
  bare.writer = new BareBatchWriter(dataSource);
  const { companyId, id: connectionId } = await createTwilioConnection(running);
  bare.companyId = companyId;
  const cfg: ClientConfig = {
    port: running.port,
    connectionId,
    publicBaseUrl: running.config.PUBLIC_BASE_URL,
    authToken: AUTH_TOKEN,
    accountSid: ACCOUNT_SID,
  };
  await checkRoutes(running, cfg);
  const client = new Client(cfg);
  ctx.opened(() => client.close());
  const inbox = running.app.get(WebhookInboxService);
  const processor = running.app.get(WebhookInboxProcessorService);
  const env: Env = {
    ctx,
    client,
    db: db.url,
    postmaster: await postmasterPid(db.url),
    pool: (dataSource.driver as unknown as { master: PgPool }).master,
    inbox,
    processor,
    tally: watchInbox(inbox, processor),
  };
  const processing = { workers: running.config.WEBHOOK_PROCESS_WORKERS, batch: running.config.WEBHOOK_PROCESS_BATCH };
  const done = (what: string, r: Run) =>
    ctx.step(
      `${what}: ${r.rps.toFixed(0)} 2xx/s, p50 ${ms(r.latency.p50)} ms, p99 ${ms(r.latency.p99)} ms, ${r.errors} errors`,
    );

  ctx.step(`warm-up: ${WARMUP_MS / 1000} s of each route (closed loop, not measured)`);
  for (const target of ['bare', 'app'] as const) {
    await measure(env, target, 'closed', { warmupMs: 0, measureMs: WARMUP_MS });
  }
  const rounds = { app: [] as Run[], bare: [] as Run[] };
  for (let round = 0; round < CLOSED.rounds; round++) {
    const order: Target[] = round % 2 === 0 ? ['bare', 'app'] : ['app', 'bare'];
    for (const target of order) {
      ctx.step(`closed loop, round ${round + 1}, ${target === 'app' ? 'application' : 'bare route'}`);
      const run = await measure(env, target, 'closed');
      rounds[target].push(run);
      done(`closed loop, round ${round + 1}, ${target}`, run);
    }
  }

  ctx.step(`open loop, bare route: ${count(RATE)}/s, ${OPEN.warmupS} s + ${OPEN.measureS} s`);
  const openBare = await measure(env, 'bare', 'open');
  done('open loop, bare route', openBare);
  ctx.step(`open loop, application: ${count(RATE)}/s, ${OPEN.warmupS} s + ${OPEN.measureS} s`);
  const openApp = await measure(env, 'app', 'open');
  done('open loop, application', openApp);

  ctx.step(
    `open loop, application with its processing paused (diagnostic): ${count(RATE)}/s, ` +
      `${OPEN.warmupS} s + ${DIAGNOSTIC.measureS} s`,
  );
  const ingestOnly = await measure(env, 'app', 'open', { processingOff: true, measureS: DIAGNOSTIC.measureS });
  done('open loop, processing off', ingestOnly);
  ctx.step(`the inbox's processing alone on those rows, at most ${PROCESSING_ALONE_MS / 1000} s (diagnostic)`);
  const alone = await processingAlone(env, ingestOnly.salt, processing.workers, processing.batch);
  ctx.step(`processing alone: ${alone.rps.toFixed(0)} rows/s`);

  const sizes = await adminQuery(
    db.url,
    `SELECT (SELECT avg(octet_length(payload::text)) FROM webhook_inbox) AS app,
            (SELECT avg(octet_length(payload::text)) FROM ${SCRATCH_TABLE}) AS bare`,
  );
  const size = sizes.rows[0] as { app: string; bare: string };
  const report: Report = {
    date: isoNow(),
    machine: await machine(db.url),
    database: db.where,
    rateLimit: RATE_LIMIT_WEBHOOK,
    ownServer: db.ownServer,
    processing,
    load: (() => {
      const after = loadNote();
      return { before: before.text, after: after.text, loaded: before.loaded || after.loaded };
    })(),
    open: { app: openApp, bare: openBare },
    closed: { app: pooled(rounds.app), bare: pooled(rounds.bare) },
    ingestOnly,
    alone,
    payloadBytes: { app: Math.round(Number(size.app)), bare: Math.round(Number(size.bare)) },
  };
  const text = section(report);
  writeSection(MARK_START, MARK_END, text);
  console.log('\n' + text);
}

const clientConfig = (workerData as { webhookBenchClient?: ClientConfig } | null)?.webhookBenchClient;
if (!isMainThread && clientConfig) clientMain(clientConfig);
else runBench('webhook-ingest', HARD_LIMIT_MS, main);
