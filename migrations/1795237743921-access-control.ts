import type { MigrationInterface, QueryRunner } from 'typeorm';

export class AccessControl1795237743921 implements MigrationInterface {
  name = 'AccessControl1795237743921';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      'CREATE TABLE "refresh_tokens" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "user_id" uuid NOT NULL, "family_id" uuid NOT NULL, "token_hash" character(64) NOT NULL, "expires_at" TIMESTAMP WITH TIME ZONE NOT NULL, "rotated_at" TIMESTAMP WITH TIME ZONE, "revoked_at" TIMESTAMP WITH TIME ZONE, "user_agent" character varying(256), "ip" character varying(64), "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_7d8bee0204106019488c4c50ffa" PRIMARY KEY ("id"))',
    );
    await q.query('CREATE UNIQUE INDEX "refresh_tokens_token_hash_key" ON "refresh_tokens"  ("token_hash") ');
    await q.query('CREATE INDEX "refresh_tokens_user_idx" ON "refresh_tokens"  ("user_id") ');
    await q.query('CREATE INDEX "refresh_tokens_family_idx" ON "refresh_tokens"  ("family_id") ');
    await q.query(
      'CREATE TABLE "companies" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "name" character varying(200) NOT NULL, "slug" character varying(63) NOT NULL, "status" character varying(16) NOT NULL DEFAULT \'active\', "settings" jsonb NOT NULL DEFAULT \'{}\', "suspended_at" TIMESTAMP WITH TIME ZONE, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_d4bc3e82a314fa9e29f652c2c22" PRIMARY KEY ("id"))',
    );
    await q.query('CREATE UNIQUE INDEX "companies_slug_key" ON "companies"  ("slug") ');
    await q.query(
      'CREATE TABLE "api_keys" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "name" character varying(100) NOT NULL, "scopes" text array NOT NULL DEFAULT \'{}\', "key_hash" character(64) NOT NULL, "key_hint" character varying(16) NOT NULL, "previous_key_hash" character(64), "previous_key_hint" character varying(16), "previous_valid_until" TIMESTAMP WITH TIME ZONE, "is_primary" boolean NOT NULL DEFAULT false, "expires_at" TIMESTAMP WITH TIME ZONE, "created_by" uuid, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "rotated_at" TIMESTAMP WITH TIME ZONE, "last_used_at" TIMESTAMP WITH TIME ZONE, "revoked_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "api_keys_id_company_key" UNIQUE ("id", "company_id"), CONSTRAINT "PK_5c8a79801b44bd27b79228e1dad" PRIMARY KEY ("id"))',
    );
    await q.query('CREATE UNIQUE INDEX "api_keys_key_hash_key" ON "api_keys"  ("key_hash") ');
    await q.query(
      'CREATE INDEX "api_keys_previous_key_hash_idx" ON "api_keys"  ("previous_key_hash") WHERE previous_key_hash IS NOT NULL',
    );
    await q.query('CREATE INDEX "api_keys_company_idx" ON "api_keys"  ("company_id", "created_at") ');
    await q.query(
      'CREATE TABLE "api_key_audit" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid NOT NULL, "api_key_id" uuid NOT NULL, "action" character varying(16) NOT NULL, "old_key_hint" character varying(16), "new_key_hint" character varying(16), "actor_type" character varying(16) NOT NULL, "actor_id" character varying(64), "request_id" character varying(64), "details" jsonb NOT NULL DEFAULT \'{}\', "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_582014159735e16f77d1ab68151" PRIMARY KEY ("id"))',
    );
    await q.query('CREATE INDEX "api_key_audit_company_idx" ON "api_key_audit"  ("company_id", "created_at") ');
    await q.query('CREATE INDEX "api_key_audit_key_idx" ON "api_key_audit"  ("api_key_id", "created_at") ');
    await q.query(
      'CREATE TABLE "users" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "company_id" uuid, "email" character varying(254) NOT NULL, "password_hash" character varying(255) NOT NULL, "display_name" character varying(200) NOT NULL, "role" character varying(16) NOT NULL, "preferences" jsonb NOT NULL DEFAULT \'{}\', "last_login_at" TIMESTAMP WITH TIME ZONE, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "users_company_role_check" CHECK ((role = \'superadmin\') = (company_id IS NULL)), CONSTRAINT "PK_a3ffb1c0c8416b9fc6f907b7433" PRIMARY KEY ("id"))',
    );
    await q.query('CREATE UNIQUE INDEX "users_email_key" ON "users"  ("email") ');
    await q.query('CREATE INDEX "users_company_idx" ON "users"  ("company_id", "created_at") ');
    await q.query(
      'ALTER TABLE "refresh_tokens" ADD CONSTRAINT "refresh_tokens_user_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_company_fkey" FOREIGN KEY ("company_id") REFERENCES "companies"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "api_key_audit" ADD CONSTRAINT "api_key_audit_key_fkey" FOREIGN KEY ("api_key_id", "company_id") REFERENCES "api_keys"("id","company_id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
    await q.query(
      'ALTER TABLE "users" ADD CONSTRAINT "users_company_fkey" FOREIGN KEY ("company_id") REFERENCES "companies"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE "users" DROP CONSTRAINT "users_company_fkey"');
    await q.query('ALTER TABLE "api_key_audit" DROP CONSTRAINT "api_key_audit_key_fkey"');
    await q.query('ALTER TABLE "api_keys" DROP CONSTRAINT "api_keys_company_fkey"');
    await q.query('ALTER TABLE "refresh_tokens" DROP CONSTRAINT "refresh_tokens_user_fkey"');
    await q.query('DROP INDEX "public"."users_company_idx"');
    await q.query('DROP INDEX "public"."users_email_key"');
    await q.query('DROP TABLE "users"');
    await q.query('DROP INDEX "public"."api_key_audit_key_idx"');
    await q.query('DROP INDEX "public"."api_key_audit_company_idx"');
    await q.query('DROP TABLE "api_key_audit"');
    await q.query('DROP INDEX "public"."api_keys_company_idx"');
    await q.query('DROP INDEX "public"."api_keys_previous_key_hash_idx"');
    await q.query('DROP INDEX "public"."api_keys_key_hash_key"');
    await q.query('DROP TABLE "api_keys"');
    await q.query('DROP INDEX "public"."companies_slug_key"');
    await q.query('DROP TABLE "companies"');
    await q.query('DROP INDEX "public"."refresh_tokens_family_idx"');
    await q.query('DROP INDEX "public"."refresh_tokens_user_idx"');
    await q.query('DROP INDEX "public"."refresh_tokens_token_hash_key"');
    await q.query('DROP TABLE "refresh_tokens"');
  }
}
