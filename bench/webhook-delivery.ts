import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import PgBoss from 'pg-boss';
import { Webhook } from 'standardwebhooks';
import { DataSource } from 'typeorm';
import { Agent, request } from 'undici';
import { runMigrations } from '../src/database/migrator.js';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import { EventsService, type NewEvent } from '../src/events/events.service.js';
import {
  adminQuery,
  type BenchContext,
  count,
  cpuLine,
  cpuSample,
  cpuShares,
  createCompany,
  isoNow,
  loadNote,
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
import type { ReceiverArrivals, ReceiverCommand } from './support/webhook-receiver.worker.js';

/**
 * Outbound webhook deliveries (issue 12): company events, appended and published as the calls
 * path does (`EventsService.appendMany` in a transaction, `publish` after the commit), fanned out
 * by the application to ENDPOINTS endpoints of the company and POSTed, signed, to a receiver on
 * 127.0.0.1 (a bare node:http server in a worker thread that answers 200 at once). Measured:
 *
 * 1. open loop: EVENTS_PER_S events a second for MEASURE_S seconds (ENDPOINTS × that many
 *    deliveries a second): the delivered rate and event→delivery latency (from the commit of
 *    the event to its arrival at the receiver);
 * 2. the same with one more endpoint that answers after 10 s (a slow receiver): do the others
 *    keep the rate and the latency?
 * 3. closed loop: a backlog of BACKLOG_EVENTS events appended at once (× ENDPOINTS deliveries),
 *    the time until every one arrived: the maximum rate;
 * 4. baseline, same run: the same number of POSTs (same bodies, same Standard Webhooks headers)
 *    sent by a bare undici loop with the same number in flight as the application allows;
 * 5. the queue the design card names (pg-boss 10), alone: the same number of jobs inserted and
 *    worked (fetch, complete; no HTTP) on the same PostgreSQL — why deliveries use their own table.
 *
 *   npm run bench:webhook-delivery   (BENCH_DATABASE_URL or DATABASE_URL: use that server, else embedded)
 */

const ENDPOINTS = 5;
const EVENTS_PER_S = 120;
const WARMUP_S = 3;
const MEASURE_S = 20;
const BACKLOG_EVENTS = 4_000;
const SLOW_MS = 10_000;
const TARGET_RATE = 500;
const TARGET_P99_MS = 500;
const BOSS_WORKERS = 4;
const BOSS_BATCH = 500;
const MARK_START = '<!-- bench:webhook-delivery:start -->';
const MARK_END = '<!-- bench:webhook-delivery:end -->';

const epochNow = () => performance.timeOrigin + performance.now();

/** A call.ringing-sized payload (the screen pop: call, caller, agent). */
function callData(i: number): Record<string, unknown> {
  return {
    call: {
      id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      providerCallId: `bench-call-${i}`,
      provider: 'twilio',
      direction: 'inbound',
      status: 'ringing',
      from: '+14155550100',
      to: '+14155550199',
      agentId: null,
      startedAt: new Date().toISOString(),
      answeredAt: null,
      endedAt: null,
      durationSeconds: null,
      recordingUrl: null,
    },
    contact: { name: 'Bench Caller', crmId: `crm-${i}`, company: 'Example Inc.' },
  };
}

class Receiver {
  private readonly worker = new Worker(new URL('./support/webhook-receiver.worker.js', import.meta.url));

  private ask<T>(command: ReceiverCommand): Promise<T> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.worker.once('error', onError);
      this.worker.once('message', (m: T) => {
        this.worker.off('error', onError);
        resolve(m);
      });
      this.worker.postMessage(command);
    });
  }

  async start(): Promise<number> {
    return (await this.ask<{ port: number }>({ cmd: 'start', slowMs: SLOW_MS })).port;
  }

  collect(): Promise<ReceiverArrivals> {
    return this.ask<ReceiverArrivals>({ cmd: 'collect' });
  }

  async stop(): Promise<void> {
    await this.ask({ cmd: 'stop' });
    await this.worker.terminate();
  }
}

interface Produced {
  /** Event id → epoch ms right after its commit. */
  committed: Map<string, number>;
  bodies: string[];
}

/** Appends `n` events in one transaction, publishes them after the commit (as the calls path does). */
async function produce(
  ds: DataSource,
  events: EventsService,
  companyId: string,
  n: number,
  first: number,
  out: Produced,
): Promise<EventEnvelope[]> {
  const items: NewEvent[] = [];
  for (let i = 0; i < n; i++) items.push({ type: 'call.ringing', data: callData(first + i) });
  const envelopes = await ds.transaction((m) => events.appendMany(m, companyId, items));
  const at = epochNow();
  events.publish(envelopes);
  for (const e of envelopes) {
    out.committed.set(e.id, at);
    if (out.bodies.length < 100_000) out.bodies.push(JSON.stringify(e));
  }
  return envelopes;
}

async function api(app: RunningApp, apiKey: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${app.port}${path}`, {
    method,
    headers: body === undefined ? { 'x-api-key': apiKey } : { 'x-api-key': apiKey, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

interface OpenResult {
  produced: number;
  /** Arrivals at the fast endpoints within the window (after the warm-up), per second. */
  rate: number;
  latency: Stats;
  missing: number;
  slowArrivals: number;
  cpu: string;
}

/** Open loop: EVENTS_PER_S events a second (in 20 ms ticks) for WARMUP_S + MEASURE_S seconds. */
async function openLoop(
  ds: DataSource,
  events: EventsService,
  companyId: string,
  receiver: Receiver,
  fastEndpoints: number,
  postmaster: number | null,
  step: BenchContext['step'],
): Promise<OpenResult> {
  await receiver.collect();
  const out: Produced = { committed: new Map(), bodies: [] };
  const began = performance.now();
  const totalS = WARMUP_S + MEASURE_S;
  const measuredIds = new Set<string>();
  let sent = 0;
  let cpuA = cpuSample(postmaster);
  let serial = 1_000_000 * (1 + Math.floor(Math.random() * 1000));
  while (performance.now() - began < totalS * 1000) {
    const elapsed = (performance.now() - began) / 1000;
    const due = Math.floor(elapsed * EVENTS_PER_S) - sent;
    if (due > 0) {
      const envelopes = await produce(ds, events, companyId, due, serial, out);
      serial += due;
      sent += due;
      if (elapsed >= WARMUP_S) for (const e of envelopes) measuredIds.add(e.id);
      else cpuA = cpuSample(postmaster);
    }
    await sleep(20);
  }
  // Let the last ones arrive (at most 5 s), then count.
  const expected = measuredIds.size * fastEndpoints;
  const arrivals: ReceiverArrivals = { ids: [], paths: [], at: new Float64Array(0) };
  const latencies: number[] = [];
  let fastSeen = 0;
  let slowArrivals = 0;
  const waitUntil = performance.now() + 5_000;
  const cpuB = cpuSample(postmaster);
  for (;;) {
    const got = await receiver.collect();
    for (let i = 0; i < got.ids.length; i++) {
      const id = got.ids[i]!;
      if (got.paths[i]!.startsWith('/slow')) {
        slowArrivals++;
        continue;
      }
      if (!measuredIds.has(id)) continue;
      fastSeen++;
      latencies.push(got.at[i]! - out.committed.get(id)!);
    }
    arrivals.ids.push(...got.ids);
    if (fastSeen >= expected || performance.now() > waitUntil) break;
    await sleep(100);
  }
  const lat = stats(Float64Array.from(latencies));
  step(`open loop: ${count(fastSeen)}/${count(expected)} delivered, p99 ${ms(lat.p99)} ms`);
  return {
    produced: sent,
    rate: fastSeen / MEASURE_S,
    latency: lat,
    missing: expected - fastSeen,
    slowArrivals,
    cpu: cpuLine(cpuShares(cpuA, cpuB)),
  };
}

async function pendingDeliveries(url: string): Promise<number> {
  const { rows } = await adminQuery(
    url,
    `SELECT count(*)::int AS p FROM webhook_deliveries WHERE status IN ('pending', 'delivering')`,
  );
  return (rows[0] as { p: number }).p;
}

runBench('webhook-delivery', 900_000, async ({ opened, step }) => {
  const note = loadNote();
  const db = await startDatabase();
  opened(() => db.close());
  const m = await machine(db.url);
  await runMigrations(db.url);
  const postmaster = await postmasterPid(db.url);
  step(`database: ${db.where}`);

  const receiver = new Receiver();
  const port = await receiver.start();
  opened(() => receiver.stop());

  const app = await startApp(db.url, {
    WEBHOOK_ALLOWED_TARGETS: '127.0.0.1/32',
    WEBHOOK_DNS_OFFLINE: 'true',
    WEBHOOK_PROCESSING_ENABLED: 'false',
  });
  opened(() => app.close());
  const concurrency = app.config.WEBHOOK_ENDPOINT_CONCURRENCY;
  const events = app.app.get(EventsService);
  const ds = app.app.get(DataSource);
  const company = await createCompany(app.port, 'webhook delivery bench');
  for (let i = 0; i < ENDPOINTS; i++) {
    await api(app, company.apiKey, 'POST', '/api/v1/webhook-endpoints', {
      url: `http://127.0.0.1:${port}/fast/${i}`,
      description: `bench endpoint ${i}`,
      eventTypes: ['call.*'],
    });
  }
  step(`${ENDPOINTS} endpoints; receiver on 127.0.0.1:${port}`);

  step(`open loop: ${EVENTS_PER_S} events/s × ${ENDPOINTS} endpoints for ${WARMUP_S}+${MEASURE_S} s`);
  const open = await openLoop(ds, events, company.id, receiver, ENDPOINTS, postmaster, step);
  await sleep(1000);
  await receiver.collect();

  const slow = (await api(app, company.apiKey, 'POST', '/api/v1/webhook-endpoints', {
    url: `http://127.0.0.1:${port}/slow`,
    description: 'answers after 10 s',
    eventTypes: ['call.*'],
  })) as { id: string };
  step('open loop again, with one more endpoint answering after 10 s');
  const withSlow = await openLoop(ds, events, company.id, receiver, ENDPOINTS, postmaster, step);
  await api(app, company.apiKey, 'DELETE', `/api/v1/webhook-endpoints/${slow.id}`);
  await sleep(1000);
  await receiver.collect();

  step(`closed loop: a backlog of ${count(BACKLOG_EVENTS)} events × ${ENDPOINTS} endpoints`);
  while ((await pendingDeliveries(db.url)) > 0) await sleep(200);
  const backlog: Produced = { committed: new Map(), bodies: [] };
  const cpuA = cpuSample(postmaster);
  const began = performance.now();
  for (let i = 0; i < BACKLOG_EVENTS; i += 500) {
    await produce(ds, events, company.id, Math.min(500, BACKLOG_EVENTS - i), 9_000_000 + i, backlog);
  }
  const expected = BACKLOG_EVENTS * ENDPOINTS;
  let seen = 0;
  let lastAt = 0;
  const wanted = new Set(backlog.committed.keys());
  while (seen < expected && performance.now() - began < 180_000) {
    const got = await receiver.collect();
    for (let i = 0; i < got.ids.length; i++) {
      if (!wanted.has(got.ids[i]!)) continue;
      seen++;
      lastAt = Math.max(lastAt, got.at[i]!);
    }
    await sleep(50);
  }
  const closedS = (lastAt - (performance.timeOrigin + began)) / 1000;
  const closedRate = seen / closedS;
  const closedCpu = cpuLine(cpuShares(cpuA, cpuSample(postmaster)));
  step(`closed loop: ${count(seen)}/${count(expected)} in ${ms(closedS, 2)} s = ${count(Math.round(closedRate))}/s`);
  await app.close();

  step('baseline: the same POSTs by a bare undici loop');
  const inFlight = concurrency * ENDPOINTS;
  const agent = new Agent({ keepAliveTimeout: 60_000, connections: inFlight });
  const secret = 'whsec_' + Buffer.alloc(32, 9).toString('base64');
  const signer = new Webhook(secret);
  const bodies = backlog.bodies;
  const total = bodies.length * ENDPOINTS;
  let next = 0;
  let failures = 0;
  const bareBegan = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const body = bodies[i % bodies.length]!;
        const id = (JSON.parse(body) as { id: string }).id;
        const at = new Date();
        const res = await request(`http://127.0.0.1:${port}/bare/${i % ENDPOINTS}`, {
          method: 'POST',
          dispatcher: agent,
          headers: {
            'content-type': 'application/json',
            'webhook-id': id,
            'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
            'webhook-signature': signer.sign(id, at, body),
          },
          body,
        });
        await res.body.text();
        if (res.statusCode !== 200) failures++;
      }
    }),
  );
  const bareS = (performance.now() - bareBegan) / 1000;
  await agent.close();
  await receiver.collect();
  step(`baseline: ${count(total)} POSTs in ${ms(bareS, 2)} s = ${count(Math.round(total / bareS))}/s`);

  step('pg-boss alone: the same number of jobs inserted and worked, no HTTP');
  const boss = new PgBoss({ connectionString: db.url, schema: 'pgboss_bench', max: 4 });
  boss.on('error', () => undefined);
  await boss.start();
  opened(() => boss.stop({ graceful: false, wait: true, timeout: 5_000 }));
  await boss.createQueue('bench-delivery');
  const jobs = Math.min(total, 20_000);
  const bossBegan = performance.now();
  for (let i = 0; i < jobs; i += 1000) {
    await boss.insert(
      Array.from({ length: Math.min(1000, jobs - i) }, (_, k) => ({
        name: 'bench-delivery',
        data: { body: bodies[(i + k) % bodies.length] },
      })),
    );
  }
  const insertedS = (performance.now() - bossBegan) / 1000;
  let worked = 0;
  // Four workers fetching up to 500 jobs each (pg-boss 10 polls at most every 0.5 s per worker).
  for (let w = 0; w < BOSS_WORKERS; w++) {
    await boss.work<{ body: string }>(
      'bench-delivery',
      { batchSize: BOSS_BATCH, pollingIntervalSeconds: 0.5 },
      async (batch) => {
        worked += batch.length;
        await Promise.resolve();
      },
    );
  }
  while (worked < jobs && performance.now() - bossBegan < 300_000) await sleep(50);
  const bossS = (performance.now() - bossBegan) / 1000;
  step(`pg-boss: ${count(worked)} jobs in ${ms(bossS, 2)} s (insert ${ms(insertedS, 2)} s)`);

  const met = (ok: boolean) => (ok ? '**met**' : '**not met**');
  const openOk = open.rate >= TARGET_RATE && open.latency.p99 < TARGET_P99_MS;
  const slowOk = withSlow.rate >= TARGET_RATE && withSlow.latency.p99 < TARGET_P99_MS;
  const text = [
    MARK_START,
    '## Outbound webhook deliveries (`npm run bench:webhook-delivery`)',
    '',
    `Run ${isoNow()}; before the run: ${note.text}${note.loaded ? ' — absolute figures inflated, compare with the same-run baseline' : ''}.`,
    ...machineLines(m),
    `- Database: ${db.where}`,
    '',
    `Company events (call.ringing with a call and a contact, ~${Math.round((bodies[0]?.length ?? 0) / 10) * 10} bytes of JSON)` +
      ' appended and published as the calls path does, fanned out by the application to' +
      ` ${ENDPOINTS} endpoints of the company and POSTed, signed (Standard Webhooks), to a receiver on 127.0.0.1` +
      ' (node:http in a worker thread, answers 200 at once). Latency: from the commit of the event to the' +
      ` delivery's arrival at the receiver. Per-endpoint concurrency ${concurrency}.`,
    '',
    '| run | deliveries/s | event→delivery p50 / p90 / p99 / max (ms) | not arrived | CPU |',
    '| --- | ---: | --- | ---: | --- |',
    `| open loop, ${EVENTS_PER_S} events/s × ${ENDPOINTS} endpoints, ${MEASURE_S} s measured | ${count(Math.round(open.rate))} |` +
      ` ${ms(open.latency.p50, 1)} / ${ms(open.latency.p90, 1)} / **${ms(open.latency.p99, 1)}** / ${ms(open.latency.max, 1)} | ${count(open.missing)} | ${open.cpu} |`,
    `| same, plus one endpoint answering after 10 s (fast endpoints only) | ${count(Math.round(withSlow.rate))} |` +
      ` ${ms(withSlow.latency.p50, 1)} / ${ms(withSlow.latency.p90, 1)} / **${ms(withSlow.latency.p99, 1)}** / ${ms(withSlow.latency.max, 1)} | ${count(withSlow.missing)} | ${withSlow.cpu} |`,
    `| closed loop: ${count(BACKLOG_EVENTS)} events at once → ${count(expected)} deliveries | **${count(Math.round(closedRate))}** (${ms(closedS, 2)} s; ${count(seen)} arrived) | – | ${count(expected - seen)} | ${closedCpu} |`,
    `| **baseline, same run**: ${count(total)} POSTs (same bodies and headers) by a bare undici loop, ${inFlight} in flight | **${count(Math.round(total / bareS))}** (${ms(bareS, 2)} s; ${count(failures)} non-200) | – | – | – |`,
    `| pg-boss 10 alone on the same PostgreSQL: ${count(jobs)} jobs inserted (1,000 a call) and worked (${BOSS_WORKERS} workers, batches of up to ${BOSS_BATCH}, no HTTP) | ${count(Math.round(jobs / bossS))} (${ms(bossS, 2)} s) | – | – | – |`,
    '',
    `The slow endpoint received ${count(withSlow.slowArrivals)} requests during its run (at most its concurrency at a time).`,
    '',
    `Targets: ≥ ${TARGET_RATE} deliveries/s with p99 event→delivery < ${TARGET_P99_MS} ms — ${met(openOk)};` +
      ` the same with one endpoint answering after 10 s — ${met(slowOk)};` +
      ` closed loop ≥ ${TARGET_RATE}/s — ${met(closedRate >= TARGET_RATE)}.`,
    '',
    'Method: one process (the application, with its inbox processing off since nothing comes in); the' +
      ' events are appended in 20 ms ticks (open loop) or in transactions of 500 (closed loop); the receiver' +
      ' counts deliveries by `webhook-id` and path. The baseline does the same HTTP work minus our code (no' +
      ' fan-out, no claim, no delivery log, no SSRF-checked connector). The pg-boss line measures only the' +
      ' queue (insert, fetch, complete) a delivery job would need, without the HTTP request or the log.',
    MARK_END,
  ].join('\n');
  writeSection(MARK_START, MARK_END, text);
  console.log(text);
});
