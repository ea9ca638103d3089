import { toE164 } from '../../common/phone.js';
import type { AgentRef } from '../../agents/agents.service.js';
import type { CallDirection, EndReason } from '../../calls/call-state.js';
import {
  NO_RECORDS,
  PbxError,
  type MessageRecord,
  type ProviderCallEvent,
  type WebhookRecords,
} from '../pbx-provider.js';
import type { FormParams } from './twilio.signature.js';

/**
 * Twilio webhooks → canonical records. Pure: no I/O, no clock (the time of arrival is in the
 * payload, written by verification).
 *
 * Sources (wire format):
 * - Call status callbacks (`StatusCallback` of a Call, `statusCallback` of `<Number>`/`<Client>`/`<Sip>`):
 *   https://www.twilio.com/docs/voice/api/call-resource#statuscallback and
 *   https://www.twilio.com/docs/voice/twiml/number#statuscallback — form fields CallSid, AccountSid,
 *   From, To, CallStatus, ApiVersion, Direction, ForwardedFrom, CallerName, ParentCallSid, plus
 *   CallbackSource (`call-progress-events`), SequenceNumber, Timestamp (RFC 2822), CallDuration,
 *   SipResponseCode, RecordingUrl / RecordingSid / RecordingDuration.
 * - Recording status callbacks (RecordingSid, RecordingUrl, RecordingStatus, CallSid), the
 *   `recording_status_callback` of the Call resource (same page; twilio-node call.ts)
 * - Incoming messages (MessageSid, From, To, Body, NumMedia, SmsStatus=received):
 *   https://www.twilio.com/docs/messaging/guides/webhook-request ; outbound message status callbacks
 *   (MessageSid, MessageStatus, ErrorCode): https://www.twilio.com/docs/usage/webhooks/sms-webhooks and
 *   https://www.twilio.com/docs/sms/api/message-resource
 *
 * The call is the parent leg: providerCallId = ParentCallSid when present, else our
 * `parentCallSid` marker, else CallSid. Which leg
 * a callback is from decides what it means:
 *
 * - Click-to-call (we placed it; our URLs carry `leg=agent` / `leg=customer`): `originate` creates
 *   the agent's leg and the customer's leg (both Direction outbound-api), which meet in a
 *   `<Conference>` (twilio.driver.ts); the customer leg's URL carries `parentCallSid=<agent leg>`,
 *   which is the call's providerCallId (older click-to-calls `<Dial>`ed the customer as a child leg
 *   with ParentCallSid: read the same way). The agent leg `ringing` → `ringing` at the agent (AgentRef externalId =
 *   its To, i.e. the agent's number / `client:` / `sip:` identity we dialled); the agent picking up
 *   (`in-progress`) → `updated` (not answered: the customer is only being dialled now); the
 *   customer leg ringing → `ringing` with the customer's number; the customer leg `in-progress` →
 *   `answered` (the customer answered); the customer leg's busy / no-answer / failed / canceled →
 *   `updated` with that end reason (it does not end the call); the agent leg's terminal status →
 *   `ended`, which is the end of the call (the agent's leaving ends the conference, and our TwiML has
 *   nothing after its `<Dial>`: https://www.twilio.com/docs/voice/twiml/dial#action).
 * - A call we did not place (no marker): the parent is the customer's leg. Inbound (Direction
 *   inbound / trunking-originating): `ringing` → `ringing`; `in-progress` → `updated` only, as it
 *   means Twilio's TwiML picked up (an IVR), not a person; terminal → `ended`. An API call made by
 *   the company's own app (outbound-api): `in-progress` → `answered`. A `<Dial>` child of such a
 *   call (ParentCallSid, no marker) is the agent being rung: `ringing` → `ringing` at that agent
 *   (with From, the caller id the agent sees — the caller's number unless the company's `<Dial>`
 *   sets `callerId`), `in-progress` → `answered` by that agent; its terminal status adds nothing
 *   (an agent not picking up does not end the caller's call, and a leg cancelled because another
 *   agent answered must not take the call over).
 * - `queued` / `initiated` → `queued` (parents and our customer leg).
 * - End reasons: busy → busy, no-answer → missed, canceled → canceled, failed → failed;
 *   `completed` carries no end reason, so the merge decides: answered → completed, never answered
 *   → the reason another leg gave (e.g. the customer was busy) or else missed. A `completed` parent
 *   with CallDuration 0 that no one answered is therefore `missed`; we do not read CallDuration as
 *   "answered", because Twilio counts it from when Twilio itself picked up (IVR time included).
 *   hangupCause = the terminal CallStatus, with SipResponseCode when Twilio gives it.
 * - RecordingUrl on a status callback (or a completed recording callback) → `updated` recordingUrl.
 * - Times: Timestamp (RFC 2822) when present and readable, else the time of arrival.
 * - eventId: `<CallSid>:<CallStatus>:<SequenceNumber, else Timestamp>`; eventKey = eventId (plus
 *   `:recording` for the recording update), so a redelivery gives the same keys.
 */

export const TWILIO_WEBHOOK_ROUTES = ['status', 'sms'] as const;
export type TwilioWebhookRoute = (typeof TWILIO_WEBHOOK_ROUTES)[number];

/** What verification stores: the verified fields, the markers of our URL, the time of arrival. */
export interface TwilioWebhookPayload {
  route: TwilioWebhookRoute;
  /** Query parameters of the URL Twilio called (ours: callId, leg). */
  query: Record<string, string>;
  /** The verified form fields (or JSON body fields). */
  params: FormParams;
  /** ISO time the request reached us. */
  receivedAt: string;
}

/** The query markers we put on the status callback URLs of a click-to-call. */
export const LEG_AGENT = 'agent';
export const LEG_CUSTOMER = 'customer';

const CALL_SID = /^CA[0-9a-fA-F]{32}$/;
const END_REASON: Record<string, EndReason> = {
  busy: 'busy',
  'no-answer': 'missed',
  canceled: 'canceled',
  failed: 'failed',
};
const TERMINAL = new Set(['completed', 'busy', 'no-answer', 'canceled', 'failed']);
export const TWILIO_TERMINAL_CALL_STATUSES: ReadonlySet<string> = TERMINAL;
const INBOUND_DIRECTIONS = new Set(['inbound', 'trunking-originating']);
const INBOUND_MESSAGE_STATUSES = new Set(['received', 'receiving']);

/** One value of a field (the first of a repeated one); empty → undefined. */
export function field(params: FormParams, key: string): string | undefined {
  const v = params[key];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s;
}

function rejected(message: string): PbxError {
  return new PbxError('REJECTED', message);
}

/** A phone number in E.164, or undefined for anything else (client:, sip:, anonymous…). */
function phone(value: string | undefined): string | undefined {
  if (!value || /^(client|sip|sim):/i.test(value)) return undefined;
  return toE164(value) ?? undefined;
}

/** A messaging address (`+1555…`, `whatsapp:+1555…`) as E.164, or undefined. */
function messagingPhone(value: string | undefined): string | undefined {
  if (!value) return undefined;
  return phone(value.replace(/^[a-z]+:(?=\+?\d)/i, ''));
}

function timeOf(params: FormParams, key: string, receivedAt: string): Date {
  const text = field(params, key);
  const t = text ? Date.parse(text) : NaN;
  return Number.isFinite(t) ? new Date(t) : new Date(receivedAt);
}

/** The event id and inbox kind of a verified delivery; REJECTED when it cannot be read. */
export function twilioEventId(payload: TwilioWebhookPayload): { eventId: string; kind: string } {
  const p = payload.params;
  if (payload.route === 'sms') {
    const sid = field(p, 'MessageSid') ?? field(p, 'SmsSid');
    if (!sid) throw rejected('Twilio message webhook without MessageSid.');
    const status = field(p, 'MessageStatus') ?? field(p, 'SmsStatus');
    return { eventId: status ? `${sid}:${status}` : sid, kind: 'sms' };
  }
  const callSid = field(p, 'CallSid');
  if (!callSid || !CALL_SID.test(callSid)) throw rejected('Twilio call webhook without a valid CallSid.');
  const parent = field(p, 'ParentCallSid');
  if (parent !== undefined && !CALL_SID.test(parent))
    throw rejected('Twilio call webhook with an invalid ParentCallSid.');
  const marker = payload.query['parentCallSid'];
  if (marker !== undefined && !CALL_SID.test(marker))
    throw rejected('Twilio call webhook with an invalid parentCallSid marker.');
  const status = field(p, 'CallStatus');
  if (status) {
    const order = field(p, 'SequenceNumber') ?? field(p, 'Timestamp');
    return { eventId: order !== undefined ? `${callSid}:${status}:${order}` : `${callSid}:${status}`, kind: 'call' };
  }
  const recordingSid = field(p, 'RecordingSid');
  const recordingStatus = field(p, 'RecordingStatus');
  if (recordingSid && recordingStatus) {
    return { eventId: `${callSid}:recording:${recordingSid}:${recordingStatus}`, kind: 'call' };
  }
  throw rejected('Twilio call webhook without CallStatus.');
}

type LegKind = 'ctc-agent' | 'ctc-customer' | 'parent' | 'dial-child';

function legOf(payload: TwilioWebhookPayload): LegKind {
  const marker = payload.query['leg'];
  if (marker === LEG_AGENT) return 'ctc-agent';
  if (marker === LEG_CUSTOMER) return 'ctc-customer';
  return field(payload.params, 'ParentCallSid') ? 'dial-child' : 'parent';
}

function directionOf(twilioDirection: string | undefined): CallDirection | undefined {
  if (!twilioDirection) return undefined;
  return INBOUND_DIRECTIONS.has(twilioDirection) ? 'inbound' : 'outbound';
}

function agentRef(externalId: string | undefined): AgentRef | undefined {
  return externalId ? { provider: 'twilio', externalId } : undefined;
}

function hangupCause(params: FormParams, status: string): string {
  const sip = field(params, 'SipResponseCode');
  return sip ? `${status} (SIP ${sip})` : status;
}

/** Maps one call status callback (or recording callback) to canonical call events. */
export function mapCallWebhook(payload: TwilioWebhookPayload): ProviderCallEvent[] {
  const p = payload.params;
  const { eventId } = twilioEventId(payload);
  const callSid = field(p, 'CallSid')!;
  // Our conference click-to-call's customer leg is a call of its own: its URL names the agent's leg.
  const providerCallId = field(p, 'ParentCallSid') ?? payload.query['parentCallSid'] ?? callSid;
  const status = field(p, 'CallStatus');

  if (!status) {
    // A recording status callback.
    const url = field(p, 'RecordingUrl');
    if (field(p, 'RecordingStatus') !== 'completed' || !url) return [];
    return [
      {
        providerCallId,
        eventKey: eventId,
        kind: 'updated',
        at: new Date(payload.receivedAt),
        recordingUrl: url,
        raw: p,
      },
    ];
  }

  const at = timeOf(p, 'Timestamp', payload.receivedAt);
  const leg = legOf(payload);
  const terminal = TERMINAL.has(status);
  const reason = END_REASON[status];
  const from = phone(field(p, 'From'));
  const to = phone(field(p, 'To'));
  const base = { providerCallId, eventKey: eventId, at, raw: p };
  const out: ProviderCallEvent[] = [];
  const push = (e: Omit<ProviderCallEvent, 'providerCallId' | 'eventKey' | 'at' | 'raw'>) => {
    const clean = Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)) as typeof e;
    out.push({ ...base, ...clean });
  };
  const ending = terminal ? { endReason: reason, hangupCause: reason ? hangupCause(p, status) : undefined } : {};

  switch (leg) {
    case 'ctc-agent': {
      const facts = { direction: 'outbound' as const, from, agent: agentRef(field(p, 'To')) };
      if (status === 'queued' || status === 'initiated') push({ kind: 'queued', ...facts });
      else if (status === 'ringing') push({ kind: 'ringing', ...facts });
      else if (status === 'in-progress') push({ kind: 'updated', ...facts });
      else if (terminal) push({ kind: 'ended', ...facts, ...ending });
      break;
    }
    case 'ctc-customer': {
      const facts = { direction: 'outbound' as const, from, to };
      if (status === 'queued' || status === 'initiated') push({ kind: 'queued', ...facts });
      else if (status === 'ringing') push({ kind: 'ringing', ...facts });
      else if (status === 'in-progress') push({ kind: 'answered', ...facts });
      else if (terminal && reason) push({ kind: 'updated', ...facts, ...ending });
      break;
    }
    case 'parent': {
      const direction = directionOf(field(p, 'Direction'));
      const inbound = direction === 'inbound';
      const facts = { direction, from, to, callerName: field(p, 'CallerName') };
      if (status === 'queued' || status === 'initiated') push({ kind: 'queued', ...facts });
      else if (status === 'ringing') push({ kind: 'ringing', ...facts });
      else if (status === 'in-progress') push({ kind: inbound ? 'updated' : 'answered', ...facts });
      else if (terminal) push({ kind: 'ended', ...facts, ...ending });
      break;
    }
    case 'dial-child': {
      const facts = { from, agent: agentRef(field(p, 'To')) };
      if (status === 'ringing') push({ kind: 'ringing', ...facts });
      else if (status === 'in-progress') push({ kind: 'answered', ...facts });
      break;
    }
  }

  const recordingUrl = field(p, 'RecordingUrl');
  if (recordingUrl) out.push({ ...base, eventKey: `${eventId}:recording`, kind: 'updated', recordingUrl });
  return out;
}

/** Maps an incoming message or an outbound message status callback. */
export function mapMessageWebhook(payload: TwilioWebhookPayload): MessageRecord {
  const p = payload.params;
  const sid = field(p, 'MessageSid') ?? field(p, 'SmsSid');
  if (!sid) throw rejected('Twilio message webhook without MessageSid.');
  const status = field(p, 'MessageStatus') ?? field(p, 'SmsStatus');
  const inbound = status === undefined || INBOUND_MESSAGE_STATUSES.has(status);
  const record: MessageRecord = {
    providerMessageId: sid,
    direction: inbound ? 'inbound' : 'outbound',
    at: new Date(payload.receivedAt),
    // Status callbacks carry no Body (the text was known when the message was sent).
    text: typeof p['Body'] === 'string' ? p['Body'] : '',
    raw: p,
  };
  const from = messagingPhone(field(p, 'From'));
  const to = messagingPhone(field(p, 'To'));
  if (from) record.from = from;
  if (to) record.to = to;
  if (status) record.status = status;
  return record;
}

function isPayload(value: unknown): value is TwilioWebhookPayload {
  if (!value || typeof value !== 'object') return false;
  const v = value as Partial<TwilioWebhookPayload>;
  return (
    (v.route === 'status' || v.route === 'sms') &&
    !!v.params &&
    typeof v.params === 'object' &&
    !!v.query &&
    typeof v.query === 'object' &&
    typeof v.receivedAt === 'string' &&
    Number.isFinite(Date.parse(v.receivedAt))
  );
}

/** The records of a stored, verified Twilio webhook payload. */
export function parseTwilioPayload(payload: unknown): WebhookRecords {
  if (!isPayload(payload)) throw rejected('Stored Twilio webhook has an unexpected shape.');
  if (payload.route === 'sms') return { calls: [], voicemails: [], messages: [mapMessageWebhook(payload)] };
  const calls = mapCallWebhook(payload);
  return calls.length ? { calls, voicemails: [], messages: [] } : NO_RECORDS;
}
