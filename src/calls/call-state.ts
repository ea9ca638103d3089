/**
 * The call state machine as a merge of events. Each event contributes milestones (the earliest
 * time wins) and fields (identity fields: the earliest event that has one wins; changing fields:
 * the latest event wins; ties broken by event key). This merge is commutative, associative and
 * idempotent, so any duplication or reordering of the same events gives the same record: an
 * `ended` that arrives before `answered` still ends as `completed`.
 */

export const CALL_STATUSES = [
  'queued',
  'ringing',
  'in_progress',
  'completed',
  'missed',
  'abandoned',
  'voicemail',
  'busy',
  'failed',
  'canceled',
] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];
export const ACTIVE_STATUSES: CallStatus[] = ['queued', 'ringing', 'in_progress'];

export const END_REASONS = ['completed', 'missed', 'abandoned', 'voicemail', 'busy', 'failed', 'canceled'] as const;
export type EndReason = (typeof END_REASONS)[number];

export const CALL_DIRECTIONS = ['inbound', 'outbound', 'internal'] as const;
export type CallDirection = (typeof CALL_DIRECTIONS)[number];

export const CALL_EVENT_KINDS = ['queued', 'ringing', 'answered', 'ended', 'updated'] as const;
export type CallEventKind = (typeof CALL_EVENT_KINDS)[number];

/** What one event says about a call, in canonical terms (provider adapters produce these). */
export interface CallFacts {
  /** Unique per call at the provider: the same event delivered twice has the same key. */
  eventKey: string;
  kind: CallEventKind;
  at: Date;
  direction?: CallDirection;
  from?: string;
  to?: string;
  callerName?: string;
  /** Our agent, once resolved. */
  agentId?: string;
  endReason?: EndReason;
  hangupCause?: string;
  recordingUrl?: string;
}

/** A value with the stamp of the event that set it: `<ISO time>|<event key>`. */
interface Stamped<T> {
  v: T;
  s: string;
}

export interface CallState {
  queuedAt?: string;
  ringingAt?: string;
  answeredAt?: string;
  endedAt?: string;
  direction?: Stamped<CallDirection>;
  from?: Stamped<string>;
  to?: Stamped<string>;
  callerName?: Stamped<string>;
  agentId?: Stamped<string>;
  endReason?: Stamped<EndReason>;
  hangupCause?: Stamped<string>;
  recordingUrl?: Stamped<string>;
}

const MILESTONE: Partial<Record<CallEventKind, 'queuedAt' | 'ringingAt' | 'answeredAt' | 'endedAt'>> = {
  queued: 'queuedAt',
  ringing: 'ringingAt',
  answered: 'answeredAt',
  ended: 'endedAt',
};

const earliest = (a: string | undefined, b: string) => (a === undefined || b < a ? b : a);
const first = <T>(cur: Stamped<T> | undefined, next: Stamped<T>) => (cur === undefined || next.s < cur.s ? next : cur);
const last = <T>(cur: Stamped<T> | undefined, next: Stamped<T>) => (cur === undefined || next.s > cur.s ? next : cur);

/** Merges one event into the state (pure). */
export function mergeFacts(state: CallState, e: CallFacts): CallState {
  const at = e.at.toISOString();
  const stamp = `${at}|${e.eventKey}`;
  const next: CallState = { ...state };
  const milestone = MILESTONE[e.kind];
  if (milestone) next[milestone] = earliest(state[milestone], at);
  if (e.direction) next.direction = first(state.direction, { v: e.direction, s: stamp });
  if (e.from) next.from = first(state.from, { v: e.from, s: stamp });
  if (e.to) next.to = first(state.to, { v: e.to, s: stamp });
  if (e.callerName) next.callerName = first(state.callerName, { v: e.callerName, s: stamp });
  if (e.agentId) next.agentId = last(state.agentId, { v: e.agentId, s: stamp });
  if (e.endReason) next.endReason = last(state.endReason, { v: e.endReason, s: stamp });
  if (e.hangupCause) next.hangupCause = last(state.hangupCause, { v: e.hangupCause, s: stamp });
  if (e.recordingUrl) next.recordingUrl = last(state.recordingUrl, { v: e.recordingUrl, s: stamp });
  return next;
}

/** The record's fields, derived from the state. */
export interface DerivedCall {
  status: CallStatus;
  direction: CallDirection;
  fromNumber: string | null;
  toNumber: string | null;
  callerName: string | null;
  agentId: string | null;
  startedAt: Date;
  ringingAt: Date | null;
  answeredAt: Date | null;
  endedAt: Date | null;
  ringSeconds: number | null;
  talkSeconds: number | null;
  durationSeconds: number | null;
  endReason: EndReason | null;
  hangupCause: string | null;
  recordingUrl: string | null;
}

const date = (iso: string | undefined) => (iso ? new Date(iso) : null);
const seconds = (from: Date | null, to: Date | null) =>
  from && to ? Math.max(0, Math.round((to.getTime() - from.getTime()) / 1000)) : null;

export function deriveCall(state: CallState, fallbackStart: Date): DerivedCall {
  const ringingAt = date(state.ringingAt);
  const answeredAt = date(state.answeredAt);
  const endedAt = date(state.endedAt);
  const times = [state.queuedAt, state.ringingAt, state.answeredAt, state.endedAt]
    .filter((t): t is string => !!t)
    .sort();
  const startedAt = times.length ? new Date(times[0]!) : fallbackStart;
  const status = statusOf(!!answeredAt, !!endedAt, !!ringingAt, state.endReason?.v ?? null);
  // Once ended, the reason is what the call ended as, whichever provider said what: the same
  // field means the same thing for every phone system (null while the call is live).
  const endReason = endedAt ? (status as EndReason) : null;
  return {
    status,
    direction: state.direction?.v ?? 'inbound',
    fromNumber: state.from?.v ?? null,
    toNumber: state.to?.v ?? null,
    callerName: state.callerName?.v ?? null,
    agentId: state.agentId?.v ?? null,
    startedAt,
    ringingAt,
    answeredAt,
    endedAt,
    ringSeconds: ringingAt && (answeredAt || endedAt) ? seconds(ringingAt, answeredAt ?? endedAt) : null,
    talkSeconds: seconds(answeredAt, endedAt),
    durationSeconds: seconds(startedAt, endedAt),
    endReason,
    hangupCause: state.hangupCause?.v ?? null,
    recordingUrl: state.recordingUrl?.v ?? null,
  };
}

function statusOf(answered: boolean, ended: boolean, ringing: boolean, reason: EndReason | null): CallStatus {
  if (ended) {
    if (answered) return reason === 'voicemail' ? 'voicemail' : 'completed';
    return reason && reason !== 'completed' ? reason : 'missed';
  }
  if (answered) return 'in_progress';
  return ringing ? 'ringing' : 'queued';
}
