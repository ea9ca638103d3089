import type { MigrationInterface, QueryRunner } from 'typeorm';

export class PbxConnectionRuntimeState1795245966395 implements MigrationInterface {
  name = 'PbxConnectionRuntimeState1795245966395';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE "pbx_connections" ADD "runtime_state" character varying(16)');
    await q.query('ALTER TABLE "pbx_connections" ADD "runtime_reason" text');
    await q.query('ALTER TABLE "pbx_connections" ADD "runtime_holder" character varying(200)');
    await q.query('ALTER TABLE "pbx_connections" ADD "runtime_at" TIMESTAMP WITH TIME ZONE');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE "pbx_connections" DROP COLUMN "runtime_at"');
    await q.query('ALTER TABLE "pbx_connections" DROP COLUMN "runtime_holder"');
    await q.query('ALTER TABLE "pbx_connections" DROP COLUMN "runtime_reason"');
    await q.query('ALTER TABLE "pbx_connections" DROP COLUMN "runtime_state"');
  }
}
