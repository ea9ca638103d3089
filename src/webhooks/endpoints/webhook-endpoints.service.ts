import { randomUUID } from 'node:crypto';
import { newWebhookSecret } from '../webhook-secrets.js';
import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, type EntityManager, Repository } from 'typeorm';
import { AuditService } from '../../audit/audit.service.js';
import { actorOf, type Tenant } from '../../common/access/principal.js';
import { SecretBox } from '../../common/crypto/secret-box.js';
import { validationFailed } from '../../common/errors/common.errors.js';
import { type CursorPage, type CursorPageQuery, keysetPage } from '../../common/pagination.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { AppConfig } from '../../config/config.schema.js';
import { EventsService } from '../../events/events.service.js';
import { SsrfGuard, SsrfRefusedError, type SsrfReason } from './ssrf-guard.js';
import { WebhookEndpointEntity } from './webhook-endpoint.entity.js';
import {
  type CreatedWebhookEndpointDto,
  type CreateWebhookEndpointDto,
  MAX_URL_LENGTH,
  type RotatedWebhookSecretDto,
  type UpdateWebhookEndpointDto,
  type WebhookEndpointDto,
} from './webhook-endpoints.dto.js';
import { webhookEndpointsError } from './webhook-endpoints.errors.js';

/** `whsec_Ab…wxyz`: enough to tell two secrets apart, useless to sign. */
export function secretHint(secret: string): string {
  return `${secret.slice(0, 8)}…${secret.slice(-4)}`;
}

/** Associated data of a sealed secret: binds it to its row. */
function sealedFor(id: string): string {
  return `webhook-endpoint:${id}`;
}

const REFUSED: Record<Exclude<SsrfReason, 'invalid-url'>, string> = {
  scheme: 'url must use https:// (plain http only for targets in WEBHOOK_ALLOWED_TARGETS)',
  credentials: 'url must not carry a user name or password',
  unresolvable: 'url: the host name does not resolve',
  'blocked-address':
    'url resolves to an address webhooks may not target (loopback, private, link-local, CGNAT, multicast, ' +
    'metadata or another reserved range)',
};

type Config = Pick<AppConfig, 'WEBHOOK_ENDPOINTS_PER_COMPANY' | 'WEBHOOK_SECRET_OVERLAP_MS'>;

/**
 * A company's outbound webhook endpoints: URL checked by the SSRF guard, event type filter,
 * custom headers, rate limit; the signing secret is shown once, sealed at rest (SecretBox bound to
 * the row), rotated with an overlap during which the previous one signs too. Every change is
 * audited (never with a secret).
 */
@Injectable()
export class WebhookEndpointsService {
  constructor(
    @InjectRepository(WebhookEndpointEntity) private readonly repo: Repository<WebhookEndpointEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: Config,
    private readonly guard: SsrfGuard,
    private readonly box: SecretBox,
    private readonly events: EventsService,
    private readonly audit: AuditService,
  ) {}

  // --- for the deliveries -------------------------------------------------------------------------

  /** Secrets that sign now: the current one, then the previous one while its overlap lasts. */
  signingSecrets(endpoint: WebhookEndpointEntity, now: Date = new Date()): string[] {
    const secrets = [this.box.open<string>(endpoint.secretSealed, sealedFor(endpoint.id))];
    if (
      endpoint.previousSecretSealed &&
      endpoint.previousSecretExpiresAt &&
      endpoint.previousSecretExpiresAt.getTime() > now.getTime()
    ) {
      secrets.push(this.box.open<string>(endpoint.previousSecretSealed, sealedFor(endpoint.id)));
    }
    return secrets;
  }

  /** The endpoint of the company, or a 404 problem. */
  async get(companyId: string, id: string): Promise<WebhookEndpointEntity> {
    return this.find(this.repo.manager, companyId, id);
  }

  // --- the API ------------------------------------------------------------------------------------

  async list(companyId: string, query: CursorPageQuery): Promise<CursorPage<WebhookEndpointDto>> {
    const qb = this.repo.createQueryBuilder('e').where('e.company_id = :companyId', { companyId });
    return keysetPage(qb, 'e', 'created_at', query, (row) => this.toDto(row));
  }

  async describe(companyId: string, id: string): Promise<WebhookEndpointDto> {
    return this.toDto(await this.get(companyId, id));
  }

  async create(tenant: Tenant, dto: CreateWebhookEndpointDto): Promise<CreatedWebhookEndpointDto> {
    const url = await this.checkedUrl(dto.url);
    const secret = newWebhookSecret();
    const saved = await this.dataSource.transaction(async (m) => {
      // One creation at a time per company, so the limit holds under concurrent requests.
      await m.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`webhook-endpoints:${tenant.companyId}`]);
      const count = await m.getRepository(WebhookEndpointEntity).count({ where: { companyId: tenant.companyId } });
      if (count >= this.config.WEBHOOK_ENDPOINTS_PER_COMPANY) {
        throw webhookEndpointsError(
          'webhook-endpoint-limit',
          `The company has ${count} webhook endpoints; at most ${this.config.WEBHOOK_ENDPOINTS_PER_COMPANY} are allowed.`,
          { limit: this.config.WEBHOOK_ENDPOINTS_PER_COMPANY },
        );
      }
      const repo = m.getRepository(WebhookEndpointEntity);
      const id = randomUUID();
      const enabled = dto.enabled ?? true;
      const row = repo.create({
        id,
        companyId: tenant.companyId,
        url,
        description: dto.description ?? '',
        eventTypes: dto.eventTypes,
        enabled,
        disabledReason: enabled ? null : 'manual',
        disabledAt: enabled ? null : new Date(),
        secretSealed: this.box.seal(secret, sealedFor(id)),
        secretHint: secretHint(secret),
        previousSecretSealed: null,
        previousSecretExpiresAt: null,
        rateLimitPerSecond: dto.rateLimitPerSecond ?? null,
        headers: dto.headers ?? {},
        failingSince: null,
        lastSuccessAt: null,
        // History is not sent: the endpoint starts after the company's latest event (replay re-sends).
        fanoutSeq: String(await this.events.latestSeq(tenant.companyId)),
      });
      const out = await repo.save(row);
      await this.record(m, tenant, 'webhook_endpoint.created', out, {
        host: new URL(out.url).host,
        eventTypes: out.eventTypes,
        enabled: out.enabled,
        headerNames: Object.keys(out.headers),
      });
      return out;
    });
    return { ...this.toDto(saved), secret };
  }

  async update(tenant: Tenant, id: string, dto: UpdateWebhookEndpointDto): Promise<WebhookEndpointDto> {
    // Resolve before the row lock: DNS may take a while.
    const url = dto.url === undefined ? undefined : await this.checkedUrl(dto.url);
    const saved = await this.dataSource.transaction(async (m) => {
      const row = await this.find(m, tenant.companyId, id, true);
      const fields: string[] = [];
      if (url !== undefined && url !== row.url) {
        row.url = url;
        fields.push('url');
      }
      if (dto.description !== undefined && dto.description !== row.description) {
        row.description = dto.description;
        fields.push('description');
      }
      if (dto.eventTypes !== undefined) {
        row.eventTypes = dto.eventTypes;
        fields.push('eventTypes');
      }
      if (dto.rateLimitPerSecond !== undefined && dto.rateLimitPerSecond !== row.rateLimitPerSecond) {
        row.rateLimitPerSecond = dto.rateLimitPerSecond;
        fields.push('rateLimitPerSecond');
      }
      if (dto.headers !== undefined) {
        row.headers = dto.headers;
        fields.push('headers');
      }
      if (dto.enabled === false && row.enabled) {
        row.enabled = false;
        row.disabledReason = 'manual';
        row.disabledAt = new Date();
        fields.push('enabled');
      } else if (dto.enabled === true && !row.enabled) {
        // Re-enabled: healthy again, and it starts from the latest event (missed ones: replay).
        row.enabled = true;
        row.disabledReason = null;
        row.disabledAt = null;
        row.failingSince = null;
        row.fanoutSeq = String(await this.events.latestSeq(tenant.companyId));
        fields.push('enabled');
      }
      if (fields.length === 0) return row;
      const out = await m.getRepository(WebhookEndpointEntity).save(row);
      await this.record(m, tenant, 'webhook_endpoint.updated', out, {
        fields,
        ...(fields.includes('url') ? { host: new URL(out.url).host } : {}),
        ...(fields.includes('enabled') ? { enabled: out.enabled } : {}),
        ...(fields.includes('eventTypes') ? { eventTypes: out.eventTypes } : {}),
        ...(fields.includes('headers') ? { headerNames: Object.keys(out.headers) } : {}),
      });
      return out;
    });
    return this.toDto(saved);
  }

  async remove(tenant: Tenant, id: string): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      const row = await this.find(m, tenant.companyId, id, true);
      await m.getRepository(WebhookEndpointEntity).delete({ id: row.id, companyId: tenant.companyId });
      await this.record(m, tenant, 'webhook_endpoint.deleted', row, { host: new URL(row.url).host });
    });
  }

  /**
   * A new secret, shown once; the current one becomes the previous one and keeps signing for
   * WEBHOOK_SECRET_OVERLAP_MS (a previous one still in its overlap is dropped).
   */
  async rotateSecret(tenant: Tenant, id: string): Promise<RotatedWebhookSecretDto> {
    const secret = newWebhookSecret();
    const saved = await this.dataSource.transaction(async (m) => {
      const row = await this.find(m, tenant.companyId, id, true);
      const overlap = this.config.WEBHOOK_SECRET_OVERLAP_MS;
      row.previousSecretSealed = overlap > 0 ? row.secretSealed : null;
      row.previousSecretExpiresAt = overlap > 0 ? new Date(Date.now() + overlap) : null;
      row.secretSealed = this.box.seal(secret, sealedFor(row.id));
      row.secretHint = secretHint(secret);
      const out = await m.getRepository(WebhookEndpointEntity).save(row);
      await this.record(m, tenant, 'webhook_endpoint.secret_rotated', out, {
        secretHint: out.secretHint,
        previousSecretExpiresAt: out.previousSecretExpiresAt?.toISOString() ?? null,
      });
      return out;
    });
    return {
      id: saved.id,
      secret,
      secretHint: saved.secretHint,
      previousSecretExpiresAt: saved.previousSecretExpiresAt?.toISOString() ?? null,
    };
  }

  // --- helpers ------------------------------------------------------------------------------------

  /** The URL normalised (what the guard checked is what is stored and called), or a 400. */
  private async checkedUrl(input: string): Promise<string> {
    let url: string;
    try {
      url = new URL(input).href;
    } catch {
      throw validationFailed([{ field: 'url', messages: ['url must be an absolute URL'] }]);
    }
    if (url.length > MAX_URL_LENGTH) {
      throw validationFailed([{ field: 'url', messages: [`url must be at most ${MAX_URL_LENGTH} characters`] }]);
    }
    try {
      await this.guard.checkUrl(url);
    } catch (error) {
      if (!(error instanceof SsrfRefusedError)) throw error;
      if (error.reason === 'invalid-url') {
        throw validationFailed([{ field: 'url', messages: ['url must be an absolute URL'] }]);
      }
      // The detail names the reason, never the addresses the host resolved to.
      throw webhookEndpointsError('webhook-target-refused', REFUSED[error.reason], {
        field: 'url',
        reason: error.reason,
      });
    }
    return url;
  }

  private async find(m: EntityManager, companyId: string, id: string, lock = false): Promise<WebhookEndpointEntity> {
    const row = await m.getRepository(WebhookEndpointEntity).findOne({
      where: { companyId, id },
      ...(lock ? { lock: { mode: 'pessimistic_write' as const } } : {}),
    });
    if (!row) throw webhookEndpointsError('not-found', 'No such webhook endpoint.');
    return row;
  }

  private toDto(row: WebhookEndpointEntity): WebhookEndpointDto {
    return {
      id: row.id,
      url: row.url,
      description: row.description,
      eventTypes: row.eventTypes,
      enabled: row.enabled,
      disabledReason: row.disabledReason,
      disabledAt: row.disabledAt?.toISOString() ?? null,
      secretHint: row.secretHint,
      previousSecretExpiresAt:
        row.previousSecretExpiresAt && row.previousSecretExpiresAt.getTime() > Date.now()
          ? row.previousSecretExpiresAt.toISOString()
          : null,
      rateLimitPerSecond: row.rateLimitPerSecond,
      headers: row.headers,
      failingSince: row.failingSince?.toISOString() ?? null,
      lastSuccessAt: row.lastSuccessAt?.toISOString() ?? null,
      createdAt: row.createdAt.toISOString(),
      updatedAt: row.updatedAt.toISOString(),
    };
  }

  private record(
    m: EntityManager,
    tenant: Tenant,
    action: string,
    row: WebhookEndpointEntity,
    details: Record<string, unknown>,
  ): Promise<void> {
    return this.audit.record(
      {
        companyId: tenant.companyId,
        ...actorOf(tenant.principal),
        action,
        targetType: 'webhook_endpoint',
        targetId: row.id,
        details,
      },
      m,
    );
  }
}
