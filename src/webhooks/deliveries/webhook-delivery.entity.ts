import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { WebhookEndpointEntity } from '../endpoints/webhook-endpoint.entity.js';

export const DELIVERY_ORIGINS = ['event', 'replay', 'test', 'retry'] as const;
export type DeliveryOrigin = (typeof DELIVERY_ORIGINS)[number];

export const DELIVERY_STATUSES = ['pending', 'delivering', 'succeeded', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** Why an attempt failed (null when it succeeded). */
export const DELIVERY_ERROR_CLASSES = [
  'timeout',
  'connect',
  'tls',
  'reset',
  'http-status',
  'ssrf-blocked',
  'invalid-response',
  'aborted',
  'unknown',
] as const;
export type DeliveryErrorClass = (typeof DELIVERY_ERROR_CLASSES)[number];

/**
 * One event to send to one endpoint (at least once). `body` is the exact JSON POSTed (the
 * socket.io envelope); `origin` says why it exists: fanned out from the company's event stream
 * (unique per endpoint and event), replayed, a manual retry of an earlier delivery, or a test.
 * `pending` rows are claimed when `next_attempt_at` is due (status `delivering` with a lease: a
 * crashed instance's claims are taken again once `lease_until` has passed).
 */
@Entity({ name: 'webhook_deliveries' })
@Index('webhook_deliveries_event_key', ['endpointId', 'eventId'], { unique: true, where: "origin = 'event'" })
@Index('webhook_deliveries_due_idx', ['endpointId', 'nextAttemptAt'], { where: "status = 'pending'" })
@Index('webhook_deliveries_lease_idx', ['leaseUntil'], { where: "status = 'delivering'" })
@Index('webhook_deliveries_log_idx', ['endpointId', 'createdAt', 'id'])
@Index('webhook_deliveries_completed_idx', ['completedAt'], { where: 'completed_at IS NOT NULL' })
export class WebhookDeliveryEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'webhook_deliveries_pkey' })
  id!: string;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @Column({ name: 'endpoint_id', type: 'uuid' })
  endpointId!: string;

  @ManyToOne(() => WebhookEndpointEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'endpoint_id', foreignKeyConstraintName: 'webhook_deliveries_endpoint_fkey' })
  endpoint?: WebhookEndpointEntity;

  /** The event's id: the `webhook-id` header, stable across retries and replays. */
  @Column({ name: 'event_id', type: 'uuid' })
  eventId!: string;

  @Column({ name: 'event_type', type: 'varchar', length: 32 })
  eventType!: string;

  /** The event's company sequence number (0 for `webhook.test`, which is not part of the stream). */
  @Column({ name: 'event_seq', type: 'bigint' })
  eventSeq!: string;

  @Column({ type: 'text' })
  body!: string;

  @Column({ type: 'varchar', length: 8 })
  origin!: DeliveryOrigin;

  @Column({ type: 'varchar', length: 12, default: 'pending' })
  status!: DeliveryStatus;

  /** Attempts made (recorded in webhook_delivery_attempts). */
  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  /** When the next attempt is due (null once succeeded or failed). */
  @Column({ name: 'next_attempt_at', type: 'timestamptz', nullable: true })
  nextAttemptAt!: Date | null;

  /** While `delivering`: the claim expires then (another instance may take it). */
  @Column({ name: 'lease_until', type: 'timestamptz', nullable: true })
  leaseUntil!: Date | null;

  @Column({ name: 'last_status_code', type: 'integer', nullable: true })
  lastStatusCode!: number | null;

  @Column({ name: 'last_error_class', type: 'varchar', length: 24, nullable: true })
  lastErrorClass!: DeliveryErrorClass | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'completed_at', type: 'timestamptz', nullable: true })
  completedAt!: Date | null;
}

/** One POST of a delivery: what the receiver answered (first 1 KB of the body, no headers). */
@Entity({ name: 'webhook_delivery_attempts' })
@Index('webhook_delivery_attempts_delivery_idx', ['deliveryId', 'attempt'])
export class WebhookDeliveryAttemptEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'webhook_delivery_attempts_pkey' })
  id!: string;

  @Column({ name: 'delivery_id', type: 'uuid' })
  deliveryId!: string;

  @ManyToOne(() => WebhookDeliveryEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'delivery_id', foreignKeyConstraintName: 'webhook_delivery_attempts_delivery_fkey' })
  delivery?: WebhookDeliveryEntity;

  @Column({ name: 'company_id', type: 'uuid' })
  companyId!: string;

  @Column({ name: 'endpoint_id', type: 'uuid' })
  endpointId!: string;

  /** 1 for the first attempt of the delivery. */
  @Column({ type: 'integer' })
  attempt!: number;

  @Column({ name: 'started_at', type: 'timestamptz' })
  startedAt!: Date;

  @Column({ name: 'status_code', type: 'integer', nullable: true })
  statusCode!: number | null;

  @Column({ name: 'latency_ms', type: 'integer' })
  latencyMs!: number;

  @Column({ name: 'error_class', type: 'varchar', length: 24, nullable: true })
  errorClass!: DeliveryErrorClass | null;

  /** The first 1 KB of the response body, as text (never its headers). */
  @Column({ name: 'response_snippet', type: 'text', nullable: true })
  responseSnippet!: string | null;

  /** When the next attempt was scheduled after this one (null: none). */
  @Column({ name: 'next_attempt_at', type: 'timestamptz', nullable: true })
  nextAttemptAt!: Date | null;
}
