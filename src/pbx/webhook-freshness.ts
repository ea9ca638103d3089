import { PbxError, type PbxEnvironment } from './pbx-provider.js';

/**
 * Freshness of signed webhooks: a signature proves who sent a request, not when. A request
 * captured once (a proxy log, a leaked trace) would verify for ever, so each driver also reads the
 * delivery's own signed time and refuses (STALE → 403 `stale-webhook`, nothing stored) one that
 * is older than WEBHOOK_MAX_AGE_MS or further in the future than WEBHOOK_CLOCK_LEEWAY_MS. Where a
 * vendor signs no time at all (NetSapiens, Twilio's messaging webhooks), the inbox's unique
 * (connection, event id) key is what stops a replay from being applied twice (README "Replay
 * protection").
 */

/** Defaults of WEBHOOK_MAX_AGE_MS / WEBHOOK_CLOCK_LEEWAY_MS (config.schema.ts). */
export const DEFAULT_WEBHOOK_MAX_AGE_MS = 300_000;
export const DEFAULT_WEBHOOK_CLOCK_LEEWAY_MS = 30_000;

export interface FreshnessWindow {
  nowMs: number;
  maxAgeMs: number;
  leewayMs: number;
}

/** The window of an environment, judged now (by its injected clock when it has one). */
export function freshnessWindow(env: PbxEnvironment): FreshnessWindow {
  return {
    nowMs: (env.now ?? Date.now)(),
    maxAgeMs: env.webhookFreshness?.maxAgeMs ?? DEFAULT_WEBHOOK_MAX_AGE_MS,
    leewayMs: env.webhookFreshness?.leewayMs ?? DEFAULT_WEBHOOK_CLOCK_LEEWAY_MS,
  };
}

const stale = (vendor: string, message: string) => new PbxError('STALE', `${vendor} webhook: ${message}`);

/**
 * Refuses a delivery stamped `atMs` (when the vendor says it made it) outside
 * [now − maxAge − leeway, now + leeway].
 */
export function assertFresh(vendor: string, what: string, atMs: number, w: FreshnessWindow): void {
  if (!Number.isFinite(atMs)) throw stale(vendor, `its ${what} is not a time`);
  if (atMs < w.nowMs - w.maxAgeMs - w.leewayMs) {
    throw stale(vendor, `its ${what} (${new Date(atMs).toISOString()}) is older than ${w.maxAgeMs / 1000} s`);
  }
  if (atMs > w.nowMs + w.leewayMs) {
    throw stale(vendor, `its ${what} (${new Date(atMs).toISOString()}) is in the future`);
  }
}

/** Refuses a delivery whose signed expiry `expMs` has passed (beyond the leeway). */
export function assertNotExpired(vendor: string, expMs: number, w: FreshnessWindow): void {
  if (!Number.isFinite(expMs)) throw stale(vendor, 'its expiry is not a time');
  if (w.nowMs > expMs + w.leewayMs) throw stale(vendor, `it expired at ${new Date(expMs).toISOString()}`);
}
