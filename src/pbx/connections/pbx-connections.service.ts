import { Injectable, type OnModuleInit } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { DataSource, type EntityManager, IsNull, Repository } from 'typeorm';
import { type z, ZodObject } from 'zod';
import { AuditService } from '../../audit/audit.service.js';
import { actorOf, type Tenant } from '../../common/access/principal.js';
import { SecretBox } from '../../common/crypto/secret-box.js';
import { type FieldError, fieldErrorsOf, validationFailed } from '../../common/errors/common.errors.js';
import { NotificationsService } from '../../database/notifications.service.js';
import { PbxError, type PbxConnectionConfig } from '../pbx-provider.js';
import { pbxError } from '../pbx.errors.js';
import { PbxRegistry } from '../pbx-registry.js';
import type {
  CreatePbxConnectionDto,
  PbxConnectionDto,
  PbxConnectionTestDto,
  UpdatePbxConnectionDto,
} from './pbx-connections.dto.js';
import { PbxConnectionEntity } from './pbx-connection.entity.js';

/** What the provider's own steps change on a connection: a key set to null is removed. */
export interface ConnectionPatch {
  secrets?: Record<string, unknown>;
  settings?: Record<string, unknown>;
}

/** A connection with its secrets opened, as the PBX services use it. */
export interface LoadedConnection extends PbxConnectionConfig {
  name: string;
  /** Changes whenever settings or secrets do (the registry's cache key). */
  version: string;
  companyActive: boolean;
}

const TOPIC = 'pbx-connection';
/** How long the webhook path keeps a connection in memory (changes are also pushed by NOTIFY). */
const WEBHOOK_CACHE_MS = 5_000;

/**
 * Phone-system connections of a company: settings validated by the provider's driver, secrets
 * write-only and sealed at rest (AES-256-GCM, bound to the row), soft deletion. Every change is
 * audited and announced to every instance (NOTIFY) so cached clients are dropped.
 */
@Injectable()
export class PbxConnectionsService implements OnModuleInit {
  private readonly cache = new Map<string, { at: number; value: LoadedConnection | null }>();

  constructor(
    @InjectRepository(PbxConnectionEntity) private readonly repo: Repository<PbxConnectionEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly registry: PbxRegistry,
    private readonly notifications: NotificationsService,
    private readonly audit: AuditService,
    private readonly box: SecretBox,
  ) {}

  onModuleInit(): void {
    this.notifications.on(TOPIC, (id) => this.drop(id));
    // A suspended or reactivated company: its connections' cached status is stale.
    this.notifications.on('company', (companyId) => {
      for (const [id, entry] of this.cache) if (entry.value?.companyId === companyId) this.cache.delete(id);
    });
    this.notifications.onReset(() => this.cache.clear());
  }

  // --- the API ------------------------------------------------------------------------------------

  async list(companyId: string): Promise<PbxConnectionDto[]> {
    const rows = await this.repo.find({
      where: { companyId, deletedAt: IsNull() },
      order: { createdAt: 'ASC', id: 'ASC' },
    });
    return rows.map((r) => this.toDto(r));
  }

  async get(companyId: string, id: string): Promise<PbxConnectionDto> {
    return this.toDto(await this.find(this.repo.manager, companyId, id));
  }

  async create(tenant: Tenant, dto: CreatePbxConnectionDto): Promise<PbxConnectionDto> {
    const driver = this.registry.driver(dto.provider);
    const [settings, secrets] = both(
      () => validated(driver.settingsSchema, dto.settings ?? {}, 'settings', dto.settings ?? {}),
      () => validated(driver.secretsSchema, dto.secrets ?? {}, 'secrets', dto.secrets ?? {}),
    );
    const id = randomUUID();
    const saved = await this.dataSource.transaction(async (m) => {
      await this.assertNameFree(m, tenant.companyId, dto.name);
      const row = m.getRepository(PbxConnectionEntity).create({
        id,
        companyId: tenant.companyId,
        provider: dto.provider,
        name: dto.name,
        settings,
        secretsSealed: this.box.seal(secrets, id),
        secretNames: Object.keys(secrets).sort(),
      });
      const out = await m.getRepository(PbxConnectionEntity).save(row);
      await this.record(m, tenant, 'pbx_connection.created', out, { provider: out.provider, name: out.name });
      // Instances holding live connections (Asterisk) pick a new one up at once.
      await this.notifications.notify(m, TOPIC, out.id);
      return out;
    });
    return this.toDto(saved);
  }

  async update(tenant: Tenant, id: string, dto: UpdatePbxConnectionDto): Promise<PbxConnectionDto> {
    const saved = await this.dataSource.transaction(async (m) => {
      const row = await this.find(m, tenant.companyId, id, true);
      const driver = this.registry.driver(row.provider);
      if (dto.name !== undefined && dto.name !== row.name) await this.assertNameFree(m, tenant.companyId, dto.name);
      const settings =
        dto.settings === undefined
          ? row.settings
          : validated(driver.settingsSchema, merge(row.settings, dto.settings), 'settings', dto.settings);
      const current = this.box.open<Record<string, unknown>>(row.secretsSealed, row.id);
      const secrets =
        dto.secrets === undefined
          ? current
          : validated(driver.secretsSchema, merge(current, dto.secrets), 'secrets', dto.secrets);
      if (dto.name !== undefined) row.name = dto.name;
      row.settings = settings;
      row.secretsSealed = this.box.seal(secrets, row.id);
      row.secretNames = Object.keys(secrets).sort();
      const out = await m.getRepository(PbxConnectionEntity).save(row);
      await this.record(m, tenant, 'pbx_connection.updated', out, {
        fields: Object.keys(dto).filter((k) => dto[k as keyof UpdatePbxConnectionDto] !== undefined),
        ...(dto.secrets ? { secrets: Object.keys(dto.secrets).sort() } : {}),
      });
      await this.notifications.notify(m, TOPIC, row.id);
      return out;
    });
    this.drop(id);
    return this.toDto(saved);
  }

  async remove(tenant: Tenant, id: string): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      const row = await this.find(m, tenant.companyId, id, true);
      row.deletedAt = new Date();
      await m.getRepository(PbxConnectionEntity).save(row);
      await this.record(m, tenant, 'pbx_connection.deleted', row, { provider: row.provider, name: row.name });
      await this.notifications.notify(m, TOPIC, row.id);
    });
    this.drop(id);
  }

  /** Checks the credentials against the provider: a refusal is an answer (ok false), not an error. */
  async test(tenant: Tenant, id: string): Promise<PbxConnectionTestDto> {
    const loaded = await this.load(tenant.companyId, id);
    try {
      const { detail } = await this.registry.client(loaded, loaded.version).testCredentials();
      return { ok: true, detail };
    } catch (error) {
      if (!(error instanceof PbxError)) throw error;
      return { ok: false, code: error.code, detail: TEST_DETAIL[error.code] };
    }
  }

  // --- for the other PBX services -----------------------------------------------------------------

  /** A live connection of the company, secrets opened; 404 when missing or deleted. */
  async load(companyId: string, id: string): Promise<LoadedConnection> {
    const row = await this.find(this.repo.manager, companyId, id);
    return this.loaded(row, true);
  }

  /** The live connections of a company (for picking one when a request names none). */
  async loadAll(companyId: string): Promise<LoadedConnection[]> {
    const rows = await this.repo.find({ where: { companyId, deletedAt: IsNull() }, order: { createdAt: 'ASC' } });
    return rows.map((r) => this.loaded(r, true));
  }

  /**
   * A connection by id alone, for its public webhook route: null when unknown or deleted. Kept
   * in memory for a few seconds (changes are pushed to every instance at once).
   */
  async loadForWebhook(id: string): Promise<LoadedConnection | null> {
    const hit = this.cache.get(id);
    if (hit && Date.now() - hit.at < WEBHOOK_CACHE_MS) return hit.value;
    const at = Date.now();
    const [row] = (await this.dataSource.query(
      `SELECT p.id, p.company_id, p.provider, p.name, p.settings, p.secrets_sealed, p.updated_at, c.status AS company_status
       FROM pbx_connections p JOIN companies c ON c.id = p.company_id
       WHERE p.id = $1 AND p.deleted_at IS NULL`,
      [id],
    )) as RawConnection[];
    const value = row
      ? this.open({
          id: row.id,
          companyId: row.company_id,
          provider: row.provider,
          name: row.name,
          settings: row.settings,
          sealed: row.secrets_sealed,
          updatedAt: row.updated_at,
          companyActive: row.company_status === 'active',
        })
      : null;
    this.cache.set(id, { at, value });
    return value;
  }

  /**
   * Changes secrets and settings on the provider's behalf (OAuth tokens, subscription ids), under
   * the row lock, audited as `action`; a key set to null is removed. Returns the connection as saved.
   */
  patchInternal(companyId: string, id: string, patch: ConnectionPatch, action: string): Promise<LoadedConnection> {
    return this.withLocked(companyId, id, () => Promise.resolve(patch), action);
  }

  /**
   * Runs `change` on the connection locked (FOR UPDATE) with its secrets opened; a patch it
   * returns is saved in the same transaction (and audited when `action` is given). For refreshing
   * OAuth tokens: two instances never spend the same refresh token. Returns the connection as it
   * is afterwards.
   */
  async withLocked(
    companyId: string,
    id: string,
    change: (locked: LoadedConnection) => Promise<ConnectionPatch | null>,
    action?: string,
  ): Promise<LoadedConnection> {
    const saved = await this.dataSource.transaction(async (m) => {
      const row = await this.find(m, companyId, id, true);
      const patch = await change(this.loaded(row, true));
      if (!patch) return row;
      const secrets = merge(this.box.open<Record<string, unknown>>(row.secretsSealed, row.id), patch.secrets ?? {});
      row.settings = merge(row.settings, patch.settings ?? {});
      row.secretsSealed = this.box.seal(secrets, row.id);
      row.secretNames = Object.keys(secrets).sort();
      const out = await m.getRepository(PbxConnectionEntity).save(row);
      if (action) {
        await this.audit.record(
          { companyId, actorType: 'operator', action, targetType: 'pbx_connection', targetId: id },
          m,
        );
      }
      await this.notifications.notify(m, TOPIC, id);
      return out;
    });
    this.drop(id);
    return this.loaded(saved, true);
  }

  /** Re-seals every connection's secrets still sealed with an older key (key rotation). */
  async resealAll(): Promise<{ resealed: number; total: number }> {
    const rows = await this.repo.find({ select: { id: true, secretsSealed: true } });
    let resealed = 0;
    for (const r of rows) {
      if (!this.box.isStale(r.secretsSealed)) continue;
      await this.dataSource.transaction(async (m) => {
        const [locked] = (await m.query('SELECT secrets_sealed FROM pbx_connections WHERE id = $1 FOR UPDATE', [
          r.id,
        ])) as { secrets_sealed: string }[];
        if (!locked || !this.box.isStale(locked.secrets_sealed)) return;
        const fresh = this.box.seal(this.box.open(locked.secrets_sealed, r.id), r.id);
        await m.query('UPDATE pbx_connections SET secrets_sealed = $2 WHERE id = $1', [r.id, fresh]);
        resealed++;
      });
    }
    return { resealed, total: rows.length };
  }

  // --- helpers ------------------------------------------------------------------------------------

  private drop(id: string): void {
    this.cache.delete(id);
    this.registry.forget(id);
  }

  private async find(m: EntityManager, companyId: string, id: string, lock = false): Promise<PbxConnectionEntity> {
    const row = await m.getRepository(PbxConnectionEntity).findOne({
      where: { companyId, id, deletedAt: IsNull() },
      ...(lock ? { lock: { mode: 'pessimistic_write' as const } } : {}),
    });
    if (!row) throw pbxError('not-found', 'No such phone-system connection.');
    return row;
  }

  private async assertNameFree(m: EntityManager, companyId: string, name: string): Promise<void> {
    const taken = await m
      .getRepository(PbxConnectionEntity)
      .exists({ where: { companyId, name, deletedAt: IsNull() } });
    if (taken) throw pbxError('conflict', `A connection named "${name}" exists already.`);
  }

  private loaded(row: PbxConnectionEntity, companyActive: boolean): LoadedConnection {
    return this.open({
      id: row.id,
      companyId: row.companyId,
      provider: row.provider,
      name: row.name,
      settings: row.settings,
      sealed: row.secretsSealed,
      updatedAt: row.updatedAt,
      companyActive,
    });
  }

  private open(r: {
    id: string;
    companyId: string;
    provider: PbxConnectionEntity['provider'];
    name: string;
    settings: Record<string, unknown>;
    sealed: string;
    updatedAt: Date;
    companyActive: boolean;
  }): LoadedConnection {
    return {
      id: r.id,
      companyId: r.companyId,
      provider: r.provider,
      name: r.name,
      settings: r.settings,
      secrets: this.box.open<Record<string, unknown>>(r.sealed, r.id),
      version: `${r.updatedAt.getTime()}:${r.sealed.length}:${r.sealed.slice(-12)}`,
      companyActive: r.companyActive,
    };
  }

  private toDto(row: PbxConnectionEntity): PbxConnectionDto {
    const driver = this.registry.driver(row.provider);
    return {
      id: row.id,
      provider: row.provider,
      name: row.name,
      settings: row.settings,
      secretsSet: row.secretNames,
      webhookUrls: driver.webhookUrls(row.id, this.registry.env),
      capabilities: driver.capabilities,
      createdAt: row.createdAt.toISOString(),
      updatedAt: row.updatedAt.toISOString(),
    };
  }

  private record(
    m: EntityManager,
    tenant: Tenant,
    action: string,
    row: PbxConnectionEntity,
    details: Record<string, unknown>,
  ): Promise<void> {
    return this.audit.record(
      {
        companyId: tenant.companyId,
        ...actorOf(tenant.principal),
        action,
        targetType: 'pbx_connection',
        targetId: row.id,
        details,
      },
      m,
    );
  }
}

interface RawConnection {
  id: string;
  company_id: string;
  provider: PbxConnectionEntity['provider'];
  name: string;
  settings: Record<string, unknown>;
  secrets_sealed: string;
  updated_at: Date;
  company_status: string;
}

const TEST_DETAIL: Record<PbxError['code'], string> = {
  AUTH: 'The provider refused the credentials.',
  RATE_LIMITED: 'The provider is rate-limiting us; try again shortly.',
  TRANSIENT: 'The provider could not be reached or failed; try again later.',
  REJECTED: 'The provider refused the request: check the settings.',
  NOT_FOUND: 'The provider does not know the account or user in the settings.',
  UNSUPPORTED: 'This provider cannot be checked from here.',
  STALE: 'The provider answered with an out-of-date signed time.',
  NOT_CONFIGURED: 'A credential of this connection is missing (a secret or the OAuth authorization): set it first.',
};

/** Runs both validations and reports the field errors of both at once. */
function both<A, B>(a: () => A, b: () => B): [A, B] {
  const errors: FieldError[] = [];
  const run = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch (error) {
      const fields = fieldErrorsOf(error);
      if (!fields) throw error;
      errors.push(...fields);
      return undefined;
    }
  };
  const x = run(a);
  const y = run(b);
  if (errors.length > 0) throw validationFailed(errors);
  return [x as A, y as B];
}

/** A shallow merge where null removes a key. */
function merge(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

/**
 * Validates settings or secrets with the driver's schema. A key the user sent that the schema
 * does not know is an error (not silently dropped); keys kept by the provider itself (`keep`,
 * e.g. OAuth tokens) survive.
 */
function validated(
  schema: z.ZodType,
  value: Record<string, unknown>,
  field: 'settings' | 'secrets',
  sent: Record<string, unknown>,
): Record<string, unknown> {
  // Keys the provider wrote (OAuth tokens) and the schema does not know are kept as they are,
  // not validated as user input.
  const known = schema instanceof ZodObject ? new Set(Object.keys(schema.shape as object)) : null;
  const internal = known ? Object.keys(value).filter((k) => !known.has(k) && !(k in sent)) : [];
  const input = Object.fromEntries(Object.entries(value).filter(([k]) => !internal.includes(k)));
  const result = schema.safeParse(input);
  const errors: FieldError[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) errors.push(notOurs(field, key));
        continue;
      }
      const path = [field, ...issue.path.map(String)].join('.');
      // Never echo a secret's value: zod messages do not include it, and we add none.
      errors.push({ field: path, messages: [issue.message] });
    }
  }
  const parsed = (result.success ? result.data : {}) as Record<string, unknown>;
  if (result.success) {
    for (const key of Object.keys(sent)) if (sent[key] !== null && !(key in parsed)) errors.push(notOurs(field, key));
  }
  if (errors.length > 0) throw validationFailed(errors);
  const out: Record<string, unknown> = { ...parsed };
  for (const k of internal) out[k] = value[k];
  return out;
}

function notOurs(field: 'settings' | 'secrets', key: string): FieldError {
  return {
    field: `${field}.${key}`,
    messages: [`${key} is not a ${field === 'settings' ? 'setting' : 'secret'} of this provider`],
  };
}
