import { createHmac, timingSafeEqual } from 'node:crypto';
import { PbxError, type InboundWebhook } from '../pbx-provider.js';
import { assertFresh, assertNotExpired, type FreshnessWindow } from '../webhook-freshness.js';
import { dialpadEventKind } from './dialpad.mapper.js';
import { dialpadTime, isRecord, parseDialpadJson } from './dialpad.wire.js';

/**
 * Dialpad webhook signatures. "If a secret is provided, the webhook events will be encoded and
 * signed in the JWT format using the shared secret with the HS256 algorithm. The JWT payload should
 * be decoded and the signature verified" (operation `webhooks.create`, "Webhook -- Create", of
 * Dialpad's API v2 OpenAPI document: https://github.com/dialpad/dialpad-python-sdk,
 * `dialpad_api_spec.json`; also https://developers.dialpad.com/docs/call-events-logging and
 * https://developers.dialpad.com/docs/sms-events: "Payloads … will be JWT encoded"). The body is
 * the compact JWT (`Content-Type: application/jwt`); a JSON string holding the JWT is accepted too.
 *
 * Verified here with node:crypto only: the header must say HS256 (`none` and every other algorithm
 * are refused, so a token cannot choose a weaker check), the HMAC-SHA256 of `header.payload` is
 * compared in constant time. Anything that fails is AUTH; a token that verifies but whose payload
 * is not a JSON object is REJECTED.
 *
 * Freshness (webhook-freshness.ts; STALE → 403, nothing stored): Dialpad documents no `exp`/`iat`
 * in its webhook JWTs, but its events carry `event_timestamp` (epoch milliseconds, "CallProto" of
 * https://developers.dialpad.com/docs/call-events : "event_timestamp — the time at which the event
 * was generated"; SMS events too, https://developers.dialpad.com/docs/sms-events). So: `exp` (and
 * `nbf`) are enforced when present; `iat` when present must be inside the window; with neither
 * `iat` nor `exp` the payload's `event_timestamp` must be; an event with no time at all is refused
 * (a signed event without a time could be replayed for ever).
 *
 * Dialpad redelivers an event with its original payload after a 5xx: call events up to 3 times
 * (about 2, 4 and 8 s later), SMS events up to 10 times over about 4 hours (30 s; 1, 2, 4, 8, 16
 * and 32 min; then three 60 min waits): https://developers.dialpad.com/docs/webhook-delivery-failures .
 * So that such a retry is never refused, an SMS event's age may reach DIALPAD_SMS_RETRY_HORIZON_MS
 * when that is longer than the configured window; a replay inside it changes nothing, as the inbox
 * keeps the event id (`sms:<id>:<message_status>`) for ever.
 */

/** Dialpad's SMS retry schedule above, summed (≈ 4 h 4 min), plus 10 minutes of queueing. */
export const DIALPAD_SMS_RETRY_HORIZON_MS = (30 + 63 * 60 + 3 * 3600 + 10 * 60) * 1000;

const SEGMENT = /^[A-Za-z0-9_-]+$/;

export interface VerifiedJwt {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  /** The decoded payload text (the signed bytes, as UTF-8). */
  payloadText: string;
}

const auth = (message: string) => new PbxError('AUTH', `Dialpad webhook: ${message}`);

/** The compact JWT a webhook request carries (AUTH when it carries none: an unsigned event). */
export function dialpadWebhookToken(request: InboundWebhook): string {
  const { body } = request;
  if (typeof body === 'string') return body.trim();
  if (body !== undefined && body !== null && !Buffer.isBuffer(body)) {
    throw auth('the event is not signed (a JSON object, not a JWT); the webhook must have a secret');
  }
  const raw = request.rawBody.toString('utf8').trim();
  if (raw.startsWith('"')) {
    try {
      const inner: unknown = JSON.parse(raw);
      if (typeof inner === 'string') return inner.trim();
    } catch {
      // Not JSON: verified (and refused) as it is below.
    }
  }
  return raw;
}

/** Verifies an HS256 JWT with `secret`, fresh in `window`; returns its header and claims. */
export function verifyDialpadJwt(token: string, secret: string, window: FreshnessWindow): VerifiedJwt {
  if (!secret) throw auth('the connection has no webhook secret; unsigned events are refused');
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => SEGMENT.test(p))) throw auth('the body is not a compact JWT');
  const [h, p, s] = parts as [string, string, string];

  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  } catch {
    throw auth('the JWT header is not JSON');
  }
  if (!isRecord(header)) throw auth('the JWT header is not an object');
  if (header.alg !== 'HS256')
    throw auth(`JWT algorithm ${JSON.stringify(header.alg ?? null)} is not accepted (HS256 only)`);
  if (header.crit !== undefined) throw auth('JWT critical header extensions are not supported');

  const signature = Buffer.from(s, 'base64url');
  const expected = createHmac('sha256', secret).update(`${h}.${p}`, 'ascii').digest();
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
    throw auth('the JWT signature does not match the webhook secret');
  }

  const payloadText = Buffer.from(p, 'base64url').toString('utf8');
  let claims: unknown;
  try {
    claims = parseDialpadJson(payloadText);
  } catch {
    throw new PbxError('REJECTED', 'Dialpad webhook: the verified JWT payload is not JSON');
  }
  if (!isRecord(claims)) throw new PbxError('REJECTED', 'Dialpad webhook: the verified JWT payload is not an object');

  assertDialpadFresh(claims, window);
  return { header, claims, payloadText };
}

/** Claims as epoch milliseconds: NumericDate seconds (RFC 7519 §2); STALE when not a number. */
function claimMs(claims: Record<string, unknown>, name: 'exp' | 'nbf' | 'iat'): number | undefined {
  const v = claims[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new PbxError('STALE', `Dialpad webhook: the JWT ${name} claim is not a number`);
  }
  return v * 1000;
}

/** The time rules of the top comment, on verified claims. */
export function assertDialpadFresh(claims: Record<string, unknown>, window: FreshnessWindow): void {
  const exp = claimMs(claims, 'exp');
  const nbf = claimMs(claims, 'nbf');
  const iat = claimMs(claims, 'iat');
  if (exp !== undefined) assertNotExpired('Dialpad', exp, window);
  if (nbf !== undefined && nbf > window.nowMs + window.leewayMs) {
    throw new PbxError('STALE', 'Dialpad webhook: the JWT is not valid yet (nbf)');
  }
  if (iat !== undefined) assertFresh('Dialpad', 'JWT iat', iat, window);
  if (iat !== undefined || exp !== undefined) return;
  const sms = dialpadEventKind(claims) === 'sms';
  const w = sms ? { ...window, maxAgeMs: Math.max(window.maxAgeMs, DIALPAD_SMS_RETRY_HORIZON_MS) } : window;
  if (claims.event_timestamp === undefined || claims.event_timestamp === null) {
    throw new PbxError('STALE', 'Dialpad webhook: the event carries no time (no exp, iat nor event_timestamp)');
  }
  const at = dialpadTime(claims.event_timestamp);
  if (!at) throw new PbxError('STALE', 'Dialpad webhook: event_timestamp is not a time');
  assertFresh('Dialpad', 'event_timestamp', at.getTime(), w);
}
