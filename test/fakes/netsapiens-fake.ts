import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A fake NetSapiens API v2 server (node:http on 127.0.0.1, port 0) with exactly the endpoints the
 * NetSapiens driver calls, and builders of event-subscription deliveries as NetSapiens posts them.
 *
 * Documentation it follows:
 * - https://docs.ns-api.com/reference (API v2; OpenAPI https://docs.ns-api.com/v45.0/openapi/netsapiens-api-v2.json):
 *   - GET    /ns-api/v2/domains/{domain}                               "Get Specific Domain"
 *   - GET    /ns-api/v2/domains/{domain}/calls                         "Read Active Calls In Domain"
 *   - POST   /ns-api/v2/domains/{domain}/users/{user}/calls            "Make a new Call"
 *            (JSON: synchronous, call-id, call-term-user required; call-orig-user, auto-answer-enabled,
 *            caller-id-number, callback-caller-id-number, dial-rule-application optional;
 *            202 {code, message} or, with synchronous "yes", 200 with the active call)
 *   - DELETE /ns-api/v2/domains/{domain}/users/{user}/calls/{call_id}  "Disconnect Call"
 *   - POST   /ns-api/v2/domains/{domain}/subscriptions                 "Create a Event Subscription for Domain"
 *            (model, post-url required; 200 with the subscription object, 409 when it exists)
 *   - GET    /ns-api/v2/domains/{domain}/subscriptions                 "Read Event Subscriptions for Domain"
 *   Authentication: `Authorization: Bearer <API key>` → 401 without a valid key; a key of another
 *   domain → 403. Errors are `{ "code": <status>, "message": "…" }` (the shape of the documented
 *   202/4xx bodies; the exact messages are ours).
 * - https://docs.ns-api.com/docs/event-subscriptions-1: deliveries are POSTs of a JSON array of the
 *   model's objects to the post-url (query string included), with the subscription id in
 *   `X-Correlation-ID`; model `call` objects use the active-call fields (legacy names, as in the
 *   recorded delivery in src/pbx/netsapiens/fixtures/ok/) and `"remove": "yes"` on teardown.
 *
 * Test controls: `requests` (every request, recorded before it is answered), `failNext(status,
 * body?, headers?)` (the next request gets that answer), `setDown(true)` (every new request has
 * its socket destroyed: the driver sees the server unreachable), `reset()`; call state:
 * `answer(callId)`, `end(callId)`, `addActiveCall(row)`; and `deliver(rows)` which POSTs a delivery
 * to every subscription (with `autoDeliver`, state changes deliver by themselves).
 */

export const NETSAPIENS_FAKE_API_KEY = 'nsd_fake_api_key_0123456789abcdef';
export const NETSAPIENS_FAKE_DOMAIN = 'acme.15550.service';

export interface NetsapiensFakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** A call model object (legacy active-call field names). */
export type NetsapiensRow = Record<string, string>;

export interface NetsapiensFakeCall {
  callId: string;
  user: string;
  /** The destination as sent in call-term-user. */
  termUser: string;
  callerId?: string;
  start: Date;
  answer?: Date;
  ended: boolean;
  request: Record<string, unknown>;
}

export interface NetsapiensFakeSubscription {
  id: string;
  model: string;
  'post-url': string;
  domain: string;
  user: string;
  'subscription-geo-support': string;
  [key: string]: unknown;
}

export interface NetsapiensFakeOptions {
  apiKey?: string;
  domain?: string;
  /** The users of the domain (default 1001, 1002, 1003). */
  users?: string[];
  /** POST a delivery to every subscription on each call state change. */
  autoDeliver?: boolean;
}

export interface NetsapiensFake {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly domain: string;
  readonly requests: NetsapiensFakeRequest[];
  readonly calls: Map<string, NetsapiensFakeCall>;
  /** Active calls added by tests (inbound calls and the like), as GET /calls lists them. */
  readonly activeCalls: Record<string, string>[];
  readonly subscriptions: Map<string, NetsapiensFakeSubscription>;
  /** Deliveries posted by deliver(): where, and the status answered. */
  readonly deliveries: Array<{ url: string; status: number; body: string }>;
  failNext(status: number, body?: unknown, headers?: Record<string, string>): void;
  setDown(down: boolean): void;
  reset(): void;
  answer(callId: string, at?: Date): Promise<void>;
  end(callId: string): Promise<void>;
  addActiveCall(row: Record<string, string>): void;
  deliver(rows: NetsapiensRow[]): Promise<void>;
  close(): Promise<void>;
}

/** `YYYY-MM-DD HH:MM:SS` in UTC, as NetSapiens writes times. */
export function nsTime(date: Date): string {
  return date.toISOString().slice(0, 19).replace('T', ' ');
}

function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

const error = (res: ServerResponse, status: number, message: string) => send(res, status, { code: status, message });

/** The v2 active-call object of a call placed through the API. */
function activeCall(call: NetsapiensFakeCall, domain: string): Record<string, string> {
  return {
    'core-server': 'core1.fake.netsapiens.test',
    'call-session-id': `${call.start.getTime()}`,
    'call-orig-call-id': call.callId,
    'call-orig-match-uri': `sip:${call.user}@${domain}`,
    'call-orig-user': call.user,
    'call-orig-domain': domain,
    'call-orig-uri': `sip:${call.user}@${domain}`,
    'call-orig-name': call.user,
    'caller-id-number': call.callerId ?? '',
    'call-dialed-number': call.termUser,
    'call-by-action': '',
    'call-by-user': '',
    'call-by-domain': '',
    'call-by-call-id': '',
    'call-term-call-id': `${call.callId}-term`,
    'call-term-user': '',
    'call-term-domain': '*',
    'call-term-uri': `sip:${call.termUser}@gateway.fake.netsapiens.test`,
    'call-start-datetime': nsTime(call.start),
    'call-answer-datetime': call.answer ? nsTime(call.answer) : '',
    'call-orig-info': call.answer ? 'active' : 'progressing',
    'term-orig-info': call.answer ? 'active' : 'progressing',
    'call-audio-codec': 'PCMU',
  };
}

/** The call-model object of a call placed through the API (its leg to the destination). */
function callRow(call: NetsapiensFakeCall, domain: string, removed: boolean): NetsapiensRow {
  return outboundRow({
    domain,
    callId: call.callId,
    user: call.user,
    to: call.termUser,
    callerId: call.callerId ?? '',
    start: call.start,
    ...(call.answer ? { answer: call.answer } : {}),
    removed,
  });
}

export async function startNetsapiensFake(options: NetsapiensFakeOptions = {}): Promise<NetsapiensFake> {
  const apiKey = options.apiKey ?? NETSAPIENS_FAKE_API_KEY;
  const domain = options.domain ?? NETSAPIENS_FAKE_DOMAIN;
  const users = new Set(options.users ?? ['1001', '1002', '1003']);
  const requests: NetsapiensFakeRequest[] = [];
  const calls = new Map<string, NetsapiensFakeCall>();
  const activeCalls: Record<string, string>[] = [];
  const subscriptions = new Map<string, NetsapiensFakeSubscription>();
  const deliveries: Array<{ url: string; status: number; body: string }> = [];
  const sockets = new Set<Socket>();
  let down = false;
  let failure: { status: number; body?: unknown; headers?: Record<string, string> } | undefined;
  let subscriptionSeq = 0;

  const deliver = async (rows: NetsapiensRow[]) => {
    for (const s of subscriptions.values()) {
      if (s.model !== 'call') continue;
      const d = netsapiensDelivery({ postUrl: s['post-url'], subscriptionId: s.id, events: rows });
      const status = await fetch(d.url, { method: 'POST', headers: d.headers, body: d.body }).then(
        async (res) => {
          await res.text();
          return res.status;
        },
        () => 0,
      );
      deliveries.push({ url: d.url, status, body: d.body });
    }
  };
  const changed = async (call: NetsapiensFakeCall, removed = false) => {
    if (options.autoDeliver) await deliver([callRow(call, domain, removed)]);
  };

  const server: Server = createServer((req, res) => {
    if (down) {
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      if (text && /json/i.test(req.headers['content-type'] ?? '')) {
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
      }
      requests.push({
        method: req.method ?? 'GET',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body,
      });
      if (failure) {
        const f = failure;
        failure = undefined;
        send(res, f.status, f.body ?? { code: f.status, message: 'Injected failure' }, f.headers);
        return;
      }
      handle(req.method ?? 'GET', url.pathname, req.headers, body, res).catch(() => error(res, 500, 'Internal error'));
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(
    method: string,
    path: string,
    headers: IncomingHttpHeaders,
    body: unknown,
    res: ServerResponse,
  ): Promise<void> {
    const m = /^\/ns-api\/v2\/domains\/([^/]+)(\/.*)?$/.exec(path);
    if (!m) return error(res, 404, 'Not Found');
    const auth = headers.authorization ?? '';
    if (auth !== `Bearer ${apiKey}`) return error(res, 401, 'Unauthorized');
    const pathDomain = decodeURIComponent(m[1]!);
    if (pathDomain !== domain && pathDomain !== '~') return error(res, 403, 'Forbidden: domain not in scope');
    const rest = m[2] ?? '';
    const json = (body && typeof body === 'object' ? body : undefined) as Record<string, unknown> | undefined;

    if (method === 'GET' && rest === '') {
      return send(res, 200, { domain, reseller: 'fake-reseller', description: 'Acme (fake)', 'time-zone': 'UTC' });
    }
    if (method === 'GET' && rest === '/calls') {
      const placed = [...calls.values()].filter((c) => !c.ended).map((c) => activeCall(c, domain));
      return send(res, 200, [...placed, ...activeCalls]);
    }
    const userCalls = /^\/users\/([^/]+)\/calls(?:\/([^/]+))?$/.exec(rest);
    if (userCalls) {
      const user = decodeURIComponent(userCalls[1]!);
      if (!users.has(user)) return error(res, 404, 'User Not Found');
      const callId = userCalls[2] ? decodeURIComponent(userCalls[2]) : undefined;
      if (method === 'POST' && !callId) {
        if (!json) return error(res, 400, 'Invalid JSON body');
        for (const f of ['synchronous', 'call-id', 'call-term-user']) {
          if (typeof json[f] !== 'string' || json[f] === '') return error(res, 400, `Missing required field ${f}`);
        }
        if (!['yes', 'no'].includes(json['synchronous'] as string))
          return error(res, 400, 'synchronous must be yes or no');
        const id = json['call-id'] as string;
        if (calls.has(id)) return error(res, 409, 'Call ID already exists');
        const term = json['call-term-user'] as string;
        if (!/^\+?\d{2,15}$/.test(term)) return error(res, 400, 'Invalid call-term-user');
        const call: NetsapiensFakeCall = {
          callId: id,
          user,
          termUser: term,
          ...(typeof json['caller-id-number'] === 'string' ? { callerId: json['caller-id-number'] } : {}),
          start: new Date(),
          ended: false,
          request: json,
        };
        calls.set(id, call);
        await changed(call);
        return json['synchronous'] === 'yes'
          ? send(res, 200, activeCall(call, domain))
          : send(res, 202, { code: 202, message: 'Accepted' });
      }
      if (method === 'DELETE' && callId) {
        const call = calls.get(callId);
        const listed = activeCalls.findIndex((r) => r['call-orig-call-id'] === callId);
        if (call && !call.ended && call.user === user) {
          call.ended = true;
          await changed(call, true);
          return send(res, 200, { code: 200, message: 'Success' });
        }
        if (listed >= 0) {
          activeCalls.splice(listed, 1);
          return send(res, 200, { code: 200, message: 'Success' });
        }
        return error(res, 404, 'Call Not Found');
      }
      return error(res, 405, 'Method Not Allowed');
    }
    if (rest === '/subscriptions') {
      if (method === 'GET') return send(res, 200, [...subscriptions.values()]);
      if (method === 'POST') {
        if (!json) return error(res, 400, 'Invalid JSON body');
        const models = ['agent', 'auditlog', 'auditlog_lite', 'call', 'call_origid', 'cdr', 'message'];
        const more = ['messagesession', 'subscriber', 'presence', 'voicemail'];
        if (typeof json['model'] !== 'string' || ![...models, ...more].includes(json['model'])) {
          return error(res, 400, 'Invalid model');
        }
        const postUrl = json['post-url'];
        if (typeof postUrl !== 'string' || !/^https?:\/\//.test(postUrl)) return error(res, 400, 'Invalid post-url');
        if ([...subscriptions.values()].some((s) => s.model === json['model'] && s['post-url'] === postUrl)) {
          return error(res, 409, 'Subscription already exists');
        }
        subscriptionSeq += 1;
        const id = `${subscriptionSeq.toString(16).padStart(8, '0')}f38d00a5eed9d15603922fe9`;
        const now = new Date();
        const sub: NetsapiensFakeSubscription = {
          id,
          'subscription-geo-support':
            typeof json['subscription-geo-support'] === 'string' ? json['subscription-geo-support'] : 'yes',
          'post-url': postUrl,
          model: json['model'],
          'user-scope': 'Office Manager',
          reseller: 'fake-reseller',
          domain,
          user: typeof json['user'] === 'string' ? json['user'] : '*',
          'preferred-server': '',
          'current-active-server': 'core1.fake.netsapiens.test',
          status: 'active',
          'error-count': 0,
          'posts-count': 0,
          'subscription-creation-datetime': nsTime(now),
          'subscription-expires-datetime': nsTime(new Date(now.getTime() + 20 * 365 * 86_400_000)),
        };
        subscriptions.set(id, sub);
        return send(res, 200, sub);
      }
      return error(res, 405, 'Method Not Allowed');
    }
    return error(res, 404, 'Not Found');
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    apiKey,
    domain,
    requests,
    calls,
    activeCalls,
    subscriptions,
    deliveries,
    failNext(status, body, headers) {
      failure = { status, ...(body !== undefined ? { body } : {}), ...(headers ? { headers } : {}) };
    },
    setDown(value) {
      down = value;
      if (value) for (const s of sockets) s.destroy();
    },
    reset() {
      requests.length = 0;
      calls.clear();
      activeCalls.length = 0;
      subscriptions.clear();
      deliveries.length = 0;
      failure = undefined;
      down = false;
    },
    async answer(callId, at = new Date()) {
      const call = calls.get(callId);
      if (!call || call.ended) throw new Error(`no active fake call ${callId}`);
      call.answer = at;
      await changed(call);
    },
    async end(callId) {
      const call = calls.get(callId);
      if (!call || call.ended) throw new Error(`no active fake call ${callId}`);
      call.ended = true;
      await changed(call, true);
    },
    addActiveCall(row) {
      activeCalls.push(row);
    },
    deliver,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Deliveries, as NetSapiens posts them.

export interface NetsapiensDelivery {
  /** The post-url, query string (our token) included. */
  url: string;
  headers: Record<string, string>;
  /** The raw JSON body: an array of call objects. */
  body: string;
}

/**
 * One delivery to a post-url: `POST <post-url>` with `Content-Type: application/json`, the JSON
 * array of objects, and `X-Correlation-ID: <subscription id>` (v2).
 */
export function netsapiensDelivery(options: {
  postUrl: string;
  subscriptionId?: string;
  events: NetsapiensRow[];
}): NetsapiensDelivery {
  const body = JSON.stringify(options.events);
  return {
    url: options.postUrl,
    headers: {
      'content-type': 'application/json',
      'user-agent': 'NetSapiens-Subscription/44',
      ...(options.subscriptionId ? { 'x-correlation-id': options.subscriptionId } : {}),
    },
    body,
  };
}

/** The post-url of a connection: the webhook URL with the token (netsapiensPostUrl of the driver). */
export function netsapiensSignedUrl(webhookUrl: string, token: string): string {
  const url = new URL(webhookUrl);
  url.searchParams.set('token', token);
  return url.toString();
}

interface LegOptions {
  domain: string;
  callId: string;
  termCallId?: string;
  start: Date;
  answer?: Date;
  removed?: boolean;
}

const common = (o: LegOptions, termCallId: string) => ({
  hostname: 'core1.fake.netsapiens.test',
  sessionId: o.start.toISOString().replace(/\D/g, '').slice(0, 17),
  orig_callid: o.callId,
  term_callid: termCallId,
  time_start: nsTime(o.start),
  time_answer: o.answer ? nsTime(o.answer) : '',
  orig_call_info: o.answer ? 'active' : 'progressing',
  term_call_info: o.answer ? 'active' : 'progressing',
  ...(o.removed ? { remove: 'yes' } : {}),
});

/** An inbound leg: a caller from the PSTN (gateway) ringing a user of the domain. */
export function inboundRow(
  o: LegOptions & { from: string; callerName?: string; did: string; user: string; via?: string },
): NetsapiensRow {
  const term = o.termCallId ?? `${o.callId.replace(/\W/g, '').slice(0, 16)}-${o.user}`;
  return {
    ...common(o, term),
    orig_ip: '192.0.2.10',
    orig_match: 'sip:*@gateway.fake.netsapiens.test',
    orig_sub: '',
    orig_domain: '*',
    orig_type: 'gateway',
    orig_from_uri: `sip:${o.from}@gateway.fake.netsapiens.test`,
    orig_from_name: o.callerName ?? '',
    orig_from_user: o.from,
    orig_req_user: o.did,
    orig_to_user: o.did,
    by_action: o.via ? 'CallQueue' : '',
    by_sub: o.via ?? '',
    by_domain: o.via ? o.domain : '',
    by_callid: o.via ? `${term}-by` : '',
    term_sub: o.user,
    term_domain: o.domain,
    term_type: 'device',
    term_to_uri: `sip:${o.user}@${o.domain}`,
    orig_user: '',
    term_user: o.user,
    dnis: o.did,
    ani: o.from,
    orig_name: o.callerName ?? '',
  };
}

/** An outbound leg: a user of the domain calling a number through the gateway. */
export function outboundRow(o: LegOptions & { user: string; to: string; callerId: string }): NetsapiensRow {
  return {
    ...common(o, o.termCallId ?? `${o.callId.slice(0, 16)}-term`),
    orig_sub: o.user,
    orig_domain: o.domain,
    orig_type: 'device',
    orig_from_uri: `sip:${o.callerId || o.user}@${o.domain}`,
    orig_from_name: o.user,
    orig_from_user: o.callerId || o.user,
    orig_req_user: o.to,
    orig_to_user: o.to,
    by_sub: '',
    by_domain: '',
    by_callid: '',
    term_sub: '',
    term_domain: '*',
    term_type: 'gateway',
    term_to_uri: `sip:${o.to}@gateway.fake.netsapiens.test`,
    orig_user: o.user,
    term_user: '',
    dnis: o.to,
    ani: o.callerId || o.user,
  };
}

/** The first leg of a click-to-call: the platform ringing the user's own phone. */
export function callbackRow(o: LegOptions & { user: string; to: string }): NetsapiensRow {
  return {
    ...common(o, o.termCallId ?? `${o.callId.slice(0, 16)}-cb`),
    orig_sub: o.user,
    orig_domain: o.domain,
    orig_type: 'device',
    orig_from_uri: `sip:${o.to}@${o.domain}`,
    orig_from_name: 'Click to Call',
    orig_from_user: o.to,
    orig_req_user: o.user,
    orig_to_user: o.user,
    term_sub: o.user,
    term_domain: o.domain,
    term_type: 'device',
    term_to_uri: `sip:${o.user}@${o.domain}`,
    orig_user: o.user,
    term_user: o.user,
  };
}

interface ScenarioOptions {
  /** The post-url with the token (netsapiensSignedUrl). */
  postUrl: string;
  subscriptionId?: string;
  domain: string;
  start: Date;
}

const deliveriesOf = (o: ScenarioOptions, snapshots: NetsapiensRow[][]) =>
  snapshots.map((events) => netsapiensDelivery({ postUrl: o.postUrl, subscriptionId: o.subscriptionId, events }));
const plus = (d: Date, s: number) => new Date(d.getTime() + s * 1000);

/** An inbound call answered by `user` after `ringSeconds`, then hung up: ringing, answered, removed. */
export function inboundAnsweredDeliveries(
  o: ScenarioOptions & {
    callId: string;
    from: string;
    callerName?: string;
    did: string;
    user: string;
    ringSeconds?: number;
  },
): NetsapiensDelivery[] {
  const leg = {
    domain: o.domain,
    callId: o.callId,
    start: o.start,
    from: o.from,
    callerName: o.callerName,
    did: o.did,
    user: o.user,
  };
  const answer = plus(o.start, o.ringSeconds ?? 6);
  return deliveriesOf(o, [
    [inboundRow(leg)],
    [inboundRow({ ...leg, answer })],
    [inboundRow({ ...leg, answer, removed: true })],
  ]);
}

/** An inbound call ringing `users` at once (multi-ring) that nobody answers. */
export function missedCallDeliveries(
  o: ScenarioOptions & { callId: string; from: string; callerName?: string; did: string; users: string[] },
): NetsapiensDelivery[] {
  const legs = (removed: boolean) =>
    o.users.map((user) =>
      inboundRow({
        domain: o.domain,
        callId: o.callId,
        start: o.start,
        from: o.from,
        callerName: o.callerName,
        did: o.did,
        user,
        removed,
      }),
    );
  return deliveriesOf(o, [legs(false), legs(true)]);
}

/**
 * A click-to-call placed with call-id `callId` by `user` to `to`: the platform rings the user's
 * phone, the user answers, the customer's leg rings, is answered, and hangs up.
 */
export function clickToCallDeliveries(
  o: ScenarioOptions & { callId: string; user: string; to: string; callerId: string },
): NetsapiensDelivery[] {
  const cb = { domain: o.domain, callId: o.callId, start: o.start, user: o.user, to: o.to };
  const out = {
    domain: o.domain,
    callId: o.callId,
    start: plus(o.start, 3),
    user: o.user,
    to: o.to,
    callerId: o.callerId,
  };
  const answer = plus(o.start, 8);
  return deliveriesOf(o, [
    [callbackRow(cb)],
    [callbackRow({ ...cb, answer: plus(o.start, 2), removed: true }), outboundRow(out)],
    [outboundRow({ ...out, answer })],
    [outboundRow({ ...out, answer, removed: true })],
  ]);
}
