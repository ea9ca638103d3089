import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { parse as parseLegacyQuery, stringify as stringifyLegacyQuery } from 'node:querystring';
import { PbxError } from '../pbx-provider.js';
import { assertFresh, type FreshnessWindow } from '../webhook-freshness.js';

/**
 * Twilio's request signature (`X-Twilio-Signature`), as documented and as the official SDK checks it:
 * - https://www.twilio.com/docs/usage/webhooks/webhooks-security
 * - https://www.twilio.com/docs/usage/security#validating-requests
 * - twilio-node `src/webhooks/webhooks.ts` (getExpectedTwilioSignature, validateRequest,
 *   validateRequestWithBody): https://github.com/twilio/twilio-node/blob/main/src/webhooks/webhooks.ts
 *
 * Form bodies: HMAC-SHA1 keyed with the account's auth token over the full URL Twilio requested
 * (query string included) followed by every POST parameter sorted by name, each name immediately
 * followed by its value (decoded, no separators); base64. A repeated name contributes each distinct
 * value once, values sorted (twilio-node `toFormUrlEncodedParam`: `Array.from(new Set(v)).sort()`;
 * twilio-python does the same).
 *
 * JSON bodies: Twilio adds a `bodySHA256` query parameter (hex SHA-256 of the raw body) to the URL
 * and signs the URL alone (no parameters); the body must hash to that value.
 *
 * URL variants: Twilio's back end is not consistent about the port and about percent-encoding of
 * the query string, so twilio-node accepts the URL without the port, with the default port
 * (`:443` / `:80`) and both again with the query re-encoded by Node's legacy `querystring`
 * (twilio-node PR #1061). We also try the URL exactly as received first (twilio-node issue #1183 /
 * PR #1194: the WHATWG parser re-encodes `'`). Every variant is derived from the URL of the
 * request, so none lets a signature made for another URL through.
 */

export type FormParams = Record<string, string | string[]>;

/** The signature Twilio computes for `url` and `params` (twilio-node getExpectedTwilioSignature). */
export function twilioSignature(authToken: string, url: string, params: FormParams = {}): string {
  let data = url;
  for (const key of Object.keys(params).sort()) {
    const value = params[key]!;
    if (Array.isArray(value)) {
      for (const v of [...new Set(value)].sort()) data += key + v;
    } else {
      data += key + value;
    }
  }
  return createHmac('sha1', authToken).update(Buffer.from(data, 'utf-8')).digest('base64');
}

/** Hex SHA-256 of a body, as Twilio puts it in `bodySHA256`. */
export function twilioBodyHash(body: Buffer | string): string {
  return createHash('sha256').update(body).digest('hex');
}

function withDefaultPort(u: URL): string {
  if (u.port) return u.toString();
  const port = u.protocol === 'https:' ? ':443' : ':80';
  const auth = u.username || u.password ? `${u.username}${u.password ? `:${u.password}` : ''}@` : '';
  return `${u.protocol}//${auth}${u.host}${port}${u.pathname}${u.search}${u.hash}`;
}

function withoutPort(u: URL): string {
  const copy = new URL(u);
  copy.port = '';
  return copy.toString();
}

function withLegacyQuerystring(url: string): string {
  const u = new URL(url);
  if (!u.search) return url;
  const qs = parseLegacyQuery(u.search.slice(1));
  u.search = '';
  return `${u.toString()}?${stringifyLegacyQuery(qs)}`;
}

/** Toggles the port of a URL string without re-encoding its path or query. */
function togglePortRaw(url: string): string | undefined {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/i.exec(url);
  if (!m) return undefined;
  const [, scheme, authority, rest] = m as unknown as [string, string, string, string];
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : '';
  const hostport = authority.slice(at + 1);
  const portMatch = /^(.*?)(:\d+)?$/.exec(hostport)!;
  const host = hostport.startsWith('[') ? hostport.slice(0, hostport.indexOf(']') + 1) : portMatch[1]!;
  const hasPort = hostport.length > host.length;
  if (hasPort) return `${scheme}${userinfo}${host}${rest}`;
  const port = scheme.toLowerCase() === 'https://' ? ':443' : ':80';
  return `${scheme}${userinfo}${host}${port}${rest}`;
}

/** The URLs Twilio may have signed for a request to `url` (see the top comment). */
export function signatureUrlCandidates(url: string): string[] {
  const out = new Set<string>([url]);
  const toggled = togglePortRaw(url);
  if (toggled) out.add(toggled);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [...out];
  }
  const without = withoutPort(parsed);
  const withPort = withDefaultPort(parsed);
  out.add(without);
  out.add(withPort);
  out.add(withLegacyQuerystring(without));
  out.add(withLegacyQuerystring(withPort));
  return [...out];
}

/** Constant-time comparison of two signatures (different lengths compare unequal). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf-8');
  const y = Buffer.from(b, 'utf-8');
  if (x.length !== y.length) {
    // Still spend the time of one comparison.
    timingSafeEqual(y, y);
    return false;
  }
  return timingSafeEqual(x, y);
}

/** Whether `signature` is Twilio's for a form request to `url` with `params` (twilio-node validateRequest). */
export function isValidTwilioSignature(authToken: string, signature: string, url: string, params: FormParams): boolean {
  if (!signature || !authToken) return false;
  let ok = false;
  // Every candidate is checked (no early exit), so the time does not depend on which one matched.
  for (const candidate of signatureUrlCandidates(url)) {
    if (safeEqual(signature, twilioSignature(authToken, candidate, params))) ok = true;
  }
  return ok;
}

/**
 * Whether a JSON (or other non-form) request carries Twilio's signature: the URL signed without
 * parameters and the raw body hashing to its `bodySHA256` (twilio-node validateRequestWithBody).
 */
export function isValidTwilioBodySignature(
  authToken: string,
  signature: string,
  url: string,
  rawBody: Buffer,
): boolean {
  let expectedHash: string | null;
  try {
    expectedHash = new URL(url).searchParams.get('bodySHA256');
  } catch {
    return false;
  }
  if (!expectedHash) return false;
  const urlOk = isValidTwilioSignature(authToken, signature, url, {});
  const bodyOk = safeEqual(expectedHash.toLowerCase(), twilioBodyHash(rawBody));
  return urlOk && bodyOk;
}

/**
 * Parses an `application/x-www-form-urlencoded` body into an object of strings, a repeated name
 * into an array (as Fastify's form parser does).
 */
export function parseForm(body: string): FormParams {
  const fields = new Map<string, string | string[]>();
  for (const [key, value] of new URLSearchParams(body)) {
    const cur = fields.get(key);
    if (cur === undefined) fields.set(key, value);
    else if (Array.isArray(cur)) cur.push(value);
    else fields.set(key, [cur, value]);
  }
  // Own properties only (a field named `__proto__` stays a field, covered by the signature).
  return Object.fromEntries(fields);
}

/**
 * Freshness of a verified Twilio request (webhook-freshness.ts). The signature covers the URL and
 * every POST parameter but no time of its own, so a captured request would verify for ever. Call
 * status callbacks carry `Timestamp`, "the timestamp when the event fired, given as UTC in RFC
 * 2822 format" (e.g. `Sat, 21 Nov 2026 09:59:41 +0000`), with `CallbackSource=call-progress-events`
 * and `SequenceNumber`, whenever StatusCallbackEvent is asked for, as our click-to-call does on the
 * Call and on `<Number>` (https://www.twilio.com/docs/voice/api/call-resource#statuscallbackevent ,
 * https://www.twilio.com/docs/voice/twiml/number#attributes-status-callback-event). Being a signed
 * parameter it cannot be dropped or changed without breaking the signature, so when present it
 * must be inside the window (STALE otherwise, and when it is not a date).
 *
 * Twilio's messaging webhooks (incoming SMS, message status: https://www.twilio.com/docs/messaging/guides/webhook-request)
 * and recording status callbacks carry no time of the request; those are accepted on the
 * signature alone and a replay is made harmless by the inbox's unique key (MessageSid +
 * MessageStatus, CallSid + CallStatus + SequenceNumber, RecordingSid: twilio.mapper.ts
 * twilioEventId), kept for ever (README "Replay protection").
 */
export function assertTwilioFresh(params: FormParams, window: FreshnessWindow): void {
  const raw = params['Timestamp'];
  if (raw === undefined) return;
  const value = Array.isArray(raw) ? raw[0] : raw;
  const at = value === undefined ? NaN : Date.parse(value);
  if (!Number.isFinite(at)) throw new PbxError('STALE', 'Twilio webhook: its Timestamp is not an RFC 2822 date');
  assertFresh('Twilio', 'Timestamp', at, window);
}
