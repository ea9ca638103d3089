import type { INestApplicationContext } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import type { Server, ServerOptions } from 'socket.io';
import type { ResolvedConfig } from '../config/config.schema.js';

/**
 * socket.io on the application's HTTP server at `/socket.io`. With REDIS_URL, the Redis adapter
 * connects the instances (cross-instance event fan-out and presence); otherwise in memory.
 * (Clients resume from their last sequence number; socket.io's own state recovery is not used.)
 */
export class SwitchboardIoAdapter extends IoAdapter {
  private readonly redis: Redis[] = [];

  constructor(
    app: INestApplicationContext,
    private readonly config: ResolvedConfig,
  ) {
    super(app);
  }

  override createIOServer(port: number, options?: ServerOptions): Server {
    const server = super.createIOServer(port, {
      ...(options as ServerOptions),
      serveClient: false,
      path: '/socket.io',
      cors: { origin: this.config.CORS_ORIGINS.length ? this.config.CORS_ORIGINS : false, credentials: true },
      maxHttpBufferSize: 64 * 1024,
      // A client that stops answering pings (a dead network, a stalled tab) is dropped after
      // interval + timeout; HTTP_CONNECTION_TIMEOUT_MS stays above the interval (long polls wait it).
      pingInterval: this.config.SOCKET_IO_PING_INTERVAL_MS,
      pingTimeout: this.config.SOCKET_IO_PING_TIMEOUT_MS,
    }) as Server;
    if (this.config.REDIS_URL) {
      const pub = new Redis(this.config.REDIS_URL, {
        connectionName: 'switchboard-io-pub',
        maxRetriesPerRequest: null,
      });
      const sub = pub.duplicate({ connectionName: 'switchboard-io-sub' });
      for (const client of [pub, sub]) client.on('error', () => undefined);
      this.redis.push(pub, sub);
      server.adapter(createAdapter(pub, sub, { key: 'switchboard-io', requestsTimeout: 2_000 }));
    }
    return server;
  }

  override async close(server: Server): Promise<void> {
    await super.close(server);
    // quit() waits for a connection that may never come (Redis down): only a ready client quits.
    await Promise.all(
      this.redis.splice(0).map((c) =>
        c.status === 'ready'
          ? c.quit().then(
              () => undefined,
              () => c.disconnect(),
            )
          : c.disconnect(),
      ),
    );
  }

  get usesRedis(): boolean {
    return Boolean(this.config.REDIS_URL);
  }
}
