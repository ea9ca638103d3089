import type { MigrationInterface, QueryRunner } from 'typeorm';

export class PbxConnectionsWebhooksMessages1795244535843 implements MigrationInterface {
  name = 'PbxConnectionsWebhooksMessages1795244535843';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      'CREATE TABLE "messages" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "connection_id" uuid NOT NULL, "provider" character varying(16) NOT NULL, "provider_message_id" character varying(200) NOT NULL, "direction" character varying(8) NOT NULL, "from_number" character varying(32), "to_number" character varying(32), "text" text NOT NULL, "status" character varying(32), "agent_id" uuid, "sent_at" TIMESTAMP WITH TIME ZONE NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "messages_connection_provider_key" UNIQUE ("connection_id", "provider_message_id"), CONSTRAINT "PK_18325f38ae6de43878487eff986" PRIMARY KEY ("id"))',
    );
    await q.query(
      'CREATE INDEX "messages_company_agent_sent_idx" ON "messages"  ("company_id", "agent_id", "sent_at", "id") ',
    );
    await q.query('CREATE INDEX "messages_company_sent_idx" ON "messages"  ("company_id", "sent_at", "id") ');
    await q.query(
      'CREATE TABLE "voicemails" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "connection_id" uuid NOT NULL, "provider" character varying(16) NOT NULL, "provider_voicemail_id" character varying(200) NOT NULL, "call_id" uuid, "agent_id" uuid, "from_number" character varying(32), "to_number" character varying(32), "duration_seconds" integer, "recording_url" text, "transcription" text, "received_at" TIMESTAMP WITH TIME ZONE NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "voicemails_connection_provider_key" UNIQUE ("connection_id", "provider_voicemail_id"), CONSTRAINT "PK_73302c612477dd103d8dcc88060" PRIMARY KEY ("id"))',
    );
    await q.query(
      'CREATE INDEX "voicemails_company_agent_received_idx" ON "voicemails"  ("company_id", "agent_id", "received_at", "id") ',
    );
    await q.query(
      'CREATE INDEX "voicemails_company_received_idx" ON "voicemails"  ("company_id", "received_at", "id") ',
    );
    await q.query(
      'CREATE TABLE "oauth_states" ("state_hash" character(64) NOT NULL, "company_id" uuid NOT NULL, "connection_id" uuid NOT NULL, "verifier_sealed" text NOT NULL, "return_to" text, "expires_at" TIMESTAMP WITH TIME ZONE NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_5defe4681c33ccfc0f935f51398" PRIMARY KEY ("state_hash"))',
    );
    await q.query('CREATE INDEX "oauth_states_expires_idx" ON "oauth_states"  ("expires_at") ');
    await q.query(
      'CREATE TABLE "pbx_connections" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "provider" character varying(16) NOT NULL, "name" character varying(100) NOT NULL, "settings" jsonb NOT NULL DEFAULT \'{}\', "secrets_sealed" text NOT NULL, "secret_names" text array NOT NULL DEFAULT \'{}\', "deleted_at" TIMESTAMP WITH TIME ZONE, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pbx_connections_id_company_key" UNIQUE ("id", "company_id"), CONSTRAINT "PK_96dbf397a6d4eba99cdeeb729e2" PRIMARY KEY ("id"))',
    );
    await q.query(
      'CREATE UNIQUE INDEX "pbx_connections_company_name_key" ON "pbx_connections"  ("company_id", "name") WHERE deleted_at IS NULL',
    );
    await q.query('CREATE INDEX "pbx_connections_company_idx" ON "pbx_connections"  ("company_id", "created_at") ');
    await q.query(
      'CREATE TABLE "webhook_inbox" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "connection_id" uuid NOT NULL, "provider" character varying(16) NOT NULL, "route" character varying(32) NOT NULL DEFAULT \'\', "kind" character varying(32) NOT NULL, "event_id" character varying(200) NOT NULL, "payload" jsonb NOT NULL, "status" character varying(16) NOT NULL DEFAULT \'pending\', "attempts" integer NOT NULL DEFAULT \'0\', "last_error" text, "locked_until" TIMESTAMP WITH TIME ZONE, "received_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "processed_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "webhook_inbox_connection_event_key" UNIQUE ("connection_id", "event_id"), CONSTRAINT "PK_4b63b831d1a843667b74f0a5fc3" PRIMARY KEY ("id"))',
    );
    await q.query(
      'CREATE INDEX "webhook_inbox_pending_idx" ON "webhook_inbox"  ("received_at") WHERE status = \'pending\'',
    );
    await q.query(
      'CREATE INDEX "webhook_inbox_company_received_idx" ON "webhook_inbox"  ("company_id", "received_at", "id") ',
    );
    await q.query(
      'ALTER TABLE "messages" ADD CONSTRAINT "messages_company_fkey" FOREIGN KEY ("company_id") REFERENCES "companies"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "voicemails" ADD CONSTRAINT "voicemails_company_fkey" FOREIGN KEY ("company_id") REFERENCES "companies"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "oauth_states" ADD CONSTRAINT "oauth_states_connection_fkey" FOREIGN KEY ("connection_id") REFERENCES "pbx_connections"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "pbx_connections" ADD CONSTRAINT "pbx_connections_company_fkey" FOREIGN KEY ("company_id") REFERENCES "companies"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "webhook_inbox" ADD CONSTRAINT "webhook_inbox_connection_fkey" FOREIGN KEY ("connection_id") REFERENCES "pbx_connections"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE "webhook_inbox" DROP CONSTRAINT "webhook_inbox_connection_fkey"');
    await q.query('ALTER TABLE "pbx_connections" DROP CONSTRAINT "pbx_connections_company_fkey"');
    await q.query('ALTER TABLE "oauth_states" DROP CONSTRAINT "oauth_states_connection_fkey"');
    await q.query('ALTER TABLE "voicemails" DROP CONSTRAINT "voicemails_company_fkey"');
    await q.query('ALTER TABLE "messages" DROP CONSTRAINT "messages_company_fkey"');
    await q.query('DROP INDEX "public"."webhook_inbox_company_received_idx"');
    await q.query('DROP INDEX "public"."webhook_inbox_pending_idx"');
    await q.query('DROP TABLE "webhook_inbox"');
    await q.query('DROP INDEX "public"."pbx_connections_company_idx"');
    await q.query('DROP INDEX "public"."pbx_connections_company_name_key"');
    await q.query('DROP TABLE "pbx_connections"');
    await q.query('DROP INDEX "public"."oauth_states_expires_idx"');
    await q.query('DROP TABLE "oauth_states"');
    await q.query('DROP INDEX "public"."voicemails_company_received_idx"');
    await q.query('DROP INDEX "public"."voicemails_company_agent_received_idx"');
    await q.query('DROP TABLE "voicemails"');
    await q.query('DROP INDEX "public"."messages_company_sent_idx"');
    await q.query('DROP INDEX "public"."messages_company_agent_sent_idx"');
    await q.query('DROP TABLE "messages"');
  }
}
