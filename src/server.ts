import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';
import { createApp } from './app.factory.js';
import { createLogger } from './common/logging/logger.js';
import { loadConfig, type ResolvedConfig } from './config/config.schema.js';
import { resolveSecrets } from './config/local-secrets.js';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from './database/embedded-postgres.js';
import { runMigrations } from './database/migrator.js';

export interface RunningServer {
  app: NestFastifyApplication;
  config: ResolvedConfig;
  logger: Logger;
  /** Where the service answers, e.g. http://localhost:3000 */
  url: string;
  /** Graceful stop: stop accepting, finish in-flight requests, close sockets, jobs, database. */
  close(): Promise<void>;
}

/**
 * Starts Switchboard from an environment: validates configuration (throws ConfigError), starts
 * the embedded PostgreSQL when DATABASE_URL is unset, applies pending migrations, listens.
 */
export async function startServer(env: Record<string, string | undefined>): Promise<RunningServer> {
  const config = resolveSecrets(loadConfig(env));
  const logger = createLogger({ level: config.LOG_LEVEL, pretty: config.LOG_PRETTY });

  let embedded: EmbeddedPostgresHandle | undefined;
  let app: NestFastifyApplication | undefined;
  try {
    let databaseUrl = config.DATABASE_URL;
    if (!databaseUrl) {
      embedded = await startEmbeddedPostgres({
        dataDir: config.EMBEDDED_PG_DIR,
        port: config.EMBEDDED_PG_PORT,
        persistent: true,
        database: 'switchboard',
        onLog: (line) => logger.debug({ component: 'embedded-postgres' }, line),
      });
      databaseUrl = embedded.url;
      logger.info(
        { dataDir: config.EMBEDDED_PG_DIR, port: config.EMBEDDED_PG_PORT },
        'embedded PostgreSQL started (set DATABASE_URL to use your own server)',
      );
    }
    const applied = await runMigrations(databaseUrl);
    logger.info(
      { applied },
      applied.length ? `applied ${applied.length} migration(s)` : 'database schema is up to date',
    );

    app = await createApp({ config, databaseUrl, logger });
    await app.listen({ port: config.PORT, host: config.HOST });
  } catch (error) {
    await app?.close().catch(() => undefined);
    await embedded?.stop().catch(() => undefined);
    throw error;
  }

  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  const host = ['0.0.0.0', '::', '127.0.0.1', '::1'].includes(config.HOST) ? 'localhost' : config.HOST;
  const url = `http://${host}:${port}`;
  logger.info({ url, docs: `${url}/docs` }, `Switchboard listening on ${url} (Swagger UI at ${url}/docs)`);

  let closing: Promise<void> | undefined;
  const running = app;
  return {
    app: running,
    config,
    logger,
    url,
    close: () =>
      (closing ??= (async () => {
        await running.close();
        await embedded?.stop();
      })()),
  };
}
