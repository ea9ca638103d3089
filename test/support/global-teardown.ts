import type { EmbeddedPostgresHandle } from '../../src/database/embedded-postgres.js';

export default async function globalTeardown(): Promise<void> {
  const pg = (globalThis as Record<string, unknown>).__SWITCHBOARD_TEST_PG__ as EmbeddedPostgresHandle | undefined;
  await pg?.stop();
}
