import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { IsNull, Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { randomToken, sha256Hex } from '../common/crypto/crypto.js';
import type { AppException } from '../common/errors/common.errors.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import { UsersService } from '../users/users.service.js';
import { authError } from './auth.errors.js';
import { RefreshTokenEntity } from './refresh-token.entity.js';

export interface IssuedRefreshToken {
  token: string;
  familyId: string;
  expiresAt: Date;
}

export interface ClientInfo {
  ip?: string;
  userAgent?: string;
}

/**
 * Sessions as refresh-token families. A token is single use: refreshing marks it rotated and
 * issues the next one of the same family. A rotated token presented again means it was copied:
 * the whole family is revoked (theft detection), and its access tokens stop working too.
 */
@Injectable()
export class SessionsService {
  constructor(
    @InjectRepository(RefreshTokenEntity) private readonly repo: Repository<RefreshTokenEntity>,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
    private readonly audit: AuditService,
    private readonly users: UsersService,
  ) {}

  async start(userId: string, client: ClientInfo): Promise<IssuedRefreshToken> {
    return this.issue(userId, randomUUID(), client);
  }

  /** Rotates a refresh token; returns the user and the next token of the family. */
  async rotate(presented: string, client: ClientInfo): Promise<{ userId: string; next: IssuedRefreshToken }> {
    const row = await this.repo.findOne({ where: { tokenHash: sha256Hex(presented) } });
    if (!row || row.revokedAt || row.expiresAt.getTime() <= Date.now()) throw invalid();
    // Only one presentation of a token can win this update; any other is a reuse.
    const won = await this.repo
      .createQueryBuilder()
      .update()
      .set({ rotatedAt: () => 'now()' })
      .where('id = :id AND rotated_at IS NULL AND revoked_at IS NULL', { id: row.id })
      .execute();
    if (!won.affected) {
      await this.revokeFamily(row.familyId);
      const owner = await this.users.identity(row.userId);
      await this.audit.record({
        companyId: owner?.companyId ?? null,
        actorType: 'user',
        actorId: row.userId,
        action: 'auth.refresh_token_reused',
        targetType: 'session',
        targetId: row.familyId,
        details: { ip: client.ip },
      });
      throw authError(
        'refresh-token-reused',
        'This refresh token was already used; the session is ended. Sign in again.',
      );
    }
    return { userId: row.userId, next: await this.issue(row.userId, row.familyId, client) };
  }

  /** Whether the session (family) of an access token is still open. */
  async isOpen(familyId: string): Promise<boolean> {
    return this.repo.exists({ where: { familyId, revokedAt: IsNull() } });
  }

  async revokeFamily(familyId: string): Promise<void> {
    await this.repo.update({ familyId, revokedAt: IsNull() }, { revokedAt: new Date() });
  }

  /** The family of a presented refresh token if it belongs to the user. */
  async familyOf(presented: string, userId: string): Promise<string | null> {
    const row = await this.repo.findOne({
      where: { tokenHash: sha256Hex(presented), userId },
      select: { familyId: true },
    });
    return row?.familyId ?? null;
  }

  private async issue(userId: string, familyId: string, client: ClientInfo): Promise<IssuedRefreshToken> {
    const token = randomToken(32);
    const expiresAt = new Date(Date.now() + this.config.REFRESH_TOKEN_TTL_DAYS * 86_400_000);
    await this.repo.insert({
      userId,
      familyId,
      tokenHash: sha256Hex(token),
      expiresAt,
      userAgent: client.userAgent?.slice(0, 256) ?? null,
      ip: client.ip?.slice(0, 64) ?? null,
    });
    return { token, familyId, expiresAt };
  }
}

function invalid(): AppException {
  return authError('invalid-refresh-token', 'The refresh token is unknown, expired or revoked. Sign in again.');
}
