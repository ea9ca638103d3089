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

/** A voicemail left at a company's phone system, delivered by its webhooks. */
@Entity({ name: 'voicemails' })
@Unique('voicemails_connection_provider_key', ['connectionId', 'providerVoicemailId'])
@Index('voicemails_company_received_idx', ['companyId', 'receivedAt', 'id'])
@Index('voicemails_company_agent_received_idx', ['companyId', 'agentId', 'receivedAt', 'id'])
export class VoicemailEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @ManyToOne('CompanyEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'company_id', foreignKeyConstraintName: 'voicemails_company_fkey' })
  company?: unknown;

  @Column({ name: 'connection_id', type: 'uuid' })
  connectionId!: string;

  @Column({ type: 'varchar', length: 16 })
  provider!: string;

  @Column({ name: 'provider_voicemail_id', type: 'varchar', length: 200 })
  providerVoicemailId!: string;

  /** The call it was left on, when known. */
  @Column({ name: 'call_id', type: 'uuid', nullable: true })
  callId!: string | null;

  @Column({ name: 'agent_id', type: 'uuid', nullable: true })
  agentId!: string | null;

  @Column({ name: 'from_number', type: 'varchar', length: 32, nullable: true })
  fromNumber!: string | null;

  @Column({ name: 'to_number', type: 'varchar', length: 32, nullable: true })
  toNumber!: string | null;

  @Column({ name: 'duration_seconds', type: 'integer', nullable: true })
  durationSeconds!: number | null;

  @Column({ name: 'recording_url', type: 'text', nullable: true })
  recordingUrl!: string | null;

  @Column({ type: 'text', nullable: true })
  transcription!: string | null;

  @Column({ name: 'received_at', type: 'timestamptz' })
  receivedAt!: Date;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
