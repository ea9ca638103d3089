import 'reflect-metadata';
import { ConfigError } from './config/config.schema.js';
import { type RunningServer, startServer } from './server.js';

/** Entry point: `npm start`. Exit code 1 on a bad configuration or a failed start. */
async function main(): Promise<void> {
  let server: RunningServer;
  try {
    server = await startServer(process.env);
  } catch (error) {
    const message = error instanceof ConfigError ? error.message : `Switchboard failed to start: ${describe(error)}`;
    process.stderr.write(message + '\n');
    process.exit(1);
  }

  // See RunningServer.close for the order. A second signal does not wait: exit code 1 at once
  // (the embedded PostgreSQL, our child, is still signalled on exit).
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      server.logger.warn({ signal }, 'second signal while stopping: exiting now');
      exit(server, 1);
      return;
    }
    stopping = true;
    server.logger.info(
      { signal, graceMs: server.config.SHUTDOWN_GRACE_MS, timeoutMs: server.config.SHUTDOWN_TIMEOUT_MS },
      'shutting down: finishing in-flight requests',
    );
    const timer = setTimeout(() => {
      server.logger.error({ timeoutMs: server.config.SHUTDOWN_TIMEOUT_MS }, 'shutdown timed out; exiting');
      exit(server, 1);
    }, server.config.SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    server
      .close()
      .then(() => {
        server.logger.info({ signal }, 'stopped cleanly');
        exit(server, 0);
      })
      .catch((error: unknown) => {
        server.logger.error({ err: error }, 'error while shutting down');
        exit(server, 1);
      });
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

/** pino writes asynchronously: what it holds is written before the process ends. */
function exit(server: RunningServer, code: number): void {
  const force = setTimeout(() => process.exit(code), 1_000);
  force.unref();
  server.logger.flush(() => process.exit(code));
}

function describe(error: unknown): string {
  if (error instanceof AggregateError) return error.errors.map(describe).join('; ');
  return error instanceof Error ? error.message : String(error);
}

void main();
