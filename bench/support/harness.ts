import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createApp } from '../../src/app.factory.js';
import { createLogger } from '../../src/common/logging/logger.js';
import { loadConfig, type ResolvedConfig } from '../../src/config/config.schema.js';
import { settleConfig } from '../../src/config/local-secrets.js';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from '../../src/database/embedded-postgres.js';

/**
 * What the event-delay and calls-paging benchmarks share: a fresh database (embedded and
 * temporary, or a fresh database on BENCH_DATABASE_URL / DATABASE_URL, dropped after), the real
 * application, percentiles, the machine, writing a section of BENCHMARKS.md, and a run that
 * closes what it opened in reverse order on success, failure, a signal or a time limit.
 */

export const INTERNAL_SECRET = randomBytes(32).toString('base64url');
export const OUTPUT = fileURLToPath(new URL('../../../BENCHMARKS.md', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Database

export interface BenchDatabase {
  url: string;
  where: string;
  /** True when the server is ours (embedded, temporary): server settings may be changed. */
  ownServer: boolean;
  close(): Promise<void>;
}

export async function adminQuery(url: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

export async function startDatabase(): Promise<BenchDatabase> {
  const given = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL;
  const name = `sb_bench_${randomBytes(5).toString('hex')}`;
  if (given) {
    await adminQuery(given, `CREATE DATABASE "${name}"`);
    const url = new URL(given);
    url.pathname = `/${name}`;
    return {
      url: url.toString(),
      where: `the server of ${process.env.BENCH_DATABASE_URL ? 'BENCH_DATABASE_URL' : 'DATABASE_URL'} (fresh database, dropped after)`,
      ownServer: false,
      close: async () => {
        await adminQuery(given, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-pg-'));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  chmodSync(dir, 0o755);
  let embedded: EmbeddedPostgresHandle;
  try {
    embedded = await startEmbeddedPostgres({ dataDir: join(dir, 'data'), port: 0, persistent: false, database: name });
  } catch (error) {
    removeDir();
    throw error;
  }
  return {
    url: embedded.url,
    where: 'embedded PostgreSQL (temporary, 127.0.0.1)',
    ownServer: true,
    close: async () => {
      try {
        await embedded.stop();
      } finally {
        removeDir();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Application

export interface RunningApp {
  app: NestFastifyApplication;
  config: ResolvedConfig;
  port: number;
  close(): Promise<void>;
}

/** The real application (`createApp`, as `npm start` builds it) on 127.0.0.1, a free port. */
export async function startApp(
  databaseUrl: string,
  env: Record<string, string> = {},
  imports: NonNullable<Parameters<typeof createApp>[0]['imports']> = [],
): Promise<RunningApp> {
  const loaded = loadConfig({
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    JOBS_ENABLED: 'false',
    JWT_SECRET: randomBytes(32).toString('base64url'),
    PBX_SECRETS_KEY: randomBytes(32).toString('base64'),
    PUBLIC_BASE_URL: 'https://switchboard.bench.test',
    INTERNAL_API_SECRET: INTERNAL_SECRET,
    RATE_LIMIT_TENANT_PER_MIN: '1000000',
    RATE_LIMIT_OPERATOR_PER_MIN: '1000000',
    ...env,
  });
  const config: ResolvedConfig = settleConfig(loaded, {
    jwtSecret: loaded.JWT_SECRET!,
    pbxSecretsKey: loaded.PBX_SECRETS_KEY!,
  });
  const logger = createLogger({ level: config.LOG_LEVEL, pretty: false });
  const app = await createApp({ config, databaseUrl, logger, imports });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.getHttpServer().address();
  if (!address || typeof address !== 'object') throw new Error('the application is not listening');
  return { app, config, port: address.port, close: () => app.close() };
}

/** A company through the operator API; returns its id and primary API key (scope `*`). */
export async function createCompany(port: number, name: string): Promise<{ id: string; apiKey: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/internal/apps`, {
    method: 'POST',
    headers: { authorization: `Bearer ${INTERNAL_SECRET}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  if (res.status !== 201) throw new Error(`POST /internal/apps: ${res.status} ${await res.text()}`);
  const created = (await res.json()) as { appId: string; apiKey: string };
  return { id: created.appId, apiKey: created.apiKey };
}

// ---------------------------------------------------------------------------------------------
// Figures

export interface Stats {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles. */
export function stats(values: ArrayLike<number>): Stats {
  const sorted = Float64Array.from(values).sort();
  if (sorted.length === 0) return { n: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted[sorted.length - 1]!,
    mean: sum / sorted.length,
  };
}

export const ms = (v: number, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : '–');
export const count = (n: number) => n.toLocaleString('en-US');

export interface Machine {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  postgres: string;
  /** From `lscpu` (Linux), when it runs: family/model, threads per core, hypervisor. */
  lscpu?: string;
}

/** A one-line summary of `lscpu`, or undefined where it is not available. */
function lscpuSummary(): string | undefined {
  try {
    const out = execFileSync('lscpu', { encoding: 'utf8', timeout: 2000 });
    const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(out)?.[1]?.trim();
    const parts = [
      field('Model name'),
      field('CPU family') && `family ${field('CPU family')} model ${field('Model')}`,
      field('CPU\\(s\\)') && `${field('CPU\\(s\\)')} CPUs`,
      field('Thread\\(s\\) per core') && `${field('Thread\\(s\\) per core')} thread(s) per core`,
      /\bhypervisor\b/.test(out) ? 'virtual machine (hypervisor flag)' : undefined,
    ].filter(Boolean);
    return parts.length ? parts.join(', ') : undefined;
  } catch {
    return undefined;
  }
}

export async function machine(databaseUrl: string): Promise<Machine> {
  const version = String((await adminQuery(databaseUrl, 'SELECT version() AS v')).rows[0].v);
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    memGiB: totalmem() / 2 ** 30,
    node: process.version,
    postgres: version.split(',')[0]!,
    lscpu: lscpuSummary(),
  };
}

export function machineLines(m: Machine): string[] {
  return [
    `- CPU: ${m.cpu}, ${m.cores} cores; memory ${m.memGiB.toFixed(1)} GiB` + (m.lscpu ? ` (lscpu: ${m.lscpu})` : ''),
    `- Node.js ${m.node} (flags: ${nodeFlags()}); ${m.postgres}`,
  ];
}

/** The V8/Node flags of this run (command line and NODE_OPTIONS), or "none". */
export function nodeFlags(): string {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].filter(Boolean);
  return flags.length ? flags.map((f) => `\`${f}\``).join(' ') : 'none';
}

/**
 * How busy the machine was (1-minute load average against the cores). Over half the cores busy
 * before we start means other work shares the machine: absolute figures are then marked as such.
 */
export function loadNote(): { loaded: boolean; text: string } {
  const [one] = loadavg();
  const cores = cpus().length;
  const loaded = one > cores * 0.5;
  return {
    loaded,
    text: `load average ${one.toFixed(2)} on ${cores} cores${loaded ? ' (**loaded**: other work was running)' : ''}`,
  };
}

export const isoNow = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** Replaces the text between the markers in BENCHMARKS.md (or appends it). */
export function writeSection(markStart: string, markEnd: string, text: string): void {
  const header = [
    '# Benchmarks',
    '',
    'Figures measured by the benchmarks in `bench/`. Run them all with `npm run bench` (it builds first); each',
    'one replaces its own section below (between its `bench:` markers) and prints it. They start their own',
    'PostgreSQL (embedded, temporary) unless `BENCH_DATABASE_URL` or `DATABASE_URL` is set, in which case they',
    'create and drop a fresh database on that server. Numbers depend on the machine: compare runs on one machine.',
    '',
  ].join('\n');
  let doc = existsSync(OUTPUT) ? readFileSync(OUTPUT, 'utf8') : header;
  const start = doc.indexOf(markStart);
  const end = doc.indexOf(markEnd);
  if (start >= 0 && end > start) {
    doc = doc.slice(0, start) + text + doc.slice(end + markEnd.length);
  } else {
    doc = doc.replace(/\n*$/, '\n\n') + text + '\n';
  }
  writeFileSync(OUTPUT, doc);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

export interface BenchContext {
  /** Registers something to close (in reverse order); returns a closer that runs at most once. */
  opened(close: () => Promise<void>): () => Promise<void>;
  /** Prints a progress line with the time since the start. */
  step(what: string): void;
}

/**
 * Runs a benchmark: everything registered with `opened` is closed in reverse order when it ends,
 * fails, gets SIGINT/SIGTERM, or runs past `hardLimitMs` (then the process exits 1).
 */
export function runBench(name: string, hardLimitMs: number, body: (ctx: BenchContext) => Promise<void>): void {
  const closers: (() => Promise<void>)[] = [];
  const opened = (close: () => Promise<void>) => {
    const closer = once(close);
    closers.push(closer);
    return closer;
  };
  const cleanup = once(async () => {
    for (const close of [...closers].reverse()) {
      await close().catch((error: unknown) => console.error('cleanup:', error));
    }
  });
  let stopping = false;
  const limit = setTimeout(() => {
    stopping = true;
    console.error(`${name} bench: still running after ${hardLimitMs / 1000} s; stopping.`);
    void Promise.race([cleanup(), new Promise((r) => setTimeout(r, 20_000))]).then(() => process.exit(1));
  }, hardLimitMs);
  limit.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // embedded-postgres's own exit hook would stop its server and exit before the application is
    // closed or a database on BENCH_DATABASE_URL dropped: it runs after our cleanup instead.
    const previous = process.listeners(signal);
    process.removeAllListeners(signal);
    process.once(signal, () => {
      stopping = true;
      console.error(`${name} bench: ${signal}, stopping.`);
      void cleanup().then(() => {
        if (previous.length === 0) process.exit(signal === 'SIGINT' ? 130 : 143);
        for (const listener of previous) listener(signal);
      });
    });
  }
  const began = performance.now();
  const step = (what: string) => console.log(`[${((performance.now() - began) / 1000).toFixed(1)} s] ${what}`);
  body({ opened, step })
    .then(
      () => cleanup(),
      async (error: unknown) => {
        await cleanup();
        if (stopping) return; // the signal or time-limit handler exits
        console.error(`${name} bench failed:`, error);
        process.exitCode = 1;
      },
    )
    .finally(() => {
      clearTimeout(limit);
      // Everything is closed: if a stray handle still keeps the process alive, end it anyway.
      setTimeout(() => {
        console.error(`${name} bench: a handle kept the process alive after cleanup; exiting.`);
        process.exit(process.exitCode ?? 0);
      }, 10_000).unref();
    });
}

// ---------------------------------------------------------------------------------------------
// CPU: who used the machine during a measurement (it may be shared with other work)

export interface CpuSample {
  /** Jiffies of the whole machine (all cores), from /proc/stat. */
  busy: number;
  total: number;
  /** This process, every thread (µs). */
  self: NodeJS.CpuUsage;
  /** The PostgreSQL server's processes (jiffies by pid), when they are on this machine. */
  pg: Map<number, number> | null;
}

export interface CpuShares {
  /** Per cent of one core (200 = two cores fully busy). */
  machine: number;
  self: number;
  pg: number | null;
  other: number | null;
  cores: number;
}

const JIFFY_MS = 10;

function procStat(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = user! + nice! + system! + irq! + softirq! + steal!;
    return { busy, total: busy + idle! + iowait! };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

/** utime + stime of each process still running (keyed by pid); null when none can be read. */
function pidJiffies(pids: number[]): Map<number, number> | null {
  const found = new Map<number, number>();
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      found.set(pid, Number(fields[11]) + Number(fields[12]));
    } catch {
      // gone, or on another machine
    }
  }
  return found.size > 0 ? found : null;
}

/** The pid of the database server's postmaster, when it runs on this machine (else null). */
export async function postmasterPid(databaseUrl: string): Promise<number | null> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    // Read while this backend is alive: its parent is the postmaster.
    const stat = readFileSync(`/proc/${rows[0]!.pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  } finally {
    await client.end();
  }
}

/** The postmaster and its children (backends, auxiliary processes). */
function serverPids(postmaster: number): number[] {
  const pids = [postmaster];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

export function cpuSample(postmaster: number | null): CpuSample {
  return {
    ...procStat(),
    self: process.cpuUsage(),
    pg: postmaster === null ? null : pidJiffies(serverPids(postmaster)),
  };
}

export function cpuShares(a: CpuSample, b: CpuSample): CpuShares {
  const cores = cpus().length;
  const wallJiffies = (b.total - a.total) / cores;
  const pct = (jiffies: number) => (100 * jiffies) / wallJiffies;
  const machine = pct(b.busy - a.busy);
  const self = pct((b.self.user - a.self.user + b.self.system - a.self.system) / 1000 / JIFFY_MS);
  let pg: number | null = null;
  if (a.pg && b.pg) {
    pg = 0;
    for (const [pid, end] of b.pg) pg += end - (a.pg.get(pid) ?? 0); // 0: started during the window
    pg = pct(pg);
  }
  return { machine, self, pg, other: pg === null ? null : Math.max(0, machine - self - pg), cores };
}

export function cpuLine(c: CpuShares): string {
  const p = (v: number) => `${Math.round(v)} %`;
  return (
    `machine ${p(c.machine)} of ${c.cores * 100} % (${c.cores} cores): this process (server and client threads) ` +
    `${p(c.self)}, PostgreSQL ${c.pg === null ? 'not measured' : p(c.pg)}, other processes ` +
    `${c.other === null ? 'not measured' : p(c.other)}`
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
