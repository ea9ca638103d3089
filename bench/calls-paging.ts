import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { encodeCursor } from '../src/common/pagination.js';
import { runMigrations } from '../src/database/migrator.js';
import {
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
  type RunningApp,
  startApp,
  startDatabase,
  type Stats,
  stats,
  writeSection,
} from './support/harness.js';
import type { PageExpectation, PagesJob, RepeatResult, WalkResult } from './support/http-pages.worker.js';

/**
 * GET /api/v1/calls (keyset pagination) on a company with 1,000,000 calls in a table of
 * 5,000,000. The headline: walking 1,000 different pages by `next` (each page read once, as a
 * client exporting the list does), without a filter, with `status`, with `from`. Then page 1 and
 * page 1000 each requested again and again (the hot-cache case, secondary), and the same page
 * read with OFFSET. Writes its section of BENCHMARKS.md.
 *
 *   npm run bench:calls      (BENCH_DATABASE_URL or DATABASE_URL: use that server, else embedded)
 *   BENCH_CALLS_PER_COMPANY=300000 for a smaller (smoke) run; the section states the size used.
 */

const COMPANIES = 5;
const CALLS_PER_COMPANY = Number(process.env.BENCH_CALLS_PER_COMPANY ?? 1_000_000);
const TOTAL_CALLS = COMPANIES * CALLS_PER_COMPANY;
const CHUNK = Math.min(500_000, TOTAL_CALLS);
const INSERTERS = 2;
const AGENTS_PER_COMPANY = 50;
const LIMIT = 50;
const DEEP_PAGE = 1000;
const DEEP_OFFSET = (DEEP_PAGE - 1) * LIMIT; // 49,950 rows before page 1000
const HTTP = { warmup: 100, rounds: 2, perRound: 500 };
const SQL_RUNS = { keyset: 200, offset: 50 };
const TARGET_P99_MS = 20;
const HARD_LIMIT_MS = 20 * 60_000;
/** The measured company's main line: the `from` of about half of its outbound calls. */
const mainLine = (k: number) => `+1555${String(k * 100).padStart(7, '0')}`;

const MARK_START = '<!-- bench:calls-paging:start -->';
const MARK_END = '<!-- bench:calls-paging:end -->';

// ---------------------------------------------------------------------------------------------
// Data

/** The calls table's keys and indexes, exactly as migrations/1795238824253-calls-agents-events.ts makes them. */
const CALLS_KEYS_AND_INDEXES = [
  'ALTER TABLE "calls" ADD CONSTRAINT "PK_d9171d91f8dd1a649659f1b6a20" PRIMARY KEY ("id")',
  'ALTER TABLE "calls" ADD CONSTRAINT "calls_company_call_key" UNIQUE ("company_id", "call_key")',
  'ALTER TABLE "calls" ADD CONSTRAINT "calls_id_company_key" UNIQUE ("id", "company_id")',
  'CREATE INDEX "calls_active_idx" ON "calls"  ("company_id", "started_at") WHERE status IN (\'queued\', \'ringing\', \'in_progress\')',
  'CREATE INDEX "calls_company_to_started_idx" ON "calls"  ("company_id", "to_number", "started_at", "id") ',
  'CREATE INDEX "calls_company_from_started_idx" ON "calls"  ("company_id", "from_number", "started_at", "id") ',
  'CREATE INDEX "calls_company_agent_started_idx" ON "calls"  ("company_id", "agent_id", "started_at", "id") ',
  'CREATE INDEX "calls_company_status_started_idx" ON "calls"  ("company_id", "status", "started_at", "id") ',
  'CREATE INDEX "calls_company_started_idx" ON "calls"  ("company_id", "started_at", "id") ',
  'ALTER TABLE "call_events" ADD CONSTRAINT "call_events_call_fkey" FOREIGN KEY ("call_id", "company_id") REFERENCES "calls"("id","company_id") ON DELETE CASCADE ON UPDATE NO ACTION',
];

const SCHEMA_SNAPSHOT = `
  SELECT 'index ' || indexname || ': ' || indexdef AS d FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'calls'
  UNION ALL
  SELECT 'constraint ' || conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint
   WHERE conrelid IN ('calls'::regclass, 'call_events'::regclass)
  ORDER BY 1`;

/**
 * One chunk of calls [lo, hi): in time order over the last 365 days (one every ~6.3 s across
 * the table, jittered), interleaved over the companies (row g belongs to company g % 5), as a
 * multi-tenant table fills. Directions, statuses, numbers, agents, durations as a call centre's.
 */
const INSERT_CALLS = `
INSERT INTO calls (id, company_id, provider, provider_call_id, call_key, direction, from_number, to_number,
  caller_name, status, agent_id, started_at, ringing_at, answered_at, ended_at, ring_seconds, talk_seconds,
  duration_seconds, end_reason, hangup_cause, recording_url, crm_contact, created_at, updated_at)
SELECT gen_random_uuid(), ($1::uuid[])[k + 1], provider, pcid, provider || ':' || pcid, direction,
  CASE direction WHEN 'inbound' THEN customer WHEN 'outbound' THEN line ELSE ext_a END,
  CASE direction WHEN 'inbound' THEN line WHEN 'outbound' THEN customer ELSE ext_b END,
  CASE WHEN direction = 'inbound' AND r_name < 0.4 THEN 'Caller ' || cust_n END,
  status,
  CASE WHEN direction <> 'inbound' OR (status = 'completed' AND r_name < 0.9) THEN ($2::uuid[])[k * ${AGENTS_PER_COMPANY} + agent_i + 1] END,
  started_at, started_at,
  CASE WHEN status = 'completed' THEN started_at + ring * interval '1 second' END,
  started_at + (ring + CASE WHEN status = 'completed' THEN talk ELSE 0 END) * interval '1 second',
  ring, CASE WHEN status = 'completed' THEN talk END, ring + CASE WHEN status = 'completed' THEN talk ELSE 0 END,
  status,
  CASE status WHEN 'completed' THEN 'normal_clearing' WHEN 'busy' THEN 'user_busy' WHEN 'failed' THEN 'network_out_of_order'
    WHEN 'missed' THEN 'no_answer' WHEN 'voicemail' THEN 'no_answer' ELSE 'originator_cancel' END,
  CASE WHEN status = 'completed' AND r_rec < 0.5 THEN 'https://recordings.example.com/' || pcid || '.mp3' END,
  CASE WHEN direction = 'inbound' AND r_name < 0.3 THEN jsonb_build_object('id', 'crm-' || cust_n, 'module', 'Contacts', 'name', 'Caller ' || cust_n) END,
  started_at + (ring + talk) * interval '1 second', started_at + (ring + talk) * interval '1 second'
FROM (
  SELECT g % ${COMPANIES} AS k, 'gen-' || g AS pcid, r_name, r_rec,
    $3::timestamptz + (g + r_jit) * $4::float8 * interval '1 second' AS started_at,
    CASE WHEN r_prov < 0.5 THEN 'asterisk' WHEN r_prov < 0.8 THEN 'twilio' ELSE 'dialpad' END AS provider,
    CASE WHEN r_dir < 0.6 THEN 'inbound' WHEN r_dir < 0.95 THEN 'outbound' ELSE 'internal' END AS direction,
    CASE WHEN r_status < 0.62 THEN 'completed' WHEN r_status < 0.77 THEN 'missed' WHEN r_status < 0.85 THEN 'voicemail'
      WHEN r_status < 0.92 THEN 'abandoned' WHEN r_status < 0.95 THEN 'busy' WHEN r_status < 0.97 THEN 'failed'
      ELSE 'canceled' END AS status,
    '+1555' || lpad(((g % ${COMPANIES}) * 100 + CASE WHEN r_line < 0.55 THEN 0 WHEN r_line < 0.7 THEN 1 WHEN r_line < 0.85 THEN 2 ELSE 3 END)::text, 7, '0') AS line,
    floor(r_cust * 200000)::int AS cust_n,
    '+1' || (2000000000 + floor(r_cust * 200000)::bigint * 3779)::text AS customer,
    floor(r_agent * ${AGENTS_PER_COMPANY})::int AS agent_i,
    '1' || lpad((floor(r_agent * ${AGENTS_PER_COMPANY})::int + 1)::text, 3, '0') AS ext_a,
    '1' || lpad(((floor(r_agent * ${AGENTS_PER_COMPANY})::int + 7) % ${AGENTS_PER_COMPANY} + 1)::text, 3, '0') AS ext_b,
    2 + floor(r_ring * 25)::int AS ring,
    least(7200, floor(-ln(1 - r_talk) * 180))::int AS talk
  FROM (
    SELECT g, random() AS r_dir, random() AS r_status, random() AS r_line, random() AS r_cust, random() AS r_agent,
      random() AS r_name, random() AS r_ring, random() AS r_talk, random() AS r_rec, random() AS r_prov, random() AS r_jit
    FROM generate_series($5::bigint, $6::bigint - 1) AS g
  ) r
) s`;

interface Generated {
  seconds: { insert: number; indexes: number; vacuum: number };
  tableBytes: number;
  indexBytes: number;
  perCompany: number;
  total: number;
}

async function generate(
  url: string,
  companyIds: string[],
  ownServer: boolean,
  step: (what: string) => void,
): Promise<Generated> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    if (ownServer) {
      // Our own temporary server: fewer checkpoints while it writes some GB of WAL.
      await client.query("ALTER SYSTEM SET max_wal_size = '16GB'");
      await client.query("ALTER SYSTEM SET checkpoint_timeout = '30min'");
      await client.query('SELECT pg_reload_conf()');
    }
    const agents: string[] = [];
    for (const companyId of companyIds) {
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO agents (company_id, display_name, extension)
         SELECT $1, 'Agent ' || i, '1' || lpad(i::text, 3, '0') FROM generate_series(1, ${AGENTS_PER_COMPANY}) i
         RETURNING id`,
        [companyId],
      );
      agents.push(...rows.map((r) => r.id));
    }

    const before = (await client.query<{ d: string }>(SCHEMA_SNAPSHOT)).rows.map((r) => r.d);
    step('dropping the keys and indexes of calls (and the foreign key from call_events)');
    await client.query('ALTER TABLE "call_events" DROP CONSTRAINT "call_events_call_fkey"');
    const { rows: constraints } = await client.query<{ conname: string }>(
      `SELECT conname FROM pg_constraint WHERE conrelid = 'calls'::regclass AND contype IN ('p', 'u')`,
    );
    for (const c of constraints) await client.query(`ALTER TABLE "calls" DROP CONSTRAINT "${c.conname}"`);
    const { rows: indexes } = await client.query<{ indexname: string }>(
      `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'calls'`,
    );
    for (const i of indexes) await client.query(`DROP INDEX "${i.indexname}"`);

    step(`inserting ${count(TOTAL_CALLS)} calls (${INSERTERS} connections, chunks of ${count(CHUNK)})`);
    const t0 = performance.now();
    const stepSeconds = (365 * 86_400) / TOTAL_CALLS;
    const { rows: startRows } = await client.query<{ start: string }>(
      `SELECT (now() - interval '365 days')::text AS start`,
    );
    const start = startRows[0]!.start;
    const chunks = Array.from({ length: Math.ceil(TOTAL_CALLS / CHUNK) }, (_, i) => i * CHUNK);
    let done = 0;
    const inserter = async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query('SET synchronous_commit = off');
        for (let lo = chunks.shift(); lo !== undefined; lo = chunks.shift()) {
          const hi = Math.min(lo + CHUNK, TOTAL_CALLS);
          await c.query(INSERT_CALLS, [companyIds, agents, start, stepSeconds, lo, hi]);
          done += hi - lo;
          const s = (performance.now() - t0) / 1000;
          step(`  ${count(done)} calls (${count(Math.round(done / s))}/s)`);
        }
      } finally {
        await c.end();
      }
    };
    await Promise.all(Array.from({ length: INSERTERS }, inserter));
    const insertSeconds = (performance.now() - t0) / 1000;

    step(`recreating the ${CALLS_KEYS_AND_INDEXES.length} keys, constraints and indexes as the migration makes them`);
    const t1 = performance.now();
    await client.query("SET maintenance_work_mem = '1GB'");
    await client.query('SET max_parallel_maintenance_workers = 2');
    for (const sql of CALLS_KEYS_AND_INDEXES) {
      const s = performance.now();
      await client.query(sql);
      step(
        `  ${/"([^"]+)"/.exec(sql.replace(/^ALTER TABLE "[^"]+" ADD CONSTRAINT /, ''))?.[1]} ${ms((performance.now() - s) / 1000, 1)} s`,
      );
    }
    const after = (await client.query<{ d: string }>(SCHEMA_SNAPSHOT)).rows.map((r) => r.d);
    if (JSON.stringify(before) !== JSON.stringify(after)) {
      throw new Error(
        `the recreated schema differs from the migration's:\n${before.join('\n')}\n---\n${after.join('\n')}`,
      );
    }
    const indexSeconds = (performance.now() - t1) / 1000;

    step('VACUUM (ANALYZE) calls');
    const t2 = performance.now();
    await client.query('VACUUM (ANALYZE) calls');
    await client.query('ANALYZE agents');
    if (ownServer) {
      await client.query('CHECKPOINT');
      await client.query('ALTER SYSTEM RESET max_wal_size');
      await client.query('ALTER SYSTEM RESET checkpoint_timeout');
      await client.query('SELECT pg_reload_conf()');
    }
    const vacuumSeconds = (performance.now() - t2) / 1000;

    const { rows: sizes } = await client.query<{ t: string; i: string; n: string; m: string }>(
      `SELECT pg_table_size('calls') AS t, pg_indexes_size('calls') AS i, (SELECT count(*) FROM calls) AS n,
              (SELECT count(*) FROM calls WHERE company_id = $1) AS m`,
      [companyIds[0]],
    );
    const total = Number(sizes[0]!.n);
    const perCompany = Number(sizes[0]!.m);
    if (total !== TOTAL_CALLS || perCompany !== CALLS_PER_COMPANY) {
      throw new Error(
        `expected ${TOTAL_CALLS} calls (${CALLS_PER_COMPANY} of the company), got ${total} (${perCompany})`,
      );
    }
    return {
      seconds: { insert: insertSeconds, indexes: indexSeconds, vacuum: vacuumSeconds },
      tableBytes: Number(sizes[0]!.t),
      indexBytes: Number(sizes[0]!.i),
      perCompany,
      total,
    };
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP client (a worker thread)

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

class PagesClient {
  private readonly worker = new Worker(new URL('./support/http-pages.worker.js', import.meta.url));
  private readonly waiting = new Map<number, (result: RepeatResult | WalkResult) => void>();
  private nextId = 1;

  constructor() {
    this.worker.on('message', (result: RepeatResult | WalkResult) => {
      this.waiting.get(result.id)?.(result);
      this.waiting.delete(result.id);
    });
    this.worker.on('error', (error) => console.error('bench client worker failed:', error));
  }

  private send<T extends RepeatResult | WalkResult>(job: WithoutId<PagesJob>): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, (r) => resolve(r as T));
      this.worker.postMessage({ ...job, id });
    });
  }

  /** `count` sequential GETs; throws unless every one is 200 with the expected page. */
  async repeat(port: number, path: string, key: string, n: number, expect: PageExpectation): Promise<number[]> {
    const r = await this.send<RepeatResult>({
      kind: 'repeat',
      port,
      path,
      headers: { 'x-api-key': key },
      count: n,
      expect,
    });
    if (r.error) throw new Error(`GET ${path}: ${r.error}`);
    if (r.mismatches > 0 || (r.statuses[200] ?? 0) !== n) {
      throw new Error(
        `GET ${path}: ${r.mismatches} wrong pages (${r.firstMismatch}); statuses ${JSON.stringify(r.statuses)}`,
      );
    }
    return Array.from(r.latencies);
  }

  async walk(port: number, path: string, key: string, pages: number): Promise<WalkResult> {
    const r = await this.send<WalkResult>({ kind: 'walk', port, path, headers: { 'x-api-key': key }, pages });
    if (r.error) throw new Error(`walking ${path}: ${r.error}`);
    return r;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// Lists, pages, SQL

interface List {
  name: string;
  /** Query string without cursor. */
  query: string;
  /** SQL condition on top of the company (for the expectations), with its parameter. */
  where: string;
  param?: string;
}

interface ListPages {
  list: List;
  rows: number;
  page1First: string;
  /** The cursor of page 1000 (from the 49,950th row), and the first row of that page. */
  deepCursor: string;
  deepFirst: string;
}

const AT = `to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

async function pagesOf(client: pg.Client, companyId: string, list: List): Promise<ListPages> {
  const params = [companyId, ...(list.param === undefined ? [] : [list.param])];
  const where = `company_id = $1${list.where ? ` AND ${list.where}` : ''}`;
  const first = await client.query<{ id: string }>(
    `SELECT id FROM calls WHERE ${where} ORDER BY started_at DESC, id DESC LIMIT 1`,
    params,
  );
  const deep = await client.query<{ id: string; at: string }>(
    `SELECT id, ${AT} AS at FROM calls WHERE ${where} ORDER BY started_at DESC, id DESC OFFSET ${DEEP_OFFSET - 1} LIMIT 2`,
    params,
  );
  const rows = await client.query<{ n: string }>(`SELECT count(*) AS n FROM calls WHERE ${where}`, params);
  if (deep.rows.length !== 2) throw new Error(`${list.name}: fewer than ${DEEP_OFFSET + 1} rows`);
  return {
    list,
    rows: Number(rows.rows[0]!.n),
    page1First: first.rows[0]!.id,
    deepCursor: encodeCursor({ at: deep.rows[0]!.at, id: deep.rows[0]!.id }),
    deepFirst: deep.rows[1]!.id,
  };
}

interface CapturedQuery {
  text: string;
  values: unknown[];
}

/** The SQL statements the application sends while `fn` runs (pg.Client#query, this process). */
async function captureSql(fn: () => Promise<unknown>): Promise<CapturedQuery[]> {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const query = proto.query;
  const seen: CapturedQuery[] = [];
  proto.query = function (this: unknown, ...args: unknown[]) {
    const [config, values] = args as [string | { text: string; values?: unknown[] }, unknown];
    if (typeof config === 'string') seen.push({ text: config, values: Array.isArray(values) ? values : [] });
    else if (config && typeof config.text === 'string') {
      seen.push({ text: config.text, values: config.values ?? (Array.isArray(values) ? values : []) });
    }
    return query.apply(this, args);
  };
  try {
    await fn();
  } finally {
    proto.query = query;
  }
  return seen;
}

/** The page query the route runs for `path` (captured from the application). */
async function routeSql(port: number, key: string, path: string): Promise<CapturedQuery> {
  const captured = await captureSql(async () => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { 'x-api-key': key } });
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  });
  const page = captured.filter((q) => /FROM "calls"/.test(q.text) && q.text.includes('cursor_at'));
  if (page.length !== 1) throw new Error(`expected one page query for ${path}, saw ${page.length}`);
  return page[0]!;
}

async function timeSql(
  client: pg.Client,
  q: CapturedQuery,
  runs: number,
  expectFirst: string,
  warmup = 20,
): Promise<Stats> {
  for (let i = 0; i < warmup; i++) await client.query(q.text, q.values);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    const r = await client.query<{ c_id: string }>(q.text, q.values);
    times.push(performance.now() - s);
    if (r.rows[0]?.c_id !== expectFirst)
      throw new Error(`SQL page starts at ${r.rows[0]?.c_id}, expected ${expectFirst}`);
  }
  return stats(times);
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Scan Direction'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  'Index Cond'?: string;
  Filter?: string;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

interface PlanSummary {
  scan: string;
  rowsRead: number;
  rowsReturned: number;
  buffers: { hit: number; read: number };
  executionMs: number;
  planningMs: number;
}

async function explain(client: pg.Client, q: CapturedQuery): Promise<PlanSummary> {
  let plan: { Plan: PlanNode; 'Execution Time': number; 'Planning Time': number } | undefined;
  for (let i = 0; i < 2; i++) {
    // the second run is the one reported (caches as warm as for the timed runs)
    const r = await client.query<{ 'QUERY PLAN': (typeof plan)[] }>(
      `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${q.text}`,
      q.values,
    );
    plan = r.rows[0]!['QUERY PLAN'][0]!;
  }
  const scans: PlanNode[] = [];
  const visit = (n: PlanNode) => {
    if (/Scan/.test(n['Node Type'])) scans.push(n);
    for (const c of n.Plans ?? []) visit(c);
  };
  visit(plan!.Plan);
  const rowsOf = (s: PlanNode) => (s['Actual Rows'] ?? 0) * (s['Actual Loops'] ?? 1);
  const scan = scans
    .map(
      (s) =>
        `${s['Node Type']}${s['Scan Direction'] === 'Backward' ? ' Backward' : ''}` +
        `${s['Index Name'] ? ` using ${s['Index Name']}` : ''}` +
        (scans.length > 1 ? ` (${count(rowsOf(s))} rows)` : ''),
    )
    .join(', ');
  return {
    scan,
    rowsRead: Math.max(...scans.map(rowsOf)),
    rowsReturned: plan!.Plan['Actual Rows'] ?? 0,
    buffers: { hit: plan!.Plan['Shared Hit Blocks'] ?? 0, read: plan!.Plan['Shared Read Blocks'] ?? 0 },
    executionMs: plan!['Execution Time'],
    planningMs: plan!['Planning Time'],
  };
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface ListResult {
  pages: ListPages;
  /** The walk over pages 1 to 1000 by `next` (each page once). */
  walk: Stats;
  http: { page1: Stats; deep: Stats };
  sql: { page1: Stats; deep: Stats; offset: Stats };
  plans: { page1: PlanSummary; deep: PlanSummary; offset: PlanSummary };
}

async function measure(
  running: RunningApp,
  key: string,
  url: string,
  companyId: string,
  lists: List[],
  step: (what: string) => void,
  http: PagesClient,
): Promise<{ results: ListResult[]; walk: WalkResult & { matches: boolean }; walkCpu: CpuShares; cpu: CpuShares }> {
  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  try {
    const all: ListPages[] = [];
    for (const list of lists) all.push(await pagesOf(sql, companyId, list));
    const path = (l: List, cursor?: string) =>
      `/api/v1/calls?limit=${LIMIT}${l.query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;

    // The headline: each list walked from page 1 to page 1000 by `next`, every page once, before
    // anything else reads these pages (the caches as the data load left them).
    const pgPid = await postmasterPid(url);
    const walkCpuStart = cpuSample(pgPid);
    const walks: WalkResult[] = [];
    for (const p of all) {
      step(`walking ${DEEP_PAGE} pages of ${p.list.name} by their next cursors`);
      const walked = await http.walk(running.port, path(p.list), key, DEEP_PAGE);
      // The cursor after page 999 leads to page 1000: it must be the one SQL computes for row 49,950.
      if (walked.cursors[DEEP_PAGE - 2] !== p.deepCursor) {
        throw new Error(`${p.list.name}: the walk reached ${walked.cursors[DEEP_PAGE - 2]}, SQL says ${p.deepCursor}`);
      }
      if (walked.rows !== DEEP_PAGE * LIMIT || walked.distinctIds !== DEEP_PAGE * LIMIT) {
        throw new Error(
          `${p.list.name}: the walk saw ${walked.rows} rows (${walked.distinctIds} distinct), expected ${DEEP_PAGE * LIMIT}`,
        );
      }
      walks.push(walked);
    }
    const walkCpu = cpuShares(walkCpuStart, cpuSample(pgPid));
    const walk = { ...walks[0]!, matches: true };

    step(`HTTP: ${lists.length * 2} pages × (${HTTP.warmup} warm-up + ${HTTP.rounds} × ${HTTP.perRound}) requests`);
    const cases = all.flatMap((p) => [
      { p, deep: false, path: path(p.list), expect: { status: 200, rows: LIMIT, firstId: p.page1First } },
      { p, deep: true, path: path(p.list, p.deepCursor), expect: { status: 200, rows: LIMIT, firstId: p.deepFirst } },
    ]);
    for (const c of cases) await http.repeat(running.port, c.path, key, HTTP.warmup, c.expect);
    const cpuStart = cpuSample(pgPid);
    const latencies = cases.map(() => [] as number[]);
    for (let round = 0; round < HTTP.rounds; round++) {
      const order = round % 2 === 0 ? cases.map((_, i) => i) : cases.map((_, i) => cases.length - 1 - i);
      for (const i of order) {
        latencies[i]!.push(...(await http.repeat(running.port, cases[i]!.path, key, HTTP.perRound, cases[i]!.expect)));
      }
    }
    const cpu = cpuShares(cpuStart, cpuSample(pgPid));

    step(
      'SQL in process: the route’s own statements (captured), and page 1000 with OFFSET; EXPLAIN (ANALYZE, BUFFERS)',
    );
    const results: ListResult[] = [];
    for (const [i, p] of all.entries()) {
      const page1 = await routeSql(running.port, key, path(p.list));
      const deep = await routeSql(running.port, key, path(p.list, p.deepCursor));
      if (!/LIMIT \d+$/.test(page1.text)) throw new Error(`the page query does not end with LIMIT: ${page1.text}`);
      const offset = {
        text: page1.text.replace(/LIMIT \d+$/, `LIMIT ${LIMIT} OFFSET ${DEEP_OFFSET}`),
        values: page1.values,
      };
      results.push({
        pages: p,
        walk: stats(walks[i]!.latencies),
        http: { page1: stats(latencies[2 * i]!), deep: stats(latencies[2 * i + 1]!) },
        sql: {
          page1: await timeSql(sql, page1, SQL_RUNS.keyset, p.page1First),
          deep: await timeSql(sql, deep, SQL_RUNS.keyset, p.deepFirst),
          offset: await timeSql(sql, offset, SQL_RUNS.offset, p.deepFirst, 5),
        },
        plans: { page1: await explain(sql, page1), deep: await explain(sql, deep), offset: await explain(sql, offset) },
      });
    }
    return { results, walk, walkCpu, cpu };
  } finally {
    await sql.end();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

interface Report {
  date: string;
  machine: Machine;
  database: string;
  generated: Generated;
  results: ListResult[];
  walk: WalkResult & { matches: boolean };
  walkCpu: CpuShares;
  cpu: CpuShares;
  load: { before: string; after: string; loaded: boolean };
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

function row(label: string, n: string, s: Stats): string {
  return `| ${label} | ${n} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.max)} |`;
}

function planLine(label: string, p: PlanSummary): string {
  return (
    `| ${label} | ${p.scan} | ${count(p.rowsRead)} | ${count(p.rowsReturned)} | ` +
    `${count(p.buffers.hit)} / ${count(p.buffers.read)} | ${ms(p.executionMs, 3)} |`
  );
}

function section(r: Report): string {
  const worstWalk = Math.max(...r.results.map((x) => x.walk.p99));
  const worstRepeat = Math.max(...r.results.flatMap((x) => [x.http.page1.p99, x.http.deep.p99]));
  const met = worstWalk < TARGET_P99_MS;
  const plain = r.results[0]!;
  const g = r.generated;
  const loaded = r.load.loaded
    ? ' (**loaded machine**: absolute figures inflated; the lead re-runs on an idle one)'
    : '';
  return [
    MARK_START,
    '## Calls list: keyset pages at any depth',
    '',
    `Measured ${r.date} by \`npm run bench:calls\` (\`bench/calls-paging.ts\`); re-running replaces this section.`,
    '',
    `**Target**: \`GET /api/v1/calls\` p99 under ${TARGET_P99_MS} ms at any depth, on a company with ` +
      `${count(CALLS_PER_COMPANY)} calls in a table of ${count(TOTAL_CALLS)}.`,
    '',
    ...(CALLS_PER_COMPANY !== 1_000_000
      ? [
          `**Reduced size** (\`BENCH_CALLS_PER_COMPANY=${CALLS_PER_COMPANY}\`, a smoke run): not the size of the ` +
            'target; `npm run bench:calls` without it measures 1,000,000 per company.',
          '',
        ]
      : []),
    `- **Headline — walking ${count(DEEP_PAGE)} different pages by \`next\`** (pages 1 to ${DEEP_PAGE}, each ` +
      `requested once, ${count(DEEP_PAGE * LIMIT)} distinct rows, as a client exporting the list does): ` +
      r.results.map((x) => `${x.pages.list.name} p99 **${ms(x.walk.p99)} ms** (p50 ${ms(x.walk.p50)})`).join('; ') +
      `. Worst p99: **${ms(worstWalk)} ms**: target **${met ? 'met' : 'NOT met'}**${loaded}.` +
      (met
        ? ''
        : ' Each page of the walk is a keyset read of rows no earlier request touched (their pages may have to ' +
          'come from the OS cache or the disk), plus the API-key authentication and the JSON of 50 calls; the ' +
          'query plans below show the rows and buffers read. ' +
          (r.walkCpu.other !== null && r.walkCpu.other > 50
            ? `Other processes used ${Math.round(r.walkCpu.other)} % of the cores during the walks: this run ` +
              'cannot tell whether an idle machine meets the target.'
            : '')),
    `- The walk reached page ${DEEP_PAGE} with the same cursor as SQL computes for row ${count(DEEP_OFFSET)} ` +
      `(\`encodeCursor\` of its exact time and id), for every list: **${r.walk.matches ? 'yes' : 'NO'}**.`,
    `- Secondary (hot cache, flatters): page 1 and page ${DEEP_PAGE} each requested ` +
      `${count(HTTP.warmup + HTTP.rounds * HTTP.perRound)} times with the same URL: page 1 p99 ` +
      `${ms(plain.http.page1.p99)} ms, page ${DEEP_PAGE} p99 ${ms(plain.http.deep.p99)} ms (no filter); worst p99 of ` +
      `the ${r.results.length * 2} repeated pages ${ms(worstRepeat)} ms.`,
    `- **Baseline, the same page ${DEEP_PAGE} with OFFSET** (\`LIMIT ${LIMIT} OFFSET ${count(DEEP_OFFSET)}\`, SQL ` +
      `alone, in process): p50 **${ms(plain.sql.offset.p50)} ms**, p99 ${ms(plain.sql.offset.p99)} ms, against ` +
      `${ms(plain.sql.deep.p50)} ms for the route’s keyset statement (page 1: ${ms(plain.sql.page1.p50)} ms). ` +
      `OFFSET reads ${count(plain.plans.offset.rowsRead)} rows to return ${plain.plans.offset.rowsReturned}; ` +
      `the keyset reads ${count(plain.plans.deep.rowsRead)}.`,
    `- CPU during the walks: ${cpuLine(r.walkCpu)}; during the repeated requests: ${cpuLine(r.cpu)}.`,
    '- **Left out**: the OS page cache was not dropped before the walks (the data load had just written the ' +
      'table, so recent pages may be cached; a server whose cache holds other tenants’ data would read more from ' +
      'disk); one client, one request in flight (no concurrent load on the pool); PostgreSQL on the same machine; ' +
      'no Redis.',
    '',
    '### Method',
    '',
    `- Data: ${count(g.total)} rows in \`calls\` over ${COMPANIES} companies (${count(g.perCompany)} each, interleaved ` +
      'in time order as a shared table fills; the companies made through `POST /internal/apps`, ' +
      `${AGENTS_PER_COMPANY} agents each), generated in SQL (\`INSERT … SELECT … generate_series\`, ` +
      `${INSERTERS} connections, chunks of ${count(CHUNK)}): started over the last 365 days; 60 % inbound, 35 % ` +
      'outbound, 5 % internal; 62 % completed, 15 % missed, 8 % voicemail, 7 % abandoned, then busy, failed, ' +
      'canceled; callers from 200,000 numbers; outbound from 4 company lines (the main one 55 %); agents on ' +
      'outbound, internal and most answered calls; ring and talk times, end reasons, hang-up causes, ' +
      'recordings, CRM contacts. Before the insert the keys and indexes of `calls` (and the foreign key from ' +
      '`call_events`) were dropped; after it they were recreated with the statements of the migration and ' +
      `checked identical to the migrated schema (\`pg_indexes\`, \`pg_constraint\`), then \`VACUUM (ANALYZE)\`. ` +
      `Insert ${ms(g.seconds.insert, 0)} s, keys and indexes ${ms(g.seconds.indexes, 0)} s, vacuum and analyze ` +
      `${ms(g.seconds.vacuum, 0)} s; table ${gib(g.tableBytes)}, its indexes ${gib(g.indexBytes)}. On ` +
      `${r.database}.`,
    '- The real application: `createApp`, `NODE_ENV=production`, `LOG_LEVEL=warn`, `JOBS_ENABLED=false`, no ' +
      'Redis, rate limits 1,000,000/min, on 127.0.0.1.',
    `- HTTP: \`GET /api/v1/calls?limit=${LIMIT}\` with the company’s API key (\`x-api-key\`), from \`node:http\` ` +
      'with one keep-alive socket in a worker thread (not on the server’s event loop), sequential requests; ' +
      'latency from `request()` to the last byte.',
    `- Walks (the headline), first thing after the data load, no warm-up: for each list, page 1 without a ` +
      `cursor, then ${DEEP_PAGE - 1} requests each with the \`next\` of the page before; every response 200 with ` +
      `${LIMIT} rows, ${count(DEEP_PAGE * LIMIT)} distinct ids per walk, and the cursor leading to page ` +
      `${DEEP_PAGE} equal to the one computed in SQL (the cursor of row ${count(DEEP_OFFSET)} in the list’s order, ` +
      'encoded with the application’s `encodeCursor`).',
    `- Repeated pages (secondary): page 1 (no cursor) and page ${DEEP_PAGE} (the SQL cursor), each: ` +
      `${HTTP.warmup} warm-up requests, then ${HTTP.rounds} rounds of ${HTTP.perRound} (order reversed in the ` +
      `second round): ${count(HTTP.rounds * HTTP.perRound)} per page, each checked: 200, ${LIMIT} rows, the ` +
      'expected first row.',
    `- Filters: \`status=completed\` (${count(r.results[1]!.pages.rows)} rows) and \`from=${mainLine(0)}\` ` +
      `(${count(r.results[2]!.pages.rows)} rows), page 1 and page ${DEEP_PAGE} each.`,
    '- SQL in process (`pg`, one connection, no HTTP): the statements the route sends, captured from the ' +
      `application, ${SQL_RUNS.keyset} runs each after 20 warm-up; the OFFSET baseline is the page-1 statement ` +
      `with \`LIMIT ${LIMIT} OFFSET ${DEEP_OFFSET}\` instead of the keyset condition (checked to return the same ` +
      `first row as page ${DEEP_PAGE}), ${SQL_RUNS.offset} runs after 5 warm-up. EXPLAIN (ANALYZE, BUFFERS) of each, run twice, ` +
      'the second reported.',
    '',
    '### Machine',
    '',
    ...machineLines(r.machine),
    `- Load: before ${r.load.before}; after ${r.load.after}`,
    '',
    '### Figures (milliseconds)',
    '',
    '| what | samples | p50 | p90 | p99 | max |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...r.results.map((x) =>
      row(`**HTTP, ${x.pages.list.name}, walk of pages 1–${DEEP_PAGE} by \`next\`**`, count(x.walk.n), x.walk),
    ),
    ...r.results.flatMap((x) => {
      const name = x.pages.list.name;
      const n = count(x.http.page1.n);
      return [
        row(`HTTP, ${name}, page 1, same URL repeated`, n, x.http.page1),
        row(`HTTP, ${name}, page ${DEEP_PAGE}, same URL repeated`, n, x.http.deep),
        row(`SQL, ${name}, page 1 (keyset statement)`, count(x.sql.page1.n), x.sql.page1),
        row(`SQL, ${name}, page ${DEEP_PAGE} (keyset statement)`, count(x.sql.deep.n), x.sql.deep),
        row(`SQL, ${name}, page ${DEEP_PAGE} with OFFSET (baseline)`, count(x.sql.offset.n), x.sql.offset),
      ];
    }),
    '',
    '### Query plans (EXPLAIN ANALYZE, BUFFERS)',
    '',
    '| page | scan | rows read (largest scan) | rows returned | buffers hit / read | execution ms |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...r.results.flatMap((x) => [
      planLine(`${x.pages.list.name}, page 1`, x.plans.page1),
      planLine(`${x.pages.list.name}, page ${DEEP_PAGE} (keyset)`, x.plans.deep),
      planLine(`${x.pages.list.name}, page ${DEEP_PAGE} (OFFSET)`, x.plans.offset),
    ]),
    MARK_END,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

runBench('calls-paging', HARD_LIMIT_MS, async ({ opened, step }) => {
  const before = loadNote();
  step('starting PostgreSQL');
  const db = await startDatabase();
  opened(() => db.close());
  await runMigrations(db.url);
  const running = await startApp(db.url);
  const closeApp = opened(() => running.close());
  const companies: { id: string; apiKey: string }[] = [];
  for (let k = 0; k < COMPANIES; k++) companies.push(await createCompany(running.port, `Bench calls ${k}`));
  const generated = await generate(
    db.url,
    companies.map((c) => c.id),
    db.ownServer,
    step,
  );
  const http = new PagesClient();
  opened(() => http.close());
  const lists: List[] = [
    { name: 'no filter', query: '', where: '' },
    { name: '`status=completed`', query: '&status=completed', where: "status = 'completed'" },
    {
      name: `\`from=${mainLine(0)}\``,
      query: `&from=${encodeURIComponent(mainLine(0))}`,
      where: 'from_number = $2',
      param: mainLine(0),
    },
  ];
  const { results, walk, walkCpu, cpu } = await measure(
    running,
    companies[0]!.apiKey,
    db.url,
    companies[0]!.id,
    lists,
    step,
    http,
  );
  await closeApp();
  for (const x of results) {
    step(
      `${x.pages.list.name}: walk p99 ${ms(x.walk.p99)} ms; repeated HTTP p99 page 1 ${ms(x.http.page1.p99)} ms, page ${DEEP_PAGE} ${ms(x.http.deep.p99)} ms; ` +
        `SQL OFFSET p50 ${ms(x.sql.offset.p50)} ms`,
    );
  }
  const report: Report = {
    date: isoNow(),
    machine: await machine(db.url),
    database: db.where,
    generated,
    results,
    walk,
    walkCpu,
    cpu,
    load: (() => {
      const after = loadNote();
      return { before: before.text, after: after.text, loaded: before.loaded || after.loaded };
    })(),
  };
  const text = section(report);
  writeSection(MARK_START, MARK_END, text);
  console.log('\n' + text);
});
