import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { AgentsService } from '../agents/agents.service.js';
import { callNotFound } from './calls.errors.js';
import type { EventEnvelope, EventType } from '../events/event-envelope.js';
import { EventsService, type NewEvent } from '../events/events.service.js';
import type { CallEvent } from './call-event.js';
import { type CallFacts, type CallState, type DerivedCall, deriveCall, mergeFacts } from './call-state.js';
import { CallEntity } from './call.entity.js';
import { toCallView } from './call-view.js';

export interface ApplyResult {
  /** The call after the whole batch. */
  call: CallEntity;
  /** False when the event was a repetition: nothing changed. */
  applied: boolean;
  /** The company events this event produced (published after the commit). */
  events: EventEnvelope[];
}

/** What a batch applied inside a caller's transaction gives back: publish `envelopes` after COMMIT. */
export interface BatchOutcome {
  results: ApplyResult[];
  /** In sequence order within each company (and in the order of the batch across companies). */
  envelopes: EventEnvelope[];
}

/** Fields that are not derived from events, set on every call of the batch (a manual log's notes). */
export interface BatchFields {
  notes?: string | null;
  disposition?: string | null;
  tags?: string[];
}

/** One call of a batch: its events in the order given. */
interface CallGroup {
  companyId: string;
  callKey: string;
  first: CallEvent;
  /** Indexes into the batch. */
  indexes: number[];
}

/**
 * The one write path of calls (DESIGN.md "The flow of a call"): canonical call events of any
 * number of calls, applied SET-BASED in one transaction — agents resolved in one query, missing
 * calls and the timeline rows inserted with `unnest … ON CONFLICT DO NOTHING`, only the events
 * that were new merged (call-state.ts, pure, in memory, per call in the order given), one UPDATE
 * for every touched call, one counter bump per company taken last — and the company events
 * published after the commit in sequence order. Idempotent (an event key is applied once per
 * call) and tolerant of order; the same batch twice changes nothing and publishes nothing.
 * Webhooks (the inbox worker, inside its claim transaction), AMI sessions, click-to-call, the
 * manual log and assignments all come through here.
 */
@Injectable()
export class CallApplyService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly agents: AgentsService,
    private readonly events: EventsService,
  ) {}

  /** One event (its own transaction). */
  async apply(event: CallEvent): Promise<ApplyResult> {
    return (await this.applyBatch([event]))[0]!;
  }

  /**
   * Events of any calls in ONE transaction; per call in the order of the array. Throws when the
   * database refuses: then nothing of the batch is stored, and retrying the same batch is safe.
   * One result per event, same index.
   */
  async applyBatch(events: readonly CallEvent[], fields?: BatchFields): Promise<ApplyResult[]> {
    if (events.length === 0) return [];
    const outcome = await this.dataSource.transaction((m) => this.applyIn(m, events, fields));
    this.events.publish(outcome.envelopes);
    return outcome.results;
  }

  /**
   * The batch inside the caller's transaction (the inbox claims and applies in one). The caller
   * publishes `envelopes` after its COMMIT, and only then.
   */
  async applyIn(m: EntityManager, events: readonly CallEvent[], fields?: BatchFields): Promise<BatchOutcome> {
    if (events.length === 0) return { results: [], envelopes: [] };
    const groups = groupByCall(events);

    // 1. Agents, all in one query (inside the transaction: one connection for the whole batch).
    const withAgent = events.flatMap((e, i) => (e.agent ? [i] : []));
    const resolved = await this.agents.resolveMany(
      withAgent.map((i) => ({
        companyId: events[i]!.companyId,
        ref: { provider: events[i]!.provider as never, ...events[i]!.agent },
      })),
      m,
    );
    const agentOf = new Map(withAgent.map((i, n) => [i, resolved[n] ?? null]));

    // 2. The calls: missing ones created, then all of them locked, in one fixed order (by company
    // and key) so that two batches sharing calls cannot deadlock. A conflict is the same call made
    // by another transaction at the same moment (or the id a click-to-call gave it): no error.
    const sorted = [...groups].sort((a, b) => cmp(a.companyId, b.companyId) || cmp(a.callKey, b.callKey));
    await m.query(
      `INSERT INTO calls (id, company_id, provider, connection_id, provider_call_id, call_key, direction, status, started_at, state)
       SELECT COALESCE(t.id, gen_random_uuid()), t.company_id, t.provider, t.connection_id, t.provider_call_id, t.call_key,
              t.direction, 'queued', t.started_at, '{}'
       FROM unnest($1::uuid[], $2::uuid[], $3::varchar[], $4::uuid[], $5::varchar[], $6::varchar[], $7::varchar[], $8::timestamptz[])
         AS t(id, company_id, provider, connection_id, provider_call_id, call_key, direction, started_at)
       ON CONFLICT DO NOTHING`,
      [
        sorted.map((g) => g.indexes.map((i) => events[i]!.callId).find((id) => id) ?? null),
        sorted.map((g) => g.companyId),
        sorted.map((g) => g.first.provider),
        sorted.map((g) => g.first.connectionId ?? null),
        sorted.map((g) => g.first.providerCallId),
        sorted.map((g) => g.callKey),
        sorted.map((g) => g.first.direction ?? 'inbound'),
        sorted.map((g) => g.first.at),
      ],
    );
    const rows = (await m.query(
      `SELECT c.*, now() AS tx_now FROM calls c
       JOIN unnest($1::uuid[], $2::varchar[]) AS k(company_id, call_key)
         ON c.company_id = k.company_id AND c.call_key = k.call_key
       ORDER BY c.company_id, c.call_key
       FOR UPDATE OF c`,
      [sorted.map((g) => g.companyId), sorted.map((g) => g.callKey)],
    )) as (CallRow & { tx_now: Date })[];
    const calls = new Map(rows.map((r) => [`${r.company_id}\n${r.call_key}`, callFromRow(r)]));
    const now = rows[0]?.tx_now ?? new Date();
    for (const g of groups) {
      if (!calls.has(`${g.companyId}\n${g.callKey}`)) {
        throw new Error(`call ${g.callKey} could not be created (its id is taken by another call)`);
      }
    }

    // 3. The timeline rows: the events that were new are the ones inserted (an event key is
    // applied once per call; a repetition inside the batch is a repetition too).
    const facts: CallFacts[] = events.map((e, i) => factsOf(e, agentOf.get(i)));
    const candidates: number[] = [];
    const seen = new Set<string>();
    for (const g of groups) {
      const call = calls.get(`${g.companyId}\n${g.callKey}`)!;
      for (const i of g.indexes) {
        const key = `${call.id}\n${events[i]!.eventKey}`;
        if (seen.has(key)) continue;
        seen.add(key);
        candidates.push(i);
      }
    }
    const callIdOf = (i: number) => calls.get(`${events[i]!.companyId}\n${keyOf(events[i]!)}`)!.id;
    const inserted = (await m.query(
      // created_at one microsecond apart in the order given: a call's timeline lists events of the
      // same time in the order they were applied (it sorts by at, then created_at).
      `INSERT INTO call_events (company_id, call_id, event_key, kind, at, data, created_at)
       SELECT e.company_id, e.call_id, e.event_key, e.kind, e.at, e.data, now() + e.ord * interval '1 microsecond'
       FROM unnest($1::uuid[], $2::uuid[], $3::varchar[], $4::varchar[], $5::timestamptz[], $6::jsonb[])
         WITH ORDINALITY AS e(company_id, call_id, event_key, kind, at, data, ord)
       ON CONFLICT (call_id, event_key) DO NOTHING RETURNING call_id, event_key`,
      [
        candidates.map((i) => events[i]!.companyId),
        candidates.map(callIdOf),
        candidates.map((i) => events[i]!.eventKey),
        candidates.map((i) => events[i]!.kind),
        candidates.map((i) => events[i]!.at),
        candidates.map((i) => JSON.stringify(timelineData(facts[i]!, events[i]!.raw))),
      ],
    )) as { call_id: string; event_key: string }[];
    const fresh = new Set(inserted.map((r) => `${r.call_id}\n${r.event_key}`));
    const isNew = new Set(candidates.filter((i) => fresh.has(`${callIdOf(i)}\n${events[i]!.eventKey}`)));

    // 4. Merge the new events in memory, per call in order; each change is one company event.
    const pending: { index: number; companyId: string; event: NewEvent }[] = [];
    const touched: CallEntity[] = [];
    for (const g of groups) {
      const call = calls.get(`${g.companyId}\n${g.callKey}`)!;
      const news = g.indexes.filter((i) => isNew.has(i));
      if (news.length === 0) continue;
      if (fields) applyFields(call, fields);
      let state = call.state as CallState;
      for (const i of news) {
        const before = deriveCall(state, call.startedAt);
        state = mergeFacts(state, facts[i]!);
        const after = deriveCall(state, call.startedAt);
        Object.assign(call, fieldsOf(after), { state, updatedAt: now });
        const type = eventTypeFor(before, after);
        if (type) {
          const view = toCallView(call);
          pending.push({
            index: i,
            companyId: call.companyId,
            event: {
              type,
              data: { call: view, ...(type === 'call.ringing' ? { contact: call.crmContact } : {}) },
              agentId: call.agentId,
              occurredAt: facts[i]!.at,
            },
          });
        }
      }
      touched.push(call);
    }

    // 5. One UPDATE for every call that changed.
    if (touched.length > 0) await updateCalls(m, touched, fields);

    // 6. The company events last: one counter bump per company, companies in a fixed order; a
    // company's events numbered in the order of the batch.
    pending.sort((x, y) => x.index - y.index);
    const perCompany = new Map<string, typeof pending>();
    for (const p of pending) {
      let list = perCompany.get(p.companyId);
      if (!list) perCompany.set(p.companyId, (list = []));
      list.push(p);
    }
    const byIndex = new Map<number, EventEnvelope[]>();
    const envelopes: EventEnvelope[] = [];
    for (const companyId of [...perCompany.keys()].sort(cmp)) {
      const list = perCompany.get(companyId)!;
      const written = await this.events.appendMany(
        m,
        companyId,
        list.map((p) => p.event),
      );
      list.forEach((p, n) => {
        const envelope = written[n]!;
        envelopes.push(envelope);
        byIndex.set(p.index, [...(byIndex.get(p.index) ?? []), envelope]);
      });
    }

    const results = events.map((e, i) => ({
      call: calls.get(`${e.companyId}\n${keyOf(e)}`)!,
      applied: isNew.has(i),
      events: byIndex.get(i) ?? [],
    }));
    return { results, envelopes };
  }

  /**
   * Facts about a call known by id, through the same apply (an assignment): the event names the
   * call as its provider does, so it joins the same record and timeline.
   */
  async applyToCall(
    companyId: string,
    callId: string,
    facts: Omit<CallFacts, 'agentId'> & { agentId?: string },
  ): Promise<ApplyResult> {
    const [row] = (await this.dataSource.query(
      'SELECT provider, connection_id, provider_call_id FROM calls WHERE company_id = $1 AND id = $2',
      [companyId, callId],
    )) as { provider: string; connection_id: string | null; provider_call_id: string }[];
    if (!row) throw callNotFound();
    const { agentId, ...rest } = facts;
    return this.apply({
      ...rest,
      companyId,
      provider: row.provider,
      connectionId: row.connection_id,
      providerCallId: row.provider_call_id,
      ...(agentId ? { agent: { agentId } } : {}),
    });
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
      if (!call) throw callNotFound();
      change(call);
      const saved = await repo.save(call);
      const envelopes = await this.events.appendMany(m, companyId, [
        { type, data: { call: toCallView(saved) }, agentId: saved.agentId },
      ]);
      return { call: saved, events: envelopes };
    });
    this.events.publish(result.events);
    return result.call;
  }

  /** The provider call ids of a connection's calls still queued, ringing or in progress (AMI resync). */
  async activeProviderCallIds(companyId: string, connectionId: string): Promise<string[]> {
    const rows = (await this.dataSource.query(
      `SELECT provider_call_id FROM calls
       WHERE company_id = $1 AND connection_id = $2 AND status IN ('queued', 'ringing', 'in_progress')`,
      [companyId, connectionId],
    )) as { provider_call_id: string }[];
    return rows.map((r) => r.provider_call_id);
  }
}

/** The key of the call an event is about, as `calls.call_key` stores it. */
export function callKeyOf(e: Pick<CallEvent, 'connectionId' | 'provider' | 'providerCallId'>): string {
  return `${e.connectionId ?? e.provider}:${e.providerCallId}`;
}
const keyOf = callKeyOf;

function groupByCall(events: readonly CallEvent[]): CallGroup[] {
  const groups = new Map<string, CallGroup>();
  events.forEach((e, i) => {
    const callKey = keyOf(e);
    const id = `${e.companyId}\n${callKey}`;
    const g = groups.get(id);
    if (g) g.indexes.push(i);
    else groups.set(id, { companyId: e.companyId, callKey, first: e, indexes: [i] });
  });
  return [...groups.values()];
}

function factsOf(e: CallEvent, agentId: string | null | undefined): CallFacts {
  return {
    eventKey: e.eventKey,
    kind: e.kind,
    at: e.at,
    direction: e.direction,
    from: e.from,
    to: e.to,
    callerName: e.callerName,
    agentId: agentId ?? undefined,
    endReason: e.endReason,
    hangupCause: e.hangupCause,
    recordingUrl: e.recordingUrl,
  };
}

function timelineData(facts: CallFacts, raw: unknown): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(facts)) if (v !== undefined && k !== 'at' && k !== 'eventKey') data[k] = v;
  if (raw !== undefined) data.raw = raw;
  return data;
}

function applyFields(call: CallEntity, fields: BatchFields): void {
  if (fields.notes !== undefined) call.notes = fields.notes;
  if (fields.disposition !== undefined) call.disposition = fields.disposition;
  if (fields.tags !== undefined) call.tags = fields.tags;
}

async function updateCalls(m: EntityManager, calls: CallEntity[], fields?: BatchFields): Promise<void> {
  const col = <T>(f: (c: CallEntity) => T) => calls.map(f);
  await m.query(
    `UPDATE calls c SET status = u.status, direction = u.direction, from_number = u.from_number, to_number = u.to_number,
       caller_name = u.caller_name, agent_id = u.agent_id, started_at = u.started_at, ringing_at = u.ringing_at,
       answered_at = u.answered_at, ended_at = u.ended_at, ring_seconds = u.ring_seconds, talk_seconds = u.talk_seconds,
       duration_seconds = u.duration_seconds, end_reason = u.end_reason, hangup_cause = u.hangup_cause,
       recording_url = u.recording_url, state = u.state, updated_at = now()
       ${fields ? ', notes = u.notes, disposition = u.disposition, tags = ARRAY(SELECT jsonb_array_elements_text(u.tags))' : ''}
     FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[], $7::uuid[],
                 $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::int[], $13::int[],
                 $14::int[], $15::varchar[], $16::varchar[], $17::text[], $18::jsonb[], $19::text[], $20::varchar[],
                 $21::jsonb[])
       AS u(id, status, direction, from_number, to_number, caller_name, agent_id, started_at, ringing_at, answered_at,
            ended_at, ring_seconds, talk_seconds, duration_seconds, end_reason, hangup_cause, recording_url, state,
            notes, disposition, tags)
     WHERE c.id = u.id`,
    [
      col((c) => c.id),
      col((c) => c.status),
      col((c) => c.direction),
      col((c) => c.fromNumber),
      col((c) => c.toNumber),
      col((c) => c.callerName),
      col((c) => c.agentId),
      col((c) => c.startedAt),
      col((c) => c.ringingAt),
      col((c) => c.answeredAt),
      col((c) => c.endedAt),
      col((c) => c.ringSeconds),
      col((c) => c.talkSeconds),
      col((c) => c.durationSeconds),
      col((c) => c.endReason),
      col((c) => c.hangupCause),
      col((c) => c.recordingUrl),
      col((c) => JSON.stringify(c.state)),
      col((c) => c.notes),
      col((c) => c.disposition),
      col((c) => JSON.stringify(c.tags)),
    ],
  );
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

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

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
