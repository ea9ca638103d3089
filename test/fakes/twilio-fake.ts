import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A fake Twilio REST API (node:http on 127.0.0.1, port 0) with exactly the endpoints the Twilio
 * driver calls, and builders of Twilio's signed webhook deliveries.
 *
 * Documentation it follows:
 * - Call resource, API 2010-04-01: https://www.twilio.com/docs/voice/api/call-resource
 *   - POST /2010-04-01/Accounts/{AccountSid}/Calls.json          create (To, From required; one of
 *     Url / Twiml / ApplicationSid; StatusCallback, StatusCallbackEvent repeated, StatusCallbackMethod)
 *     → 201 with the Call; the wire names as in twilio-node src/rest/api/v2010/account/call.ts
 *   - GET  /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json    fetch → 200 Call
 *   - POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json    update (Status=completed|canceled,
 *     Twiml/Url) → 200 Call; TwiML on a call not in progress → 400 21220
 *     (https://www.twilio.com/docs/api/errors/21220)
 *   - GET  /2010-04-01/Accounts/{AccountSid}/Calls.json          list (ParentCallSid, Status, To,
 *     From, PageSize filters) → 200 { calls, page, page_size, uri, first_page_uri, next_page_uri, … }
 * - Conference resource: https://www.twilio.com/docs/voice/api/conference-resource
 *   - GET /2010-04-01/Accounts/{AccountSid}/Conferences.json (FriendlyName, Status filters; status
 *     `init` until a participant with startConferenceOnEnter joins, then `in-progress`, then
 *     `completed`) → 200 { conferences, … }
 *   - GET …/Conferences/{ConferenceSid}/Participants.json → 200 { participants, … }
 *     (https://www.twilio.com/docs/voice/api/conference-participant-resource)
 * - TwiML, executed as Twilio documents it, on a call once it is answered (`answer(sid)`) and
 *   again whenever its TwiML is replaced by an update:
 *   - the verbs run in order; when the document runs out, the call hangs up
 *     (https://www.twilio.com/docs/voice/twiml#twiml-elements);
 *   - `<Play digits="…">` plays DTMF tones to the leg's party (recorded in `played`), then the next
 *     verb runs (https://www.twilio.com/docs/voice/twiml/play#attributes-digits); `<Say>`,
 *     `<Pause>` are passed over, `<Hangup/>` hangs up;
 *   - `<Dial><Conference>` keeps the leg in the named conference
 *     (https://www.twilio.com/docs/voice/twiml/conference): the conference starts when a
 *     participant with startConferenceOnEnter="true" (the default) is in it; when one with
 *     endConferenceOnExit="true" leaves, it ends and every other participant's `<Dial>` is over, so
 *     each continues after its `<Dial>` (with nothing after it, hangs up);
 *   - a call whose TwiML is replaced (update with Twiml/Url) leaves its conference first, then runs
 *     the new document (https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource);
 *   - hanging a call up (Status=completed, or the document running out) makes it leave too.
 *   `<Dial><Number>` is not executed (the legacy click-to-call's customer leg is made by
 *   `connectCustomer`).
 * - Account resource: GET /2010-04-01/Accounts/{AccountSid}.json → 200 Account
 *   (https://www.twilio.com/docs/iam/api/account)
 * - Authentication: HTTP Basic AccountSid:AuthToken (https://www.twilio.com/docs/usage/your-request-to-twilio, https://www.twilio.com/docs/api/errors/20003);
 *   failure → 401 { code: 20003, message: "Authenticate", … }.
 * - Errors: { code, message, more_info, status } (https://www.twilio.com/docs/usage/twilios-response):
 *   20003 auth, 20404 not found, 20429 too many requests, 21201 no To, 21213 no From, 21211 invalid
 *   To, 21212 invalid From, 21626 invalid StatusCallbackEvent; a create without Url/Twiml/
 *   ApplicationSid answers 21200 "Calls Resource" (https://www.twilio.com/docs/api/errors/21200; the
 *   exact code Twilio uses there is not documented), an invalid update Status 21218 and a wrong
 *   method 20004 (assumed codes). Messages are ours. Assumed too: Status=completed on a queued or
 *   ringing call leaves it `canceled` (and its children), on a call already over changes nothing.
 * - Webhooks: status callbacks (https://www.twilio.com/docs/voice/api/call-resource#statuscallback,
 *   field names as Twilio sends them: CallSid, CallStatus, Direction, ParentCallSid, Timestamp
 *   (RFC 2822), CallbackSource, SequenceNumber, CallDuration, SipResponseCode, Called/Caller…),
 *   messaging webhooks (https://www.twilio.com/docs/messaging/guides/webhook-request), signed as in
 *   https://www.twilio.com/docs/usage/webhooks/webhooks-security (HMAC-SHA1 of URL + sorted
 *   params, base64; JSON bodies: bodySHA256 in the URL, URL alone signed).
 *
 * Test controls: `requests` (every request, recorded before it is answered), `failNext(status,
 * body?)` (the next request gets that answer; the body defaults to Twilio's error shape for the
 * status), `setDown(true)` (every request has its socket destroyed, so the driver sees Twilio
 * unreachable), `reset()`; call state: `calls`, `setCallStatus(sid, status)`,
 * `connectCustomer(parentSid)` (the child leg the parent's `<Dial>` would create), and
 * `clickToCallDeliveries(parentSid, options)` (the signed status callbacks of that call, built from
 * the URLs the driver gave, in the order Twilio sends them).
 * `answer(sid)` (the called party picks up: in-progress, its TwiML runs), `conferences`, each call's
 * `played` digits and `conference` (the one it is in now).
 * Not simulated: what a TwiML update does to the other leg of a `<Dial>` bridge (only recorded in
 * `twimlUpdates`).
 */

export const TWILIO_FAKE_ACCOUNT_SID = 'AC0123456789abcdef0123456789abcdef';
export const TWILIO_FAKE_AUTH_TOKEN = 'test-webhook-secret-0123456789';

export type TwilioFormParams = Record<string, string | string[]>;

export interface TwilioFakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** The raw body. */
  body: string;
  /** The body as form fields (repeated names as arrays). */
  params: TwilioFormParams;
}

/** A Call as the REST API answers it (snake_case, as documented). */
export interface TwilioFakeCall {
  sid: string;
  account_sid: string;
  parent_call_sid: string | null;
  to: string;
  to_formatted: string;
  from: string;
  from_formatted: string;
  status: string;
  direction: string;
  api_version: string;
  answered_by: null;
  annotation: null;
  caller_name: string | null;
  date_created: string;
  date_updated: string;
  start_time: string | null;
  end_time: string | null;
  duration: string | null;
  forwarded_from: null;
  group_sid: null;
  phone_number_sid: string | null;
  price: null;
  price_unit: string;
  queue_time: string;
  trunk_sid: null;
  uri: string;
  subresource_uris: Record<string, string>;
}

/** What the fake keeps besides the Call: the create parameters and TwiML updates. */
export interface TwilioFakeCallState {
  call: TwilioFakeCall;
  created: TwilioFormParams;
  twimlUpdates: string[];
  /** DTMF digits `<Play digits>` played to this leg, in order. */
  played: string[];
  /** The conference the leg is in now (by name). */
  conference?: string;
  /** The verbs after the `<Dial>` the leg is in (run when that `<Dial>` ends). */
  after: TwimlVerb[];
}

/** A conference as the fake keeps it. */
export interface TwilioFakeConference {
  sid: string;
  name: string;
  status: 'init' | 'in-progress' | 'completed';
  participants: Map<string, { startOnEnter: boolean; endOnExit: boolean }>;
  dateCreated: string;
}

/** One TwiML verb the fake executes. */
export type TwimlVerb =
  | { verb: 'Play'; digits?: string }
  | { verb: 'Pause' | 'Say' | 'Hangup' | 'Other' }
  | { verb: 'Conference'; name: string; startOnEnter: boolean; endOnExit: boolean }
  | { verb: 'Number'; number: string };

/** The top-level verbs of a `<Response>` document, in order (the subset the fake executes). */
export function parseTwiml(twiml: string): TwimlVerb[] {
  const body = /<Response\b[^>]*>([\s\S]*)<\/Response>/.exec(twiml)?.[1] ?? '';
  const verbs: TwimlVerb[] = [];
  const attr = (attrs: string, name: string) => {
    const m = new RegExp(`\\b${name}="([^"]*)"`).exec(attrs);
    return m ? xmlUnescape(m[1]!) : undefined;
  };
  const re = /<(\w+)\b([^>]*?)(\/>|>([\s\S]*?)<\/\1>)/g;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    const [, name, attrs = '', , inner = ''] = m;
    if (name === 'Play') verbs.push({ verb: 'Play', digits: attr(attrs, 'digits') });
    else if (name === 'Pause' || name === 'Say' || name === 'Hangup') verbs.push({ verb: name });
    else if (name === 'Dial') {
      const conf = /<Conference\b([^>]*)>([^<]*)<\/Conference>/.exec(inner);
      const num = /<Number\b[^>]*>([^<]*)<\/Number>/.exec(inner);
      if (conf) {
        verbs.push({
          verb: 'Conference',
          name: xmlUnescape(conf[2]!.trim()),
          startOnEnter: attr(conf[1]!, 'startConferenceOnEnter') !== 'false',
          endOnExit: attr(conf[1]!, 'endConferenceOnExit') === 'true',
        });
      } else if (num) verbs.push({ verb: 'Number', number: xmlUnescape(num[1]!.trim()) });
      else verbs.push({ verb: 'Other' });
    } else verbs.push({ verb: 'Other' });
  }
  return verbs;
}

export interface TwilioFakeOptions {
  accountSid?: string;
  authToken?: string;
  /** Account status answered by the Account fetch (default active). */
  accountStatus?: 'active' | 'suspended' | 'closed';
}

export interface ClickToCallOptions {
  /** What the customer does (default answered). */
  outcome?: TwilioOutcome;
  start?: Date;
  talkSeconds?: number;
}

export interface TwilioFake {
  readonly baseUrl: string;
  readonly accountSid: string;
  readonly authToken: string;
  readonly requests: TwilioFakeRequest[];
  readonly calls: Map<string, TwilioFakeCallState>;
  /** The next request (or the one after `skip` more) gets this answer. */
  failNext(status: number, body?: unknown, headers?: Record<string, string>, skip?: number): void;
  setDown(down: boolean): void;
  setAccountStatus(status: 'active' | 'suspended' | 'closed'): void;
  reset(): void;
  setCallStatus(sid: string, status: string): void;
  /** Creates the customer leg the parent's `<Dial><Number>` would create (in progress by default). */
  connectCustomer(parentSid: string, status?: string): TwilioFakeCall;
  /** The signed status callbacks of a click-to-call placed through this fake, in Twilio's order; ends the call. */
  clickToCallDeliveries(parentSid: string, options?: ClickToCallOptions): TwilioDelivery[];
  /** The called party answers: the call goes in-progress and its TwiML runs. */
  answer(sid: string): void;
  /** The customer's leg of a conference click-to-call (its URL names the agent's leg). */
  customerLegOf(agentSid: string): TwilioFakeCallState | undefined;
  readonly conferences: Map<string, TwilioFakeConference>;
  close(): Promise<void>;
}

const API_VERSION = '2010-04-01';
const TERMINAL = new Set(['completed', 'busy', 'no-answer', 'canceled', 'failed']);
const CALLBACK_EVENTS = new Set(['initiated', 'ringing', 'answered', 'completed']);
const E164 = /^\+[1-9]\d{6,14}$/;

/** RFC 2822 as Twilio writes it: `Tue, 10 Aug 2010 08:02:17 +0000`. */
export function twilioTime(date: Date): string {
  return date.toUTCString().replace('GMT', '+0000');
}

export function newCallSid(): string {
  return `CA${randomBytes(16).toString('hex')}`;
}

export function newMessageSid(): string {
  return `SM${randomBytes(16).toString('hex')}`;
}

function parseForm(body: string): TwilioFormParams {
  const out: TwilioFormParams = {};
  for (const [k, v] of new URLSearchParams(body)) {
    const cur = out[k];
    if (cur === undefined) out[k] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else out[k] = [cur, v];
  }
  return out;
}

const one = (params: TwilioFormParams, key: string): string | undefined => {
  const v = params[key];
  return Array.isArray(v) ? v[0] : v;
};
const all = (params: TwilioFormParams, key: string): string[] => {
  const v = params[key];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
};

function errorBody(status: number, code: number, message: string) {
  return { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status };
}

function defaultErrorBody(status: number) {
  if (status === 401) return errorBody(401, 20003, 'Authenticate');
  if (status === 404) return errorBody(404, 20404, 'The requested resource was not found');
  if (status === 429) return errorBody(429, 20429, 'Too Many Requests');
  if (status === 503) return errorBody(503, 20503, 'Service Unavailable');
  if (status >= 500) return errorBody(status, 20500, 'Internal Server Error');
  return errorBody(status, 21211, "The 'To' number is not a valid phone number.");
}

const validAddress = (v: string) => E164.test(v) || /^client:\S+$/.test(v) || /^sip:\S+@\S+$/.test(v);

export async function startTwilioFake(options: TwilioFakeOptions = {}): Promise<TwilioFake> {
  const accountSid = options.accountSid ?? TWILIO_FAKE_ACCOUNT_SID;
  const authToken = options.authToken ?? TWILIO_FAKE_AUTH_TOKEN;
  let accountStatus = options.accountStatus ?? 'active';
  const requests: TwilioFakeRequest[] = [];
  const calls = new Map<string, TwilioFakeCallState>();
  const conferences = new Map<string, TwilioFakeConference>();
  const sockets = new Set<Socket>();
  let down = false;
  let failure: { status: number; body: unknown; headers: Record<string, string>; skip: number } | undefined;

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
  };

  const callUri = (sid: string) => `/${API_VERSION}/Accounts/${accountSid}/Calls/${sid}.json`;

  const newCall = (fields: {
    to: string;
    from: string;
    direction: string;
    status: string;
    parent?: string;
  }): TwilioFakeCall => {
    const sid = newCallSid();
    const now = twilioTime(new Date());
    const base = `/${API_VERSION}/Accounts/${accountSid}/Calls/${sid}`;
    return {
      sid,
      account_sid: accountSid,
      parent_call_sid: fields.parent ?? null,
      to: fields.to,
      to_formatted: fields.to,
      from: fields.from,
      from_formatted: fields.from,
      status: fields.status,
      direction: fields.direction,
      api_version: API_VERSION,
      answered_by: null,
      annotation: null,
      caller_name: null,
      date_created: now,
      date_updated: now,
      start_time: null,
      end_time: null,
      duration: null,
      forwarded_from: null,
      group_sid: null,
      phone_number_sid: null,
      price: null,
      price_unit: 'USD',
      queue_time: '0',
      trunk_sid: null,
      uri: callUri(sid),
      subresource_uris: {
        notifications: `${base}/Notifications.json`,
        recordings: `${base}/Recordings.json`,
        events: `${base}/Events.json`,
      },
    };
  };

  const setStatus = (call: TwilioFakeCall, status: string) => {
    const now = new Date();
    call.status = status;
    call.date_updated = twilioTime(now);
    if (status === 'in-progress' && !call.start_time) call.start_time = twilioTime(now);
    if (TERMINAL.has(status) && !call.end_time) {
      call.end_time = twilioTime(now);
      call.duration = call.start_time ? String(Math.round((now.getTime() - Date.parse(call.start_time)) / 1000)) : '0';
    }
  };

  const hangUp = (call: TwilioFakeCall) => {
    if (TERMINAL.has(call.status)) return;
    setStatus(call, call.status === 'in-progress' ? 'completed' : 'canceled');
    const state = calls.get(call.sid);
    if (state) leave(state);
    for (const s of calls.values()) if (s.call.parent_call_sid === call.sid) hangUp(s.call);
  };

  /** Runs TwiML verbs on an answered leg (the semantics in the header comment). */
  const run = (state: TwilioFakeCallState, verbs: TwimlVerb[]) => {
    for (let i = 0; i < verbs.length; i++) {
      if (state.call.status !== 'in-progress') return;
      const v = verbs[i]!;
      if (v.verb === 'Play') {
        if (v.digits) state.played.push(v.digits);
      } else if (v.verb === 'Hangup') {
        return hangUp(state.call);
      } else if (v.verb === 'Conference') {
        state.after = verbs.slice(i + 1);
        return join(state, v);
      } else if (v.verb === 'Number') {
        // A <Dial><Number> bridge: the child is made by connectCustomer; the leg waits in its <Dial>.
        state.after = verbs.slice(i + 1);
        return;
      }
    }
    hangUp(state.call);
  };

  const join = (state: TwilioFakeCallState, v: Extract<TwimlVerb, { verb: 'Conference' }>) => {
    let conf = conferences.get(v.name);
    if (!conf || conf.status === 'completed') {
      conf = {
        sid: `CF${randomBytes(16).toString('hex')}`,
        name: v.name,
        status: 'init',
        participants: new Map(),
        dateCreated: twilioTime(new Date()),
      };
      conferences.set(v.name, conf);
    }
    conf.participants.set(state.call.sid, { startOnEnter: v.startOnEnter, endOnExit: v.endOnExit });
    state.conference = v.name;
    if (v.startOnEnter && conf.status === 'init') conf.status = 'in-progress';
  };

  /** The leg leaves its conference; one that ends the conference on exit ends it for everyone. */
  const leave = (state: TwilioFakeCallState) => {
    const name = state.conference;
    if (!name) return;
    state.conference = undefined;
    const conf = conferences.get(name);
    const me = conf?.participants.get(state.call.sid);
    if (!conf || !me) return;
    conf.participants.delete(state.call.sid);
    if (me.endOnExit && conf.status === 'in-progress') {
      conf.status = 'completed';
      for (const sid of [...conf.participants.keys()]) {
        conf.participants.delete(sid);
        const other = calls.get(sid);
        if (!other) continue;
        other.conference = undefined;
        // Its <Dial> is over: it continues after it.
        const rest = other.after;
        other.after = [];
        run(other, rest);
      }
    } else if (conf.participants.size === 0 && conf.status === 'in-progress') {
      conf.status = 'completed';
    }
  };

  const createCall = (params: TwilioFormParams, res: ServerResponse) => {
    const to = one(params, 'To');
    const from = one(params, 'From');
    if (!to) return send(res, 400, errorBody(400, 21201, "No 'To' number is specified"));
    if (!from) return send(res, 400, errorBody(400, 21213, "No 'From' number is specified"));
    if (!one(params, 'Url') && !one(params, 'Twiml') && !one(params, 'ApplicationSid')) {
      return send(res, 400, errorBody(400, 21200, 'A Url, Twiml or ApplicationSid parameter is required.'));
    }
    if (!validAddress(to))
      return send(res, 400, errorBody(400, 21211, `The 'To' number ${to} is not a valid phone number.`));
    const fromOk = E164.test(from) || (!E164.test(to) && /^client:\S+$/.test(from));
    if (!fromOk) {
      return send(res, 400, errorBody(400, 21212, `The 'From' number ${from} is not a valid phone number.`));
    }
    if (all(params, 'StatusCallbackEvent').some((e) => !CALLBACK_EVENTS.has(e))) {
      return send(res, 400, errorBody(400, 21626, "Invalid 'StatusCallbackEvent'"));
    }
    const call = newCall({ to, from, direction: 'outbound-api', status: 'queued' });
    calls.set(call.sid, { call, created: params, twimlUpdates: [], played: [], after: [] });
    send(res, 201, call);
  };

  const updateCall = (state: TwilioFakeCallState, params: TwilioFormParams, res: ServerResponse) => {
    const { call } = state;
    const status = one(params, 'Status');
    const twiml = one(params, 'Twiml') ?? one(params, 'Url');
    if (status !== undefined && status !== 'completed' && status !== 'canceled') {
      return send(res, 400, errorBody(400, 21218, `Invalid 'Status' ${status}`));
    }
    if (twiml !== undefined) {
      if (call.status !== 'in-progress') {
        return send(res, 400, errorBody(400, 21220, 'Call is not in-progress. Cannot redirect.'));
      }
      state.twimlUpdates.push(twiml);
      // The new document replaces the old one: the leg leaves its conference, then runs it.
      leave(state);
      state.after = [];
      if (one(params, 'Twiml') !== undefined) run(state, parseTwiml(twiml));
    }
    if (status === 'completed') hangUp(call);
    if (status === 'canceled' && (call.status === 'queued' || call.status === 'ringing')) setStatus(call, 'canceled');
    send(res, 200, call);
  };

  const listCalls = (query: Record<string, string>, res: ServerResponse) => {
    const pageSize = Math.min(Number(query['PageSize'] ?? 50) || 50, 1000);
    const found = [...calls.values()]
      .map((s) => s.call)
      .filter((c) => !query['ParentCallSid'] || c.parent_call_sid === query['ParentCallSid'])
      .filter((c) => !query['Status'] || c.status === query['Status'])
      .filter((c) => !query['To'] || c.to === query['To'])
      .filter((c) => !query['From'] || c.from === query['From'])
      .slice(0, pageSize);
    const uri = `/${API_VERSION}/Accounts/${accountSid}/Calls.json?PageSize=${pageSize}&Page=0`;
    send(res, 200, {
      calls: found,
      end: Math.max(0, found.length - 1),
      first_page_uri: uri,
      next_page_uri: null,
      page: 0,
      page_size: pageSize,
      previous_page_uri: null,
      start: 0,
      uri,
    });
  };

  const page = (key: string, items: unknown[], uri: string) => ({
    [key]: items,
    end: Math.max(0, items.length - 1),
    first_page_uri: uri,
    next_page_uri: null,
    page: 0,
    page_size: 50,
    previous_page_uri: null,
    start: 0,
    uri,
  });
  const conferenceJson = (c: TwilioFakeConference) => ({
    sid: c.sid,
    account_sid: accountSid,
    friendly_name: c.name,
    status: c.status,
    api_version: API_VERSION,
    region: 'us1',
    date_created: c.dateCreated,
    date_updated: c.dateCreated,
    uri: `/${API_VERSION}/Accounts/${accountSid}/Conferences/${c.sid}.json`,
    subresource_uris: { participants: `/${API_VERSION}/Accounts/${accountSid}/Conferences/${c.sid}/Participants.json` },
  });
  const listConferences = (query: Record<string, string>, res: ServerResponse) => {
    const found = [...conferences.values()]
      .filter((c) => !query['FriendlyName'] || c.name === query['FriendlyName'])
      .filter((c) => !query['Status'] || c.status === query['Status'])
      .map(conferenceJson);
    send(res, 200, page('conferences', found, `/${API_VERSION}/Accounts/${accountSid}/Conferences.json`));
  };
  const listParticipants = (conferenceSid: string, res: ServerResponse) => {
    const conf = [...conferences.values()].find((c) => c.sid === conferenceSid);
    if (!conf) return send(res, 404, errorBody(404, 20404, 'The requested resource was not found'));
    const items = [...conf.participants.entries()].map(([callSid, p]) => ({
      account_sid: accountSid,
      call_sid: callSid,
      conference_sid: conf.sid,
      status: 'connected',
      start_conference_on_enter: p.startOnEnter,
      end_conference_on_exit: p.endOnExit,
      muted: false,
      hold: false,
      coaching: false,
      label: null,
      uri: `/${API_VERSION}/Accounts/${accountSid}/Conferences/${conf.sid}/Participants/${callSid}.json`,
    }));
    send(
      res,
      200,
      page('participants', items, `/${API_VERSION}/Accounts/${accountSid}/Conferences/${conf.sid}/Participants.json`),
    );
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (down) {
        req.socket.destroy();
        return;
      }
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const body = Buffer.concat(chunks).toString('utf-8');
      const query = Object.fromEntries(url.searchParams);
      requests.push({
        method: req.method ?? 'GET',
        path: url.pathname,
        query,
        headers: req.headers,
        body,
        params: parseForm(body),
      });
      if (failure && failure.skip > 0) failure.skip--;
      else if (failure) {
        const f = failure;
        failure = undefined;
        return send(res, f.status, f.body, f.headers);
      }
      const auth = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
      const [user, pass] = auth ? Buffer.from(auth[1]!, 'base64').toString('utf-8').split(/:(.*)/s) : [];
      if (user !== accountSid || pass !== authToken) return send(res, 401, defaultErrorBody(401));
      const confPath = /^\/2010-04-01\/Accounts\/([^/]+)\/Conferences(?:\/(CF[0-9a-f]{32})\/Participants)?\.json$/.exec(
        url.pathname,
      );
      if (confPath && confPath[1] === accountSid && req.method === 'GET') {
        return confPath[2] ? listParticipants(confPath[2], res) : listConferences(query, res);
      }
      const m = /^\/2010-04-01\/Accounts\/([^/]+?)(?:\/Calls(?:\/([^/]+))?)?\.json$/.exec(url.pathname);
      if (!m || m[1] !== accountSid)
        return send(res, 404, errorBody(404, 20404, `The requested resource ${url.pathname} was not found`));
      const isCalls = url.pathname.includes('/Calls');
      const sid = m[2];
      const params = parseForm(body);
      if (!isCalls && req.method === 'GET') {
        return send(res, 200, {
          sid: accountSid,
          friendly_name: 'Switchboard test account',
          status: accountStatus,
          type: 'Full',
          owner_account_sid: accountSid,
          date_created: 'Thu, 01 Jan 2026 00:00:00 +0000',
          date_updated: 'Thu, 01 Jan 2026 00:00:00 +0000',
          uri: `/${API_VERSION}/Accounts/${accountSid}.json`,
          subresource_uris: { calls: `/${API_VERSION}/Accounts/${accountSid}/Calls.json` },
        });
      }
      if (isCalls && !sid && req.method === 'POST') return createCall(params, res);
      if (isCalls && !sid && req.method === 'GET') return listCalls(query, res);
      if (isCalls && sid) {
        const state = calls.get(sid);
        if (!state)
          return send(res, 404, errorBody(404, 20404, `The requested resource ${url.pathname} was not found`));
        if (req.method === 'GET') return send(res, 200, state.call);
        if (req.method === 'POST') return updateCall(state, params, res);
      }
      send(res, 405, errorBody(405, 20004, 'Method not allowed'));
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const fake: TwilioFake = {
    baseUrl: `http://127.0.0.1:${port}`,
    accountSid,
    authToken,
    requests,
    calls,
    conferences,
    failNext(status, body, headers = {}, skip = 0) {
      failure = { status, body: body ?? defaultErrorBody(status), headers, skip };
    },
    setDown(value) {
      down = value;
    },
    setAccountStatus(status) {
      accountStatus = status;
    },
    reset() {
      requests.length = 0;
      calls.clear();
      conferences.clear();
      failure = undefined;
      down = false;
      accountStatus = options.accountStatus ?? 'active';
    },
    setCallStatus(sid, status) {
      const state = calls.get(sid);
      if (!state) throw new Error(`no call ${sid}`);
      setStatus(state.call, status);
    },
    connectCustomer(parentSid, status = 'in-progress') {
      const parent = calls.get(parentSid);
      if (!parent) throw new Error(`no call ${parentSid}`);
      const dial = parseDialTwiml(one(parent.created, 'Twiml') ?? '');
      const child = newCall({
        to: dial.number,
        from: dial.callerId ?? parent.call.from,
        direction: 'outbound-dial',
        status: 'queued',
        parent: parentSid,
      });
      calls.set(child.sid, { call: child, created: {}, twimlUpdates: [], played: [], after: [] });
      setStatus(child, status);
      return child;
    },
    answer(sid) {
      const state = calls.get(sid);
      if (!state) throw new Error(`no call ${sid}`);
      if (state.call.status === 'in-progress' || TERMINAL.has(state.call.status)) return;
      setStatus(state.call, 'in-progress');
      run(state, parseTwiml(one(state.created, 'Twiml') ?? ''));
    },
    customerLegOf(agentSid) {
      return [...calls.values()].find((s) =>
        (one(s.created, 'StatusCallback') ?? '').includes(`parentCallSid=${agentSid}`),
      );
    },
    clickToCallDeliveries(parentSid, opts = {}) {
      const parent = calls.get(parentSid);
      if (!parent) throw new Error(`no call ${parentSid}`);
      const customerLeg = fake.customerLegOf(parentSid);
      if (!customerLeg) throw new Error(`no customer leg for ${parentSid}`);
      const child = customerLeg.call;
      const deliveries = emitCallLifecycle({
        scenario: 'click-to-call',
        authToken,
        accountSid,
        parentUrl: one(parent.created, 'StatusCallback') ?? '',
        childUrl: one(customerLeg.created, 'StatusCallback') ?? '',
        parentSid,
        childSid: child.sid,
        agent: parent.call.to,
        customer: child.to,
        companyNumber: child.from,
        outcome: opts.outcome,
        start: opts.start,
        talkSeconds: opts.talkSeconds,
      });
      setStatus(parent.call, 'completed');
      setStatus(child, opts.outcome && opts.outcome !== 'answered' ? opts.outcome : 'completed');
      return deliveries;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
  return fake;
}

function xmlUnescape(s: string): string {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** The customer, caller id and `<Number statusCallback>` of a `<Dial><Number>` document. */
export function parseDialTwiml(twiml: string): { number: string; callerId?: string; statusCallback?: string } {
  const dial = /<Dial\b([^>]*)>/.exec(twiml);
  const numberEl = /<Number\b([^>]*)>([^<]*)<\/Number>/.exec(twiml);
  const attr = (attrs: string | undefined, name: string) => {
    const m = attrs ? new RegExp(`\\b${name}="([^"]*)"`).exec(attrs) : null;
    return m ? xmlUnescape(m[1]!) : undefined;
  };
  return {
    number: numberEl ? xmlUnescape(numberEl[2]!.trim()) : '',
    callerId: attr(dial?.[1], 'callerId'),
    statusCallback: attr(numberEl?.[1], 'statusCallback'),
  };
}

// ---------------------------------------------------------------------------------------------
// Webhook deliveries, signed as Twilio signs them.
// ---------------------------------------------------------------------------------------------

/**
 * Twilio's X-Twilio-Signature for a request to `url` with form `params`: HMAC-SHA1 (auth token) of
 * the URL followed by each parameter name + value, names sorted, a repeated name's distinct values
 * sorted; base64. For a JSON delivery pass `{}` and a URL carrying bodySHA256.
 */
export function signTwilioRequest(authToken: string, url: string, params: TwilioFormParams = {}): string {
  let data = url;
  for (const key of Object.keys(params).sort()) {
    const v = params[key]!;
    for (const value of Array.isArray(v) ? [...new Set(v)].sort() : [v]) data += key + value;
  }
  return createHmac('sha1', authToken).update(data, 'utf-8').digest('base64');
}

export interface TwilioDelivery {
  /** The route after /webhooks/twilio/<connectionId>/. */
  route: string;
  url: string;
  params: TwilioFormParams;
  /** The raw body, form-encoded (or JSON). */
  body: string;
  headers: Record<string, string>;
  signature: string;
}

function routeOf(url: string): string {
  return new URL(url).pathname.split('/').pop() ?? '';
}

/** A form delivery as Twilio sends it: the body form-encoded, the signature over URL + params. */
export function twilioDelivery(authToken: string, url: string, params: Record<string, string>): TwilioDelivery {
  const signature = signTwilioRequest(authToken, url, params);
  return {
    route: routeOf(url),
    url,
    params,
    body: new URLSearchParams(params).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
    signature,
  };
}

/** A JSON delivery: `bodySHA256` (hex) added to the URL, the URL alone signed. */
export function twilioJsonDelivery(authToken: string, url: string, json: unknown): TwilioDelivery {
  const body = JSON.stringify(json);
  const hash = createHash('sha256').update(body, 'utf-8').digest('hex');
  const u = new URL(url);
  u.searchParams.set('bodySHA256', hash);
  const signedUrl = u.toString();
  const signature = signTwilioRequest(authToken, signedUrl, {});
  return {
    route: routeOf(signedUrl),
    url: signedUrl,
    params: {},
    body,
    headers: { 'content-type': 'application/json', 'x-twilio-signature': signature },
    signature,
  };
}

export interface StatusCallbackOptions {
  accountSid: string;
  callSid: string;
  parentCallSid?: string;
  status: string;
  direction: 'inbound' | 'outbound-api' | 'outbound-dial';
  from: string;
  to: string;
  at: Date;
  sequenceNumber?: number;
  callDuration?: number;
  sipResponseCode?: string;
  callerName?: string;
  recordingUrl?: string;
}

/** The form fields of a call status callback, as Twilio sends them (call progress events). */
export function twilioStatusCallback(o: StatusCallbackOptions): Record<string, string> {
  const p: Record<string, string> = {
    Called: o.to,
    ToState: '',
    CallerCountry: 'US',
    Direction: o.direction,
    Timestamp: twilioTime(o.at),
    CallbackSource: 'call-progress-events',
    CallerState: '',
    ToZip: '',
    CallSid: o.callSid,
    To: o.to,
    CallerZip: '',
    ToCountry: 'US',
    CalledZip: '',
    ApiVersion: API_VERSION,
    CalledCity: '',
    CallStatus: o.status,
    From: o.from,
    AccountSid: o.accountSid,
    CalledCountry: 'US',
    CallerCity: '',
    ToCity: '',
    FromCountry: 'US',
    Caller: o.from,
    FromCity: '',
    CalledState: '',
    FromZip: '',
    FromState: '',
  };
  if (o.sequenceNumber !== undefined) p['SequenceNumber'] = String(o.sequenceNumber);
  if (o.parentCallSid) p['ParentCallSid'] = o.parentCallSid;
  if (o.callDuration !== undefined) {
    p['CallDuration'] = String(o.callDuration);
    p['Duration'] = String(Math.ceil(o.callDuration / 60));
  }
  if (o.sipResponseCode) p['SipResponseCode'] = o.sipResponseCode;
  if (o.callerName) p['CallerName'] = o.callerName;
  if (o.recordingUrl) {
    p['RecordingUrl'] = o.recordingUrl;
    p['RecordingSid'] = `RE${o.recordingUrl.replace(/\W/g, '').slice(-32).padStart(32, '0')}`;
  }
  return p;
}

export type TwilioOutcome = 'answered' | 'no-answer' | 'busy';

export interface LifecycleOptions {
  scenario: 'click-to-call' | 'inbound';
  authToken: string;
  accountSid: string;
  /**
   * Click-to-call: the agent leg's StatusCallback URL (`…/status?callId=…&leg=agent`). Inbound: the
   * phone number's status callback URL (`…/status`).
   */
  parentUrl: string;
  /**
   * Click-to-call: the customer leg's StatusCallback (`…&leg=customer&parentCallSid=CA…`). Inbound: the
   * `<Number statusCallback>` the company's TwiML gives the agent's leg (`…/status`).
   */
  childUrl: string;
  parentSid?: string;
  childSid?: string;
  /** The agent's identity at Twilio (E.164, client:…, sip:…). */
  agent: string;
  /** The customer's number, E.164. */
  customer: string;
  /** The company's Twilio number (click-to-call caller id; the number an inbound call dials). */
  companyNumber: string;
  /** Click-to-call: what the customer does; inbound: what the agent does. Default answered. */
  outcome?: TwilioOutcome;
  start?: Date;
  talkSeconds?: number;
  callerName?: string;
}

/**
 * The ordered status callbacks of one call, signed:
 * - click-to-call: the agent leg (outbound-api) initiated, ringing, in-progress; the customer leg
 *   (outbound-api, its own call in the same conference; our URL marker names the agent leg)
 *   initiated, ringing, then in-progress + completed / no-answer / busy; the agent leg completed.
 * - inbound: the agent leg dialled by the company's TwiML (child, outbound-dial; From = the caller)
 *   initiated, ringing, then in-progress + completed / no-answer / busy; the caller's leg (parent,
 *   inbound) completed — a phone number's status callback reports the end of the call.
 */
export function emitCallLifecycle(o: LifecycleOptions): TwilioDelivery[] {
  const parentSid = o.parentSid ?? newCallSid();
  const childSid = o.childSid ?? newCallSid();
  const outcome = o.outcome ?? 'answered';
  const talk = o.talkSeconds ?? 30;
  // By default the call started a minute ago (on a whole second: Timestamp is RFC 2822): Twilio
  // stamps each callback with the time it fires, and a stale Timestamp is refused.
  const t0 = (o.start ?? new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000)).getTime();
  const at = (s: number) => new Date(t0 + s * 1000);
  const out: TwilioDelivery[] = [];
  const deliver = (url: string, opts: StatusCallbackOptions) =>
    out.push(twilioDelivery(o.authToken, url, twilioStatusCallback(opts)));
  const childEnd = (start: number, leg: Omit<StatusCallbackOptions, 'status' | 'at' | 'sequenceNumber'>): number => {
    if (outcome === 'answered') {
      deliver(o.childUrl, { ...leg, status: 'in-progress', at: at(start), sequenceNumber: 2 });
      const end = start + talk;
      deliver(o.childUrl, {
        ...leg,
        status: 'completed',
        at: at(end),
        sequenceNumber: 3,
        callDuration: talk,
        sipResponseCode: '200',
      });
      return end;
    }
    const end = outcome === 'busy' ? start : start + 25;
    deliver(o.childUrl, {
      ...leg,
      status: outcome,
      at: at(end),
      sequenceNumber: 2,
      callDuration: 0,
      sipResponseCode: outcome === 'busy' ? '486' : '487',
    });
    return end;
  };

  if (o.scenario === 'click-to-call') {
    const parent = {
      accountSid: o.accountSid,
      callSid: parentSid,
      direction: 'outbound-api' as const,
      from: o.companyNumber,
      to: o.agent,
    };
    deliver(o.parentUrl, { ...parent, status: 'initiated', at: at(0), sequenceNumber: 0 });
    deliver(o.parentUrl, { ...parent, status: 'ringing', at: at(1), sequenceNumber: 1 });
    deliver(o.parentUrl, { ...parent, status: 'in-progress', at: at(4), sequenceNumber: 2 });
    // The customer's leg is a call of its own (both legs meet in a conference): no ParentCallSid;
    // its URL carries our parentCallSid marker.
    const child = {
      accountSid: o.accountSid,
      callSid: childSid,
      direction: 'outbound-api' as const,
      from: o.companyNumber,
      to: o.customer,
    };
    deliver(o.childUrl, { ...child, status: 'initiated', at: at(4), sequenceNumber: 0 });
    deliver(o.childUrl, { ...child, status: 'ringing', at: at(5), sequenceNumber: 1 });
    const end = childEnd(9, child);
    deliver(o.parentUrl, {
      ...parent,
      status: 'completed',
      at: at(end + 1),
      sequenceNumber: 3,
      callDuration: end + 1 - 4,
      sipResponseCode: '200',
    });
    return out;
  }

  const child = {
    accountSid: o.accountSid,
    callSid: childSid,
    parentCallSid: parentSid,
    direction: 'outbound-dial' as const,
    from: o.customer,
    to: o.agent,
  };
  deliver(o.childUrl, { ...child, status: 'initiated', at: at(2), sequenceNumber: 0 });
  deliver(o.childUrl, { ...child, status: 'ringing', at: at(3), sequenceNumber: 1 });
  const end = childEnd(8, child);
  deliver(o.parentUrl, {
    accountSid: o.accountSid,
    callSid: parentSid,
    direction: 'inbound',
    from: o.customer,
    to: o.companyNumber,
    status: 'completed',
    at: at(end + 1),
    sequenceNumber: 0,
    callDuration: end + 1,
    callerName: o.callerName,
  });
  return out;
}

/** An incoming message webhook's fields (https://www.twilio.com/docs/messaging/guides/webhook-request). */
export function twilioIncomingMessage(o: {
  accountSid: string;
  from: string;
  to: string;
  body: string;
  messageSid?: string;
}): Record<string, string> {
  const sid = o.messageSid ?? newMessageSid();
  return {
    ToCountry: 'US',
    ToState: '',
    SmsMessageSid: sid,
    NumMedia: '0',
    ToCity: '',
    FromZip: '',
    SmsSid: sid,
    FromState: '',
    SmsStatus: 'received',
    FromCity: '',
    Body: o.body,
    FromCountry: 'US',
    To: o.to,
    ToZip: '',
    NumSegments: '1',
    MessageSid: sid,
    AccountSid: o.accountSid,
    From: o.from,
    ApiVersion: API_VERSION,
  };
}

/** An outbound message status callback's fields (https://www.twilio.com/docs/sms/api/message-resource). */
export function twilioMessageStatus(o: {
  accountSid: string;
  messageSid: string;
  from: string;
  to: string;
  status: string;
  errorCode?: string;
}): Record<string, string> {
  const p: Record<string, string> = {
    SmsSid: o.messageSid,
    SmsStatus: o.status,
    MessageStatus: o.status,
    To: o.to,
    MessageSid: o.messageSid,
    AccountSid: o.accountSid,
    From: o.from,
    ApiVersion: API_VERSION,
  };
  if (o.errorCode) p['ErrorCode'] = o.errorCode;
  return p;
}
