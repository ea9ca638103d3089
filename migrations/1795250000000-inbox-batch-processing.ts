import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The inbox processed in batches claimed in the transaction that applies them (issue 11 §6):
 * - `seq`: the order rows were written in (one group-commit INSERT gives its rows one received_at);
 * - `call_key` and `partition`: the call a row belongs to, set at ingest; a partition is held by
 *   one transaction at a time (advisory lock), so one call's rows are applied in order across
 *   workers and instances;
 * - `records`: the canonical records the vendor mapper produced at ingest (mapped once);
 * - `next_attempt_at`: the backoff of a row that failed; `locked_until` (the 60 s lease) goes: a
 *   claim is a row lock in the applying transaction, and a crash rolls it back.
 */
export class InboxBatchProcessing1795250000000 implements MigrationInterface {
  name = 'InboxBatchProcessing1795250000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE "webhook_inbox" ADD "seq" BIGSERIAL NOT NULL');
    await q.query('ALTER TABLE "webhook_inbox" ADD "call_key" character varying(300)');
    await q.query('ALTER TABLE "webhook_inbox" ADD "partition" smallint NOT NULL DEFAULT \'0\'');
    await q.query('ALTER TABLE "webhook_inbox" ADD "records" jsonb');
    await q.query('ALTER TABLE "webhook_inbox" ADD "next_attempt_at" TIMESTAMP WITH TIME ZONE');
    await q.query('ALTER TABLE "webhook_inbox" DROP COLUMN "locked_until"');
    await q.query(
      'CREATE INDEX "webhook_inbox_pending_partition_idx" ON "webhook_inbox"  ("partition", "seq") WHERE status = \'pending\'',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX "public"."webhook_inbox_pending_partition_idx"');
    await q.query('ALTER TABLE "webhook_inbox" ADD "locked_until" TIMESTAMP WITH TIME ZONE');
    await q.query('ALTER TABLE "webhook_inbox" DROP COLUMN "next_attempt_at"');
    await q.query('ALTER TABLE "webhook_inbox" DROP COLUMN "records"');
    await q.query('ALTER TABLE "webhook_inbox" DROP COLUMN "partition"');
    await q.query('ALTER TABLE "webhook_inbox" DROP COLUMN "call_key"');
    await q.query('ALTER TABLE "webhook_inbox" DROP COLUMN "seq"');
  }
}
