import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The generic incoming webhook (issue 12, "Inbound"):
 * - `webhook_incoming_secrets`: one Standard Webhooks secret per company (sealed), with the
 *   previous one and the end of its overlap after a rotation;
 * - `webhook_inbox.connection_id` becomes nullable: generic rows have no connection, and are
 *   unique per (company, webhook-id) instead (a partial unique index, the ON CONFLICT target of
 *   the inbox writer for them).
 */
export class IncomingWebhooks1795260200000 implements MigrationInterface {
  name = 'IncomingWebhooks1795260200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      'CREATE TABLE "webhook_incoming_secrets" ("company_id" uuid NOT NULL, "secret_sealed" text NOT NULL, "hint" character varying(32) NOT NULL, "previous_secret_sealed" text, "previous_hint" character varying(32), "previous_expires_at" TIMESTAMP WITH TIME ZONE, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "rotated_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "webhook_incoming_secrets_pkey" PRIMARY KEY ("company_id"))',
    );
    await q.query(
      'ALTER TABLE "webhook_incoming_secrets" ADD CONSTRAINT "webhook_incoming_secrets_company_fkey" FOREIGN KEY ("company_id") REFERENCES "companies"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query('ALTER TABLE "webhook_inbox" ALTER COLUMN "connection_id" DROP NOT NULL');
    await q.query(
      'CREATE UNIQUE INDEX "webhook_inbox_company_event_key" ON "webhook_inbox"  ("company_id", "event_id") WHERE connection_id IS NULL',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX "public"."webhook_inbox_company_event_key"');
    // Rows without a connection cannot stay in a table that requires one.
    await q.query('DELETE FROM "webhook_inbox" WHERE "connection_id" IS NULL');
    await q.query('ALTER TABLE "webhook_inbox" ALTER COLUMN "connection_id" SET NOT NULL');
    await q.query('ALTER TABLE "webhook_incoming_secrets" DROP CONSTRAINT "webhook_incoming_secrets_company_fkey"');
    await q.query('DROP TABLE "webhook_incoming_secrets"');
  }
}
