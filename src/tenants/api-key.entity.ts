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
import { CompanyEntity } from './company.entity.js';

/**
 * A company's API key. Only the SHA-256 of the key is stored (looked up directly, indexed), with
 * a hint (first 8 + last 4 characters). After a rotation the previous key's hash is kept until
 * `previous_valid_until` (the overlap window), then it stops working.
 */
@Entity({ name: 'api_keys' })
@Unique('api_keys_id_company_key', ['id', 'companyId'])
@Index('api_keys_company_idx', ['companyId', 'createdAt'])
export class ApiKeyEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @ManyToOne(() => CompanyEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'company_id', foreignKeyConstraintName: 'api_keys_company_fkey' })
  company?: CompanyEntity;

  @Column({ type: 'varchar', length: 100 })
  name!: string;

  @Column({ type: 'text', array: true, default: () => "'{}'" })
  scopes!: string[];

  @Index('api_keys_key_hash_key', { unique: true })
  @Column({ name: 'key_hash', type: 'char', length: 64 })
  keyHash!: string;

  @Column({ name: 'key_hint', type: 'varchar', length: 16 })
  keyHint!: string;

  @Index('api_keys_previous_key_hash_idx', { where: 'previous_key_hash IS NOT NULL' })
  @Column({ name: 'previous_key_hash', type: 'char', length: 64, nullable: true })
  previousKeyHash!: string | null;

  @Column({ name: 'previous_key_hint', type: 'varchar', length: 16, nullable: true })
  previousKeyHint!: string | null;

  @Column({ name: 'previous_valid_until', type: 'timestamptz', nullable: true })
  previousValidUntil!: Date | null;

  /** The key the operator API manages (`/internal/apps/:appId/api-key`). */
  @Column({ name: 'is_primary', type: 'boolean', default: false })
  isPrimary!: boolean;

  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true })
  expiresAt!: Date | null;

  @Column({ name: 'created_by', type: 'uuid', nullable: true })
  createdBy!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'rotated_at', type: 'timestamptz', nullable: true })
  rotatedAt!: Date | null;

  @Column({ name: 'last_used_at', type: 'timestamptz', nullable: true })
  lastUsedAt!: Date | null;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;
}
