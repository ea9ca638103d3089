import { type DynamicModule, Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { dataSourceOptions } from './data-source.js';
import { DATABASE_URL } from './database.tokens.js';
import { NotificationsService } from './notifications.service.js';

@Global()
@Module({})
export class DatabaseModule {
  static forRoot(databaseUrl: string, poolMax: number): DynamicModule {
    return {
      module: DatabaseModule,
      imports: [
        TypeOrmModule.forRoot({ ...dataSourceOptions(databaseUrl, poolMax), autoLoadEntities: true, retryAttempts: 0 }),
      ],
      providers: [{ provide: DATABASE_URL, useValue: databaseUrl }, NotificationsService],
      exports: [DATABASE_URL, NotificationsService],
    };
  }
}
