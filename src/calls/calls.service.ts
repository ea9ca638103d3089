import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { DataSource, type EntityManager, In, Repository, type SelectQueryBuilder } from 'typeorm';
import { AgentsService } from '../agents/agents.service.js';
import { actorOf, type Tenant } from '../common/access/principal.js';
import { AppException, type FieldError, ValidationFailedException } from '../common/errors/problem.js';
import { type CursorPage, type CursorPageQuery, keysetPage } from '../common/pagination.js';
import { toE164 } from '../common/phone.js';
import type { EventEnvelope, EventType } from '../events/event-envelope.js';
import { EventsService } from '../events/events.service.js';
import type { CallEvent } from './call-event.js';
import {
  ACTIVE_STATUSES,
  type CallFacts,
  type CallState,
  type DerivedCall,
  deriveCall,
  mergeFacts,
} from './call-state.js';
import { CallEventEntity } from './call-event.entity.js';
import { CallEntity } from './call.entity.js';
import {
  type CreateCallDto,
  isoForDatabase,
  type ListCallsQuery,
  type ScreenPopDto,
  type UpdateCallDto,
} from './dto/calls.dto.js';

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
    return (await this.applyAll([event]))[0]!;
  }

  /**
   * Applies several events of ONE call (same company, connection and provider call id) in one
   * transaction, in order: a phone system that sends a call's events together (a new channel and
   * the dial to the agent) gets the screen pop after one commit instead of one per event.
   */
  async applyAll(events: readonly CallEvent[]): Promise<ApplyResult[]> {
    const first = events[0];
    if (!first) return [];
    const callKey = `${first.connectionId ?? first.provider}:${first.providerCallId}`;
    for (const e of events) {
      if (e.companyId !== first.companyId || `${e.connectionId ?? e.provider}:${e.providerCallId}` !== callKey) {
        throw new Error('applyAll takes the events of one call');
      }
    }
    const facts: { facts: CallFacts; raw: unknown }[] = [];
    for (const event of events) {
      const agentId = event.agent
        ? await this.agents.resolve(event.companyId, { provider: event.provider as never, ...event.agent })
        : null;
      facts.push({
        raw: event.raw,
        facts: {
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
        },
      });
    }
    const results = await this.dataSource.transaction(async (m) => {
      await m.query(
        `INSERT INTO calls (id, company_id, provider, connection_id, provider_call_id, call_key, direction, status, started_at, state)
         VALUES (COALESCE($8::uuid, gen_random_uuid()), $1, $2, $3, $4, $5, $6, 'queued', $7, '{}')
         ON CONFLICT DO NOTHING`,
        [
          first.companyId,
          first.provider,
          first.connectionId ?? null,
          first.providerCallId,
          callKey,
          first.direction ?? 'inbound',
          first.at,
          events.find((e) => e.callId)?.callId ?? null,
        ],
      );
      // Any conflict is the same call made at the same moment by another event (same call key, or
      // the same id a click-to-call gave it): no error, the locked read below finds it.
      // Plain SQL on the hot path: a locked read without the ORM's hydration.
      const [row] = (await m.query('SELECT * FROM calls WHERE company_id = $1 AND call_key = $2 FOR UPDATE', [
        first.companyId,
        callKey,
      ])) as CallRow[];
      if (!row) throw new Error(`call ${callKey} could not be created (its id is taken by another call)`);
      let call = callFromRow(row);
      const out: ApplyResult[] = [];
      for (const f of facts) {
        const result = await this.merge(m, call, f.facts, f.raw);
        call = result.call;
        out.push(result);
      }
      return out;
    });
    this.events.publish(results.flatMap((r) => r.events));
    return results;
  }

  /** Applies facts to a call of the company known by id (assignment, manual updates). */
  async applyToCall(companyId: string, callId: string, facts: CallFacts): Promise<ApplyResult> {
    const result = await this.dataSource.transaction(async (m) => {
      const call = await m
        .getRepository(CallEntity)
        .findOne({ where: { companyId, id: callId }, lock: { mode: 'pessimistic_write' } });
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

  /** Calls of the company that are queued, ringing or in progress. */
  async countActive(companyId: string): Promise<number> {
    return this.calls.count({ where: { companyId, status: In(ACTIVE_STATUSES) } });
  }

  /** The provider call ids of a connection's calls still queued, ringing or in progress. */
  async activeProviderCallIds(companyId: string, connectionId: string): Promise<string[]> {
    const rows = (await this.dataSource.query(
      `SELECT provider_call_id FROM calls
       WHERE company_id = $1 AND connection_id = $2 AND status IN ('queued', 'ringing', 'in_progress')`,
      [companyId, connectionId],
    )) as { provider_call_id: string }[];
    return rows.map((r) => r.provider_call_id);
  }

  /** The id of a provider's call in the company, if we have it. */
  async idOfProviderCall(companyId: string, connectionId: string, providerCallId: string): Promise<string | null> {
    const [row] = (await this.dataSource.query('SELECT id FROM calls WHERE company_id = $1 AND call_key = $2', [
      companyId,
      `${connectionId}:${providerCallId}`,
    ])) as { id: string }[];
    return row?.id ?? null;
  }

  async get(companyId: string, callId: string): Promise<CallEntity> {
    const call = await this.calls.findOne({ where: { companyId, id: callId } });
    if (!call) throw new AppException('not-found', 404, 'No such call.');
    return call;
  }

  // --- the calls API (tenant routes) ------------------------------------------------------------

  /** The company's calls, newest first, keyset-paginated. An agent user sees only its own. */
  async list(tenant: Tenant, query: ListCallsQuery): Promise<CursorPage<CallView>> {
    const own = await this.agents.visibleAgent(tenant);
    if (own === null) return { data: [], next: null };
    const qb = this.calls.createQueryBuilder('c').where('c.company_id = :companyId', { companyId: tenant.companyId });
    if (own !== undefined) qb.andWhere('c.agent_id = :own', { own });
    if (query.status) qb.andWhere('c.status = :status', { status: query.status });
    if (query.direction) qb.andWhere('c.direction = :direction', { direction: query.direction });
    if (query.from) qb.andWhere('c.from_number = :from', { from: phoneFilter(query.from) });
    if (query.to) qb.andWhere('c.to_number = :to', { to: phoneFilter(query.to) });
    if (query.agentId) qb.andWhere('c.agent_id = :agentId', { agentId: query.agentId });
    if (query.since) qb.andWhere('c.started_at >= CAST(:since AS timestamptz)', { since: isoForDatabase(query.since) });
    if (query.until) qb.andWhere('c.started_at < CAST(:until AS timestamptz)', { until: isoForDatabase(query.until) });
    return this.page(qb, query);
  }

  /** Calls queued, ringing or in progress, newest first. An agent user sees only its own. */
  async listActive(tenant: Tenant, query: CursorPageQuery): Promise<CursorPage<CallView>> {
    const own = await this.agents.visibleAgent(tenant);
    if (own === null) return { data: [], next: null };
    // The predicate of the partial index calls_active_idx, as written there: a bound parameter
    // would not let the planner prove that the index covers the query.
    const qb = this.calls
      .createQueryBuilder('c')
      .where('c.company_id = :companyId', { companyId: tenant.companyId })
      .andWhere("c.status IN ('queued', 'ringing', 'in_progress')");
    if (own !== undefined) qb.andWhere('c.agent_id = :own', { own });
    return this.page(qb, query);
  }

  /** A call with its timeline (the events applied to it, in time order). */
  async detail(tenant: Tenant, id: string): Promise<CallDetail> {
    const call = await this.findVisible(tenant, id);
    const rows = await this.dataSource.getRepository(CallEventEntity).find({
      where: { companyId: tenant.companyId, callId: call.id },
      select: { id: true, kind: true, at: true, data: true, createdAt: true },
      order: { at: 'ASC', createdAt: 'ASC', id: 'ASC' },
    });
    return {
      ...toCallView(call),
      timeline: rows.map((r) => ({ kind: r.kind, at: r.at.toISOString(), data: r.data })),
    };
  }

  /**
   * Logs a call by hand: one event per milestone (ringing at startedAt, answered, ended), applied
   * as a phone system's would be, so the same state machine derives its status and durations.
   */
  async logManual(tenant: Tenant, dto: CreateCallDto): Promise<CallView> {
    const startedAt = new Date(dto.startedAt);
    const answeredAt = dto.answeredAt === undefined ? null : new Date(dto.answeredAt);
    const endedAt = dto.endedAt === undefined ? null : new Date(dto.endedAt);
    const errors: FieldError[] = [];
    if (answeredAt && answeredAt < startedAt) {
      errors.push({ field: 'answeredAt', messages: ['answeredAt must not be before startedAt'] });
    }
    if (endedAt && endedAt < (answeredAt ?? startedAt)) {
      const after = answeredAt ? 'answeredAt' : 'startedAt';
      errors.push({ field: 'endedAt', messages: [`endedAt must not be before ${after}`] });
    }
    if (dto.endReason && !endedAt) errors.push({ field: 'endReason', messages: ['endReason needs endedAt'] });
    if (dto.agentId && !(await this.agents.exists(tenant.companyId, dto.agentId))) errors.push(noSuchAgent('agentId'));
    if (errors.length > 0) throw new ValidationFailedException(errors);

    const base = {
      companyId: tenant.companyId,
      provider: 'manual',
      providerCallId: randomUUID(),
      raw: { manual: true, ...actorOf(tenant.principal) },
      // Every event carries who and where, so that whichever is applied first names them.
      direction: dto.direction,
      from: dto.from,
      to: dto.to,
      ...(dto.agentId ? { agent: { agentId: dto.agentId } } : {}),
    };
    const events: CallEvent[] = [{ ...base, eventKey: 'manual:ringing', kind: 'ringing', at: startedAt }];
    if (answeredAt) events.push({ ...base, eventKey: 'manual:answered', kind: 'answered', at: answeredAt });
    if (endedAt) {
      events.push({
        ...base,
        eventKey: 'manual:ended',
        kind: 'ended',
        at: endedAt,
        ...(dto.endReason ? { endReason: dto.endReason } : {}),
      });
    }
    // Applied latest first: a call logged after the fact is announced as what it is now (ended,
    // or answered) and never pops up at the agent as ringing. The merge does not depend on order.
    let call: CallEntity | undefined;
    for (const event of events.reverse()) call = (await this.apply(event)).call;
    if (!call) throw new Error('a manual call has at least its ringing event');
    if ((dto.notes ?? dto.disposition ?? null) !== null || (dto.tags?.length ?? 0) > 0) {
      call = await this.updateFields(tenant.companyId, call.id, (c) => setCallFields(c, dto));
    }
    return toCallView(call);
  }

  /** Notes, disposition, tags; an agent user changes only its own calls. */
  async updateCall(tenant: Tenant, id: string, dto: UpdateCallDto): Promise<CallView> {
    const own = await this.agents.visibleAgent(tenant);
    if (own === null) throw callNotFound();
    if (dto.notes === undefined && dto.disposition === undefined && dto.tags === undefined) {
      // Nothing to change: no event.
      return toCallView(await this.findVisible(tenant, id));
    }
    const saved = await this.updateFields(tenant.companyId, id, (call) => {
      // Checked on the locked row: an assignment cannot slip in between.
      if (own !== undefined && call.agentId !== own) throw callNotFound();
      setCallFields(call, dto);
    });
    return toCallView(saved);
  }

  /** Assigns the call to an agent of the company; the latest assignment wins over the provider's. */
  async assign(tenant: Tenant, id: string, agentId: string): Promise<CallView> {
    if (!(await this.agents.exists(tenant.companyId, agentId))) {
      throw new ValidationFailedException([noSuchAgent('agentId')]);
    }
    const { call } = await this.applyToCall(tenant.companyId, id, {
      eventKey: `assign:${randomUUID()}`,
      kind: 'updated',
      at: new Date(),
      agentId,
    });
    return toCallView(call);
  }

  /**
   * A screen pop by hand: a `call.ringing` event for the agent, shaped as a real one (`call`,
   * `contact`) and marked `manual`. With a callId, the call's record; else a call made of the
   * request (id null). Nothing is stored but the event.
   */
  async screenPop(tenant: Tenant, dto: ScreenPopDto): Promise<{ eventId: string; seq: number }> {
    const [agentKnown, call] = await Promise.all([
      this.agents.exists(tenant.companyId, dto.agentId),
      dto.callId ? this.calls.findOne({ where: { companyId: tenant.companyId, id: dto.callId } }) : null,
    ]);
    const errors: FieldError[] = [];
    if (!agentKnown) errors.push(noSuchAgent('agentId'));
    if (dto.callId && !call) errors.push({ field: 'callId', messages: ['callId must be a call of the company'] });
    if (errors.length > 0) throw new ValidationFailedException(errors);

    const view: ScreenPopCall = call ? toCallView(call) : syntheticRingingCall(dto, new Date());
    const envelope = await this.dataSource.transaction((m) =>
      this.events.append(m, tenant.companyId, 'call.ringing', { call: view, contact: null, manual: true }, dto.agentId),
    );
    this.events.publish([envelope]);
    return { eventId: envelope.id, seq: envelope.seq };
  }

  /** A call of the company the caller may see; others are answered 404, like a missing one. */
  async findVisible(tenant: Tenant, id: string): Promise<CallEntity> {
    const [call, own] = await Promise.all([this.get(tenant.companyId, id), this.agents.visibleAgent(tenant)]);
    if (own === null || (own !== undefined && call.agentId !== own)) throw callNotFound();
    return call;
  }

  /**
   * One page, newest first by (started_at, id). The cursor is the exact (microsecond) time and
   * id of the last row, and the condition one row comparison that the index scan starts from,
   * so page 1000 costs what page 1 costs.
   */
  private page(qb: SelectQueryBuilder<CallEntity>, query: CursorPageQuery): Promise<CursorPage<CallView>> {
    return keysetPage(qb, 'c', 'started_at', query, toCallView);
  }

  private async merge(m: EntityManager, call: CallEntity, facts: CallFacts, raw?: unknown): Promise<ApplyResult> {
    const data = {
      ...stripUndefined({ ...facts, at: undefined, eventKey: undefined }),
      ...(raw === undefined ? {} : { raw }),
    };
    const inserted = (await m.query(
      `INSERT INTO call_events (company_id, call_id, event_key, kind, at, data) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
       ON CONFLICT (call_id, event_key) DO NOTHING RETURNING id`,
      [call.companyId, call.id, facts.eventKey, facts.kind, facts.at, JSON.stringify(data)],
    )) as unknown[];
    if (inserted.length === 0) return { call, applied: false, events: [] };

    const before = deriveCall(call.state as CallState, call.startedAt);
    const state = mergeFacts(call.state as CallState, facts);
    const after = deriveCall(state, call.startedAt);
    // One UPDATE (a repository save() would first read the row back): this is the hot path.
    const [row] = (await m.query(
      `UPDATE calls SET status = $2, direction = $3, from_number = $4, to_number = $5, caller_name = $6, agent_id = $7,
         started_at = $8, ringing_at = $9, answered_at = $10, ended_at = $11, ring_seconds = $12, talk_seconds = $13,
         duration_seconds = $14, end_reason = $15, hangup_cause = $16, recording_url = $17, state = $18::jsonb,
         updated_at = now()
       WHERE id = $1 RETURNING updated_at`,
      [
        call.id,
        after.status,
        after.direction,
        after.fromNumber,
        after.toNumber,
        after.callerName,
        after.agentId,
        after.startedAt,
        after.ringingAt,
        after.answeredAt,
        after.endedAt,
        after.ringSeconds,
        after.talkSeconds,
        after.durationSeconds,
        after.endReason,
        after.hangupCause,
        after.recordingUrl,
        JSON.stringify(state),
      ],
    )) as { updated_at: Date }[][];
    const saved = Object.assign(call, fieldsOf(after), { state, updatedAt: row![0]!.updated_at });

    const type = eventTypeFor(before, after);
    const events = type
      ? [
          await this.events.append(
            m,
            call.companyId,
            type,
            { call: toCallView(saved), ...(type === 'call.ringing' ? { contact: saved.crmContact } : {}) },
            saved.agentId,
            facts.at,
          ),
        ]
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

// --- the calls API: helpers ---------------------------------------------------------------------

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

function syntheticRingingCall(dto: ScreenPopDto, now: Date): ScreenPopCall {
  const at = now.toISOString();
  return {
    id: null,
    provider: 'manual',
    connectionId: null,
    providerCallId: null,
    direction: 'inbound',
    status: 'ringing',
    from: dto.from,
    to: dto.to ?? null,
    callerName: dto.callerName ?? null,
    agentId: dto.agentId,
    startedAt: at,
    ringingAt: at,
    answeredAt: null,
    endedAt: null,
    ringSeconds: null,
    talkSeconds: null,
    durationSeconds: null,
    endReason: null,
    hangupCause: null,
    recordingUrl: null,
    contact: null,
    ai: null,
    tags: [],
    notes: null,
    disposition: null,
    createdAt: at,
    updatedAt: at,
  };
}

function setCallFields(call: CallEntity, dto: UpdateCallDto): void {
  if (dto.notes !== undefined) call.notes = dto.notes;
  if (dto.disposition !== undefined) call.disposition = dto.disposition;
  if (dto.tags !== undefined) call.tags = dto.tags;
}

/**
 * A number to filter on, written as the records keep it: E.164 when it is a phone number, else
 * its digits (an extension). A `+` sent unencoded in a query string arrives as a space.
 */
export function phoneFilter(input: string): string {
  const value = /^\s\d/.test(input) ? `+${input.trimStart()}` : input;
  return toE164(value) ?? value.replace(/\D/g, '');
}

function callNotFound(): AppException {
  return new AppException('not-found', 404, 'No such call.');
}

function noSuchAgent(field: string): FieldError {
  return { field, messages: [`${field} must be an agent of the company`] };
}

/** A `calls` row as PostgreSQL returns it (snake_case). */
interface CallRow {
  id: string;
  company_id: string;
  provider: string;
  connection_id: string | null;
  provider_call_id: string;
  call_key: string;
  direction: CallEntity['direction'];
  from_number: string | null;
  to_number: string | null;
  caller_name: string | null;
  status: CallEntity['status'];
  agent_id: string | null;
  started_at: Date;
  ringing_at: Date | null;
  answered_at: Date | null;
  ended_at: Date | null;
  ring_seconds: number | null;
  talk_seconds: number | null;
  duration_seconds: number | null;
  end_reason: CallEntity['endReason'];
  hangup_cause: string | null;
  recording_url: string | null;
  crm_contact: Record<string, unknown> | null;
  ai: Record<string, unknown> | null;
  tags: string[];
  notes: string | null;
  disposition: string | null;
  state: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}

function callFromRow(r: CallRow): CallEntity {
  return Object.assign(new CallEntity(), {
    id: r.id,
    companyId: r.company_id,
    provider: r.provider,
    connectionId: r.connection_id,
    providerCallId: r.provider_call_id,
    callKey: r.call_key,
    direction: r.direction,
    fromNumber: r.from_number,
    toNumber: r.to_number,
    callerName: r.caller_name,
    status: r.status,
    agentId: r.agent_id,
    startedAt: r.started_at,
    ringingAt: r.ringing_at,
    answeredAt: r.answered_at,
    endedAt: r.ended_at,
    ringSeconds: r.ring_seconds,
    talkSeconds: r.talk_seconds,
    durationSeconds: r.duration_seconds,
    endReason: r.end_reason,
    hangupCause: r.hangup_cause,
    recordingUrl: r.recording_url,
    crmContact: r.crm_contact,
    ai: r.ai,
    tags: r.tags,
    notes: r.notes,
    disposition: r.disposition,
    state: r.state,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  });
}
