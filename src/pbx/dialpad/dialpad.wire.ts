/**
 * Dialpad's wire format: what its API and its webhook events look like, and how we read them.
 *
 * Sources (public documentation and Dialpad's own OpenAPI document):
 * - Call events: https://developers.dialpad.com/docs/call-events-logging (payload fields; call
 *   states) and https://help.dialpad.com/hc/en-us/articles/115005281886 (internal_number /
 *   external_number per direction, target, entry_point_call_id "defined for operator calls").
 * - SMS events: https://developers.dialpad.com/docs/sms-events (id, created_date, direction,
 *   target, contact, sender_id, from_number, to_number (a list), text, message_status).
 * - API v2 OpenAPI document and schemas: https://github.com/dialpad/dialpad-python-sdk
 *   (`dialpad_api_spec.json`, `src/dialpad/schemas/call.py`, `call_event_subscription.py`, …);
 *   servers https://dialpad.com/ and https://sandbox.dialpad.com/.
 *
 * Dialpad ids are int64. The API's own examples serialise them as strings (`"call_id": "1002"`)
 * while recorded webhook payloads carry JSON numbers (`"call_id": 6421977457180672`); both occur,
 * so ids are always read as digit strings, and JSON is parsed so that no integer that does not fit
 * a double loses digits (see parseDialpadJson).
 */

export const DIALPAD_DOCS = {
  callEvents: 'https://developers.dialpad.com/docs/call-events-logging',
  smsEvents: 'https://developers.dialpad.com/docs/sms-events',
  apiSpec: 'https://github.com/dialpad/dialpad-python-sdk/blob/main/dialpad_api_spec.json',
} as const;

/**
 * Every call state a call event subscription accepts (CreateCallEventSubscription.call_states in
 * the OpenAPI document). Listed for validation and documentation; we subscribe to the mapped ones.
 */
export const DIALPAD_CALL_STATES = [
  'admin',
  'admin_recording',
  'ai_playbook',
  'all',
  'barge',
  'blocked',
  'call_transcription',
  'calling',
  'connected',
  'csat',
  'dispositions',
  'eavesdrop',
  'hangup',
  'hold',
  'merged',
  'missed',
  'monitor',
  'parked',
  'pcsat',
  'postcall',
  'preanswer',
  'queued',
  'recap_action_items',
  'recap_outcome',
  'recap_purposes',
  'recap_summary',
  'recording',
  'ringing',
  'takeover',
  'transcription',
  'voicemail',
  'voicemail_uploaded',
] as const;
export type DialpadCallState = (typeof DIALPAD_CALL_STATES)[number];

/** The states the mapper turns into records: the subscription asks for these (and only these). */
export const DIALPAD_MAPPED_CALL_STATES = [
  'calling',
  'ringing',
  'queued',
  'connected',
  'hangup',
  'missed',
  'voicemail',
  'voicemail_uploaded',
  'recording',
] as const satisfies readonly DialpadCallState[];

/** States after which a call is over (for `status`); `date_ended` also says so. */
export const DIALPAD_ENDED_STATES: ReadonlySet<string> = new Set([
  'hangup',
  'missed',
  'voicemail',
  'voicemail_uploaded',
  'blocked',
  'postcall',
]);

/** A participant of a call event (`target`, `contact`, `entry_point_target`, `proxy_target`). */
export interface DialpadParty {
  id?: unknown;
  type?: unknown;
  name?: unknown;
  phone?: unknown;
  phone_number?: unknown;
  email?: unknown;
}

/** The fields of a call event we read (CallProto in the OpenAPI document, plus webhook extras). */
export interface DialpadCallEvent {
  call_id?: unknown;
  master_call_id?: unknown;
  entry_point_call_id?: unknown;
  operator_call_id?: unknown;
  state?: unknown;
  direction?: unknown;
  event_timestamp?: unknown;
  date_started?: unknown;
  date_rang?: unknown;
  date_connected?: unknown;
  date_ended?: unknown;
  external_number?: unknown;
  internal_number?: unknown;
  contact?: DialpadParty;
  target?: DialpadParty;
  custom_data?: unknown;
  recording_details?: unknown;
  recording_url?: unknown;
  call_recording_share_links?: unknown;
  voicemail_link?: unknown;
  voicemail_share_link?: unknown;
  voicemail_recording_id?: unknown;
  transcription_text?: unknown;
}

/** The fields of an SMS event we read. */
export interface DialpadSmsEvent {
  id?: unknown;
  created_date?: unknown;
  event_timestamp?: unknown;
  direction?: unknown;
  from_number?: unknown;
  to_number?: unknown;
  text?: unknown;
  text_content?: unknown;
  message_status?: unknown;
  target?: DialpadParty;
  contact?: DialpadParty;
  sender_id?: unknown;
}

/**
 * JSON.parse, except that integers too long for a double (16+ digits) become strings, so int64
 * ids keep every digit. String literals are matched first, so digits inside strings are untouched.
 */
export function parseDialpadJson(text: string): unknown {
  const safe = text.replace(/"(?:[^"\\]|\\.)*"|(?<![\w.+-])-?\d{16,}(?![\d.eE])/g, (token) =>
    token.startsWith('"') || Number.isSafeInteger(Number(token)) ? token : `"${token}"`,
  );
  return JSON.parse(safe);
}

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A Dialpad id (int64, as a JSON number or a digit string) as a digit string. */
export function dialpadId(v: unknown): string | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? String(v) : undefined;
  if (typeof v === 'string') return /^\d{1,20}$/.test(v.trim()) ? v.trim() : undefined;
  return undefined;
}

/** A millisecond Unix timestamp (number or digit string) as a Date. */
export function dialpadTime(v: unknown): Date | undefined {
  const ms = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,16}(\.\d+)?$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isFinite(ms) || ms <= 0) return undefined;
  const d = new Date(Math.round(ms));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** A non-empty trimmed string. */
export function text(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const t = v.trim();
  return t ? t : undefined;
}

/** An absolute http(s) URL, else undefined (a payload never makes us store another scheme). */
export function httpUrl(v: unknown): string | undefined {
  const t = text(v);
  if (!t) return undefined;
  try {
    const u = new URL(t);
    return u.protocol === 'https:' || u.protocol === 'http:' ? t : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A JSON body for the Dialpad API with int64 fields written as JSON numbers of exactly the given
 * digits (a JS number would round ids past 2^53).
 */
export function dialpadJsonBody(body: Record<string, unknown>, int64: Record<string, string>): string {
  const markers: Record<string, string> = {};
  for (const [k, digits] of Object.entries(int64)) {
    if (!/^\d{1,20}$/.test(digits)) throw new Error(`${k} is not an int64 id`);
    markers[k] = `@@int64:${digits}@@`;
  }
  let json = JSON.stringify({ ...body, ...markers });
  for (const digits of Object.values(int64)) json = json.replace(`"@@int64:${digits}@@"`, digits);
  return json;
}
