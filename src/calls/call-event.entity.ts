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
import { CallEntity } from './call.entity.js';

/** The append-only timeline of a call: each distinct provider event once. */
@Entity({ name: 'call_events' })
@Unique('call_events_call_event_key', ['callId', 'eventKey'])
@Index('call_events_call_at_idx', ['callId', 'at'])
export class CallEventEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @Column({ name: 'call_id', type: 'uuid' })
  callId!: string;

  @ManyToOne(() => CallEntity, { onDelete: 'CASCADE' })
  @JoinColumn([
    { name: 'call_id', referencedColumnName: 'id', foreignKeyConstraintName: 'call_events_call_fkey' },
    { name: 'company_id', referencedColumnName: 'companyId' },
  ])
  call?: CallEntity;

  /** The provider's id of the event (dedupe). */
  @Column({ name: 'event_key', type: 'varchar', length: 200 })
  eventKey!: string;

  @Column({ type: 'varchar', length: 16 })
  kind!: string;

  @Column({ type: 'timestamptz' })
  at!: Date;

  /** The canonical fields the event carried (and the provider's raw payload, when kept). */
  @Column({ type: 'jsonb', default: () => "'{}'" })
  data!: Record<string, unknown>;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
