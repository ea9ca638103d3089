import { Webhook } from 'standardwebhooks';
import { createTestDatabase, query, type TestDatabase } from './support/database.js';
import { buildServer, ServerProcess } from './support/server-process.js';
import { json } from './support/http.js';
import { sleep } from './support/sockets.js';
import { call, createCompany, type TestCompany } from './support/tenant.js';
import { TEST_ENV } from './support/test-app.js';
import { WebhookReceiver } from './support/webhook-receiver.js';

/**
 * kill -9 during outbound deliveries, on the real built server (`node dist/src/main.js`) in a
 * child process: events produced, the server killed while deliveries are in flight (and more
 * are queued), restarted on the same database: every event reaches the receiver at least once
 * (it de-duplicates by webhook-id and counts).
 */

/** The built server's main.js (a build of this test's own). */
let MAIN = '';

describe('outbound deliveries survive kill -9', () => {
  let db: TestDatabase;
  let receiver: WebhookReceiver;
  const running: ServerProcess[] = [];

  beforeAll(async () => {
    MAIN = buildServer('webhook-crash', process.env.WEBHOOK_CRASH_TEST_REUSE_BUILD === '1');
    db = await createTestDatabase('webhook_crash');
    // Slow enough that deliveries are in flight when the server dies.
    receiver = await WebhookReceiver.start(() => ({ status: 200, delayMs: 150 }));
  }, 300_000);

  afterAll(async () => {
    for (const s of running) {
      s.kill();
      await s.exited;
    }
    await receiver?.close();
    await db?.drop();
  });

  const env: Record<string, string> = {
    ...TEST_ENV,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    JOBS_ENABLED: 'false',
    WEBHOOK_ALLOWED_TARGETS: '127.0.0.1/32',
    WEBHOOK_DELIVERY_TIMEOUT_MS: '2000',
    WEBHOOK_RETRY_SCHEDULE: '0,200ms,400ms,1s,2s',
    WEBHOOK_ENDPOINT_CONCURRENCY: '4',
    WEBHOOK_POLL_INTERVAL_MS: '200',
  };

  const start = async () => {
    const server = new ServerProcess(MAIN, { ...env, DATABASE_URL: db.url });
    running.push(server);
    await server.listening();
    return server;
  };

  it('every event is delivered at least once after a restart', async () => {
    const first = await start();
    const app = first.asTestApp();
    const co: TestCompany = await createCompany(app, 'crash');
    const owner = { token: co.owner.accessToken };
    const created = await call(app, 'POST', '/api/v1/webhook-endpoints', owner, {
      url: receiver.url,
      eventTypes: ['*'],
    });
    expect(created.status).toBe(201);
    const { secret } = await json(created);

    // 30 calls logged by hand: 90 events; 4 in flight at a time, 150 ms each: a backlog builds up.
    const calls = Array.from({ length: 30 }, (_, i) => {
      const start = new Date(Date.UTC(2026, 4, 1, 9, i));
      return {
        direction: 'inbound',
        from: '+15551230001',
        to: '+15550001234',
        startedAt: start.toISOString(),
        answeredAt: new Date(start.getTime() + 3_000).toISOString(),
        endedAt: new Date(start.getTime() + 30_000).toISOString(),
        endReason: 'completed',
      };
    });
    for (let i = 0; i < calls.length; i += 5) {
      const batch = await Promise.all(calls.slice(i, i + 5).map((c) => call(app, 'POST', '/api/v1/calls', owner, c)));
      expect(batch.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    }
    await receiver.waitFor(8, 20_000);
    first.kill();
    expect((await first.exited).signal).toBe('SIGKILL');
    running.splice(running.indexOf(first), 1);

    const events = await query<{ event_id: string }>(
      db.url,
      'SELECT event_id FROM company_events WHERE company_id = $1',
      [co.id],
    );
    expect(events.length).toBeGreaterThanOrEqual(90);
    const unsent = events.filter((e) => !receiver.countsById().has(e.event_id)).length;
    // The kill came in the middle: some events were not delivered yet.
    expect(unsent).toBeGreaterThan(0);

    await start();
    const deadline = Date.now() + 60_000;
    let missing = events.map((e) => e.event_id);
    while (Date.now() < deadline) {
      const seen = receiver.countsById();
      missing = events.map((e) => e.event_id).filter((id) => !seen.has(id));
      if (missing.length === 0) break;
      await sleep(200);
    }
    expect(missing).toEqual([]);
    // Each request is signed with the endpoint's secret.
    for (const r of receiver.requests) {
      expect(new Webhook(secret).verify(r.body, r.headers as Record<string, string>)).toBeTruthy();
    }
    const counts = [...receiver.countsById().values()];
    const duplicates = counts.filter((n) => n > 1).length;
    // At least once: a few may come twice (those in flight at the kill), most exactly once.
    expect(duplicates).toBeLessThanOrEqual(8);
    // And the log says so: every delivery succeeded in the end.
    let left = -1;
    for (const end = Date.now() + 10_000; Date.now() < end && left !== 0; await sleep(100)) {
      left = (
        await query<{ n: number }>(
          db.url,
          `SELECT count(*)::int AS n FROM webhook_deliveries WHERE status <> 'succeeded'`,
        )
      )[0]!.n;
    }
    expect(left).toBe(0);
  }, 180_000);
});
