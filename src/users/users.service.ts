import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, type EntityManager, Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { actorOf, type Tenant } from '../common/access/principal.js';
import type { CompanyRole, Role } from '../common/access/roles.js';
import { hashPassword } from '../common/crypto/crypto.js';
import type { AppException } from '../common/errors/common.errors.js';
import { offsetPage, type OffsetPage, type OffsetPageQuery } from '../common/pagination.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import type { CreateUserDto, PreferencesDto, UpdateUserDto, UserDto } from './dto/users.dto.js';
import { canAssign, canManage } from './roles.policy.js';
import { UserEntity } from './user.entity.js';
import { usersError } from './users.errors.js';

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export function toUserDto(u: UserEntity): UserDto {
  return {
    id: u.id,
    companyId: u.companyId,
    email: u.email,
    displayName: u.displayName,
    role: u.role,
    preferences: u.preferences,
    lastLoginAt: u.lastLoginAt,
    createdAt: u.createdAt,
    updatedAt: u.updatedAt,
  };
}

/** What the access guard needs of a user on every request. */
export interface UserIdentity {
  id: string;
  companyId: string | null;
  role: Role;
  email: string;
}

@Injectable()
export class UsersService {
  constructor(
    @InjectRepository(UserEntity) private readonly repo: Repository<UserEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
    private readonly audit: AuditService,
  ) {}

  hash(password: string): Promise<string> {
    return hashPassword(password, this.config.PASSWORD_HASH_COST);
  }

  /** Creates a user inside the caller's transaction (registration, operator API). */
  async createInTransaction(
    manager: EntityManager,
    input: { companyId: string | null; email: string; password: string; displayName: string; role: Role },
  ): Promise<UserEntity> {
    const repo = manager.getRepository(UserEntity);
    const email = normaliseEmail(input.email);
    if (await repo.exists({ where: { email } })) {
      throw usersError('email-taken', 'A user with this e-mail already exists.');
    }
    try {
      return await repo.save(
        repo.create({
          companyId: input.companyId,
          email,
          passwordHash: await this.hash(input.password),
          displayName: input.displayName,
          role: input.role,
          preferences: {},
        }),
      );
    } catch (error) {
      if ((error as { code?: string }).code === '23505') {
        throw usersError('email-taken', 'A user with this e-mail already exists.');
      }
      throw error;
    }
  }

  async findForLogin(email: string): Promise<UserEntity | null> {
    return this.repo.findOne({ where: { email: normaliseEmail(email) } });
  }

  async identity(userId: string): Promise<UserIdentity | null> {
    return this.repo.findOne({ where: { id: userId }, select: { id: true, companyId: true, role: true, email: true } });
  }

  async byId(userId: string): Promise<UserEntity> {
    const user = await this.repo.findOne({ where: { id: userId } });
    if (!user) throw usersError('not-found', 'No such user.');
    return user;
  }

  async recordLogin(userId: string): Promise<void> {
    await this.repo.update({ id: userId }, { lastLoginAt: new Date() });
  }

  // --- tenant routes --------------------------------------------------------------------------

  async list(tenant: Tenant, query: OffsetPageQuery): Promise<OffsetPage<UserDto>> {
    const where =
      tenant.principal.kind === 'user' && tenant.principal.role === 'agent'
        ? { companyId: tenant.companyId, id: tenant.principal.userId }
        : { companyId: tenant.companyId };
    const [rows, total] = await this.repo.findAndCount({
      where,
      order: { createdAt: 'ASC', id: 'ASC' },
      take: query.limit,
      skip: query.offset,
    });
    return offsetPage(rows.map(toUserDto), total, query);
  }

  /** A user of the tenant's company; an agent sees only itself (others: 404, like a stranger's). */
  async get(tenant: Tenant, id: string): Promise<UserDto> {
    const p = tenant.principal;
    if (p.kind === 'user' && p.role === 'agent' && p.userId !== id) throw notFound();
    return toUserDto(await this.find(this.repo, tenant.companyId, id));
  }

  async create(tenant: Tenant, dto: CreateUserDto): Promise<UserDto> {
    this.assertCanAssign(tenant, dto.role);
    return this.dataSource.transaction(async (m) => {
      const user = await this.createInTransaction(m, { ...dto, companyId: tenant.companyId });
      await this.audit.record(
        {
          companyId: tenant.companyId,
          ...actorOf(tenant.principal),
          action: 'user.created',
          targetType: 'user',
          targetId: user.id,
          details: { role: user.role },
        },
        m,
      );
      return toUserDto(user);
    });
  }

  async update(tenant: Tenant, id: string, dto: UpdateUserDto): Promise<UserDto> {
    return this.dataSource.transaction(async (m) => {
      const repo = m.getRepository(UserEntity);
      // A role change may take an owner's role away: lock the owners first, as remove() does.
      const owners = dto.role !== undefined ? await this.lockOwners(repo, tenant.companyId) : [];
      const user = await this.find(repo, tenant.companyId, id, true);
      const self = tenant.principal.kind === 'user' && tenant.principal.userId === id;
      if (!self) this.assertCanManage(tenant, user.role);
      if (dto.role !== undefined && dto.role !== user.role) {
        if (self) throw usersError('forbidden', 'Nobody changes their own role.');
        this.assertCanAssign(tenant, dto.role);
        if (user.role === 'owner' && owners.length <= 1)
          throw usersError('last-owner', 'A company keeps at least one owner.');
      }
      const before = user.role;
      if (dto.displayName !== undefined) user.displayName = dto.displayName;
      if (dto.preferences) user.preferences = { ...user.preferences, ...dto.preferences };
      if (dto.role !== undefined) user.role = dto.role;
      if (dto.password !== undefined) user.passwordHash = await this.hash(dto.password);
      const saved = await repo.save(user);
      const actor = actorOf(tenant.principal);
      if (before !== saved.role) {
        await this.audit.record(
          {
            companyId: tenant.companyId,
            ...actor,
            action: 'user.role_changed',
            targetType: 'user',
            targetId: id,
            details: { from: before, to: saved.role },
          },
          m,
        );
      }
      if (dto.password !== undefined) {
        await this.audit.record(
          { companyId: tenant.companyId, ...actor, action: 'user.password_set', targetType: 'user', targetId: id },
          m,
        );
      }
      return toUserDto(saved);
    });
  }

  async remove(tenant: Tenant, id: string): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      const repo = m.getRepository(UserEntity);
      const owners = await this.lockOwners(repo, tenant.companyId);
      const user = await this.find(repo, tenant.companyId, id, true);
      if (tenant.principal.kind === 'user' && tenant.principal.userId === id) {
        throw usersError('forbidden', 'Nobody deletes their own account here.');
      }
      this.assertCanManage(tenant, user.role);
      if (user.role === 'owner') {
        if (owners.length <= 1) throw usersError('last-owner', 'A company keeps at least one owner.');
      }
      await repo.delete({ id, companyId: tenant.companyId });
      await this.audit.record(
        {
          companyId: tenant.companyId,
          ...actorOf(tenant.principal),
          action: 'user.deleted',
          targetType: 'user',
          targetId: id,
          details: { role: user.role },
        },
        m,
      );
    });
  }

  // --- the signed-in user ---------------------------------------------------------------------

  async updateSelf(
    userId: string,
    changes: { displayName?: string; preferences?: PreferencesDto; passwordHash?: string },
  ): Promise<UserEntity> {
    const user = await this.byId(userId);
    if (changes.displayName !== undefined) user.displayName = changes.displayName;
    if (changes.preferences) user.preferences = { ...user.preferences, ...changes.preferences };
    if (changes.passwordHash) user.passwordHash = changes.passwordHash;
    return this.repo.save(user);
  }

  /**
   * Locks the company's owners, always in id order and before the target row, so that two owners
   * deleting or demoting each other at once cannot both count two owners and leave none.
   */
  private lockOwners(repo: Repository<UserEntity>, companyId: string): Promise<UserEntity[]> {
    return repo.find({
      where: { companyId, role: 'owner' },
      select: { id: true },
      order: { id: 'ASC' },
      lock: { mode: 'pessimistic_write' },
    });
  }

  private async find(repo: Repository<UserEntity>, companyId: string, id: string, lock = false): Promise<UserEntity> {
    const user = await repo.findOne({
      where: { id, companyId },
      ...(lock ? { lock: { mode: 'pessimistic_write' as const } } : {}),
    });
    if (!user) throw notFound();
    return user;
  }

  /** API keys act with the scope they hold; the role rules apply to users. */
  private assertCanManage(tenant: Tenant, target: Role): void {
    const p = tenant.principal;
    if (p.kind === 'user' && !canManage(p.role, target)) {
      throw usersError('forbidden', `A ${p.role} cannot manage a ${target}.`);
    }
    if (p.kind === 'api_key' && target === 'owner') throw usersError('forbidden', 'API keys cannot manage owners.');
  }

  private assertCanAssign(tenant: Tenant, role: CompanyRole): void {
    const p = tenant.principal;
    if (p.kind === 'user' && !canAssign(p.role, role)) {
      throw usersError('forbidden', `A ${p.role} cannot give the role ${role}.`);
    }
    if (p.kind === 'api_key' && (role === 'owner' || role === 'admin')) {
      throw usersError('forbidden', `API keys cannot give the role ${role}.`);
    }
  }
}

function notFound(): AppException {
  return usersError('not-found', 'No such user.');
}
