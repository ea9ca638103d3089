import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';

/**
 * A pending OAuth authorization (Dialpad): the state we sent (stored as its SHA-256), the PKCE
 * verifier (sealed), for one connection, valid for 10 minutes and used once.
 */
@Entity({ name: 'oauth_states' })
@Index('oauth_states_expires_idx', ['expiresAt'])
export class OAuthStateEntity {
  @PrimaryColumn({ name: 'state_hash', type: 'char', length: 64 })
  stateHash!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @Column({ name: 'connection_id', type: 'uuid' })
  connectionId!: string;

  @ManyToOne('PbxConnectionEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'connection_id', foreignKeyConstraintName: 'oauth_states_connection_fkey' })
  connection?: unknown;

  @Column({ name: 'verifier_sealed', type: 'text' })
  verifierSealed!: string;

  /** Where to send the browser once connected (optional, validated against CORS origins). */
  @Column({ name: 'return_to', type: 'text', nullable: true })
  returnTo!: string | null;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt!: Date;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
