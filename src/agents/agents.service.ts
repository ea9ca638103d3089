import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { IsNull, Repository } from 'typeorm';
import { AgentEntity } from './agent.entity.js';
import { type Provider, UserMappingEntity } from './user-mapping.entity.js';

/** How an event names the agent: our id, a PBX extension, or a user id at the provider. */
export interface AgentRef {
  agentId?: string;
  extension?: string;
  externalId?: string;
  provider?: Provider;
}

@Injectable()
export class AgentsService {
  constructor(
    @InjectRepository(AgentEntity) private readonly agents: Repository<AgentEntity>,
    @InjectRepository(UserMappingEntity) private readonly mappings: Repository<UserMappingEntity>,
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
      const agent = await this.agents.findOne({ where: { companyId, extension, deletedAt: IsNull() }, select: { id: true } });
      if (agent) return agent.id;
    }
    return null;
  }

  /** The agent profile of a user, if they have one. */
  async forUser(companyId: string, userId: string): Promise<AgentEntity | null> {
    return this.agents.findOne({ where: { companyId, userId, deletedAt: IsNull() } });
  }

  async exists(companyId: string, agentId: string): Promise<boolean> {
    return this.agents.exists({ where: { id: agentId, companyId, deletedAt: IsNull() } });
  }
}
