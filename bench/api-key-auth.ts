import 'reflect-metadata';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import bcrypt from 'bcryptjs';
import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { runMigrations } from '../src/database/migrator.js';
import { ApiKeysService } from '../src/tenants/api-keys.service.js';
import { CompaniesService } from '../src/tenants/companies.service.js';
import { BENCH_ROUTES, BenchRoutesModule } from './support/bench-routes.module.js';
import type { ClientJob, ClientResult } from './support/http-client.worker.js';
import {
  adminQuery,
  count,
  INTERNAL_SECRET,
  OUTPUT,
  type RunningApp,
  runBench,
  startApp,
  startDatabase,
  type Stats,
  stats,
  writeSection,
} from './support/harness.js';

/**
 * What API-key authentication costs per request: the same trivial route with and without
 * `@Access.tenant(…, scope)`, over HTTP on loopback, sequential keep-alive requests; with the key
 * cache warm (the default TTL) and cold (TTL 0: every request reads PostgreSQL); and one bcrypt
 * cost-10 check for comparison. Writes its section of BENCHMARKS.md.
 *
 *   npm run bench            (BENCH_DATABASE_URL or DATABASE_URL: use that server, else embedded)
 */

const TARGET_MS = 0.2;
const WARM = { warmup: 1000, rounds: 10, perRound: 500 };
const COLD = { warmup: 300, rounds: 10, perRound: 200 };
const BCRYPT = { cost: 10, warmup: 5, count: 50 };
const IN_PROCESS_CALLS = 20_000;
const COLD_PARTS_CALLS = 1000;
/** The whole run stops itself after this long, whatever happens. */
const HARD_LIMIT_MS = 180_000;

const MARK_START = '<!-- bench:api-key-auth:start -->';
const MARK_END = '<!-- bench:api-key-auth:end -->';

interface ColdParts {
  /** ApiKeysService.authenticate: one read of api_keys by key hash. */
  key: Stats;
  /** CompaniesService.isActive: one read of companies by id. */
  company: Stats;
}

interface Comparison {
  open: Stats;
  keyed: Stats;
  /** p50(keyed) − p50(open) of each round. */
  roundDeltas: number[];
}

// ---------------------------------------------------------------------------------------------
// Client (a worker thread: it must not share the server's event loop)

class Client {
  private readonly worker = new Worker(new URL('./support/http-client.worker.js', import.meta.url));
  private readonly waiting = new Map<number, (result: ClientResult) => void>();
  private nextId = 1;

  constructor() {
    this.worker.on('message', (result: ClientResult) => {
      this.waiting.get(result.id)?.(result);
      this.waiting.delete(result.id);
    });
    this.worker.on('error', (error) => {
      console.error('bench client worker failed:', error);
    });
  }

  /** `count` sequential GETs; throws unless every one answered `expect`. */
  async run(
    port: number,
    path: string,
    headers: Record<string, string>,
    count: number,
    expect = 200,
  ): Promise<number[]> {
    const id = this.nextId++;
    const job: ClientJob = { id, port, path, headers, count };
    const result = await new Promise<ClientResult>((resolve) => {
      this.waiting.set(id, resolve);
      this.worker.postMessage(job);
    });
    if (result.error) throw new Error(`GET ${path}: ${result.error}`);
    const other = Object.entries(result.statuses).filter(([status]) => Number(status) !== expect);
    if (other.length > 0) {
      throw new Error(`GET ${path}: expected ${count} × ${expect}, got ${JSON.stringify(result.statuses)}`);
    }
    return Array.from(result.latencies);
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// Measurement

/** Warm-up, then rounds of A and B alternating in order (A/B, B/A, …) so drift hits both alike. */
async function compare(
  client: Client,
  port: number,
  key: string,
  plan: { warmup: number; rounds: number; perRound: number },
): Promise<Comparison> {
  const open = () => client.run(port, BENCH_ROUTES.public, {}, plan.perRound);
  const keyed = () => client.run(port, BENCH_ROUTES.key, { 'x-api-key': key }, plan.perRound);
  await client.run(port, BENCH_ROUTES.public, {}, plan.warmup);
  await client.run(port, BENCH_ROUTES.key, { 'x-api-key': key }, plan.warmup);
  const all = { open: [] as number[], keyed: [] as number[] };
  const roundDeltas: number[] = [];
  for (let round = 0; round < plan.rounds; round++) {
    let a: number[];
    let b: number[];
    if (round % 2 === 0) {
      a = await open();
      b = await keyed();
    } else {
      b = await keyed();
      a = await open();
    }
    all.open.push(...a);
    all.keyed.push(...b);
    roundDeltas.push(stats(b).p50 - stats(a).p50);
  }
  return { open: stats(all.open), keyed: stats(all.keyed), roundDeltas };
}

function bcryptCheck(): Stats {
  const secret = 'sbk_' + randomBytes(32).toString('base64url');
  const hash = bcrypt.hashSync(secret, BCRYPT.cost);
  for (let i = 0; i < BCRYPT.warmup; i++) bcrypt.compareSync(secret, hash);
  const times: number[] = [];
  for (let i = 0; i < BCRYPT.count; i++) {
    const start = performance.now();
    if (!bcrypt.compareSync(secret, hash)) throw new Error('bcrypt.compareSync refused its own hash');
    times.push(performance.now() - start);
  }
  return stats(times);
}

/** Mean time of ApiKeysService.authenticate with the key cached (no HTTP, no guard). */
async function inProcessAuthenticate(app: NestFastifyApplication, key: string): Promise<number> {
  const keys = app.get(ApiKeysService);
  for (let i = 0; i < 1000; i++) await keys.authenticate(key);
  const start = performance.now();
  for (let i = 0; i < IN_PROCESS_CALLS; i++) {
    if (!(await keys.authenticate(key))) throw new Error('the key did not authenticate in process');
  }
  return (performance.now() - start) / IN_PROCESS_CALLS;
}

/** With TTL 0: the guard's one read (the key with its company's status), and, for comparison, a read of the company alone. */
async function inProcessCold(app: NestFastifyApplication, key: string, companyId: string): Promise<ColdParts> {
  const keys = app.get(ApiKeysService);
  const companies = app.get(CompaniesService);
  const time = async (fn: () => Promise<unknown>) => {
    for (let i = 0; i < 100; i++) await fn();
    const times: number[] = [];
    for (let i = 0; i < COLD_PARTS_CALLS; i++) {
      const start = performance.now();
      if (!(await fn())) throw new Error('in-process check failed');
      times.push(performance.now() - start);
    }
    return stats(times);
  };
  return { key: await time(() => keys.authenticate(key)), company: await time(() => companies.isActive(companyId)) };
}

/** A company (operator API), then a key with scope calls:read (the service, as its owner would). */
async function makeKey(running: RunningApp): Promise<{ companyId: string; key: string }> {
  const res = await fetch(`http://127.0.0.1:${running.port}/internal/apps`, {
    method: 'POST',
    headers: { authorization: `Bearer ${INTERNAL_SECRET}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'Bench Company' }),
  });
  if (res.status !== 201) throw new Error(`POST /internal/apps: ${res.status} ${await res.text()}`);
  const created = (await res.json()) as { appId: string; apiKey: string };
  const { key } = await running.app
    .get(ApiKeysService)
    .create(created.appId, { name: 'bench calls:read', scopes: ['calls:read'] }, { kind: 'operator' });
  return { companyId: created.appId, key };
}

/** The guard really runs: no key → 401, the calls:read key → 200, same body as the public route. */
async function checkRoutes(running: RunningApp, key: string): Promise<void> {
  const base = `http://127.0.0.1:${running.port}`;
  const none = await fetch(base + BENCH_ROUTES.key);
  if (none.status !== 401) throw new Error(`GET ${BENCH_ROUTES.key} without a key: ${none.status}, expected 401`);
  const wrong = await fetch(base + BENCH_ROUTES.key, { headers: { 'x-api-key': 'sbk_' + 'x'.repeat(43) } });
  if (wrong.status !== 401) throw new Error(`GET ${BENCH_ROUTES.key} with an unknown key: ${wrong.status}`);
  const keyed = await fetch(base + BENCH_ROUTES.key, { headers: { 'x-api-key': key } });
  const open = await fetch(base + BENCH_ROUTES.public);
  const [a, b] = [await keyed.text(), await open.text()];
  if (keyed.status !== 200 || open.status !== 200 || a !== b) {
    throw new Error(`bench routes differ: key ${keyed.status} ${a}, public ${open.status} ${b}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const ms = (v: number) => v.toFixed(3);
const signed = (v: number) => (v >= 0 ? '+' : '−') + Math.abs(v).toFixed(3);

function row(label: string, s: Stats): string {
  return `| ${label} | ${count(s.n)} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.mean)} |`;
}

function deltaRow(label: string, c: Comparison): string {
  const d = (k: keyof Omit<Stats, 'n'>) => `**${signed(c.keyed[k] - c.open[k])}**`;
  return `| ${label} | | ${d('p50')} | ${d('p90')} | ${d('p99')} | ${d('mean')} |`;
}

function spread(c: Comparison): string {
  const sorted = [...c.roundDeltas].sort((a, b) => a - b);
  return `${signed(sorted[0])} to ${signed(sorted[sorted.length - 1])}`;
}

interface Report {
  date: string;
  machine: { cpu: string; cores: number; memGiB: number; node: string; postgres: string; database: string };
  warm: Comparison;
  cold: Comparison;
  bcrypt: Stats;
  inProcessMs: number;
  coldParts: ColdParts;
  cacheTtlMs: number;
}

function section(r: Report): string {
  const warmAdded = r.warm.keyed.p50 - r.warm.open.p50;
  const coldAdded = r.cold.keyed.p50 - r.cold.open.p50;
  const met = warmAdded < TARGET_MS;
  const coldMet = coldAdded < TARGET_MS;
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  return [
    MARK_START,
    '## API-key authentication: cost per request',
    '',
    `Measured ${r.date} by \`npm run bench\` (\`bench/api-key-auth.ts\`); re-running replaces this section.`,
    '',
    `**Target** (from the issue): key authentication adds < ${TARGET_MS} ms per request at the median.`,
    '',
    `- **Key cache warm** (the normal case): adds **${ms(warmAdded)} ms** at the median (per round ` +
      `${spread(r.warm)} ms): target **${verdict(met)}**.`,
    `- **Cold** (the key and its company read from PostgreSQL, as on the first request after the cache entry ` +
      `expires, every ${r.cacheTtlMs / 1000} s per key and instance, or is dropped by a rotation, revocation or ` +
      `suspension): adds **${ms(coldAdded)} ms** at the median: target **${verdict(coldMet)}** on that path.`,
    `- **One bcrypt cost-${BCRYPT.cost} check** alone: **${ms(r.bcrypt.p50)} ms** (p50)` +
      `, about ${count(Math.round(r.bcrypt.p50 / r.warm.keyed.p50))} times a whole key-authenticated request ` +
      `(${ms(r.warm.keyed.p50)} ms), and it would come on top of it.`,
    '',
    '### Method',
    '',
    '- The real application: `createApp` from `src/app.factory.ts`, as `npm start` builds it (Fastify, helmet, ' +
      'request ids, metrics hook, global access guard, validation pipe, problem filter), `NODE_ENV=production`, ' +
      '`LOG_LEVEL=warn`, `JOBS_ENABLED=false`, no Redis (in-process rate limiter, limit 1,000,000/min so it ' +
      `never refuses), against a fresh migrated database on ${r.machine.database}.`,
    '- Two bench-only routes (`bench/support/bench-routes.module.ts`) doing the same work (return `{"ok":true}`): ' +
      `\`GET ${BENCH_ROUTES.public}\` with \`@Access.public()\`, and \`GET ${BENCH_ROUTES.key}\` with ` +
      "`@Access.tenant('agent', 'calls:read')`, called with `x-api-key` of a key holding only `calls:read` " +
      '(company made through `POST /internal/apps`). Checked first: no key → 401, unknown key → 401, same body.',
    '- Client: `node:http` with a keep-alive `Agent` (one socket), in a worker thread (not on the server’s event ' +
      'loop), over loopback to 127.0.0.1; sequential requests, one in flight. Latency: from `request()` to the last ' +
      'byte of the body. Every measured response was checked to be 200.',
    `- Warm key cache (\`API_KEY_CACHE_TTL_MS=${r.cacheTtlMs}\`, the default): ${count(WARM.warmup)} warm-up requests ` +
      `per route, then ${WARM.rounds} rounds of ${count(WARM.perRound)} per route, the order alternating per round ` +
      `(public/key, key/public, …): ${count(WARM.rounds * WARM.perRound)} per route. A cache entry lives ` +
      `${r.cacheTtlMs / 1000} s, so about one request in each ${r.cacheTtlMs / 1000} s window pays the cold path; ` +
      'that is in these figures.',
    `- Cold: a second application on the same database with \`API_KEY_CACHE_TTL_MS=0\`, so every request misses ` +
      "the key cache (one read: `api_keys` by key hash joined with its company's status; PostgreSQL on the same machine): " +
      `${count(COLD.warmup)} warm-up requests per route, then ${COLD.rounds} alternating rounds of ` +
      `${count(COLD.perRound)}: ${count(COLD.rounds * COLD.perRound)} per route.`,
    `- bcrypt: \`bcryptjs\` (pure JavaScript) \`compareSync\` against a cost-${BCRYPT.cost} hash made once, ` +
      `${BCRYPT.warmup} warm-up + ${BCRYPT.count} timed, in process, nothing else running. A native bcrypt is ` +
      'faster by a small factor, still tens of milliseconds at cost 10.',
    '- Added cost: p50(key route) − p50(public route) of the same application in the same run (also shown for ' +
      'p90, p99, mean; a difference of percentiles, not a percentile of differences).',
    '',
    '### Machine',
    '',
    `- CPU: ${r.machine.cpu}, ${r.machine.cores} cores; memory ${r.machine.memGiB.toFixed(1)} GiB`,
    `- Node.js ${r.machine.node}; ${r.machine.postgres}`,
    '',
    '### Figures (milliseconds)',
    '',
    '| what | requests | p50 | p90 | p99 | mean |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    row('public route, no authentication (baseline)', r.warm.open),
    row('key route, `x-api-key`, key cache warm', r.warm.keyed),
    deltaRow('**added by key authentication, warm**', r.warm),
    row('public route, no authentication (cold app)', r.cold.open),
    row('key route, `x-api-key`, cache TTL 0 (reads PostgreSQL)', r.cold.keyed),
    deltaRow('**added by key authentication, cold**', r.cold),
    row(`one \`bcrypt\` compare, cost ${BCRYPT.cost} (bcryptjs, in process)`, r.bcrypt),
    '',
    `Per-round added cost at the median: warm ${r.warm.roundDeltas.map(signed).join(', ')} ms; ` +
      `cold ${r.cold.roundDeltas.map(signed).join(', ')} ms.`,
    `In process, without HTTP or the guard, \`ApiKeysService.authenticate\` of a cached key takes ` +
      `${(r.inProcessMs * 1000).toFixed(1)} µs on average (${count(IN_PROCESS_CALLS)} calls): ` +
      'format check, SHA-256 of the key, a map lookup. ' +
      `With TTL 0 the guard makes one read (the key joined with its company's status): ` +
      `\`ApiKeysService.authenticate\` p50 ${ms(r.coldParts.key.p50)} ms; for comparison a read of the company alone, \`CompaniesService.isActive\`, ` +
      `p50 ${ms(r.coldParts.company.p50)} ms (in process, ${count(COLD_PARTS_CALLS)} calls each).`,
    MARK_END,
  ].join('\n');
}

runBench('api-key-auth', HARD_LIMIT_MS, async ({ opened, step }) => {
  step('starting PostgreSQL');
  const db = await startDatabase();
  opened(() => db.close());
  await runMigrations(db.url);
  const version = String((await adminQuery(db.url, 'SELECT version() AS v')).rows[0].v);

  const client = new Client();
  opened(() => client.close());

  step('warm key cache: starting the application');
  const warmApp = await startApp(db.url, {}, [BenchRoutesModule]);
  const closeWarm = opened(() => warmApp.close());
  const { key, companyId } = await makeKey(warmApp);
  await checkRoutes(warmApp, key);
  step(`warm key cache: ${WARM.rounds} × ${WARM.perRound} requests per route`);
  const warm = await compare(client, warmApp.port, key, WARM);
  const inProcessMs = await inProcessAuthenticate(warmApp.app, key);
  const cacheTtlMs = warmApp.config.API_KEY_CACHE_TTL_MS;
  await closeWarm();

  step('cold (API_KEY_CACHE_TTL_MS=0): starting a second application');
  const coldApp = await startApp(db.url, { API_KEY_CACHE_TTL_MS: '0' }, [BenchRoutesModule]);
  const closeCold = opened(() => coldApp.close());
  await checkRoutes(coldApp, key);
  step(`cold: ${COLD.rounds} × ${COLD.perRound} requests per route`);
  const cold = await compare(client, coldApp.port, key, COLD);
  const coldParts = await inProcessCold(coldApp.app, key, companyId);
  await closeCold();

  step(`bcrypt cost ${BCRYPT.cost}: ${BCRYPT.count} compares`);
  const bcryptStats = bcryptCheck();

  const cpu = cpus();
  const report: Report = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    machine: {
      cpu: cpu[0]?.model.trim() ?? 'unknown',
      cores: cpu.length,
      memGiB: totalmem() / 2 ** 30,
      node: process.version,
      postgres: version.split(',')[0],
      database: db.where,
    },
    warm,
    cold,
    bcrypt: bcryptStats,
    inProcessMs,
    coldParts,
    cacheTtlMs,
  };
  const text = section(report);
  writeSection(MARK_START, MARK_END, text);
  step(`done; wrote ${OUTPUT}`);
  console.log('\n' + text);
});
