import type { DynamicModule, Type } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createApp } from '../../src/app.factory.js';
import { createLogger } from '../../src/common/logging/logger.js';
import { loadConfig, type ResolvedConfig } from '../../src/config/config.schema.js';
import { settleConfig } from '../../src/config/local-secrets.js';
import { runMigrations } from '../../src/database/migrator.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { LogCapture } from './log-capture.js';

/** The operator secret the test application is started with. */
export const TEST_INTERNAL_SECRET = 'test-internal-secret-of-32-characters-or-more';
/** 32 bytes in base64: the key of connection secrets in tests. */
export const TEST_PBX_SECRETS_KEY = Buffer.alloc(32, 7).toString('base64');
/** What the test app believes its public URL is (webhook URLs, Twilio signatures). */
export const TEST_PUBLIC_BASE_URL = 'https://switchboard.example.test';

export interface TestApp {
  app: NestFastifyApplication;
  config: ResolvedConfig;
  url: string;
  db: TestDatabase;
  logs: LogCapture;
  fetch(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  env?: Record<string, string>;
  imports?: (Type | DynamicModule)[];
  /** An existing database URL instead of a fresh one (the caller owns it). */
  databaseUrl?: string;
}

/** The environment every test server gets (the in-process app and the spawned server alike). */
export const TEST_ENV: Readonly<Record<string, string>> = {
  NODE_ENV: 'test',
  JWT_SECRET: 'test-jwt-secret-of-at-least-32-characters!',
  PBX_SECRETS_KEY: TEST_PBX_SECRETS_KEY,
  PUBLIC_BASE_URL: TEST_PUBLIC_BASE_URL,
  PBX_ALLOW_HTTP: 'true',
  INTERNAL_API_SECRET: TEST_INTERNAL_SECRET,
  PASSWORD_HASH_COST: '10',
  // Tests sign in and call far more often than a person; the tests of limits set their own.
  RATE_LIMIT_LOGIN_PER_MIN: '100000',
  RATE_LIMIT_TENANT_PER_MIN: '100000',
  RATE_LIMIT_OPERATOR_PER_MIN: '100000',
  // Tests talk to 127.0.0.0/8 and ::1 only: outbound webhook targets never go to DNS.
  WEBHOOK_DNS_OFFLINE: 'true',
};

/**
 * Boots the real application (the same `createApp` as `npm start`) on Fastify, listening on
 * 127.0.0.1 on a free port, against a fresh migrated database of its own.
 */
export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const db: TestDatabase = options.databaseUrl
    ? { url: options.databaseUrl, name: '', drop: async () => undefined }
    : await createTestDatabase(expect.getState().testPath?.split('/').pop()?.split('.')[0] ?? 'e2e');
  await runMigrations(db.url);
  const loaded = loadConfig({
    ...TEST_ENV,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info',
    JOBS_ENABLED: 'false',
    ...options.env,
  });
  const config: ResolvedConfig = settleConfig(loaded, {
    jwtSecret: loaded.JWT_SECRET!,
    pbxSecretsKey: loaded.PBX_SECRETS_KEY!,
  });
  const logs = new LogCapture();
  const logger = createLogger({ level: config.LOG_LEVEL, pretty: false }, logs);
  const app = await createApp({ config, databaseUrl: db.url, logger, imports: options.imports });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.getHttpServer().address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    app,
    config,
    url,
    db,
    logs,
    fetch: (path, init) => fetch(url + path, init),
    close: async () => {
      await app.close();
      await db.drop();
    },
  };
}
