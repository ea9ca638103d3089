import { Controller, Get, Header, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import {
  HealthCheckService,
  type HealthIndicatorFunction,
  type HealthIndicatorResult,
  HealthIndicatorService,
  TypeOrmHealthIndicator,
} from '@nestjs/terminus';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { Access } from '../common/access/access.decorators.js';
import { AppException } from '../common/errors/problem.js';
import { RedisService } from '../common/redis/redis.module.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { AsteriskSupervisor } from '../pbx/asterisk/asterisk-supervisor.service.js';
import { MetricsService } from './metrics.service.js';

const CHECK_TIMEOUT_MS = 1_500;

@ApiTags('operations')
@Controller()
@Access.public()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly db: TypeOrmHealthIndicator,
    private readonly indicators: HealthIndicatorService,
    private readonly redis: RedisService,
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly asterisk: AsteriskSupervisor,
  ) {}

  @Get('health')
  @ApiOperation({ summary: 'Liveness: the process is up', operationId: 'healthLive' })
  @ApiOkResponse({ schema: { example: { status: 'ok', uptimeSeconds: 12.5 } } })
  @ApiProblems()
  live() {
    return { status: 'ok', uptimeSeconds: Math.round(process.uptime() * 10) / 10 };
  }

  @Get('health/ready')
  @ApiOperation({
    summary: 'Readiness: the database (and Redis when REDIS_URL is set) answer',
    description: `Each check has ${CHECK_TIMEOUT_MS} ms. 503 problem+json with \`checks\` naming what is down.`,
    operationId: 'healthReady',
  })
  @ApiOkResponse({
    schema: { example: { status: 'ok', info: { database: { status: 'up' } }, error: {}, details: {} } },
  })
  @ApiProblems(503)
  async ready() {
    const checks: HealthIndicatorFunction[] = [() => this.db.pingCheck('database', { timeout: CHECK_TIMEOUT_MS })];
    if (this.config.REDIS_URL) checks.push(() => this.redisCheck());
    // Informational: a company's unreachable PBX does not make this instance unready.
    if (this.config.ASTERISK_ENABLED) checks.push(() => this.asteriskCheck());
    try {
      return await this.health.check(checks);
    } catch (error) {
      if (!(error instanceof ServiceUnavailableException)) throw error;
      const result = error.getResponse() as { error?: Record<string, unknown>; details?: Record<string, unknown> };
      const down = Object.keys(result.error ?? {});
      throw new AppException('not-ready', 503, `Not ready: ${down.join(', ') || 'a dependency'} unreachable.`, {
        checks: result.details ?? {},
      });
    }
  }

  @Get('metrics')
  @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiOperation({ summary: 'Prometheus metrics (text exposition format)', operationId: 'metrics' })
  @ApiProduces('text/plain')
  @ApiOkResponse({ description: 'Prometheus text format', schema: { type: 'string' } })
  @ApiProblems()
  metricsText(): Promise<string> {
    return this.metrics.registry.metrics();
  }

  /** The AMI connections this instance holds, with their state (always up: see above). */
  private asteriskCheck(): HealthIndicatorResult {
    const held = this.asterisk.held();
    return this.indicators.check('asterisk').up({
      held: held.length,
      connections: held.map((c) => ({ id: c.id, state: c.state, ...(c.reason ? { reason: c.reason } : {}) })),
    });
  }

  private async redisCheck(): Promise<HealthIndicatorResult> {
    const indicator = this.indicators.check('redis');
    try {
      await this.redis.ping(CHECK_TIMEOUT_MS);
      return indicator.up();
    } catch (error) {
      return indicator.down({ message: error instanceof Error ? error.message : 'unreachable' });
    }
  }
}
