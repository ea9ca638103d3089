import { json } from './support/http.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from '../src/database/embedded-postgres.js';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * Readiness follows the database: this file runs its own PostgreSQL (embedded) so that it can
 * stop it under the running application and start it again.
 */
describe('readiness goes red when the database stops, and green when it is back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-ready-'));
  let pg: EmbeddedPostgresHandle;
  let port: number;
  let t: TestApp;

  beforeAll(async () => {
    pg = await startEmbeddedPostgres({ dataDir: dir, port: 0, persistent: true, database: 'ready' });
    port = Number(new URL(pg.url).port);
    t = await startTestApp({ databaseUrl: pg.url });
  }, 60_000);
  afterAll(async () => {
    await t?.app.close();
    await pg?.stop();
  });

  it('200 while PostgreSQL runs, 503 problem naming the database when it stops, 200 again after', async () => {
    const up = await t.fetch('/health/ready');
    expect(up.status).toBe(200);

    await pg.stop();
    const down = await t.fetch('/health/ready');
    expect(down.status).toBe(503);
    expect(down.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    const body = await json(down);
    expect(body).toMatchObject({
      type: 'urn:switchboard:problem:not-ready',
      status: 503,
      detail: 'Not ready: database unreachable.',
      checks: { database: { status: 'down' }, webhookBacklog: { status: 'up', known: false } },
    });
    expect(JSON.stringify(body)).not.toMatch(/password|postgres:\/\//);

    // Liveness does not depend on the database.
    expect((await t.fetch('/health')).status).toBe(200);

    pg = await startEmbeddedPostgres({ dataDir: dir, port, persistent: true, database: 'ready' });
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await t.fetch('/health/ready')).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
  }, 60_000);
});

describe('readiness checks Redis when REDIS_URL is set', () => {
  it('503 naming redis when Redis does not answer', async () => {
    const t = await startTestApp({ env: { REDIS_URL: 'redis://127.0.0.1:1' } });
    try {
      const res = await t.fetch('/health/ready');
      expect(res.status).toBe(503);
      const body = await json(res);
      expect(body.detail).toBe('Not ready: redis unreachable.');
      expect(body.checks.database.status).toBe('up');
      expect(body.checks.redis.status).toBe('down');
    } finally {
      await t.close();
    }
  });

  // Needs a running Redis: CI sets REDIS_URL (see .ci/run); without one this case is skipped.
  (process.env.REDIS_URL ? it : it.skip)('200 with redis up when Redis answers', async () => {
    const t = await startTestApp({ env: { REDIS_URL: process.env.REDIS_URL! } });
    try {
      const res = await t.fetch('/health/ready');
      expect(res.status).toBe(200);
      expect((await json(res)).details.redis).toEqual({ status: 'up' });
    } finally {
      await t.close();
    }
  });
});
