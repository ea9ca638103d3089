import type { CallEntity } from './call.entity.js';

/** A call as the API and the events show it. */
export interface CallView {
  id: string;
  provider: string;
  connectionId: string | null;
  providerCallId: string;
  direction: string;
  status: string;
  from: string | null;
  to: string | null;
  callerName: string | null;
  agentId: string | null;
  startedAt: string;
  ringingAt: string | null;
  answeredAt: string | null;
  endedAt: string | null;
  ringSeconds: number | null;
  talkSeconds: number | null;
  durationSeconds: number | null;
  endReason: string | null;
  hangupCause: string | null;
  recordingUrl: string | null;
  contact: Record<string, unknown> | null;
  ai: Record<string, unknown> | null;
  tags: string[];
  notes: string | null;
  disposition: string | null;
  createdAt: string;
  updatedAt: string;
}

export function toCallView(c: CallEntity): CallView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: c.id,
    provider: c.provider,
    connectionId: c.connectionId,
    providerCallId: c.providerCallId,
    direction: c.direction,
    status: c.status,
    from: c.fromNumber,
    to: c.toNumber,
    callerName: c.callerName,
    agentId: c.agentId,
    startedAt: c.startedAt.toISOString(),
    ringingAt: iso(c.ringingAt),
    answeredAt: iso(c.answeredAt),
    endedAt: iso(c.endedAt),
    ringSeconds: c.ringSeconds,
    talkSeconds: c.talkSeconds,
    durationSeconds: c.durationSeconds,
    endReason: c.endReason,
    hangupCause: c.hangupCause,
    recordingUrl: c.recordingUrl,
    contact: c.crmContact,
    ai: c.ai,
    tags: c.tags,
    notes: c.notes,
    disposition: c.disposition,
    createdAt: c.createdAt.toISOString(),
    updatedAt: c.updatedAt.toISOString(),
  };
}

export interface TimelineEntry {
  kind: string;
  at: string;
  data: Record<string, unknown>;
}

export interface CallDetail extends CallView {
  timeline: TimelineEntry[];
}

/** The call of a manual screen pop: a CallView, or one made of the request (no id). */
export type ScreenPopCall = Omit<CallView, 'id' | 'providerCallId'> & {
  id: string | null;
  providerCallId: string | null;
};
