import { type DynamicModule, Global, Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { DATABASE_URL, JobsService } from './jobs.service.js';

@Global()
@Module({})
export class JobsModule {
  static forRoot(databaseUrl: string): DynamicModule {
    return {
      module: JobsModule,
      imports: [ScheduleModule.forRoot()],
      providers: [{ provide: DATABASE_URL, useValue: databaseUrl }, JobsService],
      exports: [JobsService, DATABASE_URL],
    };
  }
}
