import { z } from 'zod';

/**
 * The one configuration schema. Every variable the service reads is here, with its default;
 * `.env.example` documents each of them. The process refuses to start on a bad value.
 */

const bool = (fallback: boolean) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      if (['true', '1', 'yes', 'on'].includes(v)) return true;
      if (['false', '0', 'no', 'off'].includes(v)) return false;
      ctx.addIssue({ code: 'custom', message: 'must be true or false' });
      return z.NEVER;
    });

const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number from ${min} to ${max}` });
        return z.NEVER;
      }
      return Number(v);
    });

const optionalUrl = (protocols: string[]) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      let url: URL;
      try {
        url = new URL(v);
      } catch {
        ctx.addIssue({ code: 'custom', message: `must be a URL (${protocols.join(' or ')})` });
        return z.NEVER;
      }
      if (!protocols.includes(url.protocol)) {
        ctx.addIssue({ code: 'custom', message: `must start with ${protocols.join(' or ')}//` });
        return z.NEVER;
      }
      return v;
    });

/** An http(s) URL with a default; kept without a trailing slash. */
const urlOr = (fallback: string) =>
  optionalUrl(['https:', 'http:']).transform((v) => (v ?? fallback).replace(/\/+$/, ''));

const list = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  );

/** `false`, `true`, a hop count, or a comma list of addresses/CIDRs, as Fastify's `trustProxy` takes. */
const trustProxy = z
  .string()
  .trim()
  .optional()
  .transform((v): boolean | number | string[] => {
    if (v === undefined || v === '' || v.toLowerCase() === 'false') return false;
    if (v.toLowerCase() === 'true') return true;
    if (/^\d+$/.test(v)) return Number(v);
    return v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  });

/** A duration: a whole number of ms, or with a unit (`500ms`, `5s`, `5m`, `2h`, `1d`). */
const DURATION = /^(\d+)(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A comma list of durations (ms), e.g. a retry schedule; at least one. */
const durations = (fallback: string) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      const items = (v === undefined || v === '' ? fallback : v).split(',').map((s) => s.trim().toLowerCase());
      const out: number[] = [];
      for (const item of items) {
        const m = DURATION.exec(item);
        if (!m) {
          ctx.addIssue({ code: 'custom', message: 'must be a comma list of durations such as 0,5s,5m,2h' });
          return z.NEVER;
        }
        out.push(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!);
      }
      if (out.length > 50) {
        ctx.addIssue({ code: 'custom', message: 'must have at most 50 entries' });
        return z.NEVER;
      }
      return out;
    });

const secret = (min: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      if (v.length < min) {
        ctx.addIssue({ code: 'custom', message: `must be at least ${min} characters` });
        return z.NEVER;
      }
      return v;
    });

/** A 32-byte key written in base64 (or base64url). */
const encryptionKey = z
  .string()
  .trim()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v === '') return undefined;
    if (!/^[A-Za-z0-9+/_-]{43}=?$/.test(v) || Buffer.from(v, 'base64').length !== 32) {
      ctx.addIssue({ code: 'custom', message: 'must be 32 bytes in base64 (openssl rand -base64 32)' });
      return z.NEVER;
    }
    return v;
  });

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().trim().min(1).default('0.0.0.0'),
  PORT: int(3000, 0, 65535),
  DATABASE_URL: optionalUrl(['postgres:', 'postgresql:']),
  DATABASE_POOL_MAX: int(10, 1, 500),
  EMBEDDED_PG_DIR: z.string().trim().min(1).default('./.data/postgres'),
  EMBEDDED_PG_PORT: int(54329, 1, 65535),
  REDIS_URL: optionalUrl(['redis:', 'rediss:']),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_PRETTY: bool(false),
  CORS_ORIGINS: list,
  BODY_LIMIT_BYTES: int(1_048_576, 1024, 104_857_600),
  /** Deepest nesting of arrays/objects a JSON body may have (deeper: 400 invalid-body, before validation). */
  JSON_MAX_DEPTH: int(32, 2, 1_000),
  /** Slow clients: all request headers must arrive within this time (else the socket is closed). */
  HTTP_HEADERS_TIMEOUT_MS: int(10_000, 100, 600_000),
  /** The whole request (headers and body) must arrive within this time (0: no limit). */
  HTTP_REQUEST_TIMEOUT_MS: int(30_000, 0, 3_600_000),
  /** An idle keep-alive socket is closed after this time (above a load balancer's idle timeout). */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(72_000, 100, 3_600_000),
  /** A socket with no traffic at all for this long is closed (above SOCKET_IO_PING_INTERVAL_MS: long polls wait that long). */
  HTTP_CONNECTION_TIMEOUT_MS: int(60_000, 0, 3_600_000),
  /** Largest size of all request headers together (larger: 431). */
  HTTP_MAX_HEADER_BYTES: int(16_384, 1_024, 1_048_576),
  /** socket.io heartbeat: the server pings this often and drops a client that does not answer within the timeout. */
  SOCKET_IO_PING_INTERVAL_MS: int(25_000, 100, 600_000),
  SOCKET_IO_PING_TIMEOUT_MS: int(20_000, 100, 600_000),
  TRUST_PROXY: trustProxy,
  /**
   * On SIGTERM/SIGINT: how long in-flight HTTP requests and inbox batches may take to finish
   * (readiness answers 503 meanwhile); connections still open after it are closed.
   */
  SHUTDOWN_GRACE_MS: int(10_000, 0, 600_000),
  /** The whole stop (grace, then sockets, AMI, jobs, pool, embedded database); past it, exit code 1. Above SHUTDOWN_GRACE_MS. */
  SHUTDOWN_TIMEOUT_MS: int(20_000, 1_000, 600_000),
  JOBS_ENABLED: bool(true),

  // Access
  JWT_SECRET: secret(32),
  JWT_ACCESS_TTL_SECONDS: int(900, 60, 86_400),
  REFRESH_TOKEN_TTL_DAYS: int(30, 1, 365),
  INTERNAL_API_SECRET: secret(32),
  AUTH_REGISTRATION_ENABLED: bool(true),
  PASSWORD_HASH_COST: int(16, 10, 20),
  API_KEY_CACHE_TTL_MS: int(10_000, 0, 300_000),
  RATE_LIMIT_TENANT_PER_MIN: int(300, 1, 1_000_000),
  RATE_LIMIT_OPERATOR_PER_MIN: int(100, 1, 1_000_000),
  RATE_LIMIT_LOGIN_PER_MIN: int(10, 1, 1_000_000),
  RATE_LIMIT_WEBHOOK_PER_MIN: int(1000, 1, 1_000_000),

  // Phone systems (PBX connections, webhooks, click-to-call)
  /** This service's public URL: webhook URLs and Twilio signatures are computed from it. */
  PUBLIC_BASE_URL: optionalUrl(['http:', 'https:']),
  /** AES-256-GCM key (32 bytes, base64) for connection secrets at rest. */
  PBX_SECRETS_KEY: encryptionKey,
  /** Older keys still accepted for decryption while rotating (comma list of base64 keys). */
  PBX_SECRETS_KEYS_PREVIOUS: list,
  PBX_HTTP_TIMEOUT_MS: int(10_000, 100, 120_000),
  /** Lets connection settings name plain-http vendor URLs (tests only; refused in production). */
  PBX_ALLOW_HTTP: bool(false),
  DIALPAD_BASE_URL: urlOr('https://dialpad.com'),
  DIALPAD_SANDBOX_BASE_URL: urlOr('https://sandbox.dialpad.com'),
  DIALPAD_CLIENT_ID: z.string().trim().optional(),
  DIALPAD_CLIENT_SECRET: secret(8),
  TWILIO_BASE_URL: urlOr('https://api.twilio.com'),
  /** Attempts before an inbox row is marked failed (a failed row waits 2^attempts s, at most 10 min). */
  WEBHOOK_MAX_ATTEMPTS: int(8, 1, 100),
  /**
   * Whether this instance processes the webhook inbox (claims batches in the transaction that
   * applies them). Off: rows only accumulate (tests standing for a crash, ingest-only benches).
   */
  WEBHOOK_PROCESSING_ENABLED: bool(true),
  /** Inbox workers per instance: each holds its own partitions of calls (a pool connection each). */
  WEBHOOK_PROCESS_WORKERS: int(2, 1, 64),
  /** Inbox rows one worker claims and applies in one transaction at most. */
  WEBHOOK_PROCESS_BATCH: int(500, 1, 10_000),
  /** Fallback poll of the inbox when no ingest signal or NOTIFY arrives (ms). */
  WEBHOOK_POLL_INTERVAL_MS: int(1_000, 20, 60_000),
  /** Pending inbox rows past which /health/ready reports a webhook backlog (degraded, still 200). */
  WEBHOOK_BACKLOG_THRESHOLD: int(10_000, 1, 100_000_000),
  /**
   * A signed provider webhook whose own signed time (Twilio's Timestamp, Dialpad's iat/exp or
   * event_timestamp) is older than this is refused 403 `stale-webhook`: a replay (README "Replay
   * protection").
   */
  WEBHOOK_MAX_AGE_MS: int(300_000, 10_000, 86_400_000),
  /** Clock difference tolerated with the providers, both ways, on top of WEBHOOK_MAX_AGE_MS. */
  WEBHOOK_CLOCK_LEEWAY_MS: int(30_000, 0, 600_000),

  // Outbound webhooks (src/webhooks/endpoints, src/webhooks/deliveries) and the generic incoming webhook
  /** Whether this instance sends outbound webhook deliveries (off: they wait, durable, for an instance that does). */
  WEBHOOK_DELIVERY_ENABLED: bool(true),
  /** A delivery succeeds on a 2xx answered (headers and body) within this time. */
  WEBHOOK_DELIVERY_TIMEOUT_MS: int(10_000, 100, 120_000),
  /**
   * Delay before each attempt of a delivery (the first is normally 0); after the last one the
   * delivery is failed. Each delay gets ± WEBHOOK_RETRY_JITTER_PCT % of jitter.
   */
  WEBHOOK_RETRY_SCHEDULE: durations('0,5s,5m,30m,2h,5h,10h,10h'),
  WEBHOOK_RETRY_JITTER_PCT: int(20, 0, 100),
  /** An endpoint whose deliveries have failed without a success for this long is disabled. */
  WEBHOOK_ENDPOINT_DISABLE_AFTER_MS: int(432_000_000, 1_000, 31_536_000_000),
  /** Outbound webhook endpoints per company at most. */
  WEBHOOK_ENDPOINTS_PER_COMPANY: int(20, 1, 1_000),
  /** Deliveries in flight to one endpoint at once, per instance (a slow endpoint holds no more). */
  WEBHOOK_ENDPOINT_CONCURRENCY: int(8, 1, 256),
  /** Deliveries in flight at once, per instance. */
  WEBHOOK_DELIVERY_CONCURRENCY: int(256, 1, 4_096),
  /** After a secret is rotated the old one stays valid this long (both signatures are sent / accepted). */
  WEBHOOK_SECRET_OVERLAP_MS: int(86_400_000, 0, 2_592_000_000),
  /**
   * Addresses (CIDRs, comma list: `127.0.0.1/32,10.1.0.0/16,::1/128`) that outbound webhooks may
   * target although the SSRF guard refuses private, loopback, link-local, CGNAT, multicast and
   * metadata addresses; only these may be plain http. Empty: public https targets only.
   */
  WEBHOOK_ALLOWED_TARGETS: list,
  /**
   * Fixed answers for host names of outbound webhook targets (`host=address`, comma list), used
   * before DNS: split-horizon setups, and tests (which never query DNS).
   */
  WEBHOOK_DNS_OVERRIDES: list,
  /** Never query DNS for outbound webhook targets: only WEBHOOK_DNS_OVERRIDES, `localhost` and IP literals resolve. */
  WEBHOOK_DNS_OFFLINE: bool(false),
  /** Events one replay request may re-send at most. */
  WEBHOOK_REPLAY_MAX_EVENTS: int(10_000, 1, 1_000_000),
  /** Delivery log rows (deliveries and their attempts) are kept this long. */
  WEBHOOK_DELIVERY_RETENTION_DAYS: int(30, 1, 3_650),

  // Asterisk / FreePBX over AMI
  /** Whether this instance holds AMI connections (false: it never takes one). */
  ASTERISK_ENABLED: bool(true),
  /** How often an instance tries to take the AMI connections nobody holds (takeover time). */
  ASTERISK_LOCK_POLL_MS: int(3_000, 100, 60_000),
  /** How long a command waits for the instance that holds the connection. */
  ASTERISK_COMMAND_TIMEOUT_MS: int(10_000, 500, 120_000),
  /** Ping when nothing was received for this long; no answer within the timeout: reconnect. */
  AMI_PING_INTERVAL_MS: int(10_000, 100, 600_000),
  AMI_PING_TIMEOUT_MS: int(5_000, 100, 120_000),
  /** Reconnect backoff ceiling (it starts at 0.5 s and doubles, with ±30 % jitter). */
  AMI_RECONNECT_MAX_MS: int(30_000, 100, 600_000),
  /** After a refused login, the next try waits this long (no tight loop on wrong credentials). */
  AMI_AUTH_RETRY_MS: int(60_000, 100, 3_600_000),
  /** Storing AMI events failed: retried until stored, the delay doubling from 100 ms up to this. */
  AMI_APPLY_RETRY_MAX_MS: int(5_000, 100, 60_000),
  /** AMI events waiting to be stored past which the socket is no longer read (back-pressure). */
  AMI_PENDING_MAX_EVENTS: int(50_000, 100, 10_000_000),
});

export type AppConfig = z.output<typeof configSchema>;

/** The configuration once every secret is settled (JWT_SECRET and PBX_SECRETS_KEY are then present). */
export type ResolvedConfig = AppConfig & { JWT_SECRET: string; PBX_SECRETS_KEY: string; PUBLIC_BASE_URL: string };

/** Values of these variables may hold credentials: an error names the variable, never the value. */
const SECRET_LIKE = /SECRET|KEY|PASSWORD|TOKEN|_URL$/;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Validates an environment and returns the typed configuration, or throws a ConfigError whose
 * message is one line naming every bad variable.
 */
export function loadConfig(env: Record<string, string | undefined>): AppConfig {
  const result = configSchema.safeParse(env);
  if (result.success) {
    if (result.data.NODE_ENV === 'production') {
      const missing = (['JWT_SECRET', 'PBX_SECRETS_KEY', 'PUBLIC_BASE_URL'] as const).filter((k) => !result.data[k]);
      const problems = missing.map((k) => `${k} is required when NODE_ENV=production (unset)`);
      if (result.data.PBX_ALLOW_HTTP) problems.push('PBX_ALLOW_HTTP must be false when NODE_ENV=production');
      if (problems.length > 0) throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
    }
    // The grace is one phase of the stop: the rest (sockets, AMI, jobs, database) needs time too.
    if (result.data.SHUTDOWN_TIMEOUT_MS <= result.data.SHUTDOWN_GRACE_MS) {
      throw new ConfigError(
        `Invalid configuration: SHUTDOWN_TIMEOUT_MS must be greater than SHUTDOWN_GRACE_MS (got ${result.data.SHUTDOWN_TIMEOUT_MS} and ${result.data.SHUTDOWN_GRACE_MS})`,
      );
    }
    // socket.io long polls wait up to a ping interval with no traffic: the idle timeout must not cut them.
    const idle = result.data.HTTP_CONNECTION_TIMEOUT_MS;
    if (idle > 0 && idle <= result.data.SOCKET_IO_PING_INTERVAL_MS) {
      throw new ConfigError(
        `Invalid configuration: HTTP_CONNECTION_TIMEOUT_MS must be 0 or greater than SOCKET_IO_PING_INTERVAL_MS (got ${idle} and ${result.data.SOCKET_IO_PING_INTERVAL_MS})`,
      );
    }
    return result.data;
  }
  const problems = result.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? '(root)');
    const got = env[name];
    const shown =
      got === undefined
        ? 'unset'
        : SECRET_LIKE.test(name)
          ? 'value hidden'
          : `got "${got.length > 40 ? got.slice(0, 40) + '…' : got}"`;
    const message = issue.code === 'invalid_value' ? `must be one of ${issue.values.join(', ')}` : issue.message;
    return `${name} ${message} (${shown})`;
  });
  throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
}
