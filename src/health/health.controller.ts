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
import { RedisService } from '../common/redis/redis.module.js';
import { ApiProblems } from '../common/swagger/api-problems.js';
import { AsteriskSupervisor } from '../pbx/asterisk/asterisk-supervisor.service.js';
import { WebhookInboxProcessorService } from '../webhooks/inbox/webhook-inbox-processor.service.js';
import { healthError } from './health.errors.js';
import { LifecycleService } from './lifecycle.service.js';
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
    private readonly lifecycle: LifecycleService,
    private readonly inbox: WebhookInboxProcessorService,
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
    summary: 'Readiness: the database (and Redis when REDIS_URL is set) answer, and the instance is not stopping',
    description: `Each check has ${CHECK_TIMEOUT_MS} ms. 503 problem+json with \`checks\` naming what is down.`,
    operationId: 'healthReady',
  })
  @ApiOkResponse({
    schema: { example: { status: 'ok', info: { database: { status: 'up' } }, error: {}, details: {} } },
  })
  @ApiProblems(503)
  async ready() {
    if (this.lifecycle.draining) {
      throw healthError('not-ready', 'Not ready: this instance is stopping (finishing the requests in flight).', {
        checks: { lifecycle: { status: 'down', message: 'stopping' } },
      });
    }
    const checks: HealthIndicatorFunction[] = [() => this.db.pingCheck('database', { timeout: CHECK_TIMEOUT_MS })];
    if (this.config.REDIS_URL) checks.push(() => this.redisCheck());
    // Informational: a company's unreachable PBX does not make this instance unready.
    if (this.config.ASTERISK_ENABLED) checks.push(() => this.asteriskCheck());
    checks.push(() => this.webhookBacklogCheck());
    try {
      return await this.health.check(checks);
    } catch (error) {
      if (!(error instanceof ServiceUnavailableException)) throw error;
      const result = error.getResponse() as { error?: Record<string, unknown>; details?: Record<string, unknown> };
      const down = Object.keys(result.error ?? {});
      throw healthError('not-ready', `Not ready: ${down.join(', ') || 'a dependency'} unreachable.`, {
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

  /**
   * The webhook inbox's backlog: pending rows and the age of the oldest. Past
   * WEBHOOK_BACKLOG_THRESHOLD it says `degraded: true` but stays up (200): taking the instance out
   * of the load balancer would stop it accepting webhooks and make the backlog no smaller (the
   * processing is shared by every instance through the database); alerting reads it, or /metrics.
   */
  private async webhookBacklogCheck(): Promise<HealthIndicatorResult> {
    let backlog: Awaited<ReturnType<WebhookInboxProcessorService['backlog']>>;
    try {
      backlog = await this.inbox.backlog();
    } catch {
      // Informational like the rest of this check: the database check says why it is unreadable.
      return this.indicators.check('webhookBacklog').up({ known: false });
    }
    const threshold = this.config.WEBHOOK_BACKLOG_THRESHOLD;
    return this.indicators.check('webhookBacklog').up({ ...backlog, threshold, degraded: backlog.pending > threshold });
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
