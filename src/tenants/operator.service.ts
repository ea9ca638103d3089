import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { actorOf, type Principal } from '../common/access/principal.js';
import { offsetPage, type OffsetPageQuery } from '../common/pagination.js';
import { toUserDto, UsersService } from '../users/users.service.js';
import { ApiKeysService } from './api-keys.service.js';
import { CompaniesService, toCompanyDto } from './companies.service.js';
import type { CreateAppDto, CreateOperatorDto } from './dto/tenants.dto.js';
import { tenantsError } from './tenants.errors.js';

const SHOWN_ONCE = 'Store this API key securely: it is shown once and cannot be recovered.';

/** The operator ("internal") API: companies as "apps", their primary API key, suspension. */
@Injectable()
export class OperatorService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly companies: CompaniesService,
    private readonly keys: ApiKeysService,
    private readonly users: UsersService,
    private readonly audit: AuditService,
  ) {}

  /** Creates a company, its primary API key and optionally its owner, in one transaction. */
  async createApp(dto: CreateAppDto, actor: Principal) {
    return this.dataSource.transaction(async (m) => {
      const company = await this.companies.create(m, dto.name, dto.slug);
      const owner = dto.owner
        ? await this.users.createInTransaction(m, { ...dto.owner, companyId: company.id, role: 'owner' })
        : null;
      const { key, apiKey } = await this.keys.create(
        company.id,
        { name: 'primary', scopes: ['*'], isPrimary: true },
        actor,
        m,
      );
      await this.audit.record(
        {
          companyId: company.id,
          ...actorOf(actor),
          action: 'company.created',
          targetType: 'company',
          targetId: company.id,
        },
        m,
      );
      return {
        appId: company.id,
        company: toCompanyDto(company),
        owner: owner ? toUserDto(owner) : null,
        apiKey: key,
        apiKeyId: apiKey.id,
        keyHint: apiKey.keyHint,
        note: SHOWN_ONCE,
      };
    });
  }

  async listApps(query: OffsetPageQuery) {
    const [rows, total] = await this.companies.list(query);
    const data = await Promise.all(
      rows.map(async (c) => {
        const key = await this.keys.primary(c.id);
        return { appId: c.id, ...toCompanyDto(c), keyHint: key?.keyHint ?? null };
      }),
    );
    return offsetPage(data, total, query);
  }

  async getApp(appId: string) {
    const company = await this.companies.get(appId);
    const key = await this.keys.primary(appId);
    return { appId, ...toCompanyDto(company), keyHint: key?.keyHint ?? null };
  }

  /** Generates the primary key, or rotates it when there is one (old key: `overlapSeconds` more). */
  async generateKey(appId: string, overlapSeconds: number, actor: Principal) {
    const company = await this.companies.get(appId);
    const current = await this.keys.primary(appId);
    if (current) {
      const r = await this.keys.rotate(appId, current.id, overlapSeconds, actor);
      return {
        appId,
        appName: company.name,
        apiKey: r.key,
        apiKeyId: current.id,
        keyHint: r.apiKey.keyHint,
        rotatedAt: r.apiKey.rotatedAt,
        previousKeyValidUntil: r.previousKeyValidUntil,
        note: SHOWN_ONCE,
      };
    }
    const { key, apiKey } = await this.keys.create(appId, { name: 'primary', scopes: ['*'], isPrimary: true }, actor);
    return {
      appId,
      appName: company.name,
      apiKey: key,
      apiKeyId: apiKey.id,
      keyHint: apiKey.keyHint,
      rotatedAt: apiKey.createdAt,
      previousKeyValidUntil: null,
      note: SHOWN_ONCE,
    };
  }

  async keyStatus(appId: string) {
    await this.companies.get(appId);
    const key = await this.keys.primary(appId);
    if (!key) return { appId, isActive: false, keyHint: null, rotatedAt: null, lastUsedAt: null };
    const v = await this.keys.get(appId, key.id);
    return {
      appId,
      apiKeyId: v.id,
      isActive: v.active,
      keyHint: v.keyHint,
      rotatedAt: v.rotatedAt ?? v.createdAt,
      lastUsedAt: v.lastUsedAt,
      previousKeyHint: v.previousKeyHint,
      previousKeyValidUntil: v.previousKeyValidUntil,
    };
  }

  async revokeKey(appId: string, actor: Principal) {
    await this.companies.get(appId);
    const key = await this.keys.primary(appId);
    if (!key) throw tenantsError('not-found', 'This app has no active API key.');
    const v = await this.keys.revoke(appId, key.id, actor);
    return { appId, apiKeyId: v.id, keyHint: v.keyHint, revokedAt: v.revokedAt };
  }

  async keyAudit(appId: string, query: OffsetPageQuery) {
    await this.companies.get(appId);
    return this.keys.auditTrail(appId, null, query);
  }

  async setStatus(appId: string, status: 'active' | 'suspended', actor: Principal) {
    return toCompanyDto(await this.companies.setStatus(appId, status, actor));
  }

  async createOperator(dto: CreateOperatorDto, actor: Principal) {
    return this.dataSource.transaction(async (m) => {
      const user = await this.users.createInTransaction(m, { ...dto, companyId: null, role: 'superadmin' });
      await this.audit.record(
        { companyId: null, ...actorOf(actor), action: 'operator.created', targetType: 'user', targetId: user.id },
        m,
      );
      return toUserDto(user);
    });
  }
}
