import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Outbound webhook deliveries (issue 12): one row per event and endpoint (fanned out from
 * company_events; replays, manual retries and tests have their own rows), claimed in batches
 * with a lease, and the log of every attempt.
 */
export class WebhookDeliveries1795260100000 implements MigrationInterface {
  name = 'WebhookDeliveries1795260100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      'CREATE TABLE "webhook_deliveries" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "endpoint_id" uuid NOT NULL, "event_id" uuid NOT NULL, "event_type" character varying(32) NOT NULL, "event_seq" bigint NOT NULL, "body" text NOT NULL, "origin" character varying(8) NOT NULL, "status" character varying(12) NOT NULL DEFAULT \'pending\', "attempts" integer NOT NULL DEFAULT \'0\', "next_attempt_at" TIMESTAMP WITH TIME ZONE, "lease_until" TIMESTAMP WITH TIME ZONE, "last_status_code" integer, "last_error_class" character varying(24), "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "completed_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "webhook_deliveries_pkey" PRIMARY KEY ("id"))',
    );
    await q.query(
      'CREATE UNIQUE INDEX "webhook_deliveries_event_key" ON "webhook_deliveries"  ("endpoint_id", "event_id") WHERE origin = \'event\'',
    );
    await q.query(
      'CREATE INDEX "webhook_deliveries_due_idx" ON "webhook_deliveries"  ("endpoint_id", "next_attempt_at") WHERE status = \'pending\'',
    );
    await q.query(
      'CREATE INDEX "webhook_deliveries_lease_idx" ON "webhook_deliveries"  ("lease_until") WHERE status = \'delivering\'',
    );
    await q.query(
      'CREATE INDEX "webhook_deliveries_log_idx" ON "webhook_deliveries"  ("endpoint_id", "created_at", "id") ',
    );
    await q.query(
      'CREATE INDEX "webhook_deliveries_completed_idx" ON "webhook_deliveries"  ("completed_at") WHERE completed_at IS NOT NULL',
    );
    await q.query(
      'CREATE TABLE "webhook_delivery_attempts" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "delivery_id" uuid NOT NULL, "company_id" uuid NOT NULL, "endpoint_id" uuid NOT NULL, "attempt" integer NOT NULL, "started_at" TIMESTAMP WITH TIME ZONE NOT NULL, "status_code" integer, "latency_ms" integer NOT NULL, "error_class" character varying(24), "response_snippet" text, "next_attempt_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "webhook_delivery_attempts_pkey" PRIMARY KEY ("id"))',
    );
    await q.query(
      'CREATE INDEX "webhook_delivery_attempts_delivery_idx" ON "webhook_delivery_attempts"  ("delivery_id", "attempt") ',
    );
    await q.query(
      'ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_endpoint_fkey" FOREIGN KEY ("endpoint_id") REFERENCES "webhook_endpoints"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "webhook_delivery_attempts" ADD CONSTRAINT "webhook_delivery_attempts_delivery_fkey" FOREIGN KEY ("delivery_id") REFERENCES "webhook_deliveries"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE "webhook_delivery_attempts" DROP CONSTRAINT "webhook_delivery_attempts_delivery_fkey"');
    await q.query('ALTER TABLE "webhook_deliveries" DROP CONSTRAINT "webhook_deliveries_endpoint_fkey"');
    await q.query('DROP INDEX "public"."webhook_delivery_attempts_delivery_idx"');
    await q.query('DROP TABLE "webhook_delivery_attempts"');
    await q.query('DROP INDEX "public"."webhook_deliveries_completed_idx"');
    await q.query('DROP INDEX "public"."webhook_deliveries_log_idx"');
    await q.query('DROP INDEX "public"."webhook_deliveries_lease_idx"');
    await q.query('DROP INDEX "public"."webhook_deliveries_due_idx"');
    await q.query('DROP INDEX "public"."webhook_deliveries_event_key"');
    await q.query('DROP TABLE "webhook_deliveries"');
  }
}
