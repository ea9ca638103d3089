import { createHmac, timingSafeEqual } from 'node:crypto';
import { PbxError, type InboundWebhook } from '../pbx-provider.js';
import { isRecord, parseDialpadJson } from './dialpad.wire.js';

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
 * compared in constant time, and `exp` / `nbf` are enforced when present, with 60 s of clock skew.
 * Anything that fails is AUTH; a token that verifies but whose payload is not a JSON object is
 * REJECTED.
 */

export const DIALPAD_JWT_SKEW_SECONDS = 60;

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

/** Verifies an HS256 JWT with `secret` at time `nowMs`; returns its header and claims. */
export function verifyDialpadJwt(token: string, secret: string, nowMs: number): VerifiedJwt {
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

  const now = nowMs / 1000;
  if (claims.exp !== undefined) {
    if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) throw auth('the JWT exp claim is not a number');
    if (now > claims.exp + DIALPAD_JWT_SKEW_SECONDS) throw auth('the JWT has expired');
  }
  if (claims.nbf !== undefined) {
    if (typeof claims.nbf !== 'number' || !Number.isFinite(claims.nbf)) throw auth('the JWT nbf claim is not a number');
    if (now + DIALPAD_JWT_SKEW_SECONDS < claims.nbf) throw auth('the JWT is not valid yet');
  }
  return { header, claims, payloadText };
}
