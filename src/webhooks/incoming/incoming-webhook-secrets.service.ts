import { newWebhookSecret, WEBHOOK_SECRET_PREFIX } from '../webhook-secrets.js';
import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { AuditService } from '../../audit/audit.service.js';
import { actorOf, type Tenant } from '../../common/access/principal.js';
import { SecretBox } from '../../common/crypto/secret-box.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import type { IncomingSecretCreatedDto, IncomingSecretDto } from './incoming-webhooks.dto.js';
import { IncomingWebhookSecretEntity } from './incoming-webhook-secret.entity.js';
import { incomingError } from './incoming-webhooks.errors.js';

const SHOWN_ONCE = 'Store this secret now: it is shown once and cannot be recovered.';

/** `whsec_` + the first 4 and last 4 characters of its base64. */
export function secretHint(secret: string): string {
  return `${secret.slice(0, WEBHOOK_SECRET_PREFIX.length + 4)}…${secret.slice(-4)}`;
}

/** What verifying a request needs: the company's status and the secrets that verify now. */
export interface IncomingVerification {
  companyActive: boolean;
  /** The current secret, then the previous one while its overlap lasts. Empty: none configured. */
  secrets: string[];
}

interface VerificationRow {
  status: string;
  secret_sealed: string | null;
  previous_secret_sealed: string | null;
  previous_valid: boolean | null;
}

/**
 * The per-company secret of the generic incoming webhook: created or rotated (the previous secret
 * keeps verifying for WEBHOOK_SECRET_OVERLAP_MS), shown once, revoked; sealed at rest with the
 * SecretBox (PBX_SECRETS_KEY, bound to the company id); every change audited, never the secret.
 */
@Injectable()
export class IncomingWebhookSecretsService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly box: SecretBox,
    private readonly audit: AuditService,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
  ) {}

  /** The secret's metadata; 404 when the company has none. */
  async get(tenant: Tenant): Promise<IncomingSecretDto> {
    const row = await this.dataSource.manager.findOne(IncomingWebhookSecretEntity, {
      where: { companyId: tenant.companyId },
    });
    if (!row) throw incomingError('not-found', 'This company has no incoming webhook secret: create one (POST).');
    return this.view(row);
  }

  /** Creates the secret, or rotates it (the previous one verifies for the overlap); shown once. */
  async createOrRotate(tenant: Tenant, attempt = 0): Promise<IncomingSecretCreatedDto> {
    const secret = newWebhookSecret();
    const sealed = this.box.seal(secret, associated(tenant.companyId));
    const overlapMs = this.config.WEBHOOK_SECRET_OVERLAP_MS;
    const row = await this.dataSource.transaction(async (m) => {
      const repo = m.getRepository(IncomingWebhookSecretEntity);
      // The first secret; when the company has one (or another request creates it at this very
      // moment: the INSERT waits for it), this becomes a rotation of the row, locked.
      const inserted = (await m.query(
        `INSERT INTO webhook_incoming_secrets (company_id, secret_sealed, hint) VALUES ($1, $2, $3)
         ON CONFLICT (company_id) DO NOTHING RETURNING company_id`,
        [tenant.companyId, sealed, secretHint(secret)],
      )) as { company_id: string }[];
      if (inserted.length > 0) {
        const created = await repo.findOneByOrFail({ companyId: tenant.companyId });
        await this.record(m, tenant, 'webhook_incoming_secret.created', { hint: created.hint });
        return created;
      }
      const existing = await repo.findOne({
        where: { companyId: tenant.companyId },
        lock: { mode: 'pessimistic_write' },
      });
      // Revoked between the INSERT and the lock (a concurrent DELETE): start again, as a creation.
      if (!existing) return null;
      const keepPrevious = overlapMs > 0;
      existing.previousSecretSealed = keepPrevious ? existing.secretSealed : null;
      existing.previousHint = keepPrevious ? existing.hint : null;
      existing.previousExpiresAt = keepPrevious ? new Date(Date.now() + overlapMs) : null;
      existing.secretSealed = sealed;
      existing.hint = secretHint(secret);
      existing.rotatedAt = new Date();
      const saved = await repo.save(existing);
      await this.record(m, tenant, 'webhook_incoming_secret.rotated', {
        hint: saved.hint,
        previousHint: saved.previousHint,
        previousValidUntil: saved.previousExpiresAt?.toISOString() ?? null,
      });
      return saved;
    });
    if (!row) {
      if (attempt >= 2) throw incomingError('conflict', 'The secret changed meanwhile; retry.');
      return this.createOrRotate(tenant, attempt + 1);
    }
    const view = this.view(row);
    const note = view.previousValidUntil
      ? `${SHOWN_ONCE} The previous secret still verifies until ${view.previousValidUntil}.`
      : SHOWN_ONCE;
    return { ...view, secret, note };
  }

  /** Revokes the secret (and a previous one still in its overlap): requests are refused at once. */
  async revoke(tenant: Tenant): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      const [rows] = (await m.query('DELETE FROM webhook_incoming_secrets WHERE company_id = $1 RETURNING hint', [
        tenant.companyId,
      ])) as [{ hint: string }[], number];
      const hint = rows[0]?.hint;
      if (!hint) throw incomingError('not-found', 'This company has no incoming webhook secret.');
      await this.record(m, tenant, 'webhook_incoming_secret.revoked', { hint });
    });
  }

  /**
   * For one request: the company's status and the secrets that verify now; null for an unknown
   * company. One indexed read (the company and its secret row).
   */
  async forVerification(companyId: string): Promise<IncomingVerification | null> {
    const [row] = (await this.dataSource.query(
      `SELECT c.status, s.secret_sealed, s.previous_secret_sealed, s.previous_expires_at > now() AS previous_valid
       FROM companies c LEFT JOIN webhook_incoming_secrets s ON s.company_id = c.id
       WHERE c.id = $1`,
      [companyId],
    )) as VerificationRow[];
    if (!row) return null;
    const secrets: string[] = [];
    if (row.secret_sealed) secrets.push(this.box.open<string>(row.secret_sealed, associated(companyId)));
    if (row.previous_secret_sealed && row.previous_valid) {
      secrets.push(this.box.open<string>(row.previous_secret_sealed, associated(companyId)));
    }
    return { companyActive: row.status === 'active', secrets };
  }

  /** Where the company's systems post: PUBLIC_BASE_URL + /api/v1/webhooks/incoming/<company id>. */
  urlOf(companyId: string): string {
    return `${this.config.PUBLIC_BASE_URL.replace(/\/+$/, '')}/api/v1/webhooks/incoming/${companyId}`;
  }

  private view(row: IncomingWebhookSecretEntity): IncomingSecretDto {
    const previousLive = row.previousExpiresAt !== null && row.previousExpiresAt.getTime() > Date.now();
    return {
      hint: row.hint,
      url: this.urlOf(row.companyId),
      createdAt: row.createdAt.toISOString(),
      rotatedAt: row.rotatedAt?.toISOString() ?? null,
      previousHint: previousLive ? row.previousHint : null,
      previousValidUntil: previousLive ? row.previousExpiresAt!.toISOString() : null,
    };
  }

  private record(m: EntityManager, tenant: Tenant, action: string, details: Record<string, unknown>): Promise<void> {
    return this.audit.record(
      {
        companyId: tenant.companyId,
        ...actorOf(tenant.principal),
        action,
        targetType: 'webhook_incoming_secret',
        targetId: tenant.companyId,
        details,
      },
      m,
    );
  }
}

/** The associated data of a sealed secret: bound to its company (a copy to another row does not open). */
function associated(companyId: string): string {
  return `webhook_incoming_secrets:${companyId}`;
}
