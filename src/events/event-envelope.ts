/** The one event catalogue (DESIGN.md "Events"): the same envelope on socket.io and webhooks. */
export const EVENT_TYPES = [
  'call.ringing',
  'call.answered',
  'call.ended',
  'call.updated',
  'call.analysis',
  'voicemail.received',
  'message.received',
  'ivr.step',
  'agent.status',
  'queue.offer',
  'queue.updated',
  'kpi.updated',
  'webhook.endpoint.disabled',
  'webhook.test',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface EventEnvelope<T = Record<string, unknown>> {
  id: string;
  type: EventType;
  companyId: string;
  /** Per-company sequence number: gap-free and increasing within a company. */
  seq: number;
  occurredAt: string;
  /** The agent the event is for (a screen pop), or null for the company as a whole. */
  agentId: string | null;
  data: T;
}
