import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { AppConfig, ResolvedConfig } from './config.schema.js';

/**
 * Outside production, a JWT secret that is not configured is made once and kept in
 * `<data dir>/secrets.json` (mode 0600), so `npm start` needs no setup and sessions survive
 * restarts. Production requires JWT_SECRET (loadConfig refuses to start without it).
 */
export function resolveSecrets(config: AppConfig): ResolvedConfig {
  if (config.JWT_SECRET) return { ...config, JWT_SECRET: config.JWT_SECRET };
  const file = join(dirname(config.EMBEDDED_PG_DIR), 'secrets.json');
  let stored: { jwtSecret?: string } = {};
  if (existsSync(file)) stored = JSON.parse(readFileSync(file, 'utf8')) as { jwtSecret?: string };
  if (!stored.jwtSecret) {
    stored.jwtSecret = randomBytes(48).toString('base64url');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(stored, null, 2) + '\n', { mode: 0o600 });
  }
  return { ...config, JWT_SECRET: stored.jwtSecret };
}
