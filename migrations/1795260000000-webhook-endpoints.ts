import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Outbound webhook endpoints (issue 12, "Outbound"): one row per endpoint of a company, with its
 * sealed signing secret (and the previous one during a rotation overlap), event type filter,
 * custom headers, rate limit, health (failing_since, last_success_at, disabled_*) and the last
 * company event seq fanned out to it.
 */
export class WebhookEndpoints1795260000000 implements MigrationInterface {
  name = 'WebhookEndpoints1795260000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      'CREATE TABLE "webhook_endpoints" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "url" character varying(2048) NOT NULL, "description" character varying(500) NOT NULL DEFAULT \'\', "event_types" text array NOT NULL, "enabled" boolean NOT NULL DEFAULT true, "disabled_reason" character varying(16), "disabled_at" TIMESTAMP WITH TIME ZONE, "secret_sealed" text NOT NULL, "secret_hint" character varying(16) NOT NULL, "previous_secret_sealed" text, "previous_secret_expires_at" TIMESTAMP WITH TIME ZONE, "rate_limit_per_second" integer, "headers" jsonb NOT NULL DEFAULT \'{}\', "failing_since" TIMESTAMP WITH TIME ZONE, "last_success_at" TIMESTAMP WITH TIME ZONE, "fanout_seq" bigint NOT NULL DEFAULT \'0\', "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "webhook_endpoints_pkey" PRIMARY KEY ("id"))',
    );
    await q.query(
      'CREATE INDEX "webhook_endpoints_company_idx" ON "webhook_endpoints" ("company_id", "created_at", "id") ',
    );
    await q.query(
      'ALTER TABLE "webhook_endpoints" ADD CONSTRAINT "webhook_endpoints_company_fkey" FOREIGN KEY ("company_id") REFERENCES "companies"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE "webhook_endpoints" DROP CONSTRAINT "webhook_endpoints_company_fkey"');
    await q.query('DROP INDEX "public"."webhook_endpoints_company_idx"');
    await q.query('DROP TABLE "webhook_endpoints"');
  }
}
