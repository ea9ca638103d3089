import { type DynamicModule, type ForwardReference, Module, type Type } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuditModule } from './audit/audit.module.js';
import { RedisModule } from './common/redis/redis.module.js';
import { ConfigModule } from './config/config.module.js';
import type { AppConfig } from './config/config.schema.js';
import { dataSourceOptions } from './database/data-source.js';
import { HealthModule } from './health/health.module.js';
import { JobsModule } from './jobs/jobs.module.js';

export interface AppModuleOptions {
  config: AppConfig;
  /** The database to use: DATABASE_URL, or the embedded PostgreSQL's. */
  databaseUrl: string;
  /** Extra modules, for tests. */
  imports?: (Type | DynamicModule | ForwardReference)[];
}

/** Wires the modules, nothing else. */
@Module({})
export class AppModule {
  static forRoot({ config, databaseUrl, imports = [] }: AppModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        TypeOrmModule.forRoot({
          ...dataSourceOptions(databaseUrl, config.DATABASE_POOL_MAX),
          autoLoadEntities: true,
          retryAttempts: 0,
        }),
        RedisModule,
        JobsModule.forRoot(databaseUrl),
        AuditModule,
        HealthModule,
        ...imports,
      ],
    };
  }
}
