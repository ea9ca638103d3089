// Jest loads global setup through require(), without moduleNameMapper: hence no `.js` suffix.
// @ts-expect-error TS2835: the suffix TypeScript wants is the one require() cannot resolve here.
import { startEmbeddedPostgres } from '../../src/database/embedded-postgres';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * With `TEST_DATABASE_URL` set, e2e tests use that server (each test file creates its own
 * database on it). Unset, one embedded PostgreSQL is started for the whole run in a temporary
 * directory and stopped by the global teardown.
 */
export default async function globalSetup(): Promise<void> {
  if (process.env.TEST_DATABASE_URL) return;
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-test-pg-'));
  const pg = await startEmbeddedPostgres({ dataDir: dir, port: 0, persistent: false });
  process.env.TEST_DATABASE_URL = pg.adminUrl;
  (globalThis as Record<string, unknown>).__SWITCHBOARD_TEST_PG__ = pg;
}
