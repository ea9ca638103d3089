import { createHash } from 'node:crypto';
import { constantTimeEqual } from '../../common/crypto/crypto.js';
import { type InboundWebhook, PbxError, type VerifiedWebhook } from '../pbx-provider.js';

/**
 * Verification of NetSapiens event-subscription deliveries.
 *
 * What NetSapiens documents (API v2, "Event Subscriptions",
 * https://docs.ns-api.com/docs/event-subscriptions-1, and "Create a Event Subscription",
 * https://docs.ns-api.com/reference/createsubscription):
 * - a subscription has a `model` (we use `call`) and a `post-url`; every matching change is
 *   POSTed to the post-url as JSON, "organized as an array of objects" whose shape is the model's;
 * - no signature, HMAC or shared secret is documented for these posts. The guide recommends
 *   restricting the endpoint to the cluster's addresses; v2 also sends the subscription id in an
 *   `X-Correlation-ID` header (as summarised in https://docs.ns-api.com/docs/event-subscriptions-1;
 *   we could not read that sentence on the page itself, so the header is only cross-checked, never
 *   required).
 *
 * Our verification, compatible with what NetSapiens does send: the post-url we register carries a
 * secret token of ours in its query string (`?token=<webhookSecret>`: NetSapiens posts to the URL
 * exactly as registered, query string included). A delivery verifies when that token equals the
 * connection's `webhookSecret` (constant-time compare), and, when the connection knows its
 * subscription id and the request carries `X-Correlation-ID`, when that header equals it.
 * No secret configured, token missing or wrong, or another subscription's id → AUTH.
 * Verified but not a non-empty JSON array of objects → REJECTED.
 *
 * Freshness (README "Replay protection"): nothing is signed, so nothing can be checked for age —
 * the call rows' own times are as forgeable as the rest by whoever holds the token, and a time
 * check would add no protection while refusing late retries. A replayed delivery is made harmless
 * by the inbox instead: its event id (`<phase>:<orig call id>:<SHA-256 of the delivery>`) is unique
 * per connection and kept for ever, so the same snapshot is acknowledged and never applied twice.
 */

/** The query parameter of the post-url that carries our token. */
export const NETSAPIENS_TOKEN_PARAM = 'token';
/** The header in which NetSapiens v2 sends the subscription id. */
export const NETSAPIENS_CORRELATION_HEADER = 'x-correlation-id';

/** One object of a delivery: the call model's fields, as NetSapiens sends them (strings). */
export type NetsapiensCallRow = Record<string, unknown>;

/** What we store for a verified delivery (the inbox payload). */
export interface NetsapiensWebhookPayload {
  /** The objects of the delivery, as sent. */
  events: NetsapiensCallRow[];
  /** When we received it (the call model carries no end time: a removal is timed by its arrival). */
  receivedAt: string;
  /** The X-Correlation-ID header (the subscription id), when sent. */
  subscriptionId?: string;
}

/** The post-url to register for a connection: our webhook URL with the token in its query string. */
export function netsapiensPostUrl(webhookUrl: string, webhookSecret: string): string {
  const url = new URL(webhookUrl);
  url.searchParams.set(NETSAPIENS_TOKEN_PARAM, webhookSecret);
  return url.toString();
}

/** JSON with the keys of every object sorted: the same content always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function header(request: InboundWebhook, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
}

/** The orig call id of a row: legacy field names (`orig_callid`) or the v2 ones (`call-orig-call-id`). */
export function rowOrigCallId(row: NetsapiensCallRow): string {
  return str(row['orig_callid']) || str(row['call-orig-call-id']);
}

/** The phase of a row: removed, answered or ringing. */
export function rowPhase(row: NetsapiensCallRow): 'removed' | 'answered' | 'ringing' {
  if (str(row['remove']).toLowerCase() === 'yes' || row['remove'] === true) return 'removed';
  const answer = str(row['time_answer']) || str(row['call-answer-datetime']);
  return answer && !/^0{4}-0{2}-0{2}/.test(answer) ? 'answered' : 'ringing';
}

/**
 * The inbox id of a delivery. One object: `<phase>:<orig call id>:<digest>`; several: `sha256:<digest>`;
 * the digest is SHA-256 of the canonical JSON of the objects, so a redelivery has the same id and
 * any other snapshot (even of the same call in the same phase) another.
 */
export function netsapiensEventId(events: NetsapiensCallRow[]): string {
  const digest = sha256(canonicalJson(events));
  if (events.length === 1) {
    const id = `${rowPhase(events[0]!)}:${rowOrigCallId(events[0]!)}:${digest.slice(0, 32)}`;
    if (id.length <= 200) return id;
  }
  return `sha256:${digest}`;
}

/** Verifies one delivery to `/webhooks/netsapiens/<connection id>` (see the top of this file). */
export function verifyNetsapiensWebhook(
  request: InboundWebhook,
  secrets: { webhookSecret?: string },
  settings: { subscriptionId?: string },
): VerifiedWebhook {
  const secret = secrets.webhookSecret;
  if (!secret) throw new PbxError('AUTH', 'This NetSapiens connection has no webhook secret: deliveries are refused.');
  let token: string | null;
  try {
    token = new URL(request.url).searchParams.get(NETSAPIENS_TOKEN_PARAM);
  } catch {
    token = null;
  }
  if (!token) throw new PbxError('AUTH', 'The NetSapiens delivery carries no token.');
  if (!constantTimeEqual(token, secret)) throw new PbxError('AUTH', 'The NetSapiens delivery token is wrong.');
  const correlation = header(request, NETSAPIENS_CORRELATION_HEADER)?.trim();
  if (correlation && settings.subscriptionId && !constantTimeEqual(correlation, settings.subscriptionId)) {
    throw new PbxError('AUTH', 'The NetSapiens delivery comes from another subscription.');
  }

  let body: unknown;
  try {
    body = JSON.parse(request.rawBody.toString('utf8'));
  } catch {
    throw new PbxError('REJECTED', 'The NetSapiens delivery is not JSON.');
  }
  if (!Array.isArray(body) || body.length === 0) {
    throw new PbxError('REJECTED', 'A NetSapiens delivery is a non-empty JSON array of objects.');
  }
  for (const row of body) {
    if (row === null || typeof row !== 'object' || Array.isArray(row)) {
      throw new PbxError('REJECTED', 'A NetSapiens delivery holds objects only.');
    }
    if (!rowOrigCallId(row as NetsapiensCallRow)) {
      throw new PbxError('REJECTED', 'A NetSapiens call object without its orig call id.');
    }
  }
  const events = body as NetsapiensCallRow[];
  const payload: NetsapiensWebhookPayload = {
    events,
    receivedAt: new Date().toISOString(),
    ...(correlation ? { subscriptionId: correlation } : {}),
  };
  return { eventId: netsapiensEventId(events), kind: 'call', payload };
}
