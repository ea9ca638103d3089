import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, type EntityManager, Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { actorOf, type Principal } from '../common/access/principal.js';
import { type OffsetPageQuery } from '../common/pagination.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import { NotificationsService } from '../database/notifications.service.js';
import { CompanyEntity, type CompanySettings, type CompanyStatus } from './company.entity.js';
import type { CompanyDto } from './dto/tenants.dto.js';
import { tenantsError } from './tenants.errors.js';

const TOPIC = 'company';

/** Companies (tenants): creation, settings, suspension; a cached "is it active" for every request. */
@Injectable()
export class CompaniesService {
  private readonly statusCache = new Map<string, { status: CompanyStatus | null; at: number }>();
  /** Bumped on every invalidation: a read that started before one is not cached (it may be stale). */
  private generation = 0;

  constructor(
    @InjectRepository(CompanyEntity) private readonly repo: Repository<CompanyEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
    private readonly notifications: NotificationsService,
    private readonly audit: AuditService,
  ) {
    notifications.on(TOPIC, (id) => this.forget(id));
    notifications.onReset(() => this.forget());
  }

  /** Creates a company inside the caller's transaction; the slug is made unique. */
  async create(manager: EntityManager, name: string, slug?: string): Promise<CompanyEntity> {
    const base = slugify(slug ?? name) || 'company';
    const repo = manager.getRepository(CompanyEntity);
    for (let attempt = 0; attempt < 5; attempt++) {
      const candidate = attempt === 0 ? base : `${base.slice(0, 56)}-${Math.random().toString(36).slice(2, 8)}`;
      const taken = await repo.exists({ where: { slug: candidate } });
      if (taken) {
        if (slug && attempt === 0) throw tenantsError('slug-taken', `The slug "${candidate}" is taken.`);
        continue;
      }
      return repo.save(repo.create({ name, slug: candidate, status: 'active', settings: {} }));
    }
    throw tenantsError('slug-taken', 'Could not find a free slug; give one explicitly.');
  }

  async get(companyId: string): Promise<CompanyEntity> {
    const company = await this.repo.findOne({ where: { id: companyId } });
    if (!company) throw tenantsError('not-found', 'No such company.');
    return company;
  }

  async list(query: OffsetPageQuery): Promise<[CompanyEntity[], number]> {
    return this.repo.findAndCount({ order: { createdAt: 'DESC', id: 'DESC' }, take: query.limit, skip: query.offset });
  }

  /** Whether the company exists and is active; cached, dropped at once on change (all instances). */
  async isActive(companyId: string): Promise<boolean> {
    const cached = this.statusCache.get(companyId);
    const ttl = this.config.API_KEY_CACHE_TTL_MS;
    if (cached && Date.now() - cached.at < ttl) return cached.status === 'active';
    const generation = this.generation;
    const row = await this.repo.findOne({ where: { id: companyId }, select: { id: true, status: true } });
    const status = row?.status ?? null;
    if (ttl > 0 && generation === this.generation) this.statusCache.set(companyId, { status, at: Date.now() });
    return status === 'active';
  }

  /** Drops cached statuses (one company, or all). */
  private forget(companyId?: string): void {
    this.generation++;
    if (companyId) this.statusCache.delete(companyId);
    else this.statusCache.clear();
  }

  async updateSettings(companyId: string, changes: { name?: string; settings?: CompanySettings }, actor: Principal) {
    return this.dataSource.transaction(async (manager) => {
      const repo = manager.getRepository(CompanyEntity);
      const company = await repo.findOne({ where: { id: companyId }, lock: { mode: 'pessimistic_write' } });
      if (!company) throw tenantsError('not-found', 'No such company.');
      if (changes.name !== undefined) company.name = changes.name;
      if (changes.settings) company.settings = { ...company.settings, ...changes.settings };
      const saved = await repo.save(company);
      await this.audit.record(
        {
          companyId,
          ...actorOf(actor),
          action: 'company.updated',
          targetType: 'company',
          targetId: companyId,
          details: { fields: Object.keys(changes.settings ?? {}).concat(changes.name !== undefined ? ['name'] : []) },
        },
        manager,
      );
      return saved;
    });
  }

  /** Suspends or reactivates: a suspended company's keys and sessions stop working at once. */
  async setStatus(companyId: string, status: CompanyStatus, actor: Principal): Promise<CompanyEntity> {
    const saved = await this.dataSource.transaction(async (manager) => {
      const repo = manager.getRepository(CompanyEntity);
      const company = await repo.findOne({ where: { id: companyId }, lock: { mode: 'pessimistic_write' } });
      if (!company) throw tenantsError('not-found', 'No such company.');
      company.status = status;
      company.suspendedAt = status === 'suspended' ? new Date() : null;
      const saved = await repo.save(company);
      await this.notifications.notify(manager, TOPIC, companyId);
      await this.audit.record(
        {
          companyId,
          ...actorOf(actor),
          action: status === 'suspended' ? 'company.suspended' : 'company.reactivated',
          targetType: 'company',
          targetId: companyId,
        },
        manager,
      );
      return saved;
    });
    // This instance forgets at once; the others when the NOTIFY (sent at commit) reaches them.
    this.forget(companyId);
    return saved;
  }
}

export function toCompanyDto(c: CompanyEntity): CompanyDto {
  return {
    id: c.id,
    name: c.name,
    slug: c.slug,
    status: c.status,
    settings: c.settings,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  };
}

export function slugify(value: string): string {
  return value
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
}
