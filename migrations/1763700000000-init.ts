import type { MigrationInterface, QueryRunner } from 'typeorm';

export class Init1763700000000 implements MigrationInterface {
  name = 'Init1763700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "audit_log" (
        "id" uuid NOT NULL DEFAULT gen_random_uuid(),
        "company_id" uuid,
        "actor_type" character varying(16) NOT NULL,
        "actor_id" character varying(64),
        "action" character varying(64) NOT NULL,
        "target_type" character varying(32),
        "target_id" character varying(64),
        "request_id" character varying(64),
        "ip" character varying(64),
        "details" jsonb NOT NULL DEFAULT '{}',
        "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        CONSTRAINT "audit_log_pkey" PRIMARY KEY ("id")
      )`);
    await q.query(`CREATE INDEX "audit_log_company_created_idx" ON "audit_log" ("company_id", "created_at")`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE "audit_log"`);
  }
}
