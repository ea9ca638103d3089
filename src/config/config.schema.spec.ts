import { ConfigError, loadConfig } from './config.schema.js';

describe('loadConfig', () => {
  it('gives every variable its default on an empty environment', () => {
    const c = loadConfig({});
    expect(c).toEqual({
      NODE_ENV: 'development',
      HOST: '0.0.0.0',
      PORT: 3000,
      DATABASE_URL: undefined,
      DATABASE_POOL_MAX: 10,
      EMBEDDED_PG_DIR: './.data/postgres',
      EMBEDDED_PG_PORT: 54329,
      REDIS_URL: undefined,
      LOG_LEVEL: 'info',
      LOG_PRETTY: false,
      CORS_ORIGINS: [],
      BODY_LIMIT_BYTES: 1_048_576,
      JSON_MAX_DEPTH: 32,
      HTTP_HEADERS_TIMEOUT_MS: 10_000,
      HTTP_REQUEST_TIMEOUT_MS: 30_000,
      HTTP_KEEP_ALIVE_TIMEOUT_MS: 72_000,
      HTTP_CONNECTION_TIMEOUT_MS: 60_000,
      HTTP_MAX_HEADER_BYTES: 16_384,
      SOCKET_IO_PING_INTERVAL_MS: 25_000,
      SOCKET_IO_PING_TIMEOUT_MS: 20_000,
      TRUST_PROXY: false,
      SHUTDOWN_GRACE_MS: 10_000,
      SHUTDOWN_TIMEOUT_MS: 20_000,
      JOBS_ENABLED: true,
      JWT_SECRET: undefined,
      JWT_ACCESS_TTL_SECONDS: 900,
      REFRESH_TOKEN_TTL_DAYS: 30,
      INTERNAL_API_SECRET: undefined,
      AUTH_REGISTRATION_ENABLED: true,
      PASSWORD_HASH_COST: 16,
      API_KEY_CACHE_TTL_MS: 10_000,
      RATE_LIMIT_TENANT_PER_MIN: 300,
      RATE_LIMIT_OPERATOR_PER_MIN: 100,
      RATE_LIMIT_LOGIN_PER_MIN: 10,
      RATE_LIMIT_WEBHOOK_PER_MIN: 1000,
      PUBLIC_BASE_URL: undefined,
      PBX_SECRETS_KEY: undefined,
      PBX_SECRETS_KEYS_PREVIOUS: [],
      PBX_HTTP_TIMEOUT_MS: 10_000,
      PBX_ALLOW_HTTP: false,
      DIALPAD_BASE_URL: 'https://dialpad.com',
      DIALPAD_SANDBOX_BASE_URL: 'https://sandbox.dialpad.com',
      DIALPAD_CLIENT_ID: undefined,
      DIALPAD_CLIENT_SECRET: undefined,
      TWILIO_BASE_URL: 'https://api.twilio.com',
      WEBHOOK_MAX_ATTEMPTS: 8,
      WEBHOOK_PROCESSING_ENABLED: true,
      WEBHOOK_PROCESS_WORKERS: 2,
      WEBHOOK_PROCESS_BATCH: 500,
      WEBHOOK_POLL_INTERVAL_MS: 1_000,
      WEBHOOK_BACKLOG_THRESHOLD: 10_000,
      WEBHOOK_MAX_AGE_MS: 300_000,
      WEBHOOK_CLOCK_LEEWAY_MS: 30_000,
      WEBHOOK_DELIVERY_ENABLED: true,
      WEBHOOK_DELIVERY_TIMEOUT_MS: 10_000,
      WEBHOOK_RETRY_SCHEDULE: [0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000],
      WEBHOOK_RETRY_JITTER_PCT: 20,
      WEBHOOK_ENDPOINT_DISABLE_AFTER_MS: 432_000_000,
      WEBHOOK_ENDPOINTS_PER_COMPANY: 20,
      WEBHOOK_ENDPOINT_CONCURRENCY: 8,
      WEBHOOK_DELIVERY_CONCURRENCY: 256,
      WEBHOOK_SECRET_OVERLAP_MS: 86_400_000,
      WEBHOOK_ALLOWED_TARGETS: [],
      WEBHOOK_DNS_OVERRIDES: [],
      WEBHOOK_DNS_OFFLINE: false,
      WEBHOOK_REPLAY_MAX_EVENTS: 10_000,
      WEBHOOK_DELIVERY_RETENTION_DAYS: 30,
      ASTERISK_ENABLED: true,
      ASTERISK_LOCK_POLL_MS: 3_000,
      ASTERISK_COMMAND_TIMEOUT_MS: 10_000,
      AMI_PING_INTERVAL_MS: 10_000,
      AMI_PING_TIMEOUT_MS: 5_000,
      AMI_RECONNECT_MAX_MS: 30_000,
      AMI_AUTH_RETRY_MS: 60_000,
      AMI_APPLY_RETRY_MAX_MS: 5_000,
      AMI_PENDING_MAX_EVENTS: 50_000,
    });
  });

  it('reads a retry schedule of durations with units, and refuses one it cannot read', () => {
    expect(loadConfig({ WEBHOOK_RETRY_SCHEDULE: '0, 300ms,2s,1m,1h,1d' }).WEBHOOK_RETRY_SCHEDULE).toEqual([
      0, 300, 2_000, 60_000, 3_600_000, 86_400_000,
    ]);
    expect(() => loadConfig({ WEBHOOK_RETRY_SCHEDULE: '0,5 minutes' })).toThrow(/WEBHOOK_RETRY_SCHEDULE/);
    expect(() => loadConfig({ WEBHOOK_RETRY_SCHEDULE: '-1s' })).toThrow(/WEBHOOK_RETRY_SCHEDULE/);
  });

  it('refuses an operator secret shorter than 32 characters, without echoing it', () => {
    expect(() => loadConfig({ INTERNAL_API_SECRET: 'short-secret' })).toThrow(
      new ConfigError('Invalid configuration: INTERNAL_API_SECRET must be at least 32 characters (value hidden)'),
    );
    expect(loadConfig({ INTERNAL_API_SECRET: 'x'.repeat(32) }).INTERNAL_API_SECRET).toBe('x'.repeat(32));
  });

  it('requires JWT_SECRET, PBX_SECRETS_KEY and PUBLIC_BASE_URL in production, and refuses PBX_ALLOW_HTTP there', () => {
    const key = Buffer.alloc(32, 1).toString('base64');
    const prod = { NODE_ENV: 'production', PBX_SECRETS_KEY: key, PUBLIC_BASE_URL: 'https://sb.example.com' };
    expect(() => loadConfig({ ...prod })).toThrow(
      new ConfigError('Invalid configuration: JWT_SECRET is required when NODE_ENV=production (unset)'),
    );
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 's'.repeat(32) })).toThrow(
      new ConfigError(
        'Invalid configuration: PBX_SECRETS_KEY is required when NODE_ENV=production (unset); ' +
          'PUBLIC_BASE_URL is required when NODE_ENV=production (unset)',
      ),
    );
    expect(() => loadConfig({ ...prod, JWT_SECRET: 's'.repeat(32), PBX_ALLOW_HTTP: 'true' })).toThrow(
      /PBX_ALLOW_HTTP must be false when NODE_ENV=production/,
    );
    expect(loadConfig({ ...prod, JWT_SECRET: 's'.repeat(32) }).JWT_SECRET).toBe('s'.repeat(32));
  });

  it('takes a PBX secrets key of exactly 32 bytes in base64, without echoing a wrong one', () => {
    expect(loadConfig({ PBX_SECRETS_KEY: Buffer.alloc(32, 2).toString('base64') }).PBX_SECRETS_KEY).toBeDefined();
    expect(() => loadConfig({ PBX_SECRETS_KEY: Buffer.alloc(16, 2).toString('base64') })).toThrow(
      new ConfigError(
        'Invalid configuration: PBX_SECRETS_KEY must be 32 bytes in base64 (openssl rand -base64 32) (value hidden)',
      ),
    );
  });

  it('parses typed values', () => {
    const c = loadConfig({
      PORT: '8080',
      DATABASE_URL: 'postgres://u:p@db:5432/sb',
      REDIS_URL: 'redis://127.0.0.1:6379',
      LOG_PRETTY: 'yes',
      CORS_ORIGINS: 'https://a.example, https://b.example ,',
      TRUST_PROXY: '10.0.0.0/8,127.0.0.1',
    });
    expect(c.PORT).toBe(8080);
    expect(c.DATABASE_URL).toBe('postgres://u:p@db:5432/sb');
    expect(c.LOG_PRETTY).toBe(true);
    expect(c.CORS_ORIGINS).toEqual(['https://a.example', 'https://b.example']);
    expect(c.TRUST_PROXY).toEqual(['10.0.0.0/8', '127.0.0.1']);
    expect(loadConfig({ TRUST_PROXY: '2' }).TRUST_PROXY).toBe(2);
    expect(loadConfig({ TRUST_PROXY: 'true' }).TRUST_PROXY).toBe(true);
  });

  it.each([
    [{ PORT: 'abc' }, 'Invalid configuration: PORT must be a whole number from 0 to 65535 (got "abc")'],
    [{ PORT: '70000' }, 'Invalid configuration: PORT must be a whole number from 0 to 65535 (got "70000")'],
    [
      { LOG_LEVEL: 'loud' },
      'Invalid configuration: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
    ],
    [{ LOG_PRETTY: 'maybe' }, 'Invalid configuration: LOG_PRETTY must be true or false (got "maybe")'],
    [
      { NODE_ENV: 'staging' },
      'Invalid configuration: NODE_ENV must be one of development, production, test (got "staging")',
    ],
  ])('refuses %j with one line naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(new ConfigError(message));
  });

  it('never repeats the value of a variable that may hold credentials', () => {
    let error: unknown;
    try {
      loadConfig({ DATABASE_URL: 'mysql://root:hunter2@db/x' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(
      'Invalid configuration: DATABASE_URL must start with postgres: or postgresql:// (value hidden)',
    );
  });

  it('keeps the idle socket timeout above the socket.io ping interval (long polls wait that long)', () => {
    expect(() => loadConfig({ HTTP_CONNECTION_TIMEOUT_MS: '20000' })).toThrow(
      'Invalid configuration: HTTP_CONNECTION_TIMEOUT_MS must be 0 or greater than SOCKET_IO_PING_INTERVAL_MS (got 20000 and 25000)',
    );
    expect(loadConfig({ HTTP_CONNECTION_TIMEOUT_MS: '0' }).HTTP_CONNECTION_TIMEOUT_MS).toBe(0);
    expect(
      loadConfig({ HTTP_CONNECTION_TIMEOUT_MS: '3000', SOCKET_IO_PING_INTERVAL_MS: '2000' }).HTTP_CONNECTION_TIMEOUT_MS,
    ).toBe(3000);
  });

  it('names every bad variable on the one line', () => {
    expect(() => loadConfig({ PORT: 'x', BODY_LIMIT_BYTES: '1' })).toThrow(
      /^Invalid configuration: PORT must .+; BODY_LIMIT_BYTES must be a whole number from 1024 to 104857600 \(got "1"\)$/,
    );
  });
});
