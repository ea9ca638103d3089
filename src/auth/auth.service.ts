import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import type { Principal } from '../common/access/principal.js';
import type { Role } from '../common/access/roles.js';
import { hashPassword, randomToken, verifyPassword } from '../common/crypto/crypto.js';
import { enforce } from '../common/rate-limit/rate-limit.js';
import { RateLimitService } from '../common/rate-limit/rate-limit.service.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import { CompaniesService, toCompanyDto } from '../tenants/companies.service.js';
import { normaliseEmail, toUserDto, type UserIdentity, UsersService } from '../users/users.service.js';
import { authError } from './auth.errors.js';
import type { LoginDto, RegisterDto, TokensDto, UpdateMeDto } from './dto/auth.dto.js';
import { type ClientInfo, SessionsService } from './sessions.service.js';

export interface AccessClaims {
  sub: string;
  cid: string | null;
  role: Role;
  /** The session (refresh-token family). */
  sid: string;
}

export const JWT_ISSUER = 'switchboard';
export const JWT_AUDIENCE = 'switchboard-api';

@Injectable()
export class AuthService implements OnModuleInit {
  /** Verified against when the e-mail is unknown, so both failures cost one scrypt. */
  private dummyHash = '';

  constructor(
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly jwt: JwtService,
    private readonly users: UsersService,
    private readonly companies: CompaniesService,
    private readonly sessions: SessionsService,
    private readonly rateLimits: RateLimitService,
    private readonly audit: AuditService,
  ) {}

  async onModuleInit(): Promise<void> {
    this.dummyHash = await hashPassword(randomToken(16), this.config.PASSWORD_HASH_COST);
  }

  async register(dto: RegisterDto, client: ClientInfo): Promise<TokensDto> {
    if (!this.config.AUTH_REGISTRATION_ENABLED) {
      throw authError('registration-disabled', 'Self-service registration is switched off here; ask an operator.');
    }
    const user = await this.dataSource.transaction(async (m) => {
      const company = await this.companies.create(m, dto.companyName);
      const owner = await this.users.createInTransaction(m, {
        companyId: company.id,
        email: dto.email,
        password: dto.password,
        displayName: dto.displayName,
        role: 'owner',
      });
      await this.audit.record(
        {
          companyId: company.id,
          actorType: 'user',
          actorId: owner.id,
          action: 'company.registered',
          targetType: 'company',
          targetId: company.id,
        },
        m,
      );
      return owner;
    });
    return this.issue(user, await this.sessions.start(user.id, client));
  }

  async login(dto: LoginDto, client: ClientInfo): Promise<TokensDto> {
    const email = normaliseEmail(dto.email);
    const limit = this.config.RATE_LIMIT_LOGIN_PER_MIN;
    enforce(await this.rateLimits.hit(`login-ip:${client.ip ?? 'unknown'}`, limit), 'sign-ins from this address');
    enforce(await this.rateLimits.hit(`login-email:${email}`, limit), 'sign-ins to this account');

    const user = await this.users.findForLogin(email);
    const passwordOk = await verifyPassword(dto.password, user?.passwordHash ?? this.dummyHash);
    if (!user || !passwordOk) {
      await this.audit.record({
        companyId: user?.companyId ?? null,
        actorType: 'user',
        actorId: user?.id ?? null,
        action: 'auth.login_failed',
        details: { reason: 'invalid-credentials' },
      });
      throw authError('invalid-credentials', 'The e-mail or the password is wrong.');
    }
    if (user.companyId && !(await this.companies.isActive(user.companyId))) {
      throw authError('company-suspended', 'This company is suspended.');
    }
    await this.users.recordLogin(user.id);
    await this.audit.record({ companyId: user.companyId, actorType: 'user', actorId: user.id, action: 'auth.login' });
    return this.issue(user, await this.sessions.start(user.id, client));
  }

  async refresh(presented: string, client: ClientInfo): Promise<TokensDto> {
    const { userId, next } = await this.sessions.rotate(presented, client);
    const user = await this.users.byId(userId).catch(() => null);
    if (!user) throw authError('invalid-refresh-token', 'The user of this session no longer exists.');
    if (user.companyId && !(await this.companies.isActive(user.companyId))) {
      await this.sessions.revokeFamily(next.familyId);
      throw authError('company-suspended', 'This company is suspended.');
    }
    return this.issue(user, next);
  }

  async logout(principal: Principal, sessionId: string | undefined, refreshToken?: string): Promise<void> {
    if (principal.kind !== 'user') return;
    const family = refreshToken ? await this.sessions.familyOf(refreshToken, principal.userId) : sessionId;
    if (!family) throw authError('invalid-refresh-token', 'That refresh token is not one of your sessions.');
    await this.sessions.revokeFamily(family);
    await this.audit.record({
      companyId: principal.companyId,
      actorType: 'user',
      actorId: principal.userId,
      action: 'auth.logout',
      targetType: 'session',
      targetId: family,
    });
  }

  async me(principal: Principal) {
    if (principal.kind !== 'user') throw authError('forbidden', 'Only users have a profile.');
    const user = await this.users.byId(principal.userId);
    const company = user.companyId ? toCompanyDto(await this.companies.get(user.companyId)) : null;
    return { user: toUserDto(user), company };
  }

  async updateMe(principal: Principal, dto: UpdateMeDto) {
    if (principal.kind !== 'user') throw authError('forbidden', 'Only users have a profile.');
    let passwordHash: string | undefined;
    if (dto.newPassword !== undefined) {
      const user = await this.users.byId(principal.userId);
      if (!dto.currentPassword || !(await verifyPassword(dto.currentPassword, user.passwordHash))) {
        // A wrong field of a form, not a failed sign-in: 400 on the field. `invalid-credentials`
        // is 401, and a 401 here would make clients sign a user out over a typo.
        throw authError('validation-failed', 'currentPassword is wrong.', {
          errors: [{ field: 'currentPassword', messages: ['currentPassword is wrong'] }],
        });
      }
      passwordHash = await this.users.hash(dto.newPassword);
    }
    await this.users.updateSelf(principal.userId, {
      displayName: dto.displayName,
      preferences: dto.preferences,
      passwordHash,
    });
    if (passwordHash) {
      await this.audit.record({
        companyId: principal.companyId,
        actorType: 'user',
        actorId: principal.userId,
        action: 'user.password_changed',
        targetType: 'user',
        targetId: principal.userId,
      });
    }
    return this.me(principal);
  }

  /** Verifies an access token; null when invalid or expired. */
  async verifyAccessToken(token: string): Promise<AccessClaims | null> {
    try {
      return await this.jwt.verifyAsync<AccessClaims>(token, {
        algorithms: ['HS256'],
        issuer: JWT_ISSUER,
        audience: JWT_AUDIENCE,
      });
    } catch {
      return null;
    }
  }

  /** The current identity behind verified claims: the user must still exist, the session be open. */
  async identityOf(claims: AccessClaims): Promise<UserIdentity | null> {
    const [user, open] = await Promise.all([this.users.identity(claims.sub), this.sessions.isOpen(claims.sid)]);
    return user && open ? user : null;
  }

  private async issue(
    user: Parameters<typeof toUserDto>[0],
    session: { token: string; familyId: string; expiresAt: Date },
  ): Promise<TokensDto> {
    const claims: AccessClaims = { sub: user.id, cid: user.companyId, role: user.role, sid: session.familyId };
    const accessToken = await this.jwt.signAsync(claims, {
      algorithm: 'HS256',
      expiresIn: this.config.JWT_ACCESS_TTL_SECONDS,
      issuer: JWT_ISSUER,
      audience: JWT_AUDIENCE,
    });
    return {
      accessToken,
      tokenType: 'Bearer',
      expiresIn: this.config.JWT_ACCESS_TTL_SECONDS,
      refreshToken: session.token,
      refreshTokenExpiresAt: session.expiresAt,
      user: toUserDto(user),
    };
  }
}
