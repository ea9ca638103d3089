import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Server as HttpServer, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { createApp } from './app.factory.js';
import { createLogger } from './common/logging/logger.js';
import { loadConfig, type ResolvedConfig } from './config/config.schema.js';
import { resolveSecrets } from './config/local-secrets.js';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from './database/embedded-postgres.js';
import { runMigrations } from './database/migrator.js';
import { LifecycleService } from './health/lifecycle.service.js';

export interface RunningServer {
  app: NestFastifyApplication;
  config: ResolvedConfig;
  logger: Logger;
  /** Where the service answers, e.g. http://localhost:3000 */
  url: string;
  /**
   * Graceful stop, in this order: readiness answers 503 and no new connection is accepted; the
   * HTTP requests in flight are answered (up to SHUTDOWN_GRACE_MS); then the application closes
   * (inbox batches finish, sockets are closed with a reconnect hint, AMI sessions stop and release
   * their locks, pg-boss stops, the pool closes); the embedded PostgreSQL stops last.
   */
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
  let drain: HttpDrain | undefined;
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
    drain = new HttpDrain(app.getHttpServer());
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
  const http: HttpDrain = drain;
  return {
    app: running,
    config,
    logger,
    url,
    close: () =>
      (closing ??= (async () => {
        running.get(LifecycleService).beginDrain();
        const { cut } = await http.drain(config.SHUTDOWN_GRACE_MS);
        if (cut > 0)
          logger.warn({ cut, graceMs: config.SHUTDOWN_GRACE_MS }, 'requests still running after the grace were cut');
        await running.close();
        await embedded?.stop();
      })()),
  };
}

/**
 * The HTTP side of a stop. Fastify's own close() comes later (inside app.close(), after the
 * shutdown hooks) and answers 503 to requests arriving on open keep-alive connections; here the
 * server stops accepting connections first, idle keep-alive connections are closed, and every
 * request already on a connection is served normally (with `Connection: close`), so that no
 * client gets a 5xx for a stop. socket.io's connections (long polls, WebSockets) are left to the
 * gateway, which closes them with a reconnect hint afterwards.
 */
class HttpDrain {
  private readonly requests = new Set<ServerResponse>();
  /** Open HTTP connections; true while the current request is one of socket.io's. */
  private readonly sockets = new Map<Socket, boolean>();
  private draining = false;

  constructor(private readonly server: HttpServer) {
    server.on('connection', (socket: Socket) => {
      this.sockets.set(socket, false);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('upgrade', (_req, socket: Socket) => this.sockets.delete(socket));
    // Ahead of Fastify's handler, so that the header is set before any answer is written.
    server.prependListener('request', (req, res: ServerResponse) => {
      const io = req.url?.startsWith('/socket.io/') ?? false;
      if (this.sockets.has(req.socket as Socket)) this.sockets.set(req.socket as Socket, io);
      if (io) return;
      this.requests.add(res);
      res.once('close', () => this.requests.delete(res));
      if (this.draining && !res.headersSent) res.setHeader('connection', 'close');
    });
  }

  /** Resolves when no request is in flight, or after `graceMs`; `cut`: requests then cut off. */
  async drain(graceMs: number): Promise<{ cut: number }> {
    this.draining = true;
    this.server.close(); // no new connections; its callback waits for every socket: not awaited
    const deadline = Date.now() + graceMs;
    for (;;) {
      // A connection whose request has begun (even one still sending its headers) is not idle.
      this.server.closeIdleConnections();
      const busy = [...this.sockets.values()].some((io) => !io);
      if ((this.requests.size === 0 && !busy) || Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const cut = this.requests.size;
    for (const [socket, io] of this.sockets) if (!io) socket.destroy();
    return { cut };
  }
}
