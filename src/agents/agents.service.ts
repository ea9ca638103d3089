import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { ArrayContains, DataSource, type EntityManager, type FindOptionsWhere, IsNull, Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { actorOf, roleAtLeast, type Tenant } from '../common/access/principal.js';
import { type AppException, validationFailed } from '../common/errors/common.errors.js';
import { offsetPage, type OffsetPage } from '../common/pagination.js';
import type { EventEnvelope } from '../events/event-envelope.js';
import { EventsService } from '../events/events.service.js';
import { UsersService } from '../users/users.service.js';
import { AgentEntity, type AgentStatus } from './agent.entity.js';
import { agentsError } from './agents.errors.js';
import type { AgentDto, AgentListQuery, CreateAgentDto, UpdateAgentDto } from './dto/agents.dto.js';
import { type Provider, UserMappingEntity } from './user-mapping.entity.js';

/** How an event names the agent: our id, a PBX extension, or a user id at the provider. */
export interface AgentRef {
  agentId?: string;
  extension?: string;
  externalId?: string;
  provider?: Provider;
}

export function toAgentDto(a: AgentEntity): AgentDto {
  return {
    id: a.id,
    companyId: a.companyId,
    userId: a.userId,
    displayName: a.displayName,
    extension: a.extension,
    skills: a.skills,
    status: a.status,
    statusChangedAt: a.statusChangedAt,
    createdAt: a.createdAt,
    updatedAt: a.updatedAt,
  };
}

/** The agent as events carry it: plain JSON, the same in process as in the stored row. */
function agentEventView(a: AgentEntity): Record<string, unknown> {
  return JSON.parse(JSON.stringify(toAgentDto(a))) as Record<string, unknown>;
}

const UNIQUE_VIOLATION = '23505';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FOREIGN_KEY_VIOLATION = '23503';

@Injectable()
export class AgentsService {
  constructor(
    @InjectRepository(AgentEntity) private readonly agents: Repository<AgentEntity>,
    @InjectRepository(UserMappingEntity) private readonly mappings: Repository<UserMappingEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly users: UsersService,
    private readonly audit: AuditService,
    private readonly events: EventsService,
  ) {}

  /** Our agent id for a reference from a provider event, or null when no agent of the company matches. */
  async resolve(companyId: string, ref: AgentRef): Promise<string | null> {
    if (ref.agentId) {
      const found = await this.agents.exists({ where: { id: ref.agentId, companyId, deletedAt: IsNull() } });
      return found ? ref.agentId : null;
    }
    if (ref.externalId && ref.provider) {
      const mapping = await this.mappings.findOne({
        where: { companyId, provider: ref.provider, externalId: ref.externalId },
        select: { agentId: true },
      });
      if (mapping?.agentId) return mapping.agentId;
    }
    const extension = ref.extension ?? ref.externalId;
    if (extension) {
      const agent = await this.agents.findOne({
        where: { companyId, extension, deletedAt: IsNull() },
        select: { id: true },
      });
      if (agent) return agent.id;
    }
    return null;
  }

  /**
   * `resolve` for many references at once, in one query (the batch apply resolves every agent of
   * a batch of call events together): the same rules, in the same order — our id (an agent of
   * the company, not deleted), else the user mapping of (provider, external id), else the agent
   * with that extension (the external id standing in for it). One answer per reference, in order.
   */
  async resolveMany(
    refs: readonly { companyId: string; ref: AgentRef }[],
    manager: EntityManager = this.dataSource.manager,
  ): Promise<(string | null)[]> {
    if (refs.length === 0) return [];
    const text = (v: string | undefined, max: number) => (v && v.length <= max ? v : null);
    const rows = (await manager.query(
      `SELECT r.i,
         CASE WHEN r.agent_id IS NOT NULL THEN
           (SELECT a.id FROM agents a WHERE a.id = r.agent_id AND a.company_id = r.company_id AND a.deleted_at IS NULL)
         ELSE COALESCE(
           (SELECT m.agent_id FROM user_mappings m
            WHERE m.company_id = r.company_id AND m.provider = r.provider AND m.external_id = r.external_id),
           (SELECT a.id FROM agents a
            WHERE a.company_id = r.company_id AND a.extension = r.extension AND a.deleted_at IS NULL LIMIT 1))
         END AS agent_id
       FROM unnest($1::int[], $2::uuid[], $3::uuid[], $4::varchar[], $5::varchar[], $6::varchar[])
         AS r(i, company_id, agent_id, provider, external_id, extension)`,
      [
        refs.map((_, i) => i),
        refs.map((r) => r.companyId),
        // Not a uuid: no agent of ours (and no cast error failing the whole batch).
        refs.map((r) => (r.ref.agentId && UUID.test(r.ref.agentId) ? r.ref.agentId : null)),
        refs.map((r) => (r.ref.agentId ? null : (r.ref.provider ?? null))),
        refs.map((r) => (r.ref.agentId || !r.ref.provider ? null : text(r.ref.externalId, 128))),
        refs.map((r) => (r.ref.agentId ? null : text(r.ref.extension ?? r.ref.externalId, 32))),
      ],
    )) as { i: number; agent_id: string | null }[];
    const out: (string | null)[] = refs.map(() => null);
    for (const row of rows) out[row.i] = row.agent_id;
    return out;
  }

  /**
   * Whose records a caller sees: `undefined` for all of the company's (managers and above, API
   * keys), an agent id for an agent user, `null` for an agent user without an agent profile.
   */
  async visibleAgent(tenant: Tenant): Promise<string | null | undefined> {
    const p = tenant.principal;
    if (p.kind !== 'user' || roleAtLeast(p.role, 'manager')) return undefined;
    return (await this.forUser(tenant.companyId, p.userId))?.id ?? null;
  }

  /** The agent profile of a user, if they have one. */
  async forUser(companyId: string, userId: string): Promise<AgentEntity | null> {
    return this.agents.findOne({ where: { companyId, userId, deletedAt: IsNull() } });
  }

  /**
   * An agent of the company with its identity at a provider (the user mapping's external id),
   * for commands sent to that provider (click-to-call rings this agent); null when unknown.
   */
  async identityAt(
    companyId: string,
    agentId: string,
    provider: Provider,
  ): Promise<{ id: string; extension: string | null; externalId: string | null } | null> {
    const agent = await this.agents.findOne({
      where: { id: agentId, companyId, deletedAt: IsNull() },
      select: { id: true, extension: true },
    });
    if (!agent) return null;
    const mapping = await this.mappings.findOne({
      where: { companyId, provider, agentId },
      select: { externalId: true },
      order: { createdAt: 'ASC' },
    });
    return { id: agent.id, extension: agent.extension, externalId: mapping?.externalId ?? null };
  }

  async exists(companyId: string, agentId: string): Promise<boolean> {
    return this.agents.exists({ where: { id: agentId, companyId, deletedAt: IsNull() } });
  }

  // --- tenant routes --------------------------------------------------------------------------

  async list(tenant: Tenant, query: AgentListQuery): Promise<OffsetPage<AgentDto>> {
    const where: FindOptionsWhere<AgentEntity> = { companyId: tenant.companyId, deletedAt: IsNull() };
    if (query.status) where.status = query.status;
    if (query.skill) where.skills = ArrayContains([query.skill]);
    const [rows, total] = await this.agents.findAndCount({
      where,
      order: { createdAt: 'ASC', id: 'ASC' },
      take: query.limit,
      skip: query.offset,
    });
    return offsetPage(rows.map(toAgentDto), total, query);
  }

  async get(tenant: Tenant, id: string): Promise<AgentDto> {
    return toAgentDto(await this.find(this.agents, tenant.companyId, id));
  }

  async create(tenant: Tenant, dto: CreateAgentDto): Promise<AgentDto> {
    if (dto.userId) await this.assertUserOfCompany(tenant.companyId, dto.userId);
    return this.conflicts(() =>
      this.dataSource.transaction(async (m) => {
        const repo = m.getRepository(AgentEntity);
        const agent = await repo.save(
          repo.create({
            companyId: tenant.companyId,
            userId: dto.userId ?? null,
            displayName: dto.displayName,
            extension: dto.extension ?? null,
            skills: dto.skills ?? [],
          }),
        );
        await this.audit.record(
          {
            companyId: tenant.companyId,
            ...actorOf(tenant.principal),
            action: 'agent.created',
            targetType: 'agent',
            targetId: agent.id,
            details: { userId: agent.userId, extension: agent.extension },
          },
          m,
        );
        return toAgentDto(await this.find(repo, tenant.companyId, agent.id));
      }),
    );
  }

  async update(tenant: Tenant, id: string, dto: UpdateAgentDto): Promise<AgentDto> {
    return this.conflicts(() =>
      this.dataSource.transaction(async (m) => {
        const repo = m.getRepository(AgentEntity);
        const agent = await this.find(repo, tenant.companyId, id, true);
        if (dto.userId && dto.userId !== agent.userId) await this.assertUserOfCompany(tenant.companyId, dto.userId);
        if (dto.displayName !== undefined) agent.displayName = dto.displayName;
        if (dto.userId !== undefined) agent.userId = dto.userId;
        if (dto.extension !== undefined) agent.extension = dto.extension;
        if (dto.skills !== undefined) agent.skills = dto.skills;
        await repo.save(agent);
        return toAgentDto(await this.find(repo, tenant.companyId, id));
      }),
    );
  }

  /**
   * Marks the agent deleted. Its identities at providers go with it: a mapping that linked only
   * this agent is removed, one that also names a CRM user loses its agent.
   */
  async remove(tenant: Tenant, id: string): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      const repo = m.getRepository(AgentEntity);
      const agent = await this.find(repo, tenant.companyId, id, true);
      await repo.update({ id: agent.id, companyId: tenant.companyId }, { deletedAt: new Date() });
      const mappings = m.getRepository(UserMappingEntity);
      const removed = await mappings.delete({ companyId: tenant.companyId, agentId: agent.id, crmUserId: IsNull() });
      const unlinked = await mappings.update({ companyId: tenant.companyId, agentId: agent.id }, { agentId: null });
      await this.audit.record(
        {
          companyId: tenant.companyId,
          ...actorOf(tenant.principal),
          action: 'agent.deleted',
          targetType: 'agent',
          targetId: agent.id,
          details: {
            userId: agent.userId,
            extension: agent.extension,
            mappingsRemoved: removed.affected ?? 0,
            mappingsUnlinked: unlinked.affected ?? 0,
          },
        },
        m,
      );
    });
  }

  /**
   * Sets an agent's availability. An agent user sets only its own agent's (403 otherwise);
   * managers and above, and API keys with `agents:write`, any agent of the company. A change
   * appends `agent.status` in the same transaction and publishes it after the commit; the same
   * status again changes nothing and emits nothing.
   */
  async setAvailability(tenant: Tenant, id: string, status: AgentStatus): Promise<AgentDto> {
    const emitted: EventEnvelope[] = [];
    const view = await this.dataSource.transaction(async (m) => {
      const repo = m.getRepository(AgentEntity);
      const agent = await this.find(repo, tenant.companyId, id, true);
      const p = tenant.principal;
      if (p.kind === 'user' && p.role === 'agent' && agent.userId !== p.userId) {
        throw agentsError('forbidden', 'An agent sets only its own availability.');
      }
      if (agent.status === status) return toAgentDto(agent);
      const now = new Date();
      await repo.update({ id: agent.id, companyId: tenant.companyId }, { status, statusChangedAt: now });
      const changed = await this.find(repo, tenant.companyId, id);
      emitted.push(
        await this.events.append(
          m,
          tenant.companyId,
          'agent.status',
          { agent: agentEventView(changed) },
          changed.id,
          now,
        ),
      );
      return toAgentDto(changed);
    });
    this.events.publish(emitted);
    return view;
  }

  // --- helpers --------------------------------------------------------------------------------

  private async find(repo: Repository<AgentEntity>, companyId: string, id: string, lock = false): Promise<AgentEntity> {
    const agent = await repo.findOne({
      where: { id, companyId, deletedAt: IsNull() },
      ...(lock ? { lock: { mode: 'pessimistic_write' as const } } : {}),
    });
    if (!agent) throw agentsError('not-found', 'No such agent.');
    return agent;
  }

  /** A user of another company is answered exactly like a missing one. */
  private async assertUserOfCompany(companyId: string, userId: string): Promise<void> {
    const user = await this.users.identity(userId);
    if (!user || user.companyId !== companyId) throw unknownUser();
  }

  /** Unique and foreign-key violations (also when two requests race) as 409 and 400 problems. */
  private async conflicts<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      const { code, constraint } = error as { code?: string; constraint?: string };
      if (code === UNIQUE_VIOLATION && constraint === 'agents_company_extension_key') {
        throw agentsError('extension-taken', 'Another agent of the company has this extension.', {
          errors: [{ field: 'extension', messages: ['extension is taken by another agent'] }],
        });
      }
      if (code === UNIQUE_VIOLATION && constraint === 'agents_user_key') {
        throw agentsError('user-has-agent', 'This user already is an agent.', {
          errors: [{ field: 'userId', messages: ['userId already has an agent'] }],
        });
      }
      // The user was deleted between the check and the write.
      if (code === FOREIGN_KEY_VIOLATION && constraint === 'agents_user_fkey') throw unknownUser();
      throw error;
    }
  }
}

function unknownUser(): AppException {
  return validationFailed([{ field: 'userId', messages: ['userId must be a user of this company'] }]);
}
