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

  const shutdown = (signal: string) => {
    server.logger.info({ signal }, 'shutting down: finishing in-flight requests');
    const timer = setTimeout(() => {
      server.logger.error({ timeoutMs: server.config.SHUTDOWN_TIMEOUT_MS }, 'shutdown timed out; exiting');
      process.exit(1);
    }, server.config.SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    server
      .close()
      .then(() => {
        server.logger.info('stopped cleanly');
        process.exit(0);
      })
      .catch((error: unknown) => {
        server.logger.error({ err: error }, 'error while shutting down');
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

function describe(error: unknown): string {
  if (error instanceof AggregateError) return error.errors.map(describe).join('; ');
  return error instanceof Error ? error.message : String(error);
}

void main();
