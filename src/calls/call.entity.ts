import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, Unique, UpdateDateColumn } from 'typeorm';
import type { CallDirection, CallStatus, EndReason } from './call-state.js';

/**
 * The canonical call record, whatever phone system it came from. Its fields are derived from the
 * events applied to it (see call-state.ts), so any order or repetition of the same events yields
 * the same record.
 */
@Entity({ name: 'calls' })
@Unique('calls_id_company_key', ['id', 'companyId'])
@Unique('calls_company_call_key', ['companyId', 'callKey'])
@Index('calls_company_started_idx', ['companyId', 'startedAt', 'id'])
@Index('calls_company_status_started_idx', ['companyId', 'status', 'startedAt', 'id'])
@Index('calls_company_agent_started_idx', ['companyId', 'agentId', 'startedAt', 'id'])
@Index('calls_company_from_started_idx', ['companyId', 'fromNumber', 'startedAt', 'id'])
@Index('calls_company_to_started_idx', ['companyId', 'toNumber', 'startedAt', 'id'])
@Index('calls_active_idx', ['companyId', 'startedAt'], { where: "status IN ('queued', 'ringing', 'in_progress')" })
export class CallEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  /** asterisk | dialpad | twilio | netsapiens | manual */
  @Column({ type: 'varchar', length: 16 })
  provider!: string;

  @Column({ name: 'connection_id', type: 'uuid', nullable: true })
  connectionId!: string | null;

  @Column({ name: 'provider_call_id', type: 'varchar', length: 128 })
  providerCallId!: string;

  /** `<connection id or provider>:<provider call id>`: unique per company. */
  @Column({ name: 'call_key', type: 'varchar', length: 200 })
  callKey!: string;

  @Column({ type: 'varchar', length: 10 })
  direction!: CallDirection;

  @Column({ name: 'from_number', type: 'varchar', length: 32, nullable: true })
  fromNumber!: string | null;

  @Column({ name: 'to_number', type: 'varchar', length: 32, nullable: true })
  toNumber!: string | null;

  @Column({ name: 'caller_name', type: 'varchar', length: 200, nullable: true })
  callerName!: string | null;

  @Column({ type: 'varchar', length: 16 })
  status!: CallStatus;

  @Column({ name: 'agent_id', type: 'uuid', nullable: true })
  agentId!: string | null;

  @Column({ name: 'started_at', type: 'timestamptz' })
  startedAt!: Date;

  @Column({ name: 'ringing_at', type: 'timestamptz', nullable: true })
  ringingAt!: Date | null;

  @Column({ name: 'answered_at', type: 'timestamptz', nullable: true })
  answeredAt!: Date | null;

  @Column({ name: 'ended_at', type: 'timestamptz', nullable: true })
  endedAt!: Date | null;

  @Column({ name: 'ring_seconds', type: 'integer', nullable: true })
  ringSeconds!: number | null;

  @Column({ name: 'talk_seconds', type: 'integer', nullable: true })
  talkSeconds!: number | null;

  @Column({ name: 'duration_seconds', type: 'integer', nullable: true })
  durationSeconds!: number | null;

  @Column({ name: 'end_reason', type: 'varchar', length: 16, nullable: true })
  endReason!: EndReason | null;

  @Column({ name: 'hangup_cause', type: 'varchar', length: 128, nullable: true })
  hangupCause!: string | null;

  @Column({ name: 'recording_url', type: 'text', nullable: true })
  recordingUrl!: string | null;

  /** The CRM contact of the caller, when found (screen pop). */
  @Column({ name: 'crm_contact', type: 'jsonb', nullable: true })
  crmContact!: Record<string, unknown> | null;

  /** AI transcript, summary, sentiment. */
  @Column({ type: 'jsonb', nullable: true })
  ai!: Record<string, unknown> | null;

  @Column({ type: 'text', array: true, default: () => "'{}'" })
  tags!: string[];

  @Column({ type: 'text', nullable: true })
  notes!: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  disposition!: string | null;

  /** The merge state of the events applied so far (call-state.ts); not part of the API. */
  @Column({ type: 'jsonb', default: () => "'{}'" })
  state!: Record<string, unknown>;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
