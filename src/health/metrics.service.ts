import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { WebhookInboxProcessorService } from '../webhooks/inbox/webhook-inbox-processor.service.js';

interface PgPool {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
}

/**
 * Prometheus metrics: process, HTTP request durations by route template, database pool, and the
 * webhook inbox (pending rows, age of the oldest, rows processed and failed by this instance).
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  private readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;

  constructor(@InjectDataSource() dataSource: DataSource, inbox: WebhookInboxProcessorService) {
    collectDefaultMetrics({ register: this.registry });
    this.httpDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by method, route template and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    const pool = () => (dataSource.driver as unknown as { master?: PgPool }).master;
    const gauge = (name: string, help: string, read: (p: PgPool) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const p = pool();
          this.set(p ? read(p) : 0);
        },
      });
    gauge('db_pool_connections_total', 'Connections open in the database pool', (p) => p.totalCount);
    gauge('db_pool_connections_idle', 'Idle connections in the database pool', (p) => p.idleCount);
    gauge('db_pool_requests_waiting', 'Queries waiting for a database connection', (p) => p.waitingCount);

    // One query per scrape, shared by the two gauges (both read it in the same collection).
    let backlog: ReturnType<WebhookInboxProcessorService['backlog']> | null = null;
    const readBacklog = () => (backlog ??= inbox.backlog().finally(() => setImmediate(() => (backlog = null))));
    new Gauge({
      name: 'webhook_inbox_pending',
      help: 'Webhook inbox rows waiting to be processed (all instances)',
      registers: [this.registry],
      async collect() {
        this.set((await readBacklog()).pending);
      },
    });
    new Gauge({
      name: 'webhook_inbox_oldest_pending_age_seconds',
      help: 'Age of the oldest pending webhook inbox row (0 when none)',
      registers: [this.registry],
      async collect() {
        this.set((await readBacklog()).oldestAgeSeconds);
      },
    });
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          // A counter read from the processor's own count (monotonic for the process's life).
          this.reset();
          this.inc(read());
        },
      });
    counter(
      'webhook_inbox_processed_total',
      'Webhook inbox rows processed by this instance',
      () => inbox.processedCount,
    );
    counter('webhook_inbox_failed_total', 'Webhook inbox rows this instance marked failed', () => inbox.failedCount);
  }

  observeHttp(method: string, route: string, statusCode: number, seconds: number): void {
    this.httpDuration.observe({ method, route, status_code: String(statusCode) }, seconds);
  }
}
