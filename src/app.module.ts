import { type DynamicModule, type ForwardReference, Module, type Type } from '@nestjs/common';
import { AuditModule } from './audit/audit.module.js';
import { RedisModule } from './common/redis/redis.module.js';
import { ConfigModule } from './config/config.module.js';
import type { ResolvedConfig } from './config/config.schema.js';
import { DatabaseModule } from './database/database.module.js';
import { AgentsModule } from './agents/agents.module.js';
import { AuthModule } from './auth/auth.module.js';
import { CallsModule } from './calls/calls.module.js';
import { ClickToCallModule } from './calls/click-to-call/click-to-call.module.js';
import { EventsModule } from './events/events.module.js';
import { GatewayModule } from './gateway/gateway.module.js';
import { RateLimitModule } from './common/rate-limit/rate-limit.module.js';
import { TenantsModule } from './tenants/tenants.module.js';
import { UsersModule } from './users/users.module.js';
import { HealthModule } from './health/health.module.js';
import { JobsModule } from './jobs/jobs.module.js';
import { MessagesModule } from './messages/messages.module.js';
import { PbxModule } from './pbx/pbx.module.js';
import { WebhooksModule } from './webhooks/webhooks.module.js';

export interface AppModuleOptions {
  config: ResolvedConfig;
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
        DatabaseModule.forRoot(databaseUrl, config.DATABASE_POOL_MAX),
        RedisModule,
        RateLimitModule,
        JobsModule.forRoot(),
        AuditModule,
        TenantsModule,
        UsersModule,
        AuthModule,
        EventsModule,
        AgentsModule,
        CallsModule,
        GatewayModule,
        MessagesModule,
        PbxModule,
        ClickToCallModule,
        WebhooksModule,
        HealthModule,
        ...imports,
      ],
    };
  }
}
