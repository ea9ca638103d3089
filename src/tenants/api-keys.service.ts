import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import type pg from 'pg';
import { DataSource, type EntityManager, IsNull, Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { actorOf, type Principal, type ScopeGrant } from '../common/access/principal.js';
import { randomToken, sha256Hex } from '../common/crypto/crypto.js';
import { offsetPage, type OffsetPage, type OffsetPageQuery } from '../common/pagination.js';
import { currentRequestId } from '../common/request-context.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import { NotificationsService } from '../database/notifications.service.js';
import { ApiKeyAuditEntity, type ApiKeyAuditAction } from './api-key-audit.entity.js';
import { ApiKeyEntity } from './api-key.entity.js';
import { tenantsError } from './tenants.errors.js';

/** Recognisable prefix of our keys (secret scanners can match `sbk_` + 43 characters). */
export const API_KEY_PREFIX = 'sbk_';
const KEY_FORMAT = /^sbk_[A-Za-z0-9_-]{43}$/;
const TOPIC = 'apikeys';
/** last_used_at is written at most this often per key. */
const LAST_USED_EVERY_MS = 60_000;
/** Uses of keys are gathered this long, then written in one UPDATE (off the request path). */
const LAST_USED_FLUSH_MS = 200;

/**
 * The cold path of authentication: one indexed read of the key by its hash, with its company's
 * status and the instant it stops authenticating. A named (prepared) statement, so each pooled
 * connection parses and plans it once. The current hash is tried first; the second branch (the
 * previous key of a rotation overlap) runs only when the first found nothing (Append stops at LIMIT).
 * `$1::char(64)`: the column's type, so the unique index on key_hash serves it (compared as text it would not).
 */
const KEY_BY_HASH = {
  name: 'api-key-by-hash',
  text: `(SELECT k.id, k.company_id, k.scopes, c.status = 'active' AS company_active,
                 (extract(epoch FROM k.expires_at) * 1000)::float8 AS valid_until
            FROM api_keys k JOIN companies c ON c.id = k.company_id
           WHERE k.key_hash = $1::char(64) AND k.revoked_at IS NULL)
         UNION ALL
         (SELECT k.id, k.company_id, k.scopes, c.status = 'active',
                 (extract(epoch FROM least(k.expires_at, k.previous_valid_until)) * 1000)::float8
            FROM api_keys k JOIN companies c ON c.id = k.company_id
           WHERE k.previous_key_hash = $1::char(64) AND k.previous_valid_until > now() AND k.revoked_at IS NULL)
         LIMIT 1`,
} as const;

interface KeyRow {
  id: string;
  company_id: string;
  scopes: string[];
  company_active: boolean;
  /** Epoch milliseconds; null: no end. */
  valid_until: number | null;
}

/** Longest overlap a rotation may leave the previous key working. */
export const MAX_OVERLAP_SECONDS = 7 * 24 * 3600;

export interface ApiKeyIdentity {
  apiKeyId: string;
  companyId: string;
  scopes: string[];
}

interface CachedKey {
  identity: ApiKeyIdentity;
  /** Until when this hash authenticates (expiry, or the end of a rotation overlap); null: no end. */
  validUntil: number | null;
  at: number;
}

export interface ApiKeyView {
  id: string;
  name: string;
  scopes: string[];
  keyHint: string;
  isPrimary: boolean;
  active: boolean;
  createdAt: Date;
  expiresAt: Date | null;
  rotatedAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  previousKeyHint: string | null;
  previousKeyValidUntil: Date | null;
}

export function keyHint(key: string): string {
  return `${key.slice(0, 8)}…${key.slice(-4)}`;
}

/**
 * API keys: `sbk_` + 32 random bytes, shown once. Stored as SHA-256 and looked up by that hash
 * (indexed), so verifying a key costs one hash and one indexed read, or a cache hit. The cache is
 * dropped at once on rotation, revocation and suspension, on every instance (NOTIFY at commit).
 */
@Injectable()
export class ApiKeysService implements OnModuleDestroy {
  private readonly logger = new Logger(ApiKeysService.name);
  private readonly cache = new Map<string, CachedKey>();
  private readonly lastUsedWritten = new Map<string, number>();
  /** Keys used since the last write of last_used_at (written together, see `flushLastUsed`). */
  private readonly usedSinceFlush = new Set<string>();
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  /** Bumped on every invalidation: a read that started before one is not cached (it may be stale). */
  private generation = 0;

  constructor(
    @InjectRepository(ApiKeyEntity) private readonly repo: Repository<ApiKeyEntity>,
    @InjectRepository(ApiKeyAuditEntity) private readonly auditRepo: Repository<ApiKeyAuditEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
    private readonly notifications: NotificationsService,
    private readonly audit: AuditService,
  ) {
    notifications.on(TOPIC, (companyId) => this.dropCompany(companyId));
    notifications.on('company', (companyId) => this.dropCompany(companyId));
    notifications.onReset(() => {
      this.generation++;
      this.cache.clear();
    });
  }

  /**
   * The identity behind a presented key, or null (unknown, revoked, expired). When the key was
   * read from the database just now, `companyActive` says whether its company is active (the
   * caller need not ask again); from the cache it is absent.
   */
  async authenticate(presented: string): Promise<(ApiKeyIdentity & { companyActive?: boolean }) | null> {
    if (!KEY_FORMAT.test(presented)) return null;
    const hash = sha256Hex(presented);
    const now = Date.now();
    let entry = this.cache.get(hash);
    let companyActive: boolean | undefined;
    if (!entry || now - entry.at >= this.config.API_KEY_CACHE_TTL_MS) {
      const generation = this.generation;
      const loaded = await this.load(hash);
      if (!loaded) {
        this.cache.delete(hash);
        return null;
      }
      entry = loaded.entry;
      companyActive = loaded.companyActive;
      if (this.config.API_KEY_CACHE_TTL_MS > 0 && generation === this.generation) this.cache.set(hash, entry);
    }
    if (entry.validUntil !== null && entry.validUntil <= now) return null;
    this.touch(entry.identity.apiKeyId, now);
    return companyActive === undefined ? entry.identity : { ...entry.identity, companyActive };
  }

  /** The cold path: one prepared, indexed read (see KEY_BY_HASH), straight on the pg pool, no ORM. */
  private async load(hash: string): Promise<{ entry: CachedKey; companyActive: boolean } | null> {
    // TypeORM's `query` neither prepares nor skips its own bookkeeping: this read is on every cache miss.
    const pool = (this.dataSource.driver as unknown as { master: pg.Pool }).master;
    const { rows } = await pool.query<KeyRow>({ ...KEY_BY_HASH, values: [hash] });
    const row = rows[0];
    if (!row) return null;
    return {
      entry: {
        identity: { apiKeyId: row.id, companyId: row.company_id, scopes: row.scopes },
        validUntil: row.valid_until,
        at: Date.now(),
      },
      companyActive: row.company_active,
    };
  }

  /** Records a use of the key: last_used_at, at most once a minute per key, written in batches. */
  private touch(apiKeyId: string, now: number): void {
    const last = this.lastUsedWritten.get(apiKeyId) ?? 0;
    if (now - last < LAST_USED_EVERY_MS) return;
    this.lastUsedWritten.set(apiKeyId, now);
    this.usedSinceFlush.add(apiKeyId);
    this.flushTimer ??= setTimeout(() => void this.flushLastUsed(), LAST_USED_FLUSH_MS).unref();
  }

  /**
   * Writes last_used_at of every key used since the last flush, in one UPDATE (a burst of new keys
   * is not a burst of writes); resolves once every use seen so far is stored (a write already in
   * flight included).
   */
  async flushLastUsed(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    await this.flushing;
    if (this.usedSinceFlush.size === 0) return;
    this.flushing = this.writeLastUsed();
    await this.flushing;
  }

  private async writeLastUsed(): Promise<void> {
    const ids = [...this.usedSinceFlush];
    this.usedSinceFlush.clear();
    const stale = Date.now() - LAST_USED_EVERY_MS;
    for (const [id, at] of this.lastUsedWritten) if (at < stale) this.lastUsedWritten.delete(id);
    await this.repo
      .query(
        `UPDATE api_keys SET last_used_at = now()
          WHERE id = ANY($1::uuid[]) AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
        [ids],
      )
      .catch((error: unknown) => this.logger.warn({ err: error }, 'could not record API key use'));
  }

  /** Writes the uses still gathered before the pool closes. */
  async onModuleDestroy(): Promise<void> {
    await this.flushLastUsed();
  }

  private dropCompany(companyId: string): void {
    this.generation++;
    for (const [hash, entry] of this.cache) if (entry.identity.companyId === companyId) this.cache.delete(hash);
  }

  async create(
    companyId: string,
    input: { name: string; scopes: readonly ScopeGrant[]; expiresAt?: Date | null; isPrimary?: boolean },
    actor: Principal,
    manager?: EntityManager,
  ): Promise<{ key: string; apiKey: ApiKeyEntity }> {
    if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) {
      throw tenantsError('validation-failed', 'expiresAt must be in the future.');
    }
    const work = async (m: EntityManager) => {
      const key = API_KEY_PREFIX + randomToken(32);
      const repo = m.getRepository(ApiKeyEntity);
      const apiKey = await repo.save(
        repo.create({
          companyId,
          name: input.name,
          scopes: [...new Set(input.scopes)],
          keyHash: sha256Hex(key),
          keyHint: keyHint(key),
          expiresAt: input.expiresAt ?? null,
          isPrimary: input.isPrimary ?? false,
          createdBy: actor.kind === 'user' ? actor.userId : null,
        }),
      );
      await this.record(m, apiKey, 'created', null, apiKey.keyHint, actor);
      return { key, apiKey };
    };
    return manager ? work(manager) : this.dataSource.transaction(work);
  }

  async list(companyId: string): Promise<ApiKeyView[]> {
    const rows = await this.repo.find({ where: { companyId }, order: { createdAt: 'DESC', id: 'DESC' } });
    return rows.map(view);
  }

  async get(companyId: string, id: string): Promise<ApiKeyView> {
    return view(await this.find(this.repo, companyId, id));
  }

  /**
   * A new key for the same record. The previous key keeps working for `overlapSeconds`
   * (0: it stops at once), so clients can switch without downtime.
   */
  async rotate(companyId: string, id: string, overlapSeconds: number, actor: Principal) {
    if (overlapSeconds < 0 || overlapSeconds > MAX_OVERLAP_SECONDS) {
      throw tenantsError('validation-failed', `overlapSeconds must be from 0 to ${MAX_OVERLAP_SECONDS}.`);
    }
    const result = await this.dataSource.transaction(async (m) => {
      const repo = m.getRepository(ApiKeyEntity);
      const apiKey = await this.find(repo, companyId, id, true);
      if (apiKey.revokedAt) throw tenantsError('api-key-revoked', 'A revoked key cannot be rotated.');
      const key = API_KEY_PREFIX + randomToken(32);
      const oldHint = apiKey.keyHint;
      const now = new Date();
      apiKey.previousKeyHash = overlapSeconds > 0 ? apiKey.keyHash : null;
      apiKey.previousKeyHint = overlapSeconds > 0 ? oldHint : null;
      apiKey.previousValidUntil = overlapSeconds > 0 ? new Date(now.getTime() + overlapSeconds * 1000) : null;
      apiKey.keyHash = sha256Hex(key);
      apiKey.keyHint = keyHint(key);
      apiKey.rotatedAt = now;
      const saved = await repo.save(apiKey);
      await this.record(m, saved, 'rotated', oldHint, saved.keyHint, actor, { overlapSeconds });
      await this.notifications.notify(m, TOPIC, companyId);
      return { key, apiKey: saved, previousKeyValidUntil: saved.previousValidUntil };
    });
    this.dropCompany(companyId);
    return result;
  }

  async revoke(companyId: string, id: string, actor: Principal): Promise<ApiKeyView> {
    const result = await this.dataSource.transaction(async (m) => {
      const repo = m.getRepository(ApiKeyEntity);
      const apiKey = await this.find(repo, companyId, id, true);
      if (apiKey.revokedAt) return view(apiKey);
      apiKey.revokedAt = new Date();
      apiKey.previousValidUntil = apiKey.previousKeyHash ? apiKey.revokedAt : apiKey.previousValidUntil;
      const saved = await repo.save(apiKey);
      await this.record(m, saved, 'revoked', saved.keyHint, null, actor);
      await this.notifications.notify(m, TOPIC, companyId);
      return view(saved);
    });
    // This instance forgets at once; the others when the NOTIFY (sent at commit) reaches them.
    this.dropCompany(companyId);
    return result;
  }

  async auditTrail(companyId: string, id: string | null, query: OffsetPageQuery): Promise<OffsetPage<unknown>> {
    if (id) await this.find(this.repo, companyId, id);
    const where = id ? { companyId, apiKeyId: id } : { companyId };
    const [rows, total] = await this.auditRepo.findAndCount({
      where,
      order: { createdAt: 'DESC', id: 'DESC' },
      take: query.limit,
      skip: query.offset,
    });
    return offsetPage(
      rows.map((r) => ({
        id: r.id,
        apiKeyId: r.apiKeyId,
        action: r.action,
        oldKeyHint: r.oldKeyHint,
        newKeyHint: r.newKeyHint,
        actorType: r.actorType,
        actorId: r.actorId,
        requestId: r.requestId,
        details: r.details,
        performedAt: r.createdAt,
      })),
      total,
      query,
    );
  }

  /** The operator-managed key of a company (the newest primary key that is not revoked). */
  async primary(companyId: string): Promise<ApiKeyEntity | null> {
    return this.repo.findOne({
      where: { companyId, isPrimary: true, revokedAt: IsNull() },
      order: { createdAt: 'DESC' },
    });
  }

  private async find(
    repo: Repository<ApiKeyEntity>,
    companyId: string,
    id: string,
    lock = false,
  ): Promise<ApiKeyEntity> {
    const apiKey = await repo.findOne({
      where: { id, companyId },
      ...(lock ? { lock: { mode: 'pessimistic_write' as const } } : {}),
    });
    if (!apiKey) throw tenantsError('not-found', 'No such API key.');
    return apiKey;
  }

  private async record(
    m: EntityManager,
    apiKey: ApiKeyEntity,
    action: ApiKeyAuditAction,
    oldKeyHint: string | null,
    newKeyHint: string | null,
    actor: Principal,
    details: Record<string, unknown> = {},
  ): Promise<void> {
    const who = actorOf(actor);
    const repo = m.getRepository(ApiKeyAuditEntity);
    await repo.save(
      repo.create({
        companyId: apiKey.companyId,
        apiKeyId: apiKey.id,
        action,
        oldKeyHint,
        newKeyHint,
        actorType: who.actorType,
        actorId: who.actorId,
        requestId: currentRequestId() ?? null,
        details,
      }),
    );
    await this.audit.record(
      {
        companyId: apiKey.companyId,
        ...who,
        action: `api_key.${action}`,
        targetType: 'api_key',
        targetId: apiKey.id,
        details: { name: apiKey.name, ...details },
      },
      m,
    );
  }
}

function view(k: ApiKeyEntity): ApiKeyView {
  const now = Date.now();
  return {
    id: k.id,
    name: k.name,
    scopes: k.scopes,
    keyHint: k.keyHint,
    isPrimary: k.isPrimary,
    active: !k.revokedAt && (!k.expiresAt || k.expiresAt.getTime() > now),
    createdAt: k.createdAt,
    expiresAt: k.expiresAt,
    rotatedAt: k.rotatedAt,
    lastUsedAt: k.lastUsedAt,
    revokedAt: k.revokedAt,
    previousKeyHint: k.previousValidUntil && k.previousValidUntil.getTime() > now ? k.previousKeyHint : null,
    previousKeyValidUntil: k.previousValidUntil && k.previousValidUntil.getTime() > now ? k.previousValidUntil : null,
  };
}
