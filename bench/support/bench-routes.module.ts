import { Controller, Get, Module } from '@nestjs/common';
import { Access } from '../../src/common/access/access.decorators.js';

/** The two routes the API-key benchmark compares: the same work, with and without key authentication. */
export const BENCH_ROUTES = { public: '/__bench/public', key: '/__bench/key' } as const;

/** Bench-only routes (never part of the application): each returns the same small body. */
@Controller('__bench')
export class BenchRoutesController {
  @Get('public')
  @Access.public()
  open() {
    return { ok: true };
  }

  @Get('key')
  @Access.tenant('agent', 'calls:read')
  keyed() {
    return { ok: true };
  }
}

@Module({ controllers: [BenchRoutesController] })
export class BenchRoutesModule {}
