import { randomInt } from 'node:crypto';
import {
  newCallSid,
  TWILIO_FAKE_ACCOUNT_SID,
  TWILIO_FAKE_AUTH_TOKEN,
  twilioDelivery,
  twilioStatusCallback,
} from './fakes/twilio-fake.js';
import { expectProblem, json } from './support/http.js';
import { call, createCompany, type TestCompany, unique } from './support/tenant.js';
import { startTestApp, TEST_PUBLIC_BASE_URL, type TestApp } from './support/test-app.js';

// Needs a running Redis: CI sets REDIS_URL (see .ci/run); without one these cases are skipped.
const REDIS_URL = process.env.REDIS_URL;
const withRedis = REDIS_URL ? describe : describe.skip;

/** Asserts the 429 of a route class: problem+json, Retry-After within the window, RateLimit-* headers. */
async function expectLimited(res: Response, limit: number): Promise<void> {
  const body = await expectProblem(res, 429, 'too-many-requests');
  expect(body.detail).toMatch(/Rate limit of \d+ requests per minute exceeded/);
  const retryAfter = Number(res.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(res.headers.get('ratelimit-limit')).toBe(String(limit));
  expect(res.headers.get('ratelimit-remaining')).toBe('0');
}

/** A client address of its own for each case (TRUST_PROXY): counters of earlier runs stay apart. */
const clientIp = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;

withRedis('rate limits hold across instances through Redis', () => {
  const TENANT = 4;
  const LOGIN = 3;
  const WEBHOOK = 3;
  let first: TestApp;
  let second: TestApp;
  /** Same database, no Redis, no tight limits: sets companies up without spending the budgets. */
  let setup: TestApp;

  beforeAll(async () => {
    const env = {
      REDIS_URL: REDIS_URL!,
      TRUST_PROXY: 'true',
      RATE_LIMIT_TENANT_PER_MIN: String(TENANT),
      RATE_LIMIT_LOGIN_PER_MIN: String(LOGIN),
      RATE_LIMIT_WEBHOOK_PER_MIN: String(WEBHOOK),
    };
    first = await startTestApp({ env });
    second = await startTestApp({ env, databaseUrl: first.db.url });
    setup = await startTestApp({ databaseUrl: first.db.url });
  });
  afterAll(async () => {
    await setup?.app.close();
    await second?.app.close();
    await first?.close();
  });

  it('API per key: one API key’s requests count on both instances together', async () => {
    const co = await createCompany(setup, 'redis-rl');
    const statuses: number[] = [];
    for (const t of [first, second, first, second])
      statuses.push((await call(t, 'GET', '/api/v1/company', { key: co.apiKey })).status);
    expect(statuses).toEqual([200, 200, 200, 200]);
    await expectLimited(await call(second, 'GET', '/api/v1/company', { key: co.apiKey }), TENANT);
    expect((await call(first, 'GET', '/api/v1/company', { key: co.apiKey })).status).toBe(429);
    // Another credential of the same company has its own budget.
    expect((await call(first, 'GET', '/api/v1/company', { token: co.owner.accessToken })).status).toBe(200);
  });

  it('login brute force: attempts on one account count on both instances together', async () => {
    const co = await createCompany(setup, 'redis-login');
    const attempt = (t: TestApp, ip: string, password: string) =>
      t.fetch('/api/v1/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
        body: JSON.stringify({ email: co.owner.email, password }),
      });
    // Wrong passwords from three addresses, alternating instances: 401 until the account's budget is spent.
    const statuses: number[] = [];
    for (const t of [first, second, first]) statuses.push((await attempt(t, clientIp(), 'wrong-password-1234')).status);
    expect(statuses).toEqual([401, 401, 401]);
    // Now even the right password is refused, from a fresh address, on either instance.
    await expectLimited(await attempt(second, clientIp(), co.owner.password), LOGIN);
    expect((await attempt(first, clientIp(), co.owner.password)).status).toBe(429);
  });

  it('login brute force: one address trying many accounts is limited on both instances', async () => {
    const ip = clientIp();
    const attempt = (t: TestApp) =>
      t.fetch('/api/v1/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
        body: JSON.stringify({ email: `${unique('nobody')}@example.com`, password: 'wrong-password-1234' }),
      });
    const statuses: number[] = [];
    for (const t of [first, second, first]) statuses.push((await attempt(t)).status);
    expect(statuses).toEqual([401, 401, 401]);
    await expectLimited(await attempt(second), LOGIN);
  });

  it('webhooks per connection: deliveries to both instances count together', async () => {
    const co: TestCompany = await createCompany(setup, 'redis-hook');
    const created = await call(
      setup,
      'POST',
      '/api/v1/pbx-connections',
      { token: co.owner.accessToken },
      {
        provider: 'twilio',
        name: unique('Twilio'),
        settings: { accountSid: TWILIO_FAKE_ACCOUNT_SID },
        secrets: { authToken: TWILIO_FAKE_AUTH_TOKEN },
      },
    );
    expect(created.status).toBe(201);
    const connectionId = (await json(created)).id as string;
    const post = (t: TestApp) => {
      const d = twilioDelivery(
        TWILIO_FAKE_AUTH_TOKEN,
        `${TEST_PUBLIC_BASE_URL}/webhooks/twilio/${connectionId}/status`,
        twilioStatusCallback({
          accountSid: TWILIO_FAKE_ACCOUNT_SID,
          callSid: newCallSid(),
          status: 'ringing',
          direction: 'inbound',
          from: '+15551230001',
          to: '+15550001000',
          at: new Date(),
        }),
      );
      return t.fetch(`/webhooks/twilio/${connectionId}/status`, { method: 'POST', headers: d.headers, body: d.body });
    };
    const statuses: number[] = [];
    for (const t of [first, second, first]) statuses.push((await post(t)).status);
    expect(statuses).toEqual([200, 200, 200]);
    await expectLimited(await post(second), WEBHOOK);
    expect((await post(first)).status).toBe(429);
  });
});

describe('rate limiter outage', () => {
  it('lets requests through when Redis does not answer (and says so in the log)', async () => {
    const t = await startTestApp({ env: { REDIS_URL: 'redis://127.0.0.1:1', RATE_LIMIT_TENANT_PER_MIN: '1' } });
    try {
      const co = await createCompany(t, 'rl-down');
      for (let i = 0; i < 3; i++)
        expect((await call(t, 'GET', '/api/v1/company', { key: co.apiKey })).status).toBe(200);
      expect(t.logs.lines.some((l) => l.msg === 'rate limiter unavailable (Redis); request allowed')).toBe(true);
    } finally {
      await t.close();
    }
  });
});
