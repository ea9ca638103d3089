import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { AppConfig, ResolvedConfig } from './config.schema.js';

/**
 * Outside production, a JWT secret or PBX secrets key that is not configured is made once and kept in
 * `<data dir>/secrets.json` (mode 0600), so `npm start` needs no setup and sessions survive
 * restarts. Production requires JWT_SECRET (loadConfig refuses to start without it).
 */
export function resolveSecrets(config: AppConfig): ResolvedConfig {
  if (config.JWT_SECRET && config.PBX_SECRETS_KEY) {
    return settleConfig(config, { jwtSecret: config.JWT_SECRET, pbxSecretsKey: config.PBX_SECRETS_KEY });
  }
  const file = join(dirname(config.EMBEDDED_PG_DIR), 'secrets.json');
  let stored: { jwtSecret?: string; pbxSecretsKey?: string } = {};
  if (existsSync(file)) stored = JSON.parse(readFileSync(file, 'utf8')) as typeof stored;
  if (!stored.jwtSecret || !stored.pbxSecretsKey) {
    stored.jwtSecret ??= randomBytes(48).toString('base64url');
    stored.pbxSecretsKey ??= randomBytes(32).toString('base64');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(stored, null, 2) + '\n', { mode: 0o600 });
  }
  return settleConfig(config, {
    jwtSecret: config.JWT_SECRET ?? stored.jwtSecret,
    pbxSecretsKey: config.PBX_SECRETS_KEY ?? stored.pbxSecretsKey,
  });
}

/**
 * The configuration with its secrets settled and the derived defaults filled in:
 * PUBLIC_BASE_URL defaults to http://localhost:<PORT> (loadConfig requires it in production).
 */
export function settleConfig(config: AppConfig, secrets: { jwtSecret: string; pbxSecretsKey: string }): ResolvedConfig {
  return {
    ...config,
    JWT_SECRET: secrets.jwtSecret,
    PBX_SECRETS_KEY: secrets.pbxSecretsKey,
    PUBLIC_BASE_URL: (config.PUBLIC_BASE_URL ?? `http://localhost:${config.PORT}`).replace(/\/+$/, ''),
  };
}
