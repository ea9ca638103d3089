import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique } from 'typeorm';

export const INBOX_STATUSES = ['pending', 'processed', 'failed'] as const;
export type InboxStatus = (typeof INBOX_STATUSES)[number];

/**
 * Every verified provider webhook, written before we answer 2xx and unique on (connection,
 * provider event id): a redelivery finds its row and is not processed again. Processing runs
 * after the commit; rows left pending (a crash, an error) are claimed again by the sweeper.
 */
@Entity({ name: 'webhook_inbox' })
@Unique('webhook_inbox_connection_event_key', ['connectionId', 'eventId'])
@Index('webhook_inbox_company_received_idx', ['companyId', 'receivedAt', 'id'])
@Index('webhook_inbox_pending_idx', ['receivedAt'], { where: "status = 'pending'" })
export class WebhookInboxEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @Column({ name: 'connection_id', type: 'uuid' })
  connectionId!: string;

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

  /** A processor holds the row until then (a crashed one lets go when it passes). */
  @Column({ name: 'locked_until', type: 'timestamptz', nullable: true })
  lockedUntil!: Date | null;

  @Column({ name: 'received_at', type: 'timestamptz', default: () => 'now()' })
  receivedAt!: Date;

  @Column({ name: 'processed_at', type: 'timestamptz', nullable: true })
  processedAt!: Date | null;
}
