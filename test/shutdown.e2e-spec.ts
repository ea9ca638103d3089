import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  newCallSid,
  startTwilioFake,
  twilioDelivery,
  twilioStatusCallback,
  type TwilioFake,
} from './fakes/twilio-fake.js';
import { AmiSimulator } from './support/ami-simulator.js';
import { createTestDatabase, query, type TestDatabase } from './support/database.js';
import { buildServer, ServerProcess } from './support/server-process.js';
import { json } from './support/http.js';
import { connect, sleep } from './support/sockets.js';
import { call, createCompany, type TestCompany, unique } from './support/tenant.js';
import { TEST_ENV, TEST_PUBLIC_BASE_URL } from './support/test-app.js';

/**
 * A graceful stop, on the real built server (`node dist/src/main.js`, what `npm start` runs) in a
 * child process: SIGTERM in the middle of a load of authenticated requests and signed Twilio
 * webhooks; SIGINT with a slow request in flight; the embedded PostgreSQL stopped last.
 */

/** The built server's main.js (a build of this test's own). */
let MAIN = '';
const COMPANY_NUMBER = '+15550001000';
const CUSTOMER = '+15551230001';

const baseEnv = (extra: Record<string, string>): Record<string, string> => ({
  ...TEST_ENV,
  HOST: '127.0.0.1',
  PORT: '0',
  LOG_LEVEL: 'info',
  RATE_LIMIT_WEBHOOK_PER_MIN: '1000000',
  SHUTDOWN_GRACE_MS: '10000',
  SHUTDOWN_TIMEOUT_MS: '30000',
  ...extra,
});

/** Sends a request byte by byte over time: `first` now, the rest when `finish()` is called. */
function slowRequest(url: string, head: string, body: string, sentNow: number) {
  const { hostname, port } = new URL(url);
  const socket = tcpConnect(Number(port), hostname);
  let received = '';
  socket.on('data', (chunk) => (received += chunk.toString('utf8')));
  const raw = `${head}\r\n\r\n${body}`;
  socket.write(raw.slice(0, sentNow));
  const answered = new Promise<{ status: number; body: string }>((done) =>
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0);
      done({ status, body: received.split('\r\n\r\n').slice(1).join('\r\n\r\n') });
    }),
  );
  socket.on('error', () => undefined);
  return { answered, finish: () => socket.write(raw.slice(sentNow)) };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('graceful stop of the built server', () => {
  beforeAll(() => {
    // SHUTDOWN_TEST_REUSE_BUILD=1 reruns on the last build (faster while working on this file).
    MAIN = buildServer('shutdown', process.env.SHUTDOWN_TEST_REUSE_BUILD === '1');
  }, 300_000);

  describe('on PostgreSQL (DATABASE_URL)', () => {
    let db: TestDatabase;
    let fake: TwilioFake;
    let env: Record<string, string>;
    const running: ServerProcess[] = [];

    beforeAll(async () => {
      db = await createTestDatabase('shutdown');
      fake = await startTwilioFake();
      env = baseEnv({ DATABASE_URL: db.url, TWILIO_BASE_URL: fake.baseUrl, JOBS_ENABLED: 'true' });
    });
    afterEach(async () => {
      for (const server of running.splice(0)) {
        server.signal('SIGKILL');
        await server.exited;
      }
    });
    afterAll(async () => {
      await fake?.close();
      await db?.drop();
    });

    const start = async () => {
      const server = new ServerProcess(MAIN, env);
      running.push(server);
      await server.listening();
      return server;
    };

    it('SIGTERM under load: no 5xx, exit 0, no error line, every acknowledged webhook processed after a restart', async () => {
      const first = await start();
      const app = first.asTestApp();
      const co: TestCompany = await createCompany(app, 'shutdown');
      const owner = { token: co.owner.accessToken };
      const created = await call(app, 'POST', '/api/v1/pbx-connections', owner, {
        provider: 'twilio',
        name: unique('Twilio'),
        settings: { accountSid: fake.accountSid, callerId: COMPANY_NUMBER },
        secrets: { authToken: fake.authToken },
      });
      expect(created.status).toBe(201);
      const connectionId = (await json(created)).id as string;

      // A live client: told of the stop, then its transport closes (socket.io clients reconnect on that).
      const live = await connect(first.url, { token: co.owner.accessToken });
      const told: unknown[] = [];
      live.socket.on('server.shutdown', (hint: unknown) => told.push(hint));
      const disconnected = new Promise<string>((done) => live.socket.once('disconnect', done));

      const answers: { kind: string; status: number }[] = [];
      const refused: string[] = [];
      const acked = new Map<string, string>(); // CallSid → inbox event id
      let exited = false;
      void first.exited.then(() => (exited = true));
      const worker = async (n: number) => {
        for (let i = 0; !exited && i < 400; i++) {
          const webhook = (i + n) % 2 === 0;
          try {
            if (webhook) {
              const sid = newCallSid();
              const at = new Date(Math.floor(Date.now() / 1000) * 1000);
              const d = twilioDelivery(
                fake.authToken,
                `${TEST_PUBLIC_BASE_URL}/webhooks/twilio/${connectionId}/status`,
                twilioStatusCallback({
                  accountSid: fake.accountSid,
                  callSid: sid,
                  status: 'ringing',
                  direction: 'inbound',
                  from: CUSTOMER,
                  to: COMPANY_NUMBER,
                  at,
                  sequenceNumber: 0,
                }),
              );
              const res = await fetch(`${first.url}/webhooks/twilio/${connectionId}/status`, {
                method: 'POST',
                headers: d.headers,
                body: d.body,
              });
              await res.arrayBuffer();
              answers.push({ kind: 'webhook', status: res.status });
              if (res.status >= 200 && res.status < 300) acked.set(sid, `${sid}:ringing:0`);
            } else {
              const res = await call(app, 'GET', '/api/v1/calls?limit=5', owner);
              await res.arrayBuffer();
              answers.push({ kind: 'api', status: res.status });
            }
          } catch (error) {
            // No answer at all (the server stopped listening, or closed the connection): allowed.
            refused.push(String((error as { cause?: { code?: string } }).cause?.code ?? error));
            await sleep(5);
          }
        }
      };
      const load = Promise.all(Array.from({ length: 8 }, (_, n) => worker(n)));
      while (answers.length < 60) await sleep(10);
      first.signal('SIGTERM');
      const exit = await first.exited;
      await load;

      expect(exit).toEqual({ code: 0, signal: null });
      expect(answers.filter((a) => a.status >= 500)).toEqual([]);
      expect(answers.filter((a) => a.kind === 'webhook' && a.status !== 200)).toEqual([]);
      expect(acked.size).toBeGreaterThan(10);
      expect(first.errors()).toEqual([]);
      expect(first.lines.some((l) => l.msg === 'stopped cleanly')).toBe(true);
      expect(await disconnected).toBe('transport close');
      expect(told).toEqual([{ reconnect: true, lastSeq: live.events.at(-1)?.seq ?? live.ready.seq }]);
      // pg's "client.query() while a query is already running" among others.
      expect(first.stderr).not.toContain('Warning');

      // Started again on the same database: everything acknowledged is processed.
      const second = await start();
      const ids = [...acked.values()];
      const sids = [...acked.keys()];
      const deadline = Date.now() + 30_000;
      let processed = 0;
      let calls = 0;
      while (Date.now() < deadline) {
        [{ processed }] = await query<{ processed: number }>(
          db.url,
          `SELECT count(*)::int AS processed FROM webhook_inbox
            WHERE connection_id = $1 AND event_id = ANY($2) AND status = 'processed'`,
          [connectionId, ids],
        );
        [{ calls }] = await query<{ calls: number }>(
          db.url,
          `SELECT count(*)::int AS calls FROM calls WHERE company_id = $1 AND provider_call_id = ANY($2)`,
          [co.id, sids],
        );
        if (processed === ids.length && calls === sids.length) break;
        await sleep(100);
      }
      expect({ processed, calls }).toEqual({ processed: ids.length, calls: sids.length });

      second.signal('SIGTERM');
      expect(await second.exited).toEqual({ code: 0, signal: null });
      expect(second.errors()).toEqual([]);
      expect(second.stderr).not.toContain('Warning');
    }, 120_000);

    it('SIGINT with a slow request in flight: it is answered, readiness says 503 meanwhile, exit 0', async () => {
      const server = await start();
      const body = JSON.stringify({ email: 'nobody@example.com', password: 'not-the-password-123' });
      const login = slowRequest(
        server.url,
        `POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}`,
        body,
        100, // the headers and a little of the body
      );
      // A request begun before the stop (its headers still on their way) is served, as a 503.
      const ready = slowRequest(server.url, 'GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1', '', 20);
      await sleep(200);
      server.signal('SIGINT');
      await sleep(500);
      ready.finish();
      login.finish();
      const [answered, readiness] = await Promise.all([login.answered, ready.answered]);
      expect(answered.status).toBe(401);
      expect(JSON.parse(answered.body)).toMatchObject({ status: 401 });
      expect(readiness.status).toBe(503);
      expect(JSON.parse(readiness.body)).toMatchObject({ status: 503 });
      expect(await server.exited).toEqual({ code: 0, signal: null });
      expect(server.errors()).toEqual([]);
      // No new connection once stopping.
      await expect(fetch(`${server.url}/health`)).rejects.toThrow();
    }, 60_000);
  });

  it('with AMI sessions: each stops and releases its connection and lock, without a warning', async () => {
    const db = await createTestDatabase('shutdown_ami');
    const sims = await Promise.all(
      [1, 2, 3, 4].map(async () => {
        const sim = new AmiSimulator();
        sim.setChannels([]);
        await sim.start();
        return sim;
      }),
    );
    const server = new ServerProcess(
      MAIN,
      baseEnv({ DATABASE_URL: db.url, JOBS_ENABLED: 'false', ASTERISK_LOCK_POLL_MS: '200' }),
    );
    try {
      await server.listening();
      const app = server.asTestApp();
      const co = await createCompany(app, 'shutdown-ami');
      const ids: string[] = [];
      for (const sim of sims) {
        const res = await call(
          app,
          'POST',
          '/api/v1/pbx-connections',
          { key: co.apiKey },
          {
            provider: 'asterisk',
            name: unique('pbx'),
            settings: { host: '127.0.0.1', port: sim.port, username: 'cti', context: 'internal' },
            secrets: { secret: 'ctisecret' },
          },
        );
        expect(res.status).toBe(201);
        ids.push((await json(res)).id as string);
      }
      const connected = async () =>
        (
          await query<{ n: number }>(
            db.url,
            `SELECT count(*)::int AS n FROM pbx_connections WHERE id = ANY($1) AND runtime_state = 'connected'`,
            [ids],
          )
        )[0]!.n;
      const deadline = Date.now() + 20_000;
      while ((await connected()) < ids.length && Date.now() < deadline) await sleep(100);
      expect(await connected()).toBe(ids.length);

      server.signal('SIGTERM');
      expect(await server.exited).toEqual({ code: 0, signal: null });
      expect(server.errors()).toEqual([]);
      // Several locks released at once on one session: pg warned of concurrent client.query() calls.
      expect(server.stderr).not.toContain('Warning');
      const rows = await query<{ runtime_state: string | null; runtime_holder: string | null }>(
        db.url,
        `SELECT runtime_state, runtime_holder FROM pbx_connections WHERE id = ANY($1)`,
        [ids],
      );
      expect(rows).toEqual(ids.map(() => ({ runtime_state: null, runtime_holder: null })));
      for (const sim of sims) expect(sim.authenticatedClients).toBe(0);
    } finally {
      server.signal('SIGKILL');
      await Promise.all(sims.map((sim) => sim.stop()));
      await db.drop();
    }
  }, 90_000);

  it('on the embedded PostgreSQL: SIGTERM stops the application first, then the database; nothing is left running', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'switchboard-shutdown-'));
    chmodSync(parent, 0o755); // PostgreSQL runs as its own user and must reach its directory
    const dir = join(parent, 'postgres');
    const server = new ServerProcess(
      MAIN,
      baseEnv({
        EMBEDDED_PG_DIR: dir,
        EMBEDDED_PG_PORT: String(40000 + Math.floor(Math.random() * 20000)),
        JOBS_ENABLED: 'false',
      }),
    );
    let postgresPid = 0;
    try {
      await server.listening(120_000);
      postgresPid = Number(readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      expect(alive(postgresPid)).toBe(true);
      const answers: number[] = [];
      let exited = false;
      void server.exited.then(() => (exited = true));
      const load = Promise.all(
        Array.from({ length: 4 }, async () => {
          while (!exited) {
            try {
              const res = await fetch(`${server.url}/api/v1/auth/login`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ email: 'nobody@example.com', password: 'not-the-password-123' }),
              });
              await res.arrayBuffer();
              answers.push(res.status);
            } catch {
              await sleep(5);
            }
          }
        }),
      );
      while (answers.length < 20) await sleep(10);
      server.signal('SIGTERM');
      expect(await server.exited).toEqual({ code: 0, signal: null });
      await load;
      expect(answers.filter((s) => s >= 500)).toEqual([]);
      expect(server.errors()).toEqual([]);
      // The database was stopped by the application (not left behind, not killed first).
      expect(alive(postgresPid)).toBe(false);
      expect(existsSync(join(dir, 'postmaster.pid'))).toBe(false);
    } finally {
      server.signal('SIGKILL');
      if (postgresPid && alive(postgresPid)) process.kill(postgresPid, 'SIGINT'); // in its own process group
    }
  }, 180_000);
});
