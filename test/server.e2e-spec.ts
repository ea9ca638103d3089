import { chmodSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../src/config/config.schema.js';
import { JobsService } from '../src/jobs/jobs.service.js';
import { startServer } from '../src/server.js';
import { createTestDatabase, query } from './support/database.js';

describe('startServer (what `npm start` runs)', () => {
  it('refuses a bad configuration with one line naming the variable, before touching anything', async () => {
    await expect(startServer({ PORT: 'eighty', LOG_LEVEL: 'silent' })).rejects.toThrow(
      new ConfigError('Invalid configuration: PORT must be a whole number from 0 to 65535 (got "eighty")'),
    );
  });

  it('with DATABASE_URL: migrates, starts pg-boss, serves, and stops gracefully after in-flight requests', async () => {
    const db = await createTestDatabase('server');
    const server = await startServer({
      DATABASE_URL: db.url,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      JOBS_ENABLED: 'true',
    });
    try {
      expect(server.url).toMatch(/^http:\/\/localhost:\d+$/);
      const ready = await fetch(`${server.url}/health/ready`);
      expect(ready.status).toBe(200);
      expect(server.app.get(JobsService).started).toBe(true);
      const schemas = await query<{ schema_name: string }>(
        db.url,
        `SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'pgboss'`,
      );
      expect(schemas).toHaveLength(1);
      const jobId = await server.app
        .get(JobsService)
        .queue.createQueue('smoke')
        .then(() => server.app.get(JobsService).queue.send('smoke', { ok: true }));
      expect(jobId).toMatch(/^[0-9a-f-]{36}$/);

      // A slow request in flight when the server is asked to stop still completes.
      const inFlight = fetch(`${server.url}/health/ready`).then((r) => r.status);
      await new Promise((r) => setTimeout(r, 20));
      await server.close();
      expect(await inFlight).toBe(200);
      await expect(fetch(`${server.url}/health`)).rejects.toThrow();
    } finally {
      await server.close();
      await db.drop();
    }
  }, 60_000);

  it('without DATABASE_URL: runs on the embedded PostgreSQL, whose data survives a restart', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'switchboard-embedded-'));
    chmodSync(parent, 0o755); // PostgreSQL runs as its own user and must reach its directory
    const dir = join(parent, 'postgres');
    const env = {
      EMBEDDED_PG_DIR: dir,
      EMBEDDED_PG_PORT: String(40000 + Math.floor(Math.random() * 20000)),
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      JOBS_ENABLED: 'false',
    };
    const first = await startServer(env);
    expect((await fetch(`${first.url}/health/ready`)).status).toBe(200);
    const password = readFileSync(`${dir}.password`, 'utf8').trim();
    const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${env.EMBEDDED_PG_PORT}/switchboard`;
    await query(url, `INSERT INTO audit_log (actor_type, action) VALUES ('system', 'restart-check')`);
    await first.close();

    const second = await startServer(env);
    try {
      expect((await fetch(`${second.url}/health/ready`)).status).toBe(200);
      const rows = await query<{ action: string }>(url, `SELECT action FROM audit_log`);
      expect(rows).toEqual([{ action: 'restart-check' }]);
    } finally {
      await second.close();
    }
  }, 90_000);
});
