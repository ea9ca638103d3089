import { Column, Entity, Generated, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique } from 'typeorm';

export const INBOX_STATUSES = ['pending', 'processed', 'failed'] as const;
export type InboxStatus = (typeof INBOX_STATUSES)[number];

/**
 * Every verified provider webhook, written before we answer 2xx and unique on (connection,
 * provider event id): a redelivery finds its row and is not processed again. Rows are processed
 * in batches claimed in the transaction that applies them (webhook-inbox-processor.service.ts).
 */
@Entity({ name: 'webhook_inbox' })
@Unique('webhook_inbox_connection_event_key', ['connectionId', 'eventId'])
@Index('webhook_inbox_company_received_idx', ['companyId', 'receivedAt', 'id'])
@Index('webhook_inbox_pending_idx', ['receivedAt'], { where: "status = 'pending'" })
@Index('webhook_inbox_pending_partition_idx', ['partition', 'seq'], { where: "status = 'pending'" })
// The generic incoming webhook has no connection: its rows are unique per company and webhook-id.
@Index('webhook_inbox_company_event_key', ['companyId', 'eventId'], { unique: true, where: 'connection_id IS NULL' })
export class WebhookInboxEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  /** Null for the generic incoming webhook (src/webhooks/incoming/), which has no connection. */
  @Column({ name: 'connection_id', type: 'uuid', nullable: true })
  connectionId!: string | null;

  @ManyToOne('PbxConnectionEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'connection_id', foreignKeyConstraintName: 'webhook_inbox_connection_fkey' })
  connection?: unknown;

  @Column({ type: 'varchar', length: 16 })
  provider!: string;

  /** The provider route it came on ('', 'status', 'sms'). */
  @Column({ type: 'varchar', length: 32, default: '' })
  route!: string;

  @Column({ type: 'varchar', length: 32 })
  kind!: string;

  @Column({ name: 'event_id', type: 'varchar', length: 200 })
  eventId!: string;

  @Column({ type: 'jsonb' })
  payload!: unknown;

  @Column({ type: 'varchar', length: 16, default: 'pending' })
  status!: InboxStatus;

  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  @Column({ name: 'last_error', type: 'text', nullable: true })
  lastError!: string | null;

  /**
   * The order rows were written in: rows of one group-commit INSERT share their received_at, and
   * one call's rows are applied in this order.
   */
  @Column({ type: 'bigint' })
  @Generated('increment')
  seq!: string;

  /** The call this row is about (`<connection>:<provider call id>`), set at ingest. */
  @Column({ name: 'call_key', type: 'varchar', length: 300, nullable: true })
  callKey!: string | null;

  /**
   * hash(call key) mod INBOX_PARTITIONS, set at ingest: one transaction at a time holds a
   * partition, so one call's rows are applied in order by every worker of every instance.
   */
  @Column({ type: 'smallint', default: 0 })
  partition!: number;

  /** What the vendor's mapper made of the payload at ingest (mapped once), as JSON. */
  @Column({ type: 'jsonb', nullable: true })
  records!: unknown;

  /** A row that failed waits until then before it is claimed again (backoff). */
  @Column({ name: 'next_attempt_at', type: 'timestamptz', nullable: true })
  nextAttemptAt!: Date | null;

  @Column({ name: 'received_at', type: 'timestamptz', default: () => 'now()' })
  receivedAt!: Date;

  @Column({ name: 'processed_at', type: 'timestamptz', nullable: true })
  processedAt!: Date | null;
}
