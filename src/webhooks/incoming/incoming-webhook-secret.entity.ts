import { Column, CreateDateColumn, Entity, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';

/**
 * The secret of a company's generic incoming webhook (Standard Webhooks, `whsec_` + base64 of 32
 * random bytes): one per company, sealed with the SecretBox (PBX_SECRETS_KEY, bound to the company
 * id), shown once when created or rotated. After a rotation the previous secret still verifies
 * until `previous_expires_at` (WEBHOOK_SECRET_OVERLAP_MS). Deleting the row revokes it.
 */
@Entity({ name: 'webhook_incoming_secrets' })
export class IncomingWebhookSecretEntity {
  @PrimaryColumn({ name: 'company_id', type: 'uuid', primaryKeyConstraintName: 'webhook_incoming_secrets_pkey' })
  companyId!: string;

  @ManyToOne('CompanyEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'company_id', foreignKeyConstraintName: 'webhook_incoming_secrets_company_fkey' })
  company?: unknown;

  @Column({ name: 'secret_sealed', type: 'text' })
  secretSealed!: string;

  /** First 10 and last 4 characters of the secret (`whsec_abcd…wxyz`). */
  @Column({ type: 'varchar', length: 32 })
  hint!: string;

  @Column({ name: 'previous_secret_sealed', type: 'text', nullable: true })
  previousSecretSealed!: string | null;

  @Column({ name: 'previous_hint', type: 'varchar', length: 32, nullable: true })
  previousHint!: string | null;

  @Column({ name: 'previous_expires_at', type: 'timestamptz', nullable: true })
  previousExpiresAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'rotated_at', type: 'timestamptz', nullable: true })
  rotatedAt!: Date | null;
}
