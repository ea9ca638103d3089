import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  Unique,
} from 'typeorm';
import { AgentEntity } from './agent.entity.js';

export const PROVIDERS = ['asterisk', 'dialpad', 'twilio', 'netsapiens'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** An identity at a provider (PBX user id or extension) ↔ our agent ↔ a CRM user id. */
@Entity({ name: 'user_mappings' })
@Unique('user_mappings_provider_external_key', ['companyId', 'provider', 'externalId'])
@Index('user_mappings_company_idx', ['companyId', 'createdAt'])
@Index('user_mappings_crm_idx', ['companyId', 'crmUserId'])
export class UserMappingEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @ManyToOne('CompanyEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'company_id', foreignKeyConstraintName: 'user_mappings_company_fkey' })
  company?: unknown;

  @Column({ type: 'varchar', length: 16 })
  provider!: Provider;

  /** The user id or extension at the provider. */
  @Column({ name: 'external_id', type: 'varchar', length: 128 })
  externalId!: string;

  @Column({ name: 'agent_id', type: 'uuid', nullable: true })
  agentId!: string | null;

  /** An agent of the same company: the foreign key includes company_id. */
  @ManyToOne(() => AgentEntity, { onDelete: 'NO ACTION' })
  @JoinColumn([
    { name: 'agent_id', referencedColumnName: 'id', foreignKeyConstraintName: 'user_mappings_agent_fkey' },
    { name: 'company_id', referencedColumnName: 'companyId' },
  ])
  agent?: AgentEntity;

  @Column({ name: 'crm_user_id', type: 'varchar', length: 254, nullable: true })
  crmUserId!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
