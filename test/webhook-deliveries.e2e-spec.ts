import { Webhook } from 'standardwebhooks';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import { WebhookClock } from '../src/webhooks/deliveries/webhook-clock.js';
import { WebhookDeliveriesService } from '../src/webhooks/deliveries/webhook-deliveries.service.js';
import { WebhookDispatcherService } from '../src/webhooks/deliveries/webhook-dispatcher.service.js';
import { query } from './support/database.js';
import { expectProblem, json } from './support/http.js';
import { connect, type LiveClient, sleep } from './support/sockets.js';
import { call, createCompany, createUser, type TestCompany, type TestUser } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';
import { type ReceivedRequest, WebhookReceiver } from './support/webhook-receiver.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const REBIND_HOST = 'rebind.example.test';
const ENV = {
  WEBHOOK_ALLOWED_TARGETS: '127.0.0.1/32',
  WEBHOOK_DNS_OVERRIDES: `${REBIND_HOST}=127.0.0.1`,
  WEBHOOK_RETRY_SCHEDULE: '0,300ms,600ms',
  WEBHOOK_RETRY_JITTER_PCT: '10',
  WEBHOOK_DELIVERY_TIMEOUT_MS: '1000',
  WEBHOOK_POLL_INTERVAL_MS: '100',
  WEBHOOK_ENDPOINT_DISABLE_AFTER_MS: '3600000',
  WEBHOOK_ENDPOINT_CONCURRENCY: '4',
  WEBHOOK_REPLAY_MAX_EVENTS: '50',
  WEBHOOK_ENDPOINTS_PER_COMPANY: '100',
};

/** Polls until `check` returns a value (not undefined/false), or fails after `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function verifies(secret: string, r: ReceivedRequest): unknown {
  return new Webhook(secret).verify(r.body, r.headers as Record<string, string>);
}

describe('outbound webhook deliveries', () => {
  let t: TestApp;
  let a: TestCompany;
  let b: TestCompany;
  let admin: TestUser;
  let agent: TestUser;
  const receivers: WebhookReceiver[] = [];
  const sockets: LiveClient[] = [];
  let closed = false;

  const owner = (c: TestCompany) => ({ token: c.owner.accessToken });
  const receiver = async (...args: Parameters<typeof WebhookReceiver.start>) => {
    const r = await WebhookReceiver.start(...args);
    receivers.push(r);
    return r;
  };
  const createEndpoint = async (
    c: TestCompany,
    url: string,
    eventTypes: string[],
    extra: Record<string, unknown> = {},
  ): Promise<{ id: string; secret: string }> => {
    const res = await call(t, 'POST', '/api/v1/webhook-endpoints', owner(c), { url, eventTypes, ...extra });
    const body = await json(res);
    if (res.status !== 201) throw new Error(`create endpoint: ${res.status} ${JSON.stringify(body)}`);
    return { id: body.id, secret: body.secret };
  };
  let minute = 0;
  /** A call logged by hand: call.ringing, call.answered, call.ended. */
  const logCall = async (c: TestCompany) => {
    const start = new Date(Date.UTC(2026, 2, 2, 9, 0, 0) + minute++ * 60_000);
    const res = await call(t, 'POST', '/api/v1/calls', owner(c), {
      direction: 'inbound',
      from: '+15551230001',
      to: '+15550001234',
      startedAt: start.toISOString(),
      answeredAt: new Date(start.getTime() + 5_000).toISOString(),
      endedAt: new Date(start.getTime() + 65_000).toISOString(),
      endReason: 'completed',
    });
    expect(res.status).toBe(201);
    return json(res);
  };
  const deliveries = async (endpointId: string, qs = '', c: TestCompany = a) => {
    const res = await call(t, 'GET', `/api/v1/webhook-endpoints/${endpointId}/deliveries${qs}`, owner(c));
    expect(res.status).toBe(200);
    return (await json(res)).data as any[];
  };
  const endpoint = async (id: string, c: TestCompany = a) =>
    json(await call(t, 'GET', `/api/v1/webhook-endpoints/${id}`, owner(c)));

  beforeAll(async () => {
    t = await startTestApp({ env: ENV });
    a = await createCompany(t, 'hooks-a');
    b = await createCompany(t, 'hooks-b');
    admin = await createUser(t, a, 'admin');
    agent = await createUser(t, a, 'agent');
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    for (const r of receivers) await r.close();
    if (closed) await t?.db.drop();
    else await t?.close();
  });

  afterEach(() => {
    // Tests that move the clock put it back.
    if (!closed) t.app.get(WebhookClock).now = () => new Date();
  });

  it('the standardwebhooks package matches the published test vector', () => {
    const wh = new Webhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    expect(wh.sign('msg_p5jXN8AQM9LWM0D4loKWxJek', new Date(1614265330 * 1000), '{"test": 2432232314}')).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
  });

  it('a call lifecycle gives signed deliveries with the socket.io envelope; filters and tenants hold', async () => {
    const all = await receiver();
    const endedOnly = await receiver();
    const other = await receiver();
    const epAll = await createEndpoint(a, all.url, ['call.*'], { headers: { 'x-tenant-tag': 'acme' } });
    const epEnded = await createEndpoint(a, endedOnly.url, ['call.ended']);
    await createEndpoint(b, other.url, ['*']);
    const socket = await connect(t.url, { token: admin.accessToken });
    sockets.push(socket);

    const logged = await logCall(a);
    await logCall(b);
    const got = await all.waitFor(3);
    await endedOnly.waitFor(1);
    await other.waitFor(3);
    await socket.waitFor(3);
    await sleep(300); // nothing else arrives

    expect(all.requests).toHaveLength(3);
    const bodies = all.requests.map((r) => JSON.parse(r.body) as EventEnvelope);
    expect(bodies.map((e) => e.type).sort()).toEqual(['call.answered', 'call.ended', 'call.ringing']);
    for (const r of got) {
      expect(verifies(epAll.secret, r)).toBeTruthy();
      expect(() => verifies(epEnded.secret, r)).toThrow();
      const envelope = JSON.parse(r.body) as EventEnvelope;
      expect(r.headers['webhook-id']).toBe(envelope.id);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['user-agent']).toBe('Switchboard-Webhooks/1');
      expect(r.headers['x-tenant-tag']).toBe('acme');
      expect(Math.abs(Number(r.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(30);
      expect(envelope.companyId).toBe(a.id);
      expect((envelope.data as any).call.id).toBe(logged.id);
    }
    // The very envelope the socket got.
    const bySeq = new Map(socket.events.map((e) => [e.seq, e]));
    for (const e of bodies) expect(e).toEqual(bySeq.get(e.seq));

    expect(endedOnly.requests).toHaveLength(1);
    expect(JSON.parse(endedOnly.requests[0]!.body).type).toBe('call.ended');
    expect(verifies(epEnded.secret, endedOnly.requests[0]!)).toBeTruthy();
    // Company B's endpoint got B's events only, A's got A's only.
    expect(other.requests.every((r) => JSON.parse(r.body).companyId === b.id)).toBe(true);
    expect([...all.requests, ...endedOnly.requests].every((r) => JSON.parse(r.body).companyId === a.id)).toBe(true);

    const log = await until('three succeeded deliveries', async () => {
      const d = await deliveries(epAll.id);
      return d.length === 3 && d.every((x) => x.status === 'succeeded') && d;
    });
    for (const d of log) {
      expect(d).toMatchObject({ origin: 'event', attemptCount: 1, lastStatusCode: 200, lastErrorClass: null });
      expect(d.attempts).toEqual([
        expect.objectContaining({ attempt: 1, statusCode: 200, errorClass: null, responseSnippet: '' }),
      ]);
    }
  });

  it('retries after 500 on the schedule, then fails; the log has every attempt', async () => {
    const r = await receiver(() => ({ status: 500, body: 'e'.repeat(5_000) }));
    const ep = await createEndpoint(a, r.url, ['call.ended']);
    await logCall(a);
    await r.waitFor(3, 10_000);
    const [t1, t2, t3] = r.requests.map((x) => x.at);
    // 300 ms then 600 ms (± 10 % jitter), plus the time to notice and send.
    expect(t2! - t1!).toBeGreaterThanOrEqual(260);
    expect(t2! - t1!).toBeLessThan(1_500);
    expect(t3! - t2!).toBeGreaterThanOrEqual(530);
    expect(t3! - t2!).toBeLessThan(2_000);
    expect(new Set(r.requests.map((x) => x.headers['webhook-id'])).size).toBe(1);
    const [d] = await until('a failed delivery', async () => {
      const list = await deliveries(ep.id);
      return list[0]?.status === 'failed' && list;
    });
    expect(d).toMatchObject({ status: 'failed', attemptCount: 3, lastStatusCode: 500, lastErrorClass: 'http-status' });
    expect(d.attempts.map((x: any) => [x.attempt, x.statusCode, x.errorClass])).toEqual([
      [1, 500, 'http-status'],
      [2, 500, 'http-status'],
      [3, 500, 'http-status'],
    ]);
    for (const x of d.attempts) {
      expect(x.responseSnippet).toBe('e'.repeat(1024));
      expect(x.latencyMs).toBeGreaterThanOrEqual(0);
    }
    expect(d.attempts[0].nextAttemptAt).not.toBeNull();
    expect(d.attempts[2].nextAttemptAt).toBeNull();
    await sleep(800);
    expect(r.requests).toHaveLength(3);
  });

  it('a timeout is a failed attempt and is retried; success ends the series', async () => {
    const r = await receiver((req) => (req.n <= 2 ? { delayMs: 1_500 } : { status: 204 }));
    const ep = await createEndpoint(a, r.url, ['call.ended']);
    await logCall(a);
    await r.waitFor(3, 10_000);
    const [d] = await until('a succeeded delivery', async () => {
      const list = await deliveries(ep.id);
      return list[0]?.status === 'succeeded' && list;
    });
    expect(d.attempts.map((x: any) => [x.statusCode, x.errorClass])).toEqual([
      [null, 'timeout'],
      [null, 'timeout'],
      [204, null],
    ]);
    expect(d.attempts[0].latencyMs).toBeGreaterThanOrEqual(950);
    expect(d.attempts[0].latencyMs).toBeLessThan(1_400);
    expect((await endpoint(ep.id)).enabled).toBe(true);
  });

  it('an endpoint failing past the window is disabled (time injected): event to admins, audit entry', async () => {
    const r = await receiver(() => ({ status: 503 }));
    const ep = await createEndpoint(a, r.url, ['call.ended']);
    const socket = await connect(t.url, { token: admin.accessToken });
    sockets.push(socket);
    await logCall(a);
    await r.waitFor(1);
    await until('failing_since set', async () => {
      const d = await deliveries(ep.id);
      return d[0]?.attemptCount >= 1;
    });
    expect((await endpoint(ep.id)).enabled).toBe(true);

    // 2 h later (the window is 1 h): the next failure disables it.
    const clock = t.app.get(WebhookClock);
    clock.now = () => new Date(Date.now() + 2 * 3_600_000);
    await logCall(a);
    const disabled = await until(
      'the endpoint disabled',
      async () => {
        const e = await endpoint(ep.id);
        return e.enabled === false && e;
      },
      10_000,
    );
    expect(disabled.disabledReason).toBe('failing');
    const event = await until('webhook.endpoint.disabled on the socket', async () =>
      socket.events.find((e) => e.type === 'webhook.endpoint.disabled' && (e.data as any).endpointId === ep.id),
    );
    expect(event.data).toEqual({ endpointId: ep.id, url: r.url, reason: 'failing' });
    expect(event.agentId).toBeNull();
    const audit = await json(await call(t, 'GET', '/api/v1/audit-log?action=webhook_endpoint.disabled', owner(a)));
    expect(audit.data).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ actorType: 'system', targetId: ep.id, details: { reason: 'failing', url: r.url } }),
      ]),
    );
    // Disabled: nothing more is sent to it.
    const before = r.requests.length;
    await logCall(a);
    await sleep(500);
    expect(r.requests.length).toBe(before);
  });

  it('410 Gone disables the endpoint at once', async () => {
    const r = await receiver(() => ({ status: 410 }));
    const ep = await createEndpoint(a, r.url, ['call.ended']);
    await logCall(a);
    const e = await until('disabled', async () => {
      const x = await endpoint(ep.id);
      return x.enabled === false && x;
    });
    expect(e.disabledReason).toBe('gone');
    expect(r.requests).toHaveLength(1);
  });

  it('replay re-sends stored events of a window; manual retry re-sends a delivery (409 while in flight)', async () => {
    let fail = true;
    const r = await receiver(() => (fail ? { status: 500 } : { status: 200 }));
    const ep = await createEndpoint(a, r.url, ['call.*']);
    const since = new Date(Date.now() - 1_000).toISOString();
    await logCall(a);
    await r.waitFor(9); // 3 events × 3 attempts
    const failed = await until('three failed deliveries', async () => {
      const d = await deliveries(ep.id, '?status=failed');
      return d.length === 3 && d;
    });
    fail = false;
    r.requests.length = 0;

    // Manual retry of a failed delivery: a new delivery (origin retry), same event id.
    const retried = await call(
      t,
      'POST',
      `/api/v1/webhook-endpoints/${ep.id}/deliveries/${failed[0].id}/retry`,
      owner(a),
    );
    expect(retried.status).toBe(202);
    const rd = await json(retried);
    expect(rd).toMatchObject({ origin: 'retry', eventId: failed[0].eventId });
    expect(rd.attemptCount).toBeLessThanOrEqual(1);
    expect(rd.id).not.toBe(failed[0].id);
    await r.waitFor(1);
    expect(r.requests[0]!.headers['webhook-id']).toBe(failed[0].eventId);
    await until('the retry succeeded', async () => {
      const d = await json(await call(t, 'GET', `/api/v1/webhook-endpoints/${ep.id}/deliveries/${rd.id}`, owner(a)));
      return d.status === 'succeeded' && d;
    });

    // Replay: the three events of the window again (the event types filter applies).
    r.requests.length = 0;
    const replay = await call(t, 'POST', `/api/v1/webhook-endpoints/${ep.id}/replay`, owner(a), { since });
    expect(replay.status).toBe(202);
    const replayed = await json(replay);
    expect(replayed.queued).toBeGreaterThanOrEqual(3);
    await r.waitFor(replayed.queued);
    const ids = new Set(r.requests.map((x) => x.headers['webhook-id']));
    for (const d of failed) expect(ids.has(d.eventId)).toBe(true);
    for (const x of r.requests) expect(verifies(ep.secret, x)).toBeTruthy();
    const typed = await json(
      await call(t, 'POST', `/api/v1/webhook-endpoints/${ep.id}/replay`, owner(a), { since, types: ['call.answered'] }),
    );
    expect(typed.queued).toBeGreaterThanOrEqual(1);
    expect(typed.queued).toBeLessThan(replayed.queued);
    const audit = await json(await call(t, 'GET', '/api/v1/audit-log?action=webhook_endpoint.replayed', owner(a)));
    expect(audit.data.some((x: any) => x.targetId === ep.id)).toBe(true);

    // In flight: 409.
    r.script = () => ({ delayMs: 800 });
    r.requests.length = 0;
    await logCall(a);
    await r.waitFor(1);
    const inFlight = (await deliveries(ep.id, '?status=delivering'))[0];
    expect(inFlight).toBeDefined();
    await expectProblem(
      await call(t, 'POST', `/api/v1/webhook-endpoints/${ep.id}/deliveries/${inFlight.id}/retry`, owner(a)),
      409,
      'delivery-in-flight',
    );
  });

  it('replay windows that are invalid or too large are refused (422), bad input 400', async () => {
    const r = await receiver();
    const ep = await createEndpoint(a, r.url, ['*']);
    const path = `/api/v1/webhook-endpoints/${ep.id}/replay`;
    const now = Date.now();
    await expectProblem(
      await call(t, 'POST', path, owner(a), {
        since: new Date(now).toISOString(),
        until: new Date(now - 60_000).toISOString(),
      }),
      422,
      'replay-window-invalid',
    );
    await expectProblem(
      await call(t, 'POST', path, owner(a), { since: new Date(now - 30 * 86_400_000).toISOString() }),
      422,
      'replay-window-invalid',
    );
    const bad = await expectProblem(
      await call(t, 'POST', path, owner(a), { since: 'yesterday', types: ['nope'] }),
      400,
      'validation-failed',
    );
    expect(bad.errors.map((e: any) => e.field).sort()).toEqual(['since', 'types']);
    await expectProblem(
      await call(t, 'GET', `/api/v1/webhook-endpoints/${ep.id}/deliveries?status=bogus`, owner(a)),
      400,
      'validation-failed',
    );
    // More than WEBHOOK_REPLAY_MAX_EVENTS (50) events in the window.
    const c = await createCompany(t, 'hooks-replay');
    const rc = await receiver();
    const epc = await createEndpoint(c, rc.url, ['*']);
    const since = new Date(Date.now() - 1_000).toISOString();
    for (let i = 0; i < 17; i++) await logCall(c);
    await expectProblem(
      await call(t, 'POST', `/api/v1/webhook-endpoints/${epc.id}/replay`, owner(c), { since }),
      422,
      'replay-too-large',
    );
    const ok = await json(
      await call(t, 'POST', `/api/v1/webhook-endpoints/${epc.id}/replay`, owner(c), { since, types: ['call.ended'] }),
    );
    expect(ok).toMatchObject({ queued: 17 });
    expect(ok.to - ok.from).toBeGreaterThanOrEqual(16 * 3);
  });

  it('webhook.test sends a signed test event now and returns the attempt', async () => {
    const r = await receiver(() => ({ status: 200, body: 'thanks' }));
    const ep = await createEndpoint(a, r.url, ['call.ended']);
    const res = await call(t, 'POST', `/api/v1/webhook-endpoints/${ep.id}/test`, owner(a));
    expect(res.status).toBe(200);
    const out = await json(res);
    expect(out).toMatchObject({
      ok: true,
      attempt: { attempt: 1, statusCode: 200, errorClass: null, responseSnippet: 'thanks' },
    });
    expect(r.requests).toHaveLength(1);
    const body = JSON.parse(r.requests[0]!.body);
    expect(body).toMatchObject({ id: out.eventId, type: 'webhook.test', companyId: a.id, seq: 0, agentId: null });
    expect(verifies(ep.secret, r.requests[0]!)).toBeTruthy();

    r.script = () => ({ status: 500, body: 'nope' });
    const failed = await json(await call(t, 'POST', `/api/v1/webhook-endpoints/${ep.id}/test`, owner(a)));
    expect(failed).toMatchObject({
      ok: false,
      attempt: { statusCode: 500, errorClass: 'http-status', responseSnippet: 'nope' },
    });
    await sleep(700);
    expect(r.requests).toHaveLength(2); // a test is never retried
    expect((await endpoint(ep.id)).failingSince).toBeNull(); // nor counted against the endpoint
  });

  it('after a secret rotation both signatures are sent, each verifies with its secret', async () => {
    const r = await receiver();
    const ep = await createEndpoint(a, r.url, ['call.ended']);
    const rotated = await call(t, 'POST', `/api/v1/webhook-endpoints/${ep.id}/rotate-secret`, owner(a));
    expect(rotated.status).toBeLessThan(300);
    const { secret: fresh } = await json(rotated);
    expect(fresh).not.toBe(ep.secret);
    await logCall(a);
    const [got] = await r.waitFor(1);
    const signatures = String(got!.headers['webhook-signature']).split(' ');
    expect(signatures).toHaveLength(2);
    expect(signatures.every((s) => s.startsWith('v1,'))).toBe(true);
    expect(verifies(fresh, got!)).toBeTruthy();
    expect(verifies(ep.secret, got!)).toBeTruthy();
    expect(() => verifies('whsec_' + Buffer.alloc(24, 1).toString('base64'), got!)).toThrow();
  });

  it('a slow endpoint does not delay a fast one', async () => {
    const slow = await receiver(() => ({ delayMs: 5_000 }));
    const fast = await receiver();
    await createEndpoint(a, slow.url, ['call.*']);
    await createEndpoint(a, fast.url, ['call.*']);
    const t0 = Date.now();
    for (let i = 0; i < 8; i++) await logCall(a); // 24 events each
    await fast.waitFor(24, 5_000);
    const fastDone = Date.now() - t0;
    expect(fastDone).toBeLessThan(3_000);
    // Meanwhile the slow one holds no more than its per-endpoint concurrency (4): no attempt of it
    // can end before the 1 s timeout, so no more than 4 can have begun in its first 900 ms.
    expect(slow.requests.length).toBeGreaterThan(0);
    expect(slow.requests.filter((r) => r.at - t0 < 900).length).toBeLessThanOrEqual(4);
  });

  it('a slow endpoint does not delay others on the SAME origin (its own connections), of any company', async () => {
    // One server, endpoints told apart by path only (as an automation service's hooks are).
    const shared = await receiver((req) => (req.url === '/hook/slow' ? { delayMs: 5_000 } : {}));
    await createEndpoint(a, `${shared.url}/slow`, ['call.*']);
    await createEndpoint(a, `${shared.url}/fast-a`, ['call.*']);
    await createEndpoint(b, `${shared.url}/fast-b`, ['call.*']);
    const t0 = Date.now();
    for (let i = 0; i < 8; i++) {
      await logCall(a); // 24 events for the slow endpoint and fast-a
      await logCall(b); // 24 for fast-b
    }
    const fastOf = (path: string) => shared.requests.filter((r) => r.url === path);
    await shared.waitFor(24 + 24 + 1, 5_000);
    for (;;) {
      if (fastOf('/hook/fast-a').length >= 24 && fastOf('/hook/fast-b').length >= 24) break;
      if (Date.now() - t0 > 5_000) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const fastDone = Date.now() - t0;
    expect({ a: fastOf('/hook/fast-a').length, b: fastOf('/hook/fast-b').length }).toEqual({ a: 24, b: 24 });
    expect(fastDone).toBeLessThan(3_000);
    const slowEarly = shared.requests.filter((r) => r.url === '/hook/slow' && r.at - t0 < 900).length;
    expect(slowEarly).toBeGreaterThan(0);
    expect(slowEarly).toBeLessThanOrEqual(4);
  });

  it("respects the endpoint's rate limit", async () => {
    const r = await receiver();
    await createEndpoint(a, r.url, ['call.*'], { rateLimitPerSecond: 4 });
    for (let i = 0; i < 4; i++) await logCall(a); // 12 events
    await r.waitFor(12, 10_000);
    const t0 = r.requests[0]!.at;
    // A token bucket of 4 a second (burst 4): request i (from 0) comes no sooner than (i - 4) / 4 s
    // after the first (100 ms of slack for timers).
    r.requests.forEach((x, i) => expect(x.at - t0).toBeGreaterThanOrEqual((i - 4) * 250 - 100));
    expect(r.requests[11]!.at - t0).toBeGreaterThanOrEqual(1_650);
  });

  it('a stop waits for the sends in flight up to the grace, then gives their claims back', async () => {
    const r = await receiver(() => ({ delayMs: 3_000 }));
    const t3 = await startTestApp({ env: { ...ENV, SHUTDOWN_GRACE_MS: '300', WEBHOOK_DELIVERY_TIMEOUT_MS: '5000' } });
    let dropped = false;
    try {
      const c = await createCompany(t3, 'hooks-stop');
      const res = await call(t3, 'POST', '/api/v1/webhook-endpoints', owner(c), { url: r.url, eventTypes: ['*'] });
      expect(res.status).toBe(201);
      const res2 = await call(t3, 'POST', '/api/v1/calls', owner(c), {
        direction: 'inbound',
        from: '+15551230001',
        to: '+15550001234',
        startedAt: '2026-03-04T09:00:00Z',
      });
      expect(res2.status).toBe(201);
      await r.waitFor(1);
      const stopped = Date.now();
      await t3.app.close();
      expect(Date.now() - stopped).toBeLessThan(2_500);
      const rows = await query<{ status: string; lease_until: Date | null; attempts: number }>(
        t3.db.url,
        'SELECT status, lease_until, attempts FROM webhook_deliveries',
      );
      expect(rows).toEqual([{ status: 'pending', lease_until: null, attempts: 0 }]);
      expect(await query(t3.db.url, 'SELECT 1 FROM webhook_delivery_attempts')).toEqual([]);
      await t3.db.drop();
      dropped = true;
    } finally {
      if (!dropped) await t3.close().catch(() => t3.db.drop());
    }
  });

  it('garbage, huge, slow bodies and resets are failed attempts with their class; the app stays healthy', async () => {
    const garbage = await receiver(() => ({ garbage: true }));
    const huge = await receiver(() => ({ status: 200, hugeBytes: 20 * 1024 * 1024 }));
    const hugeError = await receiver(() => ({ status: 500, hugeBytes: 20 * 1024 * 1024 }));
    const slowBody = await receiver(() => ({ status: 200, slowBodyMs: 3_000 }));
    const reset = await receiver(() => ({ reset: true }));
    const target = await receiver();
    const redirect = await receiver(() => ({ status: 307, headers: { location: target.url } }));
    const plain = await receiver(); // an https URL to a plain-HTTP server: the TLS handshake fails
    const eps = {
      garbage: await createEndpoint(a, garbage.url, ['call.ended']),
      huge: await createEndpoint(a, huge.url, ['call.ended']),
      hugeError: await createEndpoint(a, hugeError.url, ['call.ended']),
      slowBody: await createEndpoint(a, slowBody.url, ['call.ended']),
      reset: await createEndpoint(a, reset.url, ['call.ended']),
      redirect: await createEndpoint(a, redirect.url, ['call.ended']),
      tls: await createEndpoint(a, plain.url.replace('http://', 'https://'), ['call.ended']),
    };
    await logCall(a);
    const first = async (id: string) =>
      until(`an attempt of ${id}`, async () => (await deliveries(id))[0]?.attempts[0], 10_000);
    expect(await first(eps.garbage.id)).toMatchObject({ statusCode: null, errorClass: 'invalid-response' });
    expect(await first(eps.slowBody.id)).toMatchObject({ statusCode: null, errorClass: 'timeout' });
    expect(await first(eps.reset.id)).toMatchObject({ statusCode: null, errorClass: 'reset' });
    expect(await first(eps.tls.id)).toMatchObject({ statusCode: null, errorClass: 'tls' });
    // A redirect is an answer that is not 2xx: not followed.
    expect(await first(eps.redirect.id)).toMatchObject({ statusCode: 307, errorClass: 'http-status' });
    expect(target.requests).toHaveLength(0);
    // A huge body is cut after its first 1 KB: the status decides.
    const h = await first(eps.huge.id);
    expect(h).toMatchObject({ statusCode: 200, errorClass: null });
    expect(h.responseSnippet).toBe('x'.repeat(1024));
    const he = await first(eps.hugeError.id);
    expect(he).toMatchObject({ statusCode: 500, errorClass: 'http-status' });
    expect(he.responseSnippet).toHaveLength(1024);
    expect(JSON.stringify(he)).not.toContain('never-echoed');
    const health = await t.fetch('/health');
    expect(health.status).toBe(200);
  });

  it('only managers and admins of the company see the log: agents 403, another company 404', async () => {
    const r = await receiver();
    const ep = await createEndpoint(a, r.url, ['call.ended']);
    const path = `/api/v1/webhook-endpoints/${ep.id}/deliveries`;
    await expectProblem(await call(t, 'GET', path, { token: agent.accessToken }), 403, 'forbidden');
    await expectProblem(await call(t, 'GET', path, owner(b)), 404, 'not-found');
    await expectProblem(await call(t, 'POST', `/api/v1/webhook-endpoints/${ep.id}/test`, owner(b)), 404, 'not-found');
    await expectProblem(
      await call(t, 'POST', `/api/v1/webhook-endpoints/${ep.id}/replay`, owner(b), { since: new Date().toISOString() }),
      404,
      'not-found',
    );
    const mine = await logCall(a).then(() => r.waitFor(1));
    expect(mine).toHaveLength(1);
    const [d] = await until('the delivery', async () => {
      const list = await deliveries(ep.id);
      return list.length > 0 && list;
    });
    await expectProblem(
      await call(t, 'GET', `/api/v1/webhook-endpoints/${ep.id}/deliveries/${d.id}`, owner(b)),
      404,
      'not-found',
    );
    await expectProblem(
      await call(t, 'POST', `/api/v1/webhook-endpoints/${ep.id}/deliveries/${d.id}/retry`, owner(b)),
      404,
      'not-found',
    );
    expect((await call(t, 'GET', path, { token: admin.accessToken })).status).toBe(200);
  });

  it('keyset pages walk the whole log', async () => {
    const r = await receiver();
    const ep = await createEndpoint(a, r.url, ['call.*']);
    for (let i = 0; i < 3; i++) await logCall(a);
    await r.waitFor(9);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const qs: string = `?limit=4${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await json(await call(t, 'GET', `/api/v1/webhook-endpoints/${ep.id}/deliveries${qs}`, owner(a)));
      seen.push(...page.data.map((d: any) => d.id));
      cursor = page.next;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(9);
    expect(await deliveries(ep.id, '?eventType=call.answered')).toHaveLength(3);
    expect(
      await deliveries(ep.id, `?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`),
    ).toHaveLength(0);
  });

  it('the retention sweep deletes deliveries completed long ago, with their attempts, in batches', async () => {
    const r = await receiver();
    const ep = await createEndpoint(a, r.url, ['call.*']);
    await logCall(a);
    const list = await until('three succeeded deliveries', async () => {
      const d = await deliveries(ep.id);
      return d.length === 3 && d.every((x) => x.status === 'succeeded') && d;
    });
    const [old, ...kept] = list;
    await query(t.db.url, `UPDATE webhook_deliveries SET completed_at = now() - interval '31 days' WHERE id = $1`, [
      old.id,
    ]);
    const deleted = await t.app.get(WebhookDeliveriesService).sweep();
    expect(deleted).toBeGreaterThanOrEqual(1);
    expect((await deliveries(ep.id)).map((d) => d.id).sort()).toEqual(kept.map((d: any) => d.id).sort());
    expect(await query(t.db.url, 'SELECT 1 FROM webhook_delivery_attempts WHERE delivery_id = $1', [old.id])).toEqual(
      [],
    );
  });

  it('metrics: deliveries by outcome, durations, pending per endpoint', async () => {
    const text = await (await t.fetch('/metrics')).text();
    expect(text).toMatch(/webhook_deliveries_total\{outcome="success"\} [1-9]/);
    expect(text).toMatch(/webhook_deliveries_total\{outcome="gave_up"\} [1-9]/);
    expect(text).toMatch(/webhook_delivery_duration_seconds_count [1-9]/);
    expect(text).toContain('# TYPE webhook_deliveries_pending gauge');
  });

  it('two instances on one database share the work: every event once, both sending', async () => {
    const r = await receiver();
    await createEndpoint(a, r.url, ['call.*']);
    const t4 = await startTestApp({ databaseUrl: t.db.url, env: ENV });
    try {
      const mine = t.app.get(WebhookDispatcherService).outcomes.success;
      const theirs = t4.app.get(WebhookDispatcherService).outcomes.success;
      for (let i = 0; i < 10; i++) {
        const res = await call(i % 2 ? t4 : t, 'POST', '/api/v1/calls', owner(a), {
          direction: 'inbound',
          from: '+15551230001',
          to: '+15550001234',
          startedAt: new Date(Date.UTC(2026, 5, 1, 9, i)).toISOString(),
          answeredAt: new Date(Date.UTC(2026, 5, 1, 9, i, 5)).toISOString(),
          endedAt: new Date(Date.UTC(2026, 5, 1, 9, i, 50)).toISOString(),
          endReason: 'completed',
        });
        expect(res.status).toBe(201);
      }
      await r.waitFor(30);
      await sleep(500);
      const counts = [...r.countsById().values()];
      expect(counts).toHaveLength(30);
      expect(counts.every((n) => n === 1)).toBe(true);
      expect(t.app.get(WebhookDispatcherService).outcomes.success).toBeGreaterThan(mine);
      expect(t4.app.get(WebhookDispatcherService).outcomes.success).toBeGreaterThan(theirs);
    } finally {
      await t4.app.close();
    }
  });

  it('SSRF at delivery time: restarted without the allow-list, an attempt is refused and nothing connects', async () => {
    const r = await receiver();
    const rebound = `http://${REBIND_HOST}:${r.port}/hook`;
    const direct = await createEndpoint(a, r.url, ['call.ended']);
    const byName = await createEndpoint(a, rebound, ['call.ended']);
    // The same database, served by an instance without the allow-list.
    await t.app.close();
    closed = true;
    const t2 = await startTestApp({
      databaseUrl: t.db.url,
      env: { ...ENV, WEBHOOK_ALLOWED_TARGETS: '' },
    });
    try {
      const before = r.requests.length;
      const res = await call(t2, 'POST', `/api/v1/webhook-endpoints/${byName.id}/test`, owner(a));
      expect(await json(res)).toMatchObject({ ok: false, attempt: { statusCode: null, errorClass: 'ssrf-blocked' } });
      const res2 = await call(t2, 'POST', '/api/v1/calls', owner(a), {
        direction: 'inbound',
        from: '+15551230001',
        to: '+15550001234',
        startedAt: '2026-03-03T09:00:00Z',
        endedAt: '2026-03-03T09:01:00Z',
        endReason: 'completed',
      });
      expect(res2.status).toBe(201);
      for (const id of [direct.id, byName.id]) {
        await until(
          `a refused attempt for ${id}`,
          async () => {
            const list = await json(await call(t2, 'GET', `/api/v1/webhook-endpoints/${id}/deliveries`, owner(a)));
            return list.data[0]?.attempts[0]?.errorClass === 'ssrf-blocked';
          },
          10_000,
        );
      }
      expect(r.requests.length).toBe(before);
      expect((await t2.fetch('/health')).status).toBe(200);
    } finally {
      await t2.app.close();
    }
  });
});
