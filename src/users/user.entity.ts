import {
  Check,
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';

import type { Role } from '../common/access/roles.js';

export interface UserPreferences {
  theme?: 'light' | 'dark' | 'system';
  language?: string;
}

/** A person who signs in: a company member, or a platform operator (superadmin, no company). */
@Entity({ name: 'users' })
@Index('users_company_idx', ['companyId', 'createdAt'])
@Check('users_company_role_check', `(role = 'superadmin') = (company_id IS NULL)`)
export class UserEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid', nullable: true })
  companyId!: string | null;

  /** By name, not import: the tenants module owns companies. */
  @ManyToOne('CompanyEntity', { onDelete: 'CASCADE', nullable: true })
  @JoinColumn({ name: 'company_id', foreignKeyConstraintName: 'users_company_fkey' })
  company?: unknown;

  /** Normalised: trimmed, lower-case. */
  @Index('users_email_key', { unique: true })
  @Column({ type: 'varchar', length: 254 })
  email!: string;

  @Column({ name: 'password_hash', type: 'varchar', length: 255 })
  passwordHash!: string;

  @Column({ name: 'display_name', type: 'varchar', length: 200 })
  displayName!: string;

  @Column({ type: 'varchar', length: 16 })
  role!: Role;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  preferences!: UserPreferences;

  @Column({ name: 'last_login_at', type: 'timestamptz', nullable: true })
  lastLoginAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
