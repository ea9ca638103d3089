import { createHash } from 'node:crypto';
import type { AgentRef } from '../../agents/agents.service.js';
import type { CallDirection } from '../../calls/call-state.js';
import { toE164 } from '../../common/phone.js';
import {
  PbxError,
  type MessageRecord,
  type ProviderCallEvent,
  type VoicemailRecord,
  type WebhookRecords,
} from '../pbx-provider.js';
import {
  dialpadId,
  dialpadTime,
  httpUrl,
  isRecord,
  text,
  type DialpadCallEvent,
  type DialpadParty,
  type DialpadSmsEvent,
} from './dialpad.wire.js';

/**
 * Dialpad webhook events (decoded JWT claims) → canonical records. Pure: no I/O, no clock.
 *
 * Call events (https://developers.dialpad.com/docs/call-events-logging): one payload per state
 * transition of one Dialpad call. A call to a group (office main line, department, call centre)
 * is an "entry point" call, and each agent it rings is an "operator" call of its own `call_id`
 * whose `entry_point_call_id` names the entry point call ("defined for operator calls",
 * https://help.dialpad.com/hc/en-us/articles/115005281886). So:
 * - providerCallId = `entry_point_call_id` when present, else `call_id`: the operator legs of a
 *   group call and the group call are one call record. A call we place with `POST /api/v2/call`
 *   is a user's own call (no entry point): its `call_id` is the id originate returned.
 * - eventKey = `dialpad:<call_id>:<state>:<event_timestamp>` (the leg's id, so legs never collide).
 * - calling / ringing → ringing; queued → queued; connected → answered (on any leg, with the agent
 *   of that leg). hangup → ended, missed → ended missed, voicemail → ended voicemail, but only on
 *   the entry point (or a direct) call: an operator leg that stops ringing or hangs up says nothing
 *   about the whole call, which continues at other agents or in voicemail. hangup carries no
 *   endReason: Dialpad gives no hangup cause, and the merge derives completed from an answer (an
 *   explicit "completed" would also override a voicemail that came earlier). voicemail_uploaded →
 *   updated with endReason voicemail. recording → updated with recordingUrl.
 *   Every other state (hold, parked, merged, transfer, eavesdrop, monitor, barge, takeover, recap_*,
 *   transcription, csat, postcall, preanswer, admin, blocked, …) gives no records.
 * - direction: Dialpad's `direction` (inbound / outbound, from the Dialpad side); `internal` when
 *   the other party (`contact`) is a Dialpad user (`contact.type == "user"`: an inference from
 *   recorded payloads, not a documented rule). from / to: inbound = external_number →
 *   internal_number; outbound = internal_number → external_number (help article above).
 *   callerName: `contact.name` on inbound calls (the caller); on outbound calls the contact is the
 *   called party, so no callerName.
 * - agent: `target` when `target.type` is `user`: { provider: 'dialpad', externalId: target.id }.
 * - A voicemail (voicemail / voicemail_uploaded with a voicemail link) also gives a
 *   VoicemailRecord with id `call:<call_id>` (the same voicemail in both states is one record).
 *
 * SMS events (https://developers.dialpad.com/docs/sms-events) → MessageRecord: id, direction,
 * created_date, from_number, to_number (a list: its first number), text (absent without the
 * message_content_export scope: then empty), message_status; the agent is the target when it is a
 * user, else `sender_id` (the user who sent for a group).
 */

export type DialpadEventKind = 'call' | 'voicemail' | 'sms' | 'event';

const VOICEMAIL_STATES = new Set(['voicemail', 'voicemail_uploaded']);

const rejected = (message: string) => new PbxError('REJECTED', `Dialpad webhook: ${message}`);

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

function isCallEvent(claims: Record<string, unknown>): boolean {
  return claims.call_id !== undefined && claims.call_id !== null;
}

function isSmsEvent(claims: Record<string, unknown>): boolean {
  return (
    claims.id !== undefined &&
    claims.id !== null &&
    ('text' in claims || 'text_content' in claims || 'message_status' in claims || 'to_number' in claims)
  );
}

/** The kind of a decoded event (for the inbox listing). */
export function dialpadEventKind(claims: Record<string, unknown>): DialpadEventKind {
  if (isCallEvent(claims)) {
    const state = text(claims.state)?.toLowerCase();
    return state && VOICEMAIL_STATES.has(state) ? 'voicemail' : 'call';
  }
  return isSmsEvent(claims) ? 'sms' : 'event';
}

/**
 * The id of the event a webhook carries, the same on every redelivery:
 * `call:<call_id>:<state>:<event_timestamp>`, `sms:<id>[:<message_status>]` (status updates of
 * one message are distinct events), else a SHA-256 of the signed payload.
 */
export function dialpadEventId(claims: Record<string, unknown>, payloadText: string): string {
  if (isCallEvent(claims)) {
    const callId = dialpadId(claims.call_id);
    const state = text(claims.state)?.toLowerCase();
    if (!callId || !state) throw rejected('a call event needs a call_id and a state');
    const ts = dialpadTime(claims.event_timestamp)?.getTime();
    return `call:${callId}:${state}:${ts ?? sha256(payloadText).slice(0, 32)}`;
  }
  if (isSmsEvent(claims)) {
    const id = dialpadId(claims.id);
    if (!id) throw rejected('an SMS event needs an id');
    const status = text(claims.message_status);
    return status ? `sms:${id}:${status}` : `sms:${id}`;
  }
  return `event:${sha256(payloadText)}`;
}

/** The records of one decoded event. Throws REJECTED when a call or SMS event cannot be read. */
export function mapDialpadEvent(claims: unknown): WebhookRecords {
  if (!isRecord(claims)) throw rejected('the payload is not an object');
  if (isCallEvent(claims)) return mapCallEvent(claims as DialpadCallEvent);
  if (isSmsEvent(claims)) return { calls: [], voicemails: [], messages: [mapSmsEvent(claims as DialpadSmsEvent)] };
  return { calls: [], voicemails: [], messages: [] };
}

/** providerCallId of a call event: the entry point call when this is an operator leg. */
export function dialpadProviderCallId(event: DialpadCallEvent): string | undefined {
  return dialpadId(event.entry_point_call_id) ?? dialpadId(event.call_id);
}

/** A phone number in E.164; an extension (2–8 digits) as it is; anything else dropped. */
function phone(v: unknown): string | undefined {
  const t = text(v);
  if (!t) return undefined;
  return toE164(t) ?? (/^\d{2,8}$/.test(t) ? t : undefined);
}

function agentOf(party: DialpadParty | undefined): AgentRef | undefined {
  if (!isRecord(party) || text(party.type)?.toLowerCase() !== 'user') return undefined;
  const id = dialpadId(party.id);
  return id ? { provider: 'dialpad', externalId: id } : undefined;
}

interface RecordingDetail {
  type?: string;
  id?: string;
  url?: string;
  durationMs?: number;
}

function recordingDetails(event: DialpadCallEvent): RecordingDetail[] {
  if (!Array.isArray(event.recording_details)) return [];
  return event.recording_details.filter(isRecord).map((d) => ({
    type: text(d.recording_type)?.toLowerCase(),
    id: text(d.id) ?? dialpadId(d.id),
    url: httpUrl(d.url),
    durationMs: typeof d.duration === 'number' && Number.isFinite(d.duration) ? d.duration : undefined,
  }));
}

const firstUrl = (v: unknown) => (Array.isArray(v) ? v.map(httpUrl).find(Boolean) : httpUrl(v));

/** The call recording's URL (recording_details, else recording_url, else a share link). */
function callRecordingUrl(event: DialpadCallEvent): string | undefined {
  const detail = recordingDetails(event).find((d) => d.url && d.type !== 'voicemail');
  return detail?.url ?? firstUrl(event.recording_url) ?? firstUrl(event.call_recording_share_links);
}

/** When the event happened: event_timestamp, else the date of the state it reports. */
function eventTime(event: DialpadCallEvent, state: string): Date | undefined {
  const byState: Record<string, unknown> = {
    calling: event.date_started,
    ringing: event.date_rang ?? event.date_started,
    connected: event.date_connected,
    hangup: event.date_ended,
    missed: event.date_ended,
  };
  return dialpadTime(event.event_timestamp) ?? dialpadTime(byState[state]) ?? dialpadTime(event.date_started);
}

function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function mapCallEvent(event: DialpadCallEvent): WebhookRecords {
  const callId = dialpadId(event.call_id);
  const state = text(event.state)?.toLowerCase();
  if (!callId || !state) throw rejected('a call event needs a call_id and a state');
  const providerCallId = dialpadProviderCallId(event)!;
  const operatorLeg = providerCallId !== callId;
  const at = eventTime(event, state);
  if (!at) throw rejected(`call ${callId} (${state}) has no event_timestamp nor date`);

  const raw = text(event.direction)?.toLowerCase();
  const dir = raw === 'inbound' || raw === 'outbound' ? raw : undefined;
  const contact = isRecord(event.contact) ? event.contact : undefined;
  const direction: CallDirection | undefined = dir && text(contact?.type)?.toLowerCase() === 'user' ? 'internal' : dir;
  const external = phone(event.external_number);
  const internal = phone(event.internal_number);
  const agent = agentOf(event.target);

  const base = (kind: ProviderCallEvent['kind']): ProviderCallEvent =>
    compact({
      providerCallId,
      eventKey: `dialpad:${callId}:${state}:${at.getTime()}`,
      kind,
      at,
      direction,
      from: dir === 'outbound' ? internal : dir === 'inbound' ? external : undefined,
      to: dir === 'outbound' ? external : dir === 'inbound' ? internal : undefined,
      callerName: dir === 'inbound' ? text(contact?.name) : undefined,
      agent,
      recordingUrl: callRecordingUrl(event),
      raw: event,
    });

  const calls: ProviderCallEvent[] = [];
  const voicemails: VoicemailRecord[] = [];
  switch (state) {
    case 'calling':
    case 'ringing':
      calls.push(base('ringing'));
      break;
    case 'queued':
      calls.push(base('queued'));
      break;
    case 'connected':
      calls.push(base('answered'));
      break;
    case 'hangup':
      if (!operatorLeg) calls.push(base('ended'));
      break;
    case 'missed':
      if (!operatorLeg) calls.push({ ...base('ended'), endReason: 'missed' });
      break;
    case 'voicemail':
      if (!operatorLeg) calls.push({ ...base('ended'), endReason: 'voicemail' });
      break;
    case 'voicemail_uploaded':
      if (!operatorLeg) calls.push({ ...base('updated'), endReason: 'voicemail' });
      break;
    case 'recording':
      if (callRecordingUrl(event)) calls.push(base('updated'));
      break;
    default:
      break;
  }
  if (VOICEMAIL_STATES.has(state)) {
    const vm = recordingDetails(event).find((d) => d.type === 'voicemail');
    const url = httpUrl(event.voicemail_link) ?? httpUrl(event.voicemail_share_link) ?? vm?.url;
    if (url) {
      voicemails.push(
        compact({
          providerVoicemailId: `call:${callId}`,
          providerCallId,
          at,
          from: dir === 'outbound' ? internal : external,
          to: dir === 'outbound' ? external : internal,
          durationSeconds: vm?.durationMs !== undefined ? Math.round(vm.durationMs / 1000) : undefined,
          recordingUrl: url,
          transcription: text(event.transcription_text),
          agent,
          raw: event,
        }),
      );
    }
  }
  return { calls, voicemails, messages: [] };
}

function mapSmsEvent(event: DialpadSmsEvent): MessageRecord {
  const id = dialpadId(event.id);
  if (!id) throw rejected('an SMS event needs an id');
  const direction = text(event.direction)?.toLowerCase();
  if (direction !== 'inbound' && direction !== 'outbound') throw rejected(`SMS ${id} has no direction`);
  const at = dialpadTime(event.created_date) ?? dialpadTime(event.event_timestamp);
  if (!at) throw rejected(`SMS ${id} has no created_date`);
  const to = Array.isArray(event.to_number) ? event.to_number.map(phone).find(Boolean) : phone(event.to_number);
  return compact({
    providerMessageId: id,
    direction,
    at,
    from: phone(event.from_number),
    to,
    text:
      typeof event.text === 'string' ? event.text : typeof event.text_content === 'string' ? event.text_content : '',
    status: text(event.message_status),
    agent: agentOf(event.target) ?? senderOf(event.sender_id),
    raw: event,
  });
}

/** The user who sent a group's message (`sender_id`, "null if the target is not a group"). */
function senderOf(v: unknown): AgentRef | undefined {
  const id = dialpadId(v);
  return id ? { provider: 'dialpad', externalId: id } : undefined;
}
