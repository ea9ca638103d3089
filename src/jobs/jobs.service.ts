import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import PgBoss from 'pg-boss';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { DATABASE_URL } from '../database/database.tokens.js';

/**
 * Durable jobs on pg-boss, on the same PostgreSQL (schema `pgboss`). CRM call logging and
 * outbound webhook deliveries run here: retries with backoff, dead letters, across instances.
 */
@Injectable()
export class JobsService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(JobsService.name);
  private boss: PgBoss | null = null;
  private stopping = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(DATABASE_URL) private readonly databaseUrl: string,
  ) {}

  async onModuleInit(): Promise<void> {
    if (!this.config.JOBS_ENABLED) return;
    const boss = new PgBoss({
      connectionString: this.databaseUrl,
      schema: 'pgboss',
      max: 4,
      application_name: 'switchboard-jobs',
    });
    boss.on('error', (error: Error) => {
      // While stopping, connections closing under pg-boss are expected, not errors.
      if (this.stopping) this.logger.debug({ err: error }, 'job queue connection closed while stopping');
      else this.logger.error({ err: error }, 'job queue error');
    });
    await boss.start();
    this.boss = boss;
  }

  get started(): boolean {
    return this.boss !== null;
  }

  /** The queue client; throws when jobs are switched off (`JOBS_ENABLED=false`). */
  get queue(): PgBoss {
    if (!this.boss) throw new Error('Jobs are not enabled (JOBS_ENABLED=false)');
    return this.boss;
  }

  async onApplicationShutdown(): Promise<void> {
    const boss = this.boss;
    this.boss = null;
    this.stopping = true;
    // Runs after the grace (SHUTDOWN_GRACE_MS): running jobs get half of what is left of the stop.
    const timeout = Math.max(1_000, (this.config.SHUTDOWN_TIMEOUT_MS - this.config.SHUTDOWN_GRACE_MS) / 2);
    await boss?.stop({ graceful: true, wait: true, timeout });
  }
}
