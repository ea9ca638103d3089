import type { AgentRef } from '../../agents/agents.service.js';
import { toE164 } from '../../common/phone.js';
import type { ProviderCallEvent, WebhookRecords } from '../../pbx/pbx-provider.js';
import type { IncomingCallEventDto } from './incoming-webhooks.dto.js';

/** The provider name of calls fed through the generic incoming webhook (calls.provider, inbox.provider). */
export const GENERIC_PROVIDER = 'generic';

/**
 * The inbox key of a generic row: the call it is about, within its company (generic rows have no
 * connection). Its partition keeps one call's rows in order.
 */
export function genericInboxCallKey(companyId: string, callId: string): string {
  return `${GENERIC_PROVIDER}:${companyId}:${callId}`.slice(0, 300);
}

/**
 * Validated public events → canonical call events (pure). The call is the caller's `callId`
 * (providerCallId; with provider `generic` and no connection, calls.call_key is `generic:<callId>`
 * within the company). The event key is the caller's `eventId`, else `<event>@<at>`: the same
 * event sent again, under another webhook-id too, is applied once.
 */
export function toCallRecords(events: readonly IncomingCallEventDto[]): WebhookRecords {
  return { calls: events.map(toCallEvent), voicemails: [], messages: [] };
}

function toCallEvent(e: IncomingCallEventDto): ProviderCallEvent {
  const at = new Date(e.at);
  const agent: AgentRef | undefined = e.agent && (e.agent.id || e.agent.extension) ? agentRef(e.agent) : undefined;
  const out: ProviderCallEvent = {
    providerCallId: e.callId,
    eventKey: e.eventId ?? `${e.event}@${at.toISOString()}`,
    kind: e.event,
    at,
    raw: { generic: e },
  };
  if (e.direction) out.direction = e.direction;
  const from = e.from === undefined ? null : toE164(e.from);
  const to = e.to === undefined ? null : toE164(e.to);
  if (from) out.from = from;
  if (to) out.to = to;
  if (e.callerName) out.callerName = e.callerName;
  if (agent) out.agent = agent;
  if (e.endReason) out.endReason = e.endReason;
  if (e.hangupCause) out.hangupCause = e.hangupCause;
  if (e.recordingUrl) out.recordingUrl = e.recordingUrl;
  return out;
}

function agentRef(a: NonNullable<IncomingCallEventDto['agent']>): AgentRef {
  return a.id ? { agentId: a.id } : { extension: a.extension! };
}
