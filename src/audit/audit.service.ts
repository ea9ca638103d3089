import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { AuditLogQuery } from './audit-log.dto.js';
import { Brackets, type EntityManager, Repository } from 'typeorm';
import { type CursorPage, decodeCursor, encodeCursor } from '../common/pagination.js';
import { requestContext } from '../common/request-context.js';
import { AuditLogEntity, type AuditActorType } from './audit-log.entity.js';

export interface AuditEntry {
  companyId: string | null;
  actorType: AuditActorType;
  actorId?: string | null;
  action: string;
  targetType?: string;
  targetId?: string;
  details?: Record<string, unknown>;
}

/** Writes the audit log; the request id and client address come from the request context. */
@Injectable()
export class AuditService {
  constructor(@InjectRepository(AuditLogEntity) private readonly repo: Repository<AuditLogEntity>) {}

  /** Records an entry; pass `manager` to write inside the caller's transaction. */
  async record(entry: AuditEntry, manager?: EntityManager): Promise<void> {
    const ctx = requestContext.getStore();
    const repo = manager ? manager.getRepository(AuditLogEntity) : this.repo;
    await repo.save(
      repo.create({
        companyId: entry.companyId,
        actorType: entry.actorType,
        actorId: entry.actorId ?? null,
        action: entry.action,
        targetType: entry.targetType ?? null,
        targetId: entry.targetId ?? null,
        requestId: ctx?.requestId ?? null,
        ip: ctx?.ip ?? null,
        details: entry.details ?? {},
      }),
    );
  }

  /** The company's audit log, newest first, keyset-paginated. */
  async list(companyId: string, query: AuditLogQuery): Promise<CursorPage<AuditLogEntity>> {
    const qb = this.repo.createQueryBuilder('a').where('a.company_id = :companyId', { companyId });
    if (query.action) qb.andWhere('a.action = :action', { action: query.action });
    if (query.since) qb.andWhere('a.created_at >= :since', { since: query.since });
    if (query.until) qb.andWhere('a.created_at < :until', { until: query.until });
    if (query.cursor) {
      const k = decodeCursor(query.cursor);
      qb.andWhere(
        new Brackets((w) =>
          w
            .where('a.created_at < :at', { at: k.at })
            .orWhere('(a.created_at = :at AND a.id < :id)', { at: k.at, id: k.id }),
        ),
      );
    }
    // The cursor keeps the exact (microsecond) time of the last row; createdAt has milliseconds only.
    const { entities: rows, raw } = await qb
      .addSelect(`to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`, 'cursor_at')
      .orderBy('a.created_at', 'DESC')
      .addOrderBy('a.id', 'DESC')
      .limit(query.limit + 1)
      .getRawAndEntities<{ cursor_at: string }>();
    const more = rows.length > query.limit;
    const data = more ? rows.slice(0, query.limit) : rows;
    const last = data[data.length - 1];
    const lastAt = raw[data.length - 1]?.cursor_at;
    return { data, next: more && last && lastAt ? encodeCursor({ at: lastAt, id: last.id }) : null };
  }
}
