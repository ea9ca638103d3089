import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Cron, CronExpression } from '@nestjs/schedule';
import { randomUUID } from 'node:crypto';
import { Subject } from 'rxjs';
import { type EntityManager, LessThan, MoreThan, Repository } from 'typeorm';
import { CompanyEventEntity } from './company-event.entity.js';
import type { EventEnvelope, EventType } from './event-envelope.js';

/** An event to append (appendMany). */
export interface NewEvent {
  type: EventType;
  data: Record<string, unknown>;
  agentId?: string | null;
  occurredAt?: Date;
}

/** Events are kept this long at least, for clients that reconnect and resume. */
export const EVENT_RETENTION_HOURS = 48;

/**
 * The per-company event stream. `append` gives the next sequence number of the company and
 * writes the event inside the caller's transaction (the counter row lock orders a company's
 * events by commit); after the commit, `publish` hands them to in-process subscribers (the
 * socket.io gateway, and later webhooks and CRM jobs) in order.
 */
@Injectable()
export class EventsService {
  private readonly logger = new Logger(EventsService.name);
  private readonly subject = new Subject<EventEnvelope>();
  /** Events produced by this instance, after their commit. */
  readonly produced$ = this.subject.asObservable();
  private published = 0;

  constructor(@InjectRepository(CompanyEventEntity) private readonly repo: Repository<CompanyEventEntity>) {}

  async append(
    manager: EntityManager,
    companyId: string,
    type: EventType,
    data: Record<string, unknown>,
    agentId: string | null = null,
    occurredAt = new Date(),
  ): Promise<EventEnvelope> {
    // One statement, one round trip: the counter's row lock (held to the commit) gives the number,
    // and the event is written with it.
    const id = randomUUID();
    const [row] = (await manager.query(
      `WITH counter AS (
         INSERT INTO event_counters (company_id, last_seq) VALUES ($1, 1)
         ON CONFLICT (company_id) DO UPDATE SET last_seq = event_counters.last_seq + 1
         RETURNING last_seq
       )
       INSERT INTO company_events (company_id, seq, event_id, type, occurred_at, agent_id, data)
       SELECT $1::uuid, last_seq, $2::uuid, $3::varchar, $4::timestamptz, $5::uuid, $6::jsonb FROM counter
       RETURNING seq`,
      [companyId, id, type, occurredAt, agentId, JSON.stringify(data)],
    )) as { seq: string }[];
    return {
      id,
      type,
      companyId,
      seq: Number(row!.seq),
      occurredAt: occurredAt.toISOString(),
      agentId,
      data,
    };
  }

  /**
   * Appends several events of one company in one statement: the counter is bumped once by their
   * number and every event written with its number, in the order given. Batch writers call this
   * LAST in their transaction (after every other write), so the counter's row lock, which orders
   * the company's events and is held to COMMIT, is held as briefly as possible; a transaction
   * that appends for several companies takes them in a fixed order (by id) against deadlocks.
   */
  async appendMany(manager: EntityManager, companyId: string, items: readonly NewEvent[]): Promise<EventEnvelope[]> {
    if (items.length === 0) return [];
    const ids = items.map(() => randomUUID());
    const at = items.map((i) => i.occurredAt ?? new Date());
    const [row] = (await manager.query(
      `WITH counter AS (
         INSERT INTO event_counters (company_id, last_seq) VALUES ($1, $2)
         ON CONFLICT (company_id) DO UPDATE SET last_seq = event_counters.last_seq + $2
         RETURNING last_seq
       ), written AS (
         INSERT INTO company_events (company_id, seq, event_id, type, occurred_at, agent_id, data)
         SELECT $1::uuid, counter.last_seq - $2 + e.ord, e.id, e.type, e.at, e.agent, e.data
         FROM counter, unnest($3::uuid[], $4::varchar[], $5::timestamptz[], $6::uuid[], $7::jsonb[])
           WITH ORDINALITY AS e(id, type, at, agent, data, ord)
         RETURNING seq
       )
       SELECT min(seq) AS first FROM written`,
      [
        companyId,
        items.length,
        ids,
        items.map((i) => i.type),
        at,
        items.map((i) => i.agentId ?? null),
        items.map((i) => JSON.stringify(i.data)),
      ],
    )) as { first: string }[];
    const first = Number(row!.first);
    return items.map((item, i) => ({
      id: ids[i]!,
      type: item.type,
      companyId,
      seq: first + i,
      occurredAt: at[i]!.toISOString(),
      agentId: item.agentId ?? null,
      data: item.data,
    }));
  }

  /** After the commit of the transaction that appended them. */
  publish(envelopes: EventEnvelope[]): void {
    for (const envelope of envelopes) {
      this.published++;
      this.subject.next(envelope);
    }
  }

  get publishedCount(): number {
    return this.published;
  }

  /** Events of a company after `seq`, in order. */
  async since(companyId: string, seq: number, limit = 500): Promise<EventEnvelope[]> {
    const rows = await this.repo.find({
      where: { companyId, seq: MoreThan(String(seq)) },
      order: { seq: 'ASC' },
      take: limit,
    });
    return rows.map(toEnvelope);
  }

  async latestSeq(companyId: string): Promise<number> {
    const rows = (await this.repo.query('SELECT last_seq FROM event_counters WHERE company_id = $1', [companyId])) as {
      last_seq: string;
    }[];
    return rows[0] ? Number(rows[0].last_seq) : 0;
  }

  /** The oldest sequence number still kept (0 when none). */
  async oldestSeq(companyId: string): Promise<number> {
    const row = await this.repo.findOne({ where: { companyId }, order: { seq: 'ASC' }, select: { seq: true } });
    return row ? Number(row.seq) : 0;
  }

  @Cron(CronExpression.EVERY_HOUR)
  async prune(): Promise<void> {
    const cutoff = new Date(Date.now() - EVENT_RETENTION_HOURS * 3600_000);
    const result = await this.repo.delete({ createdAt: LessThan(cutoff) });
    if (result.affected) this.logger.log({ deleted: result.affected }, 'pruned old events');
  }
}

function toEnvelope(row: CompanyEventEntity): EventEnvelope {
  return {
    id: row.eventId,
    type: row.type as EventType,
    companyId: row.companyId,
    seq: Number(row.seq),
    occurredAt: row.occurredAt.toISOString(),
    agentId: row.agentId,
    data: row.data,
  };
}
