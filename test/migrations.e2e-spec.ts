import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { MIGRATIONS } from '../migrations/index.js';
import { revertLastMigration, runMigrations, schemaDiff } from '../src/database/migrator.js';
import { createTestDatabase, query, type TestDatabase } from './support/database.js';
import { startTestApp } from './support/test-app.js';

const tables = async (url: string) =>
  (
    await query<{ table_name: string }>(
      url,
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
    )
  ).map((r) => r.table_name);

describe('migrations', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('migrations');
  });
  afterAll(() => db.drop());

  it('build the schema from an empty database, once', async () => {
    expect(await tables(db.url)).toEqual([]);
    const applied = await runMigrations(db.url);
    expect(applied).toEqual(MIGRATIONS.map((m) => m.name));
    expect(await tables(db.url)).toEqual(expect.arrayContaining(['audit_log', 'migrations']));
    expect(await runMigrations(db.url)).toEqual([]);
  });

  it('two instances migrating at once apply each migration exactly once', async () => {
    const other = await createTestDatabase('migrations_race');
    try {
      const [a, b] = await Promise.all([runMigrations(other.url), runMigrations(other.url)]);
      expect([...a, ...b]).toEqual(MIGRATIONS.map((m) => m.name));
      const rows = await query<{ name: string }>(other.url, 'SELECT name FROM migrations ORDER BY id');
      expect(rows.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => m.name));
    } finally {
      await other.drop();
    }
  });

  it('match the entities exactly (no drift)', async () => {
    const t = await startTestApp({ databaseUrl: db.url });
    try {
      const ds = t.app.get<DataSource>(getDataSourceToken());
      expect(ds.entityMetadatas.length).toBeGreaterThan(0);
      const diff = await schemaDiff(ds);
      expect(diff.up).toEqual([]);
    } finally {
      await t.app.close();
    }
  });

  it('revert down to an empty schema and apply again', async () => {
    for (let i = 0; i < MIGRATIONS.length; i++) await revertLastMigration(db.url);
    expect(await tables(db.url)).toEqual(['migrations']);
    expect(await runMigrations(db.url)).toHaveLength(MIGRATIONS.length);
  });
});
