import { json } from './support/http.js';
import { call, createCompany } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

// Needs a running Redis: CI sets REDIS_URL (see .ci/run); without one these cases are skipped.
const REDIS_URL = process.env.REDIS_URL;
const withRedis = REDIS_URL ? describe : describe.skip;

withRedis('rate limits hold across instances through Redis', () => {
  let first: TestApp;
  let second: TestApp;

  beforeAll(async () => {
    const env = { REDIS_URL: REDIS_URL!, RATE_LIMIT_TENANT_PER_MIN: '4' };
    first = await startTestApp({ env });
    second = await startTestApp({ env, databaseUrl: first.db.url });
  });
  afterAll(async () => {
    await second?.app.close();
    await first?.close();
  });

  it('counts one API key’s requests on both instances together', async () => {
    const co = await createCompany(first, 'redis-rl');
    const statuses: number[] = [];
    for (const t of [first, second, first, second])
      statuses.push((await call(t, 'GET', '/api/v1/company', { key: co.apiKey })).status);
    expect(statuses).toEqual([200, 200, 200, 200]);
    const over = await call(second, 'GET', '/api/v1/company', { key: co.apiKey });
    expect(over.status).toBe(429);
    expect(over.headers.get('ratelimit-limit')).toBe('4');
    expect(over.headers.get('ratelimit-remaining')).toBe('0');
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await json(over)).type).toBe('urn:switchboard:problem:too-many-requests');
    expect((await call(first, 'GET', '/api/v1/company', { key: co.apiKey })).status).toBe(429);
    // Another credential of the same company has its own budget.
    expect((await call(first, 'GET', '/api/v1/company', { token: co.owner.accessToken })).status).toBe(200);
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
