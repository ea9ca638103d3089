/**
 * A fake Dialpad (API v2 + OAuth) on 127.0.0.1 for tests, and webhook deliveries as Dialpad sends
 * them (JWT, HS256, `Content-Type: application/jwt`).
 *
 * Built from Dialpad's public documentation:
 * - API v2 OpenAPI document and schemas: https://github.com/dialpad/dialpad-python-sdk
 *   (`dialpad_api_spec.json`; `src/dialpad/schemas/{call,webhook,call_event_subscription,
 *   sms_event_subscription,company,oauth}.py`), also https://developers.dialpad.com/reference.
 *   Its examples serialise int64 ids as strings ("id": "1000"): so does this fake.
 * - Webhooks: "If a secret is provided, the webhook events will be encoded and signed in the JWT
 *   format using the shared secret with the HS256 algorithm" (Webhook -- Create).
 * - Call events: https://developers.dialpad.com/docs/call-events-logging ; SMS events:
 *   https://developers.dialpad.com/docs/sms-events ; OAuth: https://developers.dialpad.com/docs/oauth.
 * - Times: every event carries `event_timestamp`, epoch milliseconds of when the event was made
 *   (CallProto, https://developers.dialpad.com/docs/call-events); the JWT carries no `iat`/`exp`
 *   unless a test asks for them (`signedDialpadWebhook(…, { expSeconds })`). The receiver refuses
 *   events whose time is outside its freshness window, so deliveries are stamped with the time
 *   they describe, as Dialpad's are.
 *
 * Endpoints (exactly those the driver calls): GET /api/v2/company; POST /api/v2/call (Initiate via
 * Ring); GET /api/v2/call/{id}; PUT /api/v2/call/{id}/actions/hangup; POST /api/v2/webhooks,
 * DELETE /api/v2/webhooks/{id}; POST /api/v2/subscriptions/{call,sms}, DELETE …/{id};
 * POST /oauth2/token (authorization_code with PKCE, refresh_token); POST /oauth2/deauthorize.
 * Every /api/v2 request needs `Authorization: Bearer <token>` of a valid API key or access token
 * (401 otherwise). Error bodies: Dialpad documents none; this fake answers the Google Cloud
 * Endpoints shape seen from Dialpad, `{"error": {"code", "message", "errors": [{"domain",
 * "reason", "message"}]}}`, and RFC 6749 §5.2 bodies on /oauth2/token.
 *
 * Controls: `failNext(status, body?, { path? })` answers the next request (to that path) with that
 * status; `setDown(true)`
 * destroys every incoming connection (the client sees a reset: unreachable) until `setDown(false)`;
 * `reset()` restores the initial state. `requests` records what reached the fake.
 */
import { DIALPAD_CALL_STATES } from '../../src/pbx/dialpad/dialpad.wire.js';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const DIALPAD_FAKE_API_KEY = 'fake-dialpad-api-key-0123456789';
export const DIALPAD_FAKE_CLIENT_ID = 'fake-dialpad-client-id';
export const DIALPAD_FAKE_CLIENT_SECRET = 'fake-dialpad-client-secret-0123456789';
export const DIALPAD_FAKE_COMPANY = { id: '5100000000000001', name: 'Fake Company Inc', country: 'us' } as const;
/** A Dialpad user id the fake knows (agents map to it: user_mappings externalId). */
export const DIALPAD_FAKE_USER_ID = '5200000000000001';

/** Call states a call event subscription accepts (CreateCallEventSubscription.call_states). */
const CALL_STATES = new Set<string>(DIALPAD_CALL_STATES);
const ENDED = new Set(['hangup', 'missed', 'voicemail', 'voicemail_uploaded']);
const E164 = /^\+[1-9]\d{6,14}$/;

export interface DialpadFakeRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The JSON body parsed (int64 past 2^53 as digit strings), else the text, else undefined. */
  body: unknown;
  /** The body as sent. */
  text: string;
}

export interface DialpadFakeCall {
  id: string;
  userId: string;
  phoneNumber: string;
  outboundCallerId?: string;
  customData?: string;
  state: string;
  dateStarted: number;
  dateConnected?: number;
  dateEnded?: number;
}

export interface DialpadFakeUser {
  id: string;
  name: string;
  email: string;
  phone: string;
}

interface Webhook {
  id: string;
  hookUrl: string;
  secret?: string;
}

interface Subscription {
  id: string;
  kind: 'call' | 'sms';
  endpointId: string;
  enabled: boolean;
  callStates?: string[];
  direction?: string;
}

interface Grant {
  accessToken: string;
  refreshToken: string;
}

export interface DialpadFake {
  readonly baseUrl: string;
  readonly requests: DialpadFakeRequest[];
  /** Bearer tokens accepted on /api/v2 (the API key, plus access tokens the OAuth flow issued). */
  readonly validTokens: Set<string>;
  readonly users: Map<string, DialpadFakeUser>;
  readonly calls: Map<string, DialpadFakeCall>;
  readonly webhooks: Map<string, Webhook>;
  readonly subscriptions: Map<string, Subscription>;
  /** Answers the next request (or the next one to `options.path`) with `status` and `body`. */
  failNext(status: number, body?: unknown, options?: { path?: string }): void;
  setDown(down: boolean): void;
  reset(): void;
  /** Registers an authorization code the browser step would have produced (PKCE S256 challenge). */
  issueCode(code: { code: string; codeChallenge: string; redirectUri: string }): void;
  /** Moves a call to a state (connected / hangup / …), as the phone system would. */
  setCallState(callId: string, state: string): DialpadFakeCall;
  /**
   * Delivers an event to every enabled subscription that wants it, signed as Dialpad signs it;
   * returns the HTTP statuses of the deliveries.
   */
  emit(event: Record<string, unknown>): Promise<number[]>;
  /** The call event of a call the fake placed (for emit), in a state. */
  callEvent(callId: string, state: string, at?: number): Record<string, unknown>;
  close(): Promise<void>;
}

// --- webhook deliveries ---------------------------------------------------------------------------

/** A compact JWT signed with HMAC-SHA256 (or with the header you give, to build bad tokens). */
export function signDialpadJwt(
  secret: string,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' },
): string {
  const h = Buffer.from(JSON.stringify(header)).toString('base64url');
  const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const s = createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${s}`;
}

/**
 * A webhook delivery as Dialpad sends it: the event's JWT as the body, `application/jwt`.
 * `expSeconds` adds an `exp` claim that many seconds after `iat` (Dialpad documents no exp or
 * iat claim; use it to test expiry handling).
 */
export function signedDialpadWebhook(
  secret: string,
  payload: Record<string, unknown>,
  options: { expSeconds?: number; nowMs?: number } = {},
): { headers: Record<string, string>; body: string } {
  const claims: Record<string, unknown> = { ...payload };
  if (options.expSeconds !== undefined) {
    const iat = Math.floor((options.nowMs ?? Date.now()) / 1000);
    claims.iat = iat;
    claims.exp = iat + options.expSeconds;
  }
  return { headers: { 'content-type': 'application/jwt' }, body: signDialpadJwt(secret, claims) };
}

export interface CallEventOptions {
  callId?: string;
  state?: string;
  direction?: 'inbound' | 'outbound';
  /** ms since epoch of the event. */
  at?: number;
  external?: string;
  internal?: string;
  contactName?: string;
  contactType?: string;
  target?: { id: string; type: string; name?: string; phone?: string; email?: string };
  entryPointCallId?: string | null;
  entryPointTarget?: { id: string; type: string; name?: string; phone?: string };
  customData?: string | null;
  dateStarted?: number;
  dateRang?: number | null;
  dateConnected?: number | null;
  dateEnded?: number | null;
  recordingUrl?: string;
  voicemailLink?: string;
  voicemailDurationMs?: number;
  transcription?: string;
}

/**
 * A call event payload as Dialpad sends it (fields of the documented payload; ids and times as
 * JSON numbers, as recorded deliveries have them).
 */
export function buildDialpadCallEvent(o: CallEventOptions = {}): Record<string, unknown> {
  const at = o.at ?? Date.parse('2026-11-21T09:59:30.000Z');
  const state = o.state ?? 'ringing';
  const direction = o.direction ?? 'inbound';
  const target = o.target ?? {
    id: DIALPAD_FAKE_USER_ID,
    type: 'user',
    name: 'Ada Agent',
    phone: '+15555550100',
    email: 'ada@example.test',
  };
  const external = o.external ?? '+15555550123';
  const internal = o.internal ?? target.phone ?? '+15555550100';
  const recordings: Record<string, unknown>[] = [];
  if (o.recordingUrl) {
    recordings.push({
      duration: 61000,
      id: 'rec-1',
      recording_type: 'callrecording',
      start_time: at - 61000,
      url: o.recordingUrl,
    });
  }
  if (o.voicemailLink) {
    recordings.push({
      duration: o.voicemailDurationMs ?? 14000,
      id: 'vm-1',
      recording_type: 'voicemail',
      start_time: at - (o.voicemailDurationMs ?? 14000),
      url: o.voicemailLink,
    });
  }
  const num = (v: string | null | undefined) => (v === null || v === undefined ? null : Number(v));
  return {
    call_id: Number(o.callId ?? '6100000000000001'),
    master_call_id: null,
    entry_point_call_id: num(o.entryPointCallId),
    operator_call_id: null,
    state,
    direction,
    event_timestamp: at,
    date_started: o.dateStarted ?? at - 5000,
    date_rang: o.dateRang === undefined ? at - 4000 : o.dateRang,
    date_first_rang: o.dateRang === undefined ? at - 4000 : o.dateRang,
    date_queued: null,
    date_connected: o.dateConnected ?? null,
    date_ended: o.dateEnded ?? null,
    duration: o.dateConnected && o.dateEnded ? o.dateEnded - o.dateConnected : 0,
    total_duration: o.dateEnded ? o.dateEnded - (o.dateStarted ?? at - 5000) : 0,
    external_number: external,
    internal_number: internal,
    contact: {
      email: '',
      id: 5300000000000001,
      name: o.contactName ?? 'Carla Customer',
      phone: external,
      type: o.contactType ?? 'local',
    },
    target: {
      email: target.email ?? '',
      id: Number(target.id),
      name: target.name ?? '',
      phone: target.phone ?? internal,
      type: target.type,
    },
    entry_point_target: o.entryPointTarget
      ? {
          email: '',
          id: Number(o.entryPointTarget.id),
          name: o.entryPointTarget.name ?? '',
          phone: o.entryPointTarget.phone ?? '',
          type: o.entryPointTarget.type,
        }
      : {},
    proxy_target: {},
    group_id: o.entryPointTarget ? `Office:${o.entryPointTarget.id}` : null,
    custom_data: o.customData ?? null,
    is_transferred: false,
    labels: [],
    mos_score: 4.41,
    was_recorded: !!o.recordingUrl,
    recording_details: recordings,
    recording_url: o.recordingUrl ? [o.recordingUrl] : [],
    call_recording_ids: o.recordingUrl ? ['rec-1'] : [],
    voicemail_link: o.voicemailLink ?? null,
    voicemail_recording_id: o.voicemailLink ? 'vm-1' : null,
    transcription_text: o.transcription ?? null,
    routing_breadcrumbs: [],
  };
}

export interface SmsEventOptions {
  id?: string;
  direction?: 'inbound' | 'outbound';
  at?: number;
  from?: string;
  to?: string[];
  text?: string | null;
  status?: string;
  target?: { id: string; type: string; name?: string; phone_number?: string };
}

/** An SMS event payload as Dialpad sends it (https://developers.dialpad.com/docs/sms-events). */
export function buildDialpadSmsEvent(o: SmsEventOptions = {}): Record<string, unknown> {
  // Now by default: Dialpad sends an event as it happens (and stale ones are refused).
  const at = o.at ?? Date.now() - 1_000;
  const direction = o.direction ?? 'inbound';
  const customer = '+15555550123';
  const line = '+15555550100';
  const event: Record<string, unknown> = {
    id: Number(o.id ?? '6200000000000001'),
    created_date: at,
    event_timestamp: at + 400,
    direction,
    target: {
      id: Number(o.target?.id ?? DIALPAD_FAKE_USER_ID),
      name: o.target?.name ?? 'Ada Agent',
      phone_number: o.target?.phone_number ?? line,
      type: o.target?.type ?? 'user',
    },
    contact: { id: 5300000000000001, name: 'Carla Customer', phone_number: customer },
    sender_id: null,
    from_number: o.from ?? (direction === 'inbound' ? customer : line),
    to_number: o.to ?? [direction === 'inbound' ? line : customer],
    mms: false,
    mms_url: null,
    is_internal: false,
    message_delivery_result: null,
    message_status: o.status ?? (direction === 'inbound' ? 'pending' : 'sent'),
  };
  if (o.text !== null) {
    event.text = o.text ?? 'Hello, can you call me back?';
    event.text_content = event.text;
  }
  return event;
}

// --- the server -----------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`HTTP ${status}`);
  }
}

/** The Google Cloud Endpoints error body (undocumented by Dialpad; see the top of the file). */
function apiError(status: number, reason: string, message: string): HttpError {
  return new HttpError(status, { error: { code: status, errors: [{ domain: 'global', message, reason }], message } });
}

const oauthError = (status: number, error: string, description: string) =>
  new HttpError(status, { error, error_description: description });

const s256 = (verifier: string) => createHash('sha256').update(verifier).digest('base64url');

export async function startDialpadFake(
  options: { apiKey?: string; clientId?: string; clientSecret?: string } = {},
): Promise<DialpadFake> {
  const apiKey = options.apiKey ?? DIALPAD_FAKE_API_KEY;
  const clientId = options.clientId ?? DIALPAD_FAKE_CLIENT_ID;
  const clientSecret = options.clientSecret ?? DIALPAD_FAKE_CLIENT_SECRET;

  const requests: DialpadFakeRequest[] = [];
  const validTokens = new Set<string>();
  const users = new Map<string, DialpadFakeUser>();
  const calls = new Map<string, DialpadFakeCall>();
  const webhooks = new Map<string, Webhook>();
  const subscriptions = new Map<string, Subscription>();
  const codes = new Map<string, { codeChallenge: string; redirectUri: string }>();
  const grants = new Map<string, Grant>(); // by refresh token
  const sockets = new Set<Socket>();
  let failures: { status: number; body: unknown; path?: string }[] = [];
  let down = false;
  let nextId = 1;
  const newId = (base: number) => String(base + nextId++);

  function reset(): void {
    requests.length = 0;
    validTokens.clear();
    validTokens.add(apiKey);
    users.clear();
    users.set(DIALPAD_FAKE_USER_ID, {
      id: DIALPAD_FAKE_USER_ID,
      name: 'Ada Agent',
      email: 'ada@example.test',
      phone: '+15555550100',
    });
    calls.clear();
    webhooks.clear();
    subscriptions.clear();
    codes.clear();
    grants.clear();
    failures = [];
    down = false;
    nextId = 1;
  }
  reset();

  function bearer(req: IncomingMessage): string {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(h);
    if (!m || !validTokens.has(m[1]!))
      throw apiError(401, 'unauthorized', 'Invalid or missing API key / access token.');
    return m[1]!;
  }

  function jsonBody(body: unknown): Record<string, unknown> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw apiError(400, 'badRequest', 'The request body must be a JSON object.');
    }
    return body as Record<string, unknown>;
  }

  /** int64 fields: JSON numbers or digit strings (the API accepts both in practice). */
  function int64(v: unknown): string | undefined {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return String(v);
    if (typeof v === 'string' && /^\d{1,20}$/.test(v)) return v;
    return undefined;
  }

  const callProto = (c: DialpadFakeCall) => {
    const user = users.get(c.userId);
    return {
      call_id: c.id,
      contact: { email: '', id: '5300000000000001', name: c.phoneNumber, phone: c.phoneNumber, type: 'local' },
      custom_data: c.customData,
      date_started: String(c.dateStarted),
      ...(c.dateConnected ? { date_connected: String(c.dateConnected) } : {}),
      ...(c.dateEnded ? { date_ended: String(c.dateEnded) } : {}),
      direction: 'outbound',
      event_timestamp: String(c.dateEnded ?? c.dateConnected ?? c.dateStarted),
      external_number: c.phoneNumber,
      internal_number: user?.phone,
      is_transferred: false,
      proxy_target: {},
      state: c.state,
      target: { email: user?.email, id: c.userId, name: user?.name, phone: user?.phone, type: 'user' },
      was_recorded: false,
    };
  };

  const webhookProto = (w: Webhook) => ({
    hook_url: w.hookUrl,
    id: w.id,
    ...(w.secret ? { signature: { algo: 'HS256', secret: w.secret, type: 'jwt' } } : {}),
  });

  const subscriptionProto = (s: Subscription) => {
    const webhook = webhooks.get(s.endpointId);
    return s.kind === 'call'
      ? {
          call_states: s.callStates,
          enabled: s.enabled,
          group_calls_only: false,
          id: s.id,
          webhook: webhook && webhookProto(webhook),
        }
      : {
          direction: s.direction,
          enabled: s.enabled,
          id: s.id,
          include_internal: false,
          status: false,
          webhook: webhook && webhookProto(webhook),
        };
  };

  function endpointOf(b: Record<string, unknown>): string {
    const id = int64(b.endpoint_id) ?? int64(b.webhook_id);
    if (!id) throw apiError(400, 'badRequest', 'A webhook_id (endpoint_id) is required.');
    if (!webhooks.has(id)) throw apiError(404, 'notFound', `Webhook ${id} not found.`);
    return id;
  }

  function route(method: string, path: string, req: IncomingMessage, body: unknown, res: ServerResponse): unknown {
    if (path === '/oauth2/token' && method === 'POST') return token(req, body);
    if (path === '/oauth2/deauthorize' && method === 'POST') {
      const t = bearer(req);
      if (t === apiKey) throw oauthError(400, 'invalid_request', 'Not an OAuth access token.');
      for (const [refresh, g] of grants) {
        if (g.accessToken === t) grants.delete(refresh);
      }
      validTokens.delete(t);
      res.statusCode = 204;
      return undefined;
    }
    if (!path.startsWith('/api/v2/')) throw apiError(404, 'notFound', 'Not found.');
    bearer(req);

    if (path === '/api/v2/company' && method === 'GET') {
      return {
        ...DIALPAD_FAKE_COMPANY,
        account_type: 'pro',
        admin_email: 'admin@example.test',
        domain: 'example.test',
        office_count: '1',
        state: 'active',
      };
    }
    if (path === '/api/v2/call' && method === 'POST') {
      const b = jsonBody(body);
      const userId = int64(b.user_id);
      if (!userId) throw apiError(400, 'badRequest', 'user_id is required.');
      if (typeof b.phone_number !== 'string' || !E164.test(b.phone_number)) {
        throw apiError(400, 'badRequest', 'phone_number must be an e164-formatted number.');
      }
      if (
        b.outbound_caller_id !== undefined &&
        (typeof b.outbound_caller_id !== 'string' ||
          !(b.outbound_caller_id === 'blocked' || E164.test(b.outbound_caller_id)))
      ) {
        throw apiError(400, 'badRequest', 'outbound_caller_id must be an e164-formatted number or "blocked".');
      }
      if (b.custom_data !== undefined && typeof b.custom_data !== 'string')
        throw apiError(400, 'badRequest', 'custom_data must be a string.');
      if (!users.has(userId)) throw apiError(404, 'notFound', `User ${userId} not found.`);
      const call: DialpadFakeCall = {
        id: newId(6100000000000000),
        userId,
        phoneNumber: b.phone_number,
        outboundCallerId: b.outbound_caller_id as string | undefined,
        customData: b.custom_data as string | undefined,
        state: 'calling',
        dateStarted: Date.now(),
      };
      calls.set(call.id, call);
      return { call_id: call.id };
    }
    let m = /^\/api\/v2\/call\/(\d+)$/.exec(path);
    if (m && method === 'GET') {
      const call = calls.get(m[1]!);
      if (!call) throw apiError(404, 'notFound', `Call ${m[1]} not found.`);
      return callProto(call);
    }
    m = /^\/api\/v2\/call\/(\d+)\/actions\/hangup$/.exec(path);
    if (m && method === 'PUT') {
      const call = calls.get(m[1]!);
      if (!call) throw apiError(404, 'notFound', `Call ${m[1]} not found.`);
      if (!ENDED.has(call.state)) {
        call.state = 'hangup';
        call.dateEnded = Date.now();
      }
      return undefined;
    }
    if (path === '/api/v2/webhooks' && method === 'POST') {
      const b = jsonBody(body);
      if (typeof b.hook_url !== 'string' || !/^https?:\/\/[^\s]+$/.test(b.hook_url)) {
        throw apiError(400, 'badRequest', 'hook_url must be a URL.');
      }
      if (b.secret !== undefined && (typeof b.secret !== 'string' || /[\r\n]/.test(b.secret))) {
        throw apiError(400, 'badRequest', 'secret must be a single-line string.');
      }
      const w: Webhook = { id: newId(7100000000000000), hookUrl: b.hook_url, secret: b.secret as string | undefined };
      webhooks.set(w.id, w);
      return webhookProto(w);
    }
    m = /^\/api\/v2\/webhooks\/(\d+)$/.exec(path);
    if (m && method === 'DELETE') {
      const w = webhooks.get(m[1]!);
      if (!w) throw apiError(404, 'notFound', `Webhook ${m[1]} not found.`);
      webhooks.delete(w.id);
      return webhookProto(w);
    }
    if (path === '/api/v2/subscriptions/call' && method === 'POST') {
      const b = jsonBody(body);
      const endpointId = endpointOf(b);
      const states = b.call_states ?? [];
      if (!Array.isArray(states) || !states.every((s) => typeof s === 'string' && CALL_STATES.has(s))) {
        throw apiError(400, 'badRequest', 'call_states has an unknown state.');
      }
      const s: Subscription = {
        id: newId(7200000000000000),
        kind: 'call',
        endpointId,
        enabled: b.enabled !== false,
        callStates: states as string[],
      };
      subscriptions.set(s.id, s);
      return subscriptionProto(s);
    }
    if (path === '/api/v2/subscriptions/sms' && method === 'POST') {
      const b = jsonBody(body);
      const endpointId = endpointOf(b);
      if (b.direction !== 'all' && b.direction !== 'inbound' && b.direction !== 'outbound') {
        throw apiError(400, 'badRequest', 'direction is required: all, inbound or outbound.');
      }
      const s: Subscription = {
        id: newId(7300000000000000),
        kind: 'sms',
        endpointId,
        enabled: b.enabled !== false,
        direction: b.direction,
      };
      subscriptions.set(s.id, s);
      return subscriptionProto(s);
    }
    m = /^\/api\/v2\/subscriptions\/(call|sms)\/(\d+)$/.exec(path);
    if (m && method === 'DELETE') {
      const s = subscriptions.get(m[2]!);
      if (!s || s.kind !== m[1]) throw apiError(404, 'notFound', `Subscription ${m[2]} not found.`);
      subscriptions.delete(s.id);
      return subscriptionProto(s);
    }
    throw apiError(404, 'notFound', `No route ${method} ${path}.`);
  }

  function token(req: IncomingMessage, body: unknown): unknown {
    const b =
      typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
    // client_id / client_secret: "in the request body, or in a basic authorization header".
    let id = b.client_id;
    let secret = b.client_secret;
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    if (basic) {
      const [u, p] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':');
      id = decodeURIComponent(u ?? '');
      secret = decodeURIComponent(p ?? '');
    }
    if (id !== clientId || secret !== clientSecret)
      throw oauthError(401, 'invalid_client', 'Unknown client or wrong secret.');
    const issue = (): Record<string, unknown> => {
      const g: Grant = {
        accessToken: `at-${randomBytes(12).toString('hex')}`,
        refreshToken: `rt-${randomBytes(12).toString('hex')}`,
      };
      grants.set(g.refreshToken, g);
      validTokens.add(g.accessToken);
      return { access_token: g.accessToken, refresh_token: g.refreshToken, expires_in: 3600, token_type: 'Bearer' };
    };
    if (b.grant_type === 'authorization_code') {
      if (typeof b.code !== 'string') throw oauthError(400, 'invalid_request', 'code is required.');
      const issued = codes.get(b.code);
      if (!issued) throw oauthError(400, 'invalid_grant', 'Unknown or used code.');
      codes.delete(b.code);
      if (typeof b.code_verifier !== 'string' || s256(b.code_verifier) !== issued.codeChallenge) {
        throw oauthError(400, 'invalid_grant', 'The PKCE code_verifier does not match the code_challenge.');
      }
      if (b.redirect_uri !== undefined && b.redirect_uri !== issued.redirectUri) {
        throw oauthError(400, 'invalid_grant', 'redirect_uri does not match.');
      }
      return issue();
    }
    if (b.grant_type === 'refresh_token') {
      if (typeof b.refresh_token !== 'string') throw oauthError(400, 'invalid_request', 'refresh_token is required.');
      const g = grants.get(b.refresh_token);
      if (!g) throw oauthError(400, 'invalid_grant', 'Unknown or revoked refresh token.');
      // A new token pair; the old pair is no longer valid.
      grants.delete(b.refresh_token);
      validTokens.delete(g.accessToken);
      return issue();
    }
    throw oauthError(400, 'unsupported_grant_type', 'grant_type must be authorization_code or refresh_token.');
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: unknown = raw || undefined;
      const type = req.headers['content-type'] ?? '';
      if (raw && type.includes('application/json')) {
        try {
          // A server reads int64 exactly (Dialpad's is Python): integers past 2^53 become strings.
          body = JSON.parse(
            raw.replace(/"(?:[^"\\]|\\.)*"|(?<![\w.+-])\d{16,}(?![\d.eE])/g, (t) =>
              t.startsWith('"') || Number.isSafeInteger(Number(t)) ? t : `"${t}"`,
            ),
          );
        } catch {
          body = raw;
        }
      } else if (raw && type.includes('application/x-www-form-urlencoded')) {
        body = Object.fromEntries(new URLSearchParams(raw));
      }
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const method = req.method ?? 'GET';
      requests.push({ method, path: url.pathname, headers: { ...req.headers }, body, text: raw });
      const send = (status: number, payload: unknown) => {
        res.statusCode = status;
        if (payload === undefined) return res.end();
        res.setHeader('content-type', 'application/json');
        res.end(typeof payload === 'string' ? payload : JSON.stringify(payload));
      };
      const at = failures.findIndex((f) => f.path === undefined || f.path === url.pathname);
      const failure = at >= 0 ? failures.splice(at, 1)[0] : undefined;
      if (failure)
        return send(failure.status, failure.body ?? apiError(failure.status, 'failure', 'Injected failure.').body);
      try {
        const out = route(method, url.pathname, req, body, res);
        send(res.statusCode === 204 ? 204 : 200, out);
      } catch (error) {
        if (error instanceof HttpError) return send(error.status, error.body);
        send(500, apiError(500, 'backendError', (error as Error).message).body);
      }
    });
  });
  server.on('connection', (socket) => {
    if (down) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  async function emit(event: Record<string, unknown>): Promise<number[]> {
    const isCall = event.call_id !== undefined;
    const statuses: number[] = [];
    for (const s of subscriptions.values()) {
      if (!s.enabled) continue;
      if (isCall !== (s.kind === 'call')) continue;
      if (
        isCall &&
        s.callStates?.length &&
        !s.callStates.includes('all') &&
        !s.callStates.includes(String(event.state))
      )
        continue;
      if (!isCall && s.direction !== 'all' && s.direction !== event.direction) continue;
      const w = webhooks.get(s.endpointId);
      if (!w) continue;
      const delivery = w.secret
        ? signedDialpadWebhook(w.secret, event)
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) };
      const res = await fetch(w.hookUrl, { method: 'POST', headers: delivery.headers, body: delivery.body });
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    return statuses;
  }

  function setCallState(callId: string, state: string): DialpadFakeCall {
    const call = calls.get(callId);
    if (!call) throw new Error(`The fake has no call ${callId}`);
    call.state = state;
    if (state === 'connected') call.dateConnected = Date.now();
    if (ENDED.has(state)) call.dateEnded ??= Date.now();
    return call;
  }

  function callEvent(callId: string, state: string, at = Date.now()): Record<string, unknown> {
    const call = calls.get(callId);
    if (!call) throw new Error(`The fake has no call ${callId}`);
    const user = users.get(call.userId);
    return buildDialpadCallEvent({
      callId: call.id,
      state,
      direction: 'outbound',
      at,
      external: call.phoneNumber,
      internal: user?.phone,
      target: { id: call.userId, type: 'user', name: user?.name, phone: user?.phone, email: user?.email },
      customData: call.customData ?? null,
      dateStarted: call.dateStarted,
      dateRang: null,
      dateConnected: call.dateConnected ?? null,
      dateEnded: call.dateEnded ?? null,
    });
  }

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    validTokens,
    users,
    calls,
    webhooks,
    subscriptions,
    failNext(status, body, options) {
      failures.push({ status, body, path: options?.path });
    },
    setDown(value) {
      down = value;
      if (value) for (const s of sockets) s.destroy();
    },
    reset,
    issueCode(code) {
      codes.set(code.code, { codeChallenge: code.codeChallenge, redirectUri: code.redirectUri });
    },
    setCallState,
    emit,
    callEvent,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const s of sockets) s.destroy();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
