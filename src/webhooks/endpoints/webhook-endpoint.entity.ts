import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  UpdateDateColumn,
} from 'typeorm';

/** Why an endpoint was disabled (null while enabled, or when an admin disabled it: 'manual'). */
export const ENDPOINT_DISABLED_REASONS = ['manual', 'failing', 'gone'] as const;
export type EndpointDisabledReason = (typeof ENDPOINT_DISABLED_REASONS)[number];

/**
 * A company's outbound webhook endpoint: where its events are POSTed, signed with the Standard
 * Webhooks scheme. The secret (`whsec_…`) is sealed at rest (it is needed to sign) and shown once;
 * after a rotation the previous one signs too until `previous_secret_expires_at`.
 * `fanout_seq` is the last company event (company_events.seq) turned into deliveries for it: a
 * new endpoint starts at the company's latest seq (no history is sent unless replayed).
 */
@Entity({ name: 'webhook_endpoints' })
@Index('webhook_endpoints_company_idx', ['companyId', 'createdAt', 'id'])
export class WebhookEndpointEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'webhook_endpoints_pkey' })
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @ManyToOne('CompanyEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'company_id', foreignKeyConstraintName: 'webhook_endpoints_company_fkey' })
  company?: unknown;

  @Column({ type: 'varchar', length: 2048 })
  url!: string;

  @Column({ type: 'varchar', length: 500, default: '' })
  description!: string;

  /** Event types or wildcards (`call.*`, `*`) from the one catalogue (event-envelope.ts). */
  @Column({ name: 'event_types', type: 'text', array: true })
  eventTypes!: string[];

  @Column({ type: 'boolean', default: true })
  enabled!: boolean;

  @Column({ name: 'disabled_reason', type: 'varchar', length: 16, nullable: true })
  disabledReason!: EndpointDisabledReason | null;

  @Column({ name: 'disabled_at', type: 'timestamptz', nullable: true })
  disabledAt!: Date | null;

  /** The signing secret `whsec_<base64>`, sealed (SecretBox, associated data `webhook-endpoint:<id>`). */
  @Column({ name: 'secret_sealed', type: 'text' })
  secretSealed!: string;

  @Column({ name: 'secret_hint', type: 'varchar', length: 16 })
  secretHint!: string;

  @Column({ name: 'previous_secret_sealed', type: 'text', nullable: true })
  previousSecretSealed!: string | null;

  @Column({ name: 'previous_secret_expires_at', type: 'timestamptz', nullable: true })
  previousSecretExpiresAt!: Date | null;

  /** Deliveries per second to this endpoint at most (per instance); null: no limit. */
  @Column({ name: 'rate_limit_per_second', type: 'integer', nullable: true })
  rateLimitPerSecond!: number | null;

  /** Extra request headers (never `webhook-*` nor hop-by-hop ones), name → value. */
  @Column({ type: 'jsonb', default: () => "'{}'" })
  headers!: Record<string, string>;

  /** The first failed attempt since the last success; null while healthy. */
  @Column({ name: 'failing_since', type: 'timestamptz', nullable: true })
  failingSince!: Date | null;

  @Column({ name: 'last_success_at', type: 'timestamptz', nullable: true })
  lastSuccessAt!: Date | null;

  /** The last company event seq already turned into deliveries for this endpoint. */
  @Column({ name: 'fanout_seq', type: 'bigint', default: 0 })
  fanoutSeq!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
