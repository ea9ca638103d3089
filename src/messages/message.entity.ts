import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  Unique,
  UpdateDateColumn,
} from 'typeorm';

/** An SMS sent or received through a company's phone system, delivered by its webhooks. */
@Entity({ name: 'messages' })
@Unique('messages_connection_provider_key', ['connectionId', 'providerMessageId'])
@Index('messages_company_sent_idx', ['companyId', 'sentAt', 'id'])
@Index('messages_company_agent_sent_idx', ['companyId', 'agentId', 'sentAt', 'id'])
export class MessageEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @ManyToOne('CompanyEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'company_id', foreignKeyConstraintName: 'messages_company_fkey' })
  company?: unknown;

  @Column({ name: 'connection_id', type: 'uuid' })
  connectionId!: string;

  @Column({ type: 'varchar', length: 16 })
  provider!: string;

  @Column({ name: 'provider_message_id', type: 'varchar', length: 200 })
  providerMessageId!: string;

  @Column({ type: 'varchar', length: 8 })
  direction!: 'inbound' | 'outbound';

  @Column({ name: 'from_number', type: 'varchar', length: 32, nullable: true })
  fromNumber!: string | null;

  @Column({ name: 'to_number', type: 'varchar', length: 32, nullable: true })
  toNumber!: string | null;

  @Column({ type: 'text' })
  text!: string;

  /** The provider's delivery status, latest known. */
  @Column({ type: 'varchar', length: 32, nullable: true })
  status!: string | null;

  @Column({ name: 'agent_id', type: 'uuid', nullable: true })
  agentId!: string | null;

  @Column({ name: 'sent_at', type: 'timestamptz' })
  sentAt!: Date;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
