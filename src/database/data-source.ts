import type { DataSourceOptions } from 'typeorm';
import { MIGRATIONS } from '../../migrations/index.js';

/**
 * The one description of our PostgreSQL connection, shared by the application (through
 * TypeOrmModule), the migration runner at start-up and the migration CLI.
 */
export function dataSourceOptions(
  url: string,
  poolMax = 10,
  entities: DataSourceOptions['entities'] = [],
): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities,
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    migrationsTransactionMode: 'each',
    uuidExtension: 'pgcrypto',
    synchronize: false,
    logging: false,
    extra: {
      max: poolMax,
      application_name: 'switchboard',
      connectionTimeoutMillis: 5_000,
    },
  };
}
