import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, type EntityManager, Repository } from 'typeorm';
import { AgentsService } from '../agents/agents.service.js';
import { AppException } from '../common/errors/problem.js';
import type { EventEnvelope, EventType } from '../events/event-envelope.js';
import { EventsService } from '../events/events.service.js';
import type { CallEvent } from './call-event.js';
import { type CallFacts, type CallState, type DerivedCall, deriveCall, mergeFacts } from './call-state.js';
import { CallEntity } from './call.entity.js';

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

export interface ApplyResult {
  call: CallEntity;
  /** False when the event was a repetition: nothing changed. */
  applied: boolean;
  events: EventEnvelope[];
}

/**
 * Applies canonical call events: one transaction per event (the call row locked, the timeline
 * row, the merged record, the company event), idempotent (an event key is applied once per call)
 * and tolerant of order (see call-state.ts). Events are published after the commit.
 */
@Injectable()
export class CallsService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(CallEntity) private readonly calls: Repository<CallEntity>,
    private readonly agents: AgentsService,
    private readonly events: EventsService,
  ) {}

  async apply(event: CallEvent): Promise<ApplyResult> {
    const agentId = event.agent ? await this.agents.resolve(event.companyId, { provider: event.provider as never, ...event.agent }) : null;
    const facts: CallFacts = {
      eventKey: event.eventKey,
      kind: event.kind,
      at: event.at,
      direction: event.direction,
      from: event.from,
      to: event.to,
      callerName: event.callerName,
      agentId: agentId ?? undefined,
      endReason: event.endReason,
      hangupCause: event.hangupCause,
      recordingUrl: event.recordingUrl,
    };
    const callKey = `${event.connectionId ?? event.provider}:${event.providerCallId}`;
    const result = await this.dataSource.transaction(async (m) => {
      await m.query(
        `INSERT INTO calls (company_id, provider, connection_id, provider_call_id, call_key, direction, status, started_at, state)
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, '{}')
         ON CONFLICT (company_id, call_key) DO NOTHING`,
        [event.companyId, event.provider, event.connectionId ?? null, event.providerCallId, callKey, event.direction ?? 'inbound', event.at],
      );
      const call = await m.getRepository(CallEntity).findOneOrFail({
        where: { companyId: event.companyId, callKey },
        lock: { mode: 'pessimistic_write' },
      });
      return this.merge(m, call, facts, event.raw);
    });
    this.events.publish(result.events);
    return result;
  }

  /** Applies facts to a call of the company known by id (assignment, manual updates). */
  async applyToCall(companyId: string, callId: string, facts: CallFacts): Promise<ApplyResult> {
    const result = await this.dataSource.transaction(async (m) => {
      const call = await m.getRepository(CallEntity).findOne({ where: { companyId, id: callId }, lock: { mode: 'pessimistic_write' } });
      if (!call) throw new AppException('not-found', 404, 'No such call.');
      return this.merge(m, call, facts);
    });
    this.events.publish(result.events);
    return result;
  }

  /**
   * Saves fields that are not derived from events (notes, disposition, tags, contact, AI) and
   * tells the company (`call.updated`) in the same transaction.
   */
  async updateFields(
    companyId: string,
    callId: string,
    change: (call: CallEntity) => void,
    type: EventType = 'call.updated',
  ): Promise<CallEntity> {
    const result = await this.dataSource.transaction(async (m) => {
      const repo = m.getRepository(CallEntity);
      const call = await repo.findOne({ where: { companyId, id: callId }, lock: { mode: 'pessimistic_write' } });
      if (!call) throw new AppException('not-found', 404, 'No such call.');
      change(call);
      const saved = await repo.save(call);
      const envelope = await this.events.append(m, companyId, type, { call: toCallView(saved) }, saved.agentId);
      return { call: saved, events: [envelope] };
    });
    this.events.publish(result.events);
    return result.call;
  }

  async get(companyId: string, callId: string): Promise<CallEntity> {
    const call = await this.calls.findOne({ where: { companyId, id: callId } });
    if (!call) throw new AppException('not-found', 404, 'No such call.');
    return call;
  }

  private async merge(m: EntityManager, call: CallEntity, facts: CallFacts, raw?: unknown): Promise<ApplyResult> {
    const data = { ...stripUndefined({ ...facts, at: undefined, eventKey: undefined }), ...(raw === undefined ? {} : { raw }) };
    const inserted = (await m.query(
      `INSERT INTO call_events (company_id, call_id, event_key, kind, at, data) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
       ON CONFLICT (call_id, event_key) DO NOTHING RETURNING id`,
      [call.companyId, call.id, facts.eventKey, facts.kind, facts.at, JSON.stringify(data)],
    )) as unknown[];
    if (inserted.length === 0) return { call, applied: false, events: [] };

    const before = deriveCall(call.state as CallState, call.startedAt);
    const state = mergeFacts(call.state as CallState, facts);
    const after = deriveCall(state, call.startedAt);
    Object.assign(call, fieldsOf(after), { state });
    const saved = await m.getRepository(CallEntity).save(call);

    const type = eventTypeFor(before, after);
    const events = type
      ? [await this.events.append(m, call.companyId, type, { call: toCallView(saved), ...(type === 'call.ringing' ? { contact: saved.crmContact } : {}) }, saved.agentId, facts.at)]
      : [];
    return { call: saved, applied: true, events };
  }
}

function fieldsOf(d: DerivedCall): Partial<CallEntity> {
  return {
    status: d.status,
    direction: d.direction,
    fromNumber: d.fromNumber,
    toNumber: d.toNumber,
    callerName: d.callerName,
    agentId: d.agentId,
    startedAt: d.startedAt,
    ringingAt: d.ringingAt,
    answeredAt: d.answeredAt,
    endedAt: d.endedAt,
    ringSeconds: d.ringSeconds,
    talkSeconds: d.talkSeconds,
    durationSeconds: d.durationSeconds,
    endReason: d.endReason,
    hangupCause: d.hangupCause,
    recordingUrl: d.recordingUrl,
  };
}

/**
 * Which event a change is: the call's first end, first answer, first ring (or a new agent while
 * it rings: the screen pop moves to that agent), else an update when anything visible changed.
 */
export function eventTypeFor(before: DerivedCall, after: DerivedCall): EventType | null {
  if (!before.endedAt && after.endedAt) return 'call.ended';
  if (!before.answeredAt && after.answeredAt && !after.endedAt) return 'call.answered';
  if (after.status === 'ringing' && (!before.ringingAt || before.agentId !== after.agentId)) return 'call.ringing';
  return JSON.stringify(before) === JSON.stringify(after) ? null : 'call.updated';
}

function stripUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
