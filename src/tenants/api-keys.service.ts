import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, type EntityManager, IsNull, Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { actorOf, type Principal, type ScopeGrant } from '../common/access/principal.js';
import { randomToken, sha256Hex } from '../common/crypto/crypto.js';
import { AppException } from '../common/errors/problem.js';
import { offsetPage, type OffsetPage, type OffsetPageQuery } from '../common/pagination.js';
import { currentRequestId } from '../common/request-context.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import { NotificationsService } from '../database/notifications.service.js';
import { ApiKeyAuditEntity, type ApiKeyAuditAction } from './api-key-audit.entity.js';
import { ApiKeyEntity } from './api-key.entity.js';

/** Recognisable prefix of our keys (secret scanners can match `sbk_` + 43 characters). */
export const API_KEY_PREFIX = 'sbk_';
const KEY_FORMAT = /^sbk_[A-Za-z0-9_-]{43}$/;
const TOPIC = 'apikeys';
/** last_used_at is written at most this often per key. */
const LAST_USED_EVERY_MS = 60_000;
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
export class ApiKeysService {
  private readonly logger = new Logger(ApiKeysService.name);
  private readonly cache = new Map<string, CachedKey>();
  private readonly lastUsedWritten = new Map<string, number>();
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

  /** One read: the key by its hash, with its company's status (plain SQL: this is the cold path). */
  private async load(hash: string): Promise<{ entry: CachedKey; companyActive: boolean } | null> {
    const [row] = (await this.repo.query(
      `SELECT k.id, k.company_id, k.scopes, k.key_hash, k.expires_at, k.previous_valid_until, c.status
         FROM api_keys k JOIN companies c ON c.id = k.company_id
        WHERE k.revoked_at IS NULL
          AND (k.key_hash = $1 OR (k.previous_key_hash = $1 AND k.previous_valid_until > now()))`,
      [hash],
    )) as {
      id: string;
      company_id: string;
      scopes: string[];
      key_hash: string;
      expires_at: Date | null;
      previous_valid_until: Date | null;
      status: string;
    }[];
    if (!row) return null;
    const ends = [
      row.expires_at?.getTime() ?? null,
      row.key_hash === hash ? null : (row.previous_valid_until?.getTime() ?? null),
    ].filter((t): t is number => t !== null);
    return {
      entry: {
        identity: { apiKeyId: row.id, companyId: row.company_id, scopes: row.scopes },
        validUntil: ends.length ? Math.min(...ends) : null,
        at: Date.now(),
      },
      companyActive: row.status === 'active',
    };
  }

  /** Writes last_used_at, at most once a minute per key, off the request path. */
  private touch(apiKeyId: string, now: number): void {
    const last = this.lastUsedWritten.get(apiKeyId) ?? 0;
    if (now - last < LAST_USED_EVERY_MS) return;
    this.lastUsedWritten.set(apiKeyId, now);
    this.repo
      .createQueryBuilder()
      .update()
      .set({ lastUsedAt: () => 'now()' })
      .where('id = :id', { id: apiKeyId })
      .andWhere("(last_used_at IS NULL OR last_used_at < now() - interval '1 minute')")
      .execute()
      .catch((error: unknown) => this.logger.warn({ err: error }, 'could not record API key use'));
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
      throw new AppException('validation-failed', 400, 'expiresAt must be in the future.');
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
      throw new AppException('validation-failed', 400, `overlapSeconds must be from 0 to ${MAX_OVERLAP_SECONDS}.`);
    }
    const result = await this.dataSource.transaction(async (m) => {
      const repo = m.getRepository(ApiKeyEntity);
      const apiKey = await this.find(repo, companyId, id, true);
      if (apiKey.revokedAt) throw new AppException('api-key-revoked', 409, 'A revoked key cannot be rotated.');
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
    if (!apiKey) throw new AppException('not-found', 404, 'No such API key.');
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
