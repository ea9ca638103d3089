import { DataSource, type DataSourceOptions } from 'typeorm';
import { dataSourceOptions } from './data-source.js';

/** Arbitrary constant: the advisory lock under which one instance at a time migrates. */
const MIGRATION_LOCK = 7_261_001;

/**
 * Applies pending migrations, one transaction each, under a PostgreSQL advisory lock so that
 * instances starting together do not race. Returns the names applied.
 */
export async function runMigrations(url: string): Promise<string[]> {
  return withDataSource(dataSourceOptions(url, 2), async (ds) => {
    await ds.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      const applied = await ds.runMigrations({ transaction: 'each' });
      return applied.map((m) => m.name);
    } finally {
      await ds.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  });
}

export async function revertLastMigration(url: string): Promise<void> {
  await withDataSource(dataSourceOptions(url, 2), (ds) => ds.undoLastMigration({ transaction: 'each' }));
}

/** The SQL that would bring the database to what the entities describe (empty when in step). */
export async function schemaDiff(ds: DataSource): Promise<{ up: string[]; down: string[] }> {
  const sql = await ds.driver.createSchemaBuilder().log();
  return {
    up: sql.upQueries.map((q) => q.query),
    down: sql.downQueries.map((q) => q.query),
  };
}

export async function withDataSource<T>(options: DataSourceOptions, work: (ds: DataSource) => Promise<T>): Promise<T> {
  const ds = new DataSource(options);
  await ds.initialize();
  try {
    return await work(ds);
  } finally {
    await ds.destroy();
  }
}
