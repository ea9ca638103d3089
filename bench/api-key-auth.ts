import 'reflect-metadata';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import bcrypt from 'bcryptjs';
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type pg from 'pg';
import { DataSource } from 'typeorm';
import { runMigrations } from '../src/database/migrator.js';
import { ApiKeysService } from '../src/tenants/api-keys.service.js';
import { BENCH_ROUTES, BenchRoutesModule } from './support/bench-routes.module.js';
import type { ClientJob, ClientResult } from './support/http-client.worker.js';
import {
  adminQuery,
  count,
  INTERNAL_SECRET,
  loadNote,
  machine,
  machineLines,
  type Machine,
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
 * `@Access.tenant(…, scope)`, over HTTP on loopback, sequential keep-alive requests, in ONE
 * application and one run: with the key cache warm (the same key again), and cold (every request
 * presents a key this process has never seen, so it misses the cache and reads PostgreSQL); and
 * one bcrypt cost-10 check for comparison. Writes its section of BENCHMARKS.md.
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
  /** ApiKeysService.authenticate of a key never seen before: the prepared read on the pool. */
  key: Stats;
  /** The same SQL through TypeORM's `DataSource.query` (unprepared, with its bookkeeping): the path it replaced. */
  viaTypeorm: Stats;
  /** `SELECT 1` as a named statement on the same pool: the floor of any read (one round trip). */
  roundTrip: Stats;
}

interface Comparison {
  open: Stats;
  keyed: Stats;
  /** p50(keyed) − p50(open) of each round. */
  roundDeltas: number[];
}

/** Keys made straight in the table (as `ApiKeysService.create` stores them), never presented before. */
async function freshKeys(databaseUrl: string, companyId: string, n: number): Promise<string[]> {
  const keys = Array.from({ length: n }, () => 'sbk_' + randomBytes(32).toString('base64url'));
  const hashes = keys.map((k) => createHash('sha256').update(k).digest('hex'));
  await adminQuery(
    databaseUrl,
    `INSERT INTO api_keys (company_id, name, scopes, key_hash, key_hint)
     SELECT $1, 'bench cold', '{calls:read}', h, 'sbk_cold…' FROM unnest($2::text[]) h`,
    [companyId, hashes],
  );
  return keys;
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
    perRequest?: Record<string, string>[],
  ): Promise<number[]> {
    const id = this.nextId++;
    const job: ClientJob = { id, port, path, headers, count, perRequest };
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

/**
 * Warm-up, then rounds of A and B alternating in order (A/B, B/A, …) so drift hits both alike.
 * `keys` gives the key of each keyed request: the same one (warm), or each a new one (cold).
 */
async function compare(
  client: Client,
  port: number,
  keys: (n: number) => Record<string, string>[],
  plan: { warmup: number; rounds: number; perRound: number },
): Promise<Comparison> {
  const open = (n: number) => client.run(port, BENCH_ROUTES.public, {}, n);
  const keyed = (n: number) => client.run(port, BENCH_ROUTES.key, {}, n, 200, keys(n));
  await open(plan.warmup);
  await keyed(plan.warmup);
  const all = { open: [] as number[], keyed: [] as number[] };
  const roundDeltas: number[] = [];
  for (let round = 0; round < plan.rounds; round++) {
    let a: number[];
    let b: number[];
    if (round % 2 === 0) {
      a = await open(plan.perRound);
      b = await keyed(plan.perRound);
    } else {
      b = await keyed(plan.perRound);
      a = await open(plan.perRound);
    }
    all.open.push(...a);
    all.keyed.push(...b);
    roundDeltas.push(stats(b).p50 - stats(a).p50);
  }
  return { open: stats(all.open), keyed: stats(all.keyed), roundDeltas };
}

/** Hands out each key once, in order; throws when they run out (a key seen twice would be warm). */
function oneUse(keys: string[]): (n: number) => Record<string, string>[] {
  let next = 0;
  return (n) => {
    if (next + n > keys.length) throw new Error('not enough fresh keys for the cold run');
    const batch = keys.slice(next, next + n).map((k) => ({ 'x-api-key': k }));
    next += n;
    return batch;
  };
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

/** In process, no HTTP: authenticate of keys never seen, the same SQL through TypeORM, and a bare round trip. */
async function inProcessCold(app: NestFastifyApplication, keys: string[]): Promise<ColdParts> {
  const service = app.get(ApiKeysService);
  const dataSource = app.get(DataSource);
  const pool = (dataSource.driver as unknown as { master: pg.Pool }).master;
  const hashes = keys.map((k) => createHash('sha256').update(k).digest('hex'));
  const time = async (fn: (i: number) => Promise<unknown>, n: number, warmup: number) => {
    for (let i = 0; i < warmup; i++) await fn(i);
    const times: number[] = [];
    for (let i = warmup; i < warmup + n; i++) {
      const start = performance.now();
      if (!(await fn(i))) throw new Error('in-process check failed');
      times.push(performance.now() - start);
    }
    return stats(times);
  };
  // The read as it was before (TypeORM `query`, one statement with OR, unprepared): for comparison.
  const sql = `SELECT k.id, k.company_id, k.scopes, k.key_hash, k.expires_at, k.previous_valid_until, c.status
                 FROM api_keys k JOIN companies c ON c.id = k.company_id
                WHERE k.revoked_at IS NULL
                  AND (k.key_hash = $1 OR (k.previous_key_hash = $1 AND k.previous_valid_until > now()))`;
  const half = keys.length / 2;
  return {
    key: await time((i) => service.authenticate(keys[i]!), half - 100, 100),
    viaTypeorm: await time(
      async (i) => ((await dataSource.query(sql, [hashes[half + i]])) as unknown[]).length,
      half - 100,
      100,
    ),
    roundTrip: await time(
      async () => (await pool.query({ name: 'bench-select-1', text: 'SELECT 1 AS one' })).rows.length,
      COLD_PARTS_CALLS,
      100,
    ),
  };
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
  machine: Machine;
  database: string;
  load: { before: string; after: string; loaded: boolean };
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
  const loaded = r.load.loaded ? ' (**loaded machine**: absolute figures inflated, the differences are same-run)' : '';
  return [
    MARK_START,
    '## API-key authentication: cost per request',
    '',
    `Measured ${r.date} by \`npm run bench\` (\`bench/api-key-auth.ts\`); re-running replaces this section.`,
    '',
    `**Target** (from the issue): key authentication adds < ${TARGET_MS} ms per request at the median, cold ` +
      '(a cache miss) included.',
    '',
    `- **Cold** (a key this process has never seen: every keyed request presents a different key, so each one ` +
      `misses the cache and reads PostgreSQL): adds **${ms(coldAdded)} ms** at the median (per round ` +
      `${spread(r.cold)} ms): target **${verdict(coldMet)}**${loaded}.` +
      (coldMet
        ? ''
        : ' Its floor is one round trip to PostgreSQL: in process, without HTTP, `authenticate` of a never-seen ' +
          `key takes p50 ${ms(r.coldParts.key.p50)} ms against ${ms(r.coldParts.roundTrip.p50)} ms for a bare ` +
          'prepared `SELECT 1` on the same pool (the same read through TypeORM, unprepared, as before: ' +
          `${ms(r.coldParts.viaTypeorm.p50)} ms). Over HTTP the wait for PostgreSQL also costs the server's ` +
          'process a sleep and a wake-up, which on a busy machine waits for a core.'),
    `- **Key cache warm** (the same key again, the normal case): adds **${ms(warmAdded)} ms** at the median ` +
      `(per round ${spread(r.warm)} ms): target **${verdict(met)}**.`,
    `- **One bcrypt cost-${BCRYPT.cost} check** alone: **${ms(r.bcrypt.p50)} ms** (p50)` +
      `, about ${count(Math.round(r.bcrypt.p50 / r.warm.keyed.p50))} times a whole key-authenticated request ` +
      `(${ms(r.warm.keyed.p50)} ms), and it would come on top of it.`,
    '',
    '### Method',
    '',
    '- The real application: `createApp` from `src/app.factory.ts`, as `npm start` builds it (Fastify, helmet, ' +
      'request ids, metrics hook, global access guard, validation pipe, problem filter), `NODE_ENV=production`, ' +
      '`LOG_LEVEL=warn`, `JOBS_ENABLED=false`, no Redis (in-process rate limiter, limit 1,000,000/min so it ' +
      `never refuses), against a fresh migrated database on ${r.database}. One application for every figure.`,
    '- Two bench-only routes (`bench/support/bench-routes.module.ts`) doing the same work (return `{"ok":true}`): ' +
      `\`GET ${BENCH_ROUTES.public}\` with \`@Access.public()\` (the **baseline**: the same request without ` +
      `authentication, measured in the same run, alternating with the keyed one), and \`GET ${BENCH_ROUTES.key}\` with ` +
      "`@Access.tenant('agent', 'calls:read')`, called with `x-api-key` of a key holding only `calls:read`. " +
      'Checked first: no key → 401, unknown key → 401, same body.',
    '- Client: `node:http` with a keep-alive `Agent` (one socket), in a worker thread (not on the server’s event ' +
      'loop), over loopback to 127.0.0.1; sequential requests, one in flight. Latency: from `request()` to the last ' +
      'byte of the body. Every measured response was checked to be 200.',
    `- Warm: one key (made by \`ApiKeysService.create\`) again and again, cache TTL ${r.cacheTtlMs / 1000} s (the ` +
      `default): ${count(WARM.warmup)} warm-up requests per route, then ${WARM.rounds} rounds of ` +
      `${count(WARM.perRound)} per route, order alternating per round: ${count(WARM.rounds * WARM.perRound)} per route.`,
    `- Cold: ${count(COLD.warmup + COLD.rounds * COLD.perRound)} keys inserted into \`api_keys\` beforehand (the ` +
      'same rows `create` writes), each presented exactly once: every keyed request is a cache miss on a key never ' +
      'seen by this process (SHA-256 once, one prepared indexed read of the key joined with its company status, ' +
      `and its first-use \`last_used_at\` write, batched off the request path). ${count(COLD.warmup)} warm-up ` +
      `requests per route (fresh keys too), then ${COLD.rounds} alternating rounds of ${count(COLD.perRound)}.`,
    `- bcrypt: \`bcryptjs\` (pure JavaScript) \`compareSync\` against a cost-${BCRYPT.cost} hash made once, ` +
      `${BCRYPT.warmup} warm-up + ${BCRYPT.count} timed, in process.`,
    '- Added cost: p50(key route) − p50(public route) of the same application in the same run (also shown for ' +
      'p90, p99, mean; a difference of percentiles, not a percentile of differences).',
    '- **Left out**: PostgreSQL is on the same machine (a network hop to a remote database adds its round trip ' +
      'to every cold request); no Redis (the shared rate limiter adds its own round trip to keyed and JWT ' +
      'requests alike); one request in flight (no contention for pool connections).',
    '',
    '### Machine',
    '',
    ...machineLines(r.machine),
    `- Load: before ${r.load.before}; after ${r.load.after}`,
    '',
    '### Figures (milliseconds)',
    '',
    '| what | requests | p50 | p90 | p99 | mean |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    row('public route, no authentication (baseline, warm rounds)', r.warm.open),
    row('key route, `x-api-key`, key cache warm', r.warm.keyed),
    deltaRow('**added by key authentication, warm**', r.warm),
    row('public route, no authentication (baseline, cold rounds)', r.cold.open),
    row('key route, `x-api-key`, a never-seen key each time', r.cold.keyed),
    deltaRow('**added by key authentication, cold**', r.cold),
    row(`one \`bcrypt\` compare, cost ${BCRYPT.cost} (bcryptjs, in process)`, r.bcrypt),
    '',
    `Per-round added cost at the median: warm ${r.warm.roundDeltas.map(signed).join(', ')} ms; ` +
      `cold ${r.cold.roundDeltas.map(signed).join(', ')} ms.`,
    '',
    'In process, without HTTP or the guard:',
    '',
    '| what | calls | p50 | p90 | p99 | mean |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    `| \`ApiKeysService.authenticate\`, cached key (mean ${(r.inProcessMs * 1000).toFixed(1)} µs: format check, SHA-256, map lookup) | ${count(IN_PROCESS_CALLS)} | | | | ${ms(r.inProcessMs)} |`,
    row('`ApiKeysService.authenticate`, never-seen key (prepared read on the pg pool)', r.coldParts.key),
    row('the same read through TypeORM `DataSource.query` (unprepared; the path it replaced)', r.coldParts.viaTypeorm),
    row('`SELECT 1`, named statement on the same pool (one round trip: the floor)', r.coldParts.roundTrip),
    MARK_END,
  ].join('\n');
}

runBench('api-key-auth', HARD_LIMIT_MS, async ({ opened, step }) => {
  const before = loadNote();
  step('starting PostgreSQL');
  const db = await startDatabase();
  opened(() => db.close());
  await runMigrations(db.url);

  const client = new Client();
  opened(() => client.close());

  step('starting the application');
  const running = await startApp(db.url, {}, [BenchRoutesModule]);
  const close = opened(() => running.close());
  const { key, companyId } = await makeKey(running);
  await checkRoutes(running, key);
  const coldCount = COLD.warmup + COLD.rounds * COLD.perRound;
  const cold = await freshKeys(db.url, companyId, coldCount + 1 + 2 * (COLD_PARTS_CALLS + 100));
  const probe = cold.pop()!;
  const check = await fetch(`http://127.0.0.1:${running.port}${BENCH_ROUTES.key}`, { headers: { 'x-api-key': probe } });
  if (check.status !== 200) throw new Error(`a fresh key did not authenticate: ${check.status}`);

  step(`warm key cache: ${WARM.rounds} × ${WARM.perRound} requests per route`);
  const warm = await compare(
    client,
    running.port,
    (n) => Array.from({ length: n }, () => ({ 'x-api-key': key })),
    WARM,
  );
  const inProcessMs = await inProcessAuthenticate(running.app, key);

  step(`cold (a never-seen key per request): ${COLD.rounds} × ${COLD.perRound} requests per route`);
  const coldRun = await compare(client, running.port, oneUse(cold.slice(0, coldCount)), COLD);
  const coldParts = await inProcessCold(running.app, cold.slice(coldCount));
  const cacheTtlMs = running.config.API_KEY_CACHE_TTL_MS;
  await close();

  step(`bcrypt cost ${BCRYPT.cost}: ${BCRYPT.count} compares`);
  const bcryptStats = bcryptCheck();
  const after = loadNote();

  const report: Report = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    machine: await machine(db.url),
    database: db.where,
    load: { before: before.text, after: after.text, loaded: before.loaded || after.loaded },
    warm,
    cold: coldRun,
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
