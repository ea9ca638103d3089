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
import type { PbxProviderName } from '../pbx-provider.js';

/**
 * A company's phone system: its provider, non-secret settings, and its secrets sealed with
 * AES-256-GCM (SecretBox, bound to the row id). Deleting only marks the row: the call history keeps
 * pointing at it, and its webhooks are refused from then on.
 */
@Entity({ name: 'pbx_connections' })
@Unique('pbx_connections_id_company_key', ['id', 'companyId'])
@Index('pbx_connections_company_idx', ['companyId', 'createdAt'])
@Index('pbx_connections_company_name_key', ['companyId', 'name'], { unique: true, where: 'deleted_at IS NULL' })
export class PbxConnectionEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @ManyToOne('CompanyEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'company_id', foreignKeyConstraintName: 'pbx_connections_company_fkey' })
  company?: unknown;

  @Column({ type: 'varchar', length: 16 })
  provider!: PbxProviderName;

  @Column({ type: 'varchar', length: 100 })
  name!: string;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  settings!: Record<string, unknown>;

  /** SecretBox value of the secrets object; never returned by the API. */
  @Column({ name: 'secrets_sealed', type: 'text' })
  secretsSealed!: string;

  /** Names of the secrets set (shown by the API instead of the values). */
  @Column({ name: 'secret_names', type: 'text', array: true, default: () => "'{}'" })
  secretNames!: string[];

  /** A held live connection's state (Asterisk AMI): connecting | connected | reconnecting | failed. */
  @Column({ name: 'runtime_state', type: 'varchar', length: 16, nullable: true })
  runtimeState!: string | null;

  @Column({ name: 'runtime_reason', type: 'text', nullable: true })
  runtimeReason!: string | null;

  /** The instance holding it. */
  @Column({ name: 'runtime_holder', type: 'varchar', length: 200, nullable: true })
  runtimeHolder!: string | null;

  /** Written on every change and as a heartbeat while held: an old value means nobody holds it. */
  @Column({ name: 'runtime_at', type: 'timestamptz', nullable: true })
  runtimeAt!: Date | null;

  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true })
  deletedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
