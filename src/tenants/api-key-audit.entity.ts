import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { ApiKeyEntity } from './api-key.entity.js';

export type ApiKeyAuditAction = 'created' | 'rotated' | 'revoked';

/** Every change to an API key: who, when, old and new hints. */
@Entity({ name: 'api_key_audit' })
@Index('api_key_audit_key_idx', ['apiKeyId', 'createdAt'])
@Index('api_key_audit_company_idx', ['companyId', 'createdAt'])
export class ApiKeyAuditEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @Column({ name: 'api_key_id', type: 'uuid' })
  apiKeyId!: string;

  /** The key of the same company: the foreign key includes company_id. */
  @ManyToOne(() => ApiKeyEntity, { onDelete: 'CASCADE' })
  @JoinColumn([
    { name: 'api_key_id', referencedColumnName: 'id', foreignKeyConstraintName: 'api_key_audit_key_fkey' },
    { name: 'company_id', referencedColumnName: 'companyId' },
  ])
  apiKey?: ApiKeyEntity;

  @Column({ type: 'varchar', length: 16 })
  action!: ApiKeyAuditAction;

  @Column({ name: 'old_key_hint', type: 'varchar', length: 16, nullable: true })
  oldKeyHint!: string | null;

  @Column({ name: 'new_key_hint', type: 'varchar', length: 16, nullable: true })
  newKeyHint!: string | null;

  @Column({ name: 'actor_type', type: 'varchar', length: 16 })
  actorType!: string;

  @Column({ name: 'actor_id', type: 'varchar', length: 64, nullable: true })
  actorId!: string | null;

  @Column({ name: 'request_id', type: 'varchar', length: 64, nullable: true })
  requestId!: string | null;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  details!: Record<string, unknown>;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
