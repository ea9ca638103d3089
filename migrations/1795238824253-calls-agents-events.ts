import type { MigrationInterface, QueryRunner } from 'typeorm';

export class CallsAgentsEvents1795238824253 implements MigrationInterface {
  name = 'CallsAgentsEvents1795238824253';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      'CREATE TABLE "agents" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "user_id" uuid, "display_name" character varying(200) NOT NULL, "extension" character varying(32), "skills" text array NOT NULL DEFAULT \'{}\', "status" character varying(16) NOT NULL DEFAULT \'offline\', "status_changed_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "deleted_at" TIMESTAMP WITH TIME ZONE, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "agents_id_company_key" UNIQUE ("id", "company_id"), CONSTRAINT "PK_9c653f28ae19c5884d5baf6a1d9" PRIMARY KEY ("id"))',
    );
    await q.query(
      'CREATE UNIQUE INDEX "agents_user_key" ON "agents"  ("user_id") WHERE deleted_at IS NULL AND user_id IS NOT NULL',
    );
    await q.query(
      'CREATE UNIQUE INDEX "agents_company_extension_key" ON "agents"  ("company_id", "extension") WHERE deleted_at IS NULL AND extension IS NOT NULL',
    );
    await q.query('CREATE INDEX "agents_company_idx" ON "agents"  ("company_id", "created_at") ');
    await q.query(
      'CREATE TABLE "user_mappings" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "provider" character varying(16) NOT NULL, "external_id" character varying(128) NOT NULL, "agent_id" uuid, "crm_user_id" character varying(254), "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "user_mappings_provider_external_key" UNIQUE ("company_id", "provider", "external_id"), CONSTRAINT "PK_3d77ed0404f62ca7198fb3d46fa" PRIMARY KEY ("id"))',
    );
    await q.query('CREATE INDEX "user_mappings_crm_idx" ON "user_mappings"  ("company_id", "crm_user_id") ');
    await q.query('CREATE INDEX "user_mappings_company_idx" ON "user_mappings"  ("company_id", "created_at") ');
    await q.query(
      'CREATE TABLE "calls" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "provider" character varying(16) NOT NULL, "connection_id" uuid, "provider_call_id" character varying(128) NOT NULL, "call_key" character varying(200) NOT NULL, "direction" character varying(10) NOT NULL, "from_number" character varying(32), "to_number" character varying(32), "caller_name" character varying(200), "status" character varying(16) NOT NULL, "agent_id" uuid, "started_at" TIMESTAMP WITH TIME ZONE NOT NULL, "ringing_at" TIMESTAMP WITH TIME ZONE, "answered_at" TIMESTAMP WITH TIME ZONE, "ended_at" TIMESTAMP WITH TIME ZONE, "ring_seconds" integer, "talk_seconds" integer, "duration_seconds" integer, "end_reason" character varying(16), "hangup_cause" character varying(128), "recording_url" text, "crm_contact" jsonb, "ai" jsonb, "tags" text array NOT NULL DEFAULT \'{}\', "notes" text, "disposition" character varying(64), "state" jsonb NOT NULL DEFAULT \'{}\', "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "calls_company_call_key" UNIQUE ("company_id", "call_key"), CONSTRAINT "calls_id_company_key" UNIQUE ("id", "company_id"), CONSTRAINT "PK_d9171d91f8dd1a649659f1b6a20" PRIMARY KEY ("id"))',
    );
    await q.query(
      'CREATE INDEX "calls_active_idx" ON "calls"  ("company_id", "started_at") WHERE status IN (\'queued\', \'ringing\', \'in_progress\')',
    );
    await q.query(
      'CREATE INDEX "calls_company_to_started_idx" ON "calls"  ("company_id", "to_number", "started_at", "id") ',
    );
    await q.query(
      'CREATE INDEX "calls_company_from_started_idx" ON "calls"  ("company_id", "from_number", "started_at", "id") ',
    );
    await q.query(
      'CREATE INDEX "calls_company_agent_started_idx" ON "calls"  ("company_id", "agent_id", "started_at", "id") ',
    );
    await q.query(
      'CREATE INDEX "calls_company_status_started_idx" ON "calls"  ("company_id", "status", "started_at", "id") ',
    );
    await q.query('CREATE INDEX "calls_company_started_idx" ON "calls"  ("company_id", "started_at", "id") ');
    await q.query(
      'CREATE TABLE "call_events" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "call_id" uuid NOT NULL, "event_key" character varying(200) NOT NULL, "kind" character varying(16) NOT NULL, "at" TIMESTAMP WITH TIME ZONE NOT NULL, "data" jsonb NOT NULL DEFAULT \'{}\', "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "call_events_call_event_key" UNIQUE ("call_id", "event_key"), CONSTRAINT "PK_ae7349495543762c8be7de28b7f" PRIMARY KEY ("id"))',
    );
    await q.query('CREATE INDEX "call_events_call_at_idx" ON "call_events"  ("call_id", "at") ');
    await q.query(
      'CREATE TABLE "company_events" ("company_id" uuid NOT NULL, "seq" bigint NOT NULL, "event_id" uuid NOT NULL, "type" character varying(32) NOT NULL, "occurred_at" TIMESTAMP WITH TIME ZONE NOT NULL, "agent_id" uuid, "data" jsonb NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_13b0e50558a1a64aaf33a47526b" PRIMARY KEY ("company_id", "seq"))',
    );
    await q.query('CREATE INDEX "company_events_created_idx" ON "company_events"  ("created_at") ');
    await q.query(
      'CREATE TABLE "event_counters" ("company_id" uuid NOT NULL, "last_seq" bigint NOT NULL, CONSTRAINT "PK_0932b9c24d16cd87406de2b9843" PRIMARY KEY ("company_id"))',
    );
    await q.query(
      'ALTER TABLE "agents" ADD CONSTRAINT "agents_company_fkey" FOREIGN KEY ("company_id") REFERENCES "companies"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "agents" ADD CONSTRAINT "agents_user_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "user_mappings" ADD CONSTRAINT "user_mappings_company_fkey" FOREIGN KEY ("company_id") REFERENCES "companies"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "user_mappings" ADD CONSTRAINT "user_mappings_agent_fkey" FOREIGN KEY ("agent_id", "company_id") REFERENCES "agents"("id","company_id") ON DELETE NO ACTION ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "call_events" ADD CONSTRAINT "call_events_call_fkey" FOREIGN KEY ("call_id", "company_id") REFERENCES "calls"("id","company_id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE "call_events" DROP CONSTRAINT "call_events_call_fkey"');
    await q.query('ALTER TABLE "user_mappings" DROP CONSTRAINT "user_mappings_agent_fkey"');
    await q.query('ALTER TABLE "user_mappings" DROP CONSTRAINT "user_mappings_company_fkey"');
    await q.query('ALTER TABLE "agents" DROP CONSTRAINT "agents_user_fkey"');
    await q.query('ALTER TABLE "agents" DROP CONSTRAINT "agents_company_fkey"');
    await q.query('DROP TABLE "event_counters"');
    await q.query('DROP INDEX "public"."company_events_created_idx"');
    await q.query('DROP TABLE "company_events"');
    await q.query('DROP INDEX "public"."call_events_call_at_idx"');
    await q.query('DROP TABLE "call_events"');
    await q.query('DROP INDEX "public"."calls_company_started_idx"');
    await q.query('DROP INDEX "public"."calls_company_status_started_idx"');
    await q.query('DROP INDEX "public"."calls_company_agent_started_idx"');
    await q.query('DROP INDEX "public"."calls_company_from_started_idx"');
    await q.query('DROP INDEX "public"."calls_company_to_started_idx"');
    await q.query('DROP INDEX "public"."calls_active_idx"');
    await q.query('DROP TABLE "calls"');
    await q.query('DROP INDEX "public"."user_mappings_company_idx"');
    await q.query('DROP INDEX "public"."user_mappings_crm_idx"');
    await q.query('DROP TABLE "user_mappings"');
    await q.query('DROP INDEX "public"."agents_company_idx"');
    await q.query('DROP INDEX "public"."agents_company_extension_key"');
    await q.query('DROP INDEX "public"."agents_user_key"');
    await q.query('DROP TABLE "agents"');
  }
}
