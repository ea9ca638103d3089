import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * The per-company event stream, in order: what socket.io clients receive, kept at least 24 h so a
 * client that reconnects with the last sequence number it saw gets what it missed.
 */
@Entity({ name: 'company_events' })
@Index('company_events_created_idx', ['createdAt'])
export class CompanyEventEntity {
  @PrimaryColumn({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @PrimaryColumn({ type: 'bigint' })
  seq!: string;

  @Column({ name: 'event_id', type: 'uuid' })
  eventId!: string;

  @Column({ type: 'varchar', length: 32 })
  type!: string;

  @Column({ name: 'occurred_at', type: 'timestamptz' })
  occurredAt!: Date;

  /** The agent the event is for (screen pops), or null for the company as a whole. */
  @Column({ name: 'agent_id', type: 'uuid', nullable: true })
  agentId!: string | null;

  @Column({ type: 'jsonb' })
  data!: Record<string, unknown>;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}

/** The last sequence number given out per company (a row lock orders a company's events). */
@Entity({ name: 'event_counters' })
export class EventCounterEntity {
  @PrimaryColumn({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @Column({ name: 'last_seq', type: 'bigint' })
  lastSeq!: string;
}
