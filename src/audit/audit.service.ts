import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { EntityManager, Repository } from 'typeorm';
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
}
