import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, In, Repository, type SelectQueryBuilder } from 'typeorm';
import { AgentsService } from '../agents/agents.service.js';
import type { Tenant } from '../common/access/principal.js';
import { callNotFound } from './calls.errors.js';
import { type CursorPage, type CursorPageQuery, keysetPage } from '../common/pagination.js';
import { toE164 } from '../common/phone.js';
import { ACTIVE_STATUSES } from './call-state.js';
import { CallEventEntity } from './call-event.entity.js';
import { type CallDetail, type CallView, toCallView } from './call-view.js';
import { CallEntity } from './call.entity.js';
import { isoForDatabase, type ListCallsQuery } from './dto/calls.dto.js';

/** Reads of calls: the calls API's lists and details, and what other modules ask about calls. */
@Injectable()
export class CallQueriesService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(CallEntity) private readonly calls: Repository<CallEntity>,
    private readonly agents: AgentsService,
  ) {}

  /** Calls of the company that are queued, ringing or in progress. */
  async countActive(companyId: string): Promise<number> {
    return this.calls.count({ where: { companyId, status: In(ACTIVE_STATUSES) } });
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
    const call = await this.find(companyId, callId);
    if (!call) throw callNotFound();
    return call;
  }

  /** A call of the company by id, or null. */
  find(companyId: string, callId: string): Promise<CallEntity | null> {
    return this.calls.findOne({ where: { companyId, id: callId } });
  }

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
}

/**
 * A number to filter on, written as the records keep it: E.164 when it is a phone number, else
 * its digits (an extension). A `+` sent unencoded in a query string arrives as a space.
 */
export function phoneFilter(input: string): string {
  const value = /^\s\d/.test(input) ? `+${input.trimStart()}` : input;
  return toE164(value) ?? value.replace(/\D/g, '');
}
