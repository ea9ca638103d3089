import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  Unique,
  UpdateDateColumn,
} from 'typeorm';

export const AGENT_STATUSES = ['available', 'busy', 'away', 'offline', 'wrap_up'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

/**
 * Someone who takes calls. Deleting an agent only marks it (`deleted_at`): the call history keeps
 * pointing at it.
 */
@Entity({ name: 'agents' })
@Unique('agents_id_company_key', ['id', 'companyId'])
@Index('agents_company_idx', ['companyId', 'createdAt'])
@Index('agents_company_extension_key', ['companyId', 'extension'], {
  unique: true,
  where: 'deleted_at IS NULL AND extension IS NOT NULL',
})
@Index('agents_user_key', ['userId'], { unique: true, where: 'deleted_at IS NULL AND user_id IS NOT NULL' })
export class AgentEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  /** By name, not import: the tenants module owns companies. */
  @ManyToOne('CompanyEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'company_id', foreignKeyConstraintName: 'agents_company_fkey' })
  company?: unknown;

  /** The user who is this agent, if any (an agent user's screen pops go to this agent). */
  @Column({ name: 'user_id', type: 'uuid', nullable: true })
  userId!: string | null;

  @ManyToOne('UserEntity', { onDelete: 'SET NULL' })
  @JoinColumn({ name: 'user_id', foreignKeyConstraintName: 'agents_user_fkey' })
  user?: unknown;

  @Column({ name: 'display_name', type: 'varchar', length: 200 })
  displayName!: string;

  /** PBX extension (e.g. 1001): how a ringing channel is matched to the agent. */
  @Column({ type: 'varchar', length: 32, nullable: true })
  extension!: string | null;

  @Column({ type: 'text', array: true, default: () => "'{}'" })
  skills!: string[];

  @Column({ type: 'varchar', length: 16, default: 'offline' })
  status!: AgentStatus;

  @Column({ name: 'status_changed_at', type: 'timestamptz', default: () => 'now()' })
  statusChangedAt!: Date;

  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true })
  deletedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
