import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

export type CompanyStatus = 'active' | 'suspended';

export interface BusinessHoursInterval {
  start: string;
  end: string;
}

export interface CompanySettings {
  timezone?: string;
  /** Per weekday (mon … sun), the open intervals in the company's timezone. */
  businessHours?: Partial<Record<'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun', BusinessHoursInterval[]>>;
  defaultCallerId?: string;
  dataRetentionDays?: number;
  /** Origins allowed to embed the web widget (CORS). */
  allowedOrigins?: string[];
}

/** A tenant: one company served by this deployment. */
@Entity({ name: 'companies' })
export class CompanyEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'varchar', length: 200 })
  name!: string;

  @Index('companies_slug_key', { unique: true })
  @Column({ type: 'varchar', length: 63 })
  slug!: string;

  @Column({ type: 'varchar', length: 16, default: 'active' })
  status!: CompanyStatus;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  settings!: CompanySettings;

  @Column({ name: 'suspended_at', type: 'timestamptz', nullable: true })
  suspendedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
