import { Inject, Injectable, Logger } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AuditService } from '../../audit/audit.service.js';
import { actorOf, type Tenant } from '../../common/access/principal.js';
import { type CursorPage, keysetPage } from '../../common/pagination.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import type { EventEnvelope } from '../../events/event-envelope.js';
import { EVENT_RETENTION_HOURS } from '../../events/events.service.js';
import { WebhookEndpointsService } from '../endpoints/webhook-endpoints.service.js';
import type {
  ReplayResultDto,
  ReplayWebhookEventsDto,
  WebhookDeliveryAttemptDto,
  WebhookDeliveryDetailDto,
  WebhookDeliveryDto,
  WebhookDeliveryListQuery,
  WebhookTestResultDto,
} from './dto/webhook-deliveries.dto.js';
import { WebhookClock } from './webhook-clock.js';
import { deliveriesError } from './webhook-deliveries.errors.js';
import { WebhookDeliveryAttemptEntity, WebhookDeliveryEntity } from './webhook-delivery.entity.js';
import { rowsOf, WebhookDispatcherService } from './webhook-dispatcher.service.js';

/** Completed deliveries deleted per statement by the retention sweep. */
const SWEEP_BATCH = 5_000;

/**
 * The delivery log of an endpoint (keyset pages, with every attempt), manual retries, replays of
 * stored events, and test sends. Every route first loads the endpoint through
 * WebhookEndpointsService.get: another company's endpoint is a 404.
 */
@Injectable()
export class WebhookDeliveriesService {
  private readonly logger = new Logger(WebhookDeliveriesService.name);

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly endpoints: WebhookEndpointsService,
    private readonly dispatcher: WebhookDispatcherService,
    private readonly audit: AuditService,
    private readonly clock: WebhookClock,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
  ) {}

  async list(
    companyId: string,
    endpointId: string,
    query: WebhookDeliveryListQuery,
  ): Promise<CursorPage<WebhookDeliveryDto>> {
    await this.endpoints.get(companyId, endpointId);
    const qb = this.dataSource
      .getRepository(WebhookDeliveryEntity)
      .createQueryBuilder('d')
      .where('d.endpoint_id = :endpointId AND d.company_id = :companyId', { endpointId, companyId });
    if (query.status) qb.andWhere('d.status = :status', { status: query.status });
    if (query.eventType) qb.andWhere('d.event_type = :eventType', { eventType: query.eventType });
    if (query.since) qb.andWhere('d.created_at >= :since', { since: query.since });
    if (query.until) qb.andWhere('d.created_at < :until', { until: query.until });
    const page = await keysetPage(qb, 'd', 'created_at', query, (d) => d);
    const attempts = await this.attemptsOf(page.data.map((d) => d.id));
    return { data: page.data.map((d) => toDto(d, attempts.get(d.id) ?? [])), next: page.next };
  }

  async get(companyId: string, endpointId: string, deliveryId: string): Promise<WebhookDeliveryDetailDto> {
    await this.endpoints.get(companyId, endpointId);
    const row = await this.find(companyId, endpointId, deliveryId);
    const attempts = await this.attemptsOf([row.id]);
    return { ...toDto(row, attempts.get(row.id) ?? []), body: row.body };
  }

  /**
   * Sends a delivery again now. A pending one (waiting for its backoff) is due at once; a finished
   * one (failed, or succeeded) gets a new delivery (origin `retry`, same event id and body) with a
   * fresh attempt series; one in flight is a 409.
   */
  async retry(tenant: Tenant, endpointId: string, deliveryId: string): Promise<WebhookDeliveryDetailDto> {
    const { companyId } = tenant;
    await this.endpoints.get(companyId, endpointId);
    const row = await this.find(companyId, endpointId, deliveryId);
    const now = this.clock.now();
    let id = row.id;
    if (row.status === 'delivering') {
      throw deliveriesError(
        'delivery-in-flight',
        'The delivery is being sent right now; retry once its attempt is over.',
      );
    }
    if (row.status === 'pending') {
      const updated = rowsOf<{ id: string }>(
        await this.dataSource.query(
          `UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id = $1 AND status = 'pending' RETURNING id`,
          [row.id, now],
        ),
      );
      if (updated.length === 0) {
        throw deliveriesError(
          'delivery-in-flight',
          'The delivery is being sent right now; retry once its attempt is over.',
        );
      }
    } else {
      const [created] = rowsOf<{ id: string }>(
        await this.dataSource.query(
          `INSERT INTO webhook_deliveries (company_id, endpoint_id, event_id, event_type, event_seq, body, origin, status, next_attempt_at)
           SELECT company_id, endpoint_id, event_id, event_type, event_seq, body, 'retry', 'pending', $2
           FROM webhook_deliveries WHERE id = $1
           RETURNING id`,
          [row.id, now],
        ),
      );
      id = created!.id;
    }
    await this.audit.record({
      companyId,
      ...actorOf(tenant.principal),
      action: 'webhook_delivery.retried',
      targetType: 'webhook_endpoint',
      targetId: endpointId,
      details: { deliveryId: row.id, queued: id, eventId: row.eventId },
    });
    this.dispatcher.wake();
    return this.get(companyId, endpointId, id);
  }

  /**
   * Queues the company's stored events of a window (by the time they were stored) for the endpoint
   * again (origin `replay`): the given types, or the endpoint's own filter. Bounded by
   * WEBHOOK_REPLAY_MAX_EVENTS and by how long events are kept.
   */
  async replay(tenant: Tenant, endpointId: string, dto: ReplayWebhookEventsDto): Promise<ReplayResultDto> {
    const { companyId } = tenant;
    const endpoint = await this.endpoints.get(companyId, endpointId);
    const now = this.clock.now();
    const since = dto.since;
    const until = dto.until ?? now;
    if (until.getTime() <= since.getTime()) {
      throw deliveriesError('replay-window-invalid', '`until` must be after `since`.', { field: 'until' });
    }
    const kept = new Date(Date.now() - EVENT_RETENTION_HOURS * 3_600_000);
    if (since.getTime() < kept.getTime()) {
      throw deliveriesError(
        'replay-window-invalid',
        `\`since\` is older than the events kept (${EVENT_RETENTION_HOURS} h): the earliest is ${kept.toISOString()}.`,
        { field: 'since', earliest: kept.toISOString() },
      );
    }
    const patterns = dto.types ?? endpoint.eventTypes;
    const likes = patterns.map((p) => (p === '*' ? '%' : p.replace(/_/g, '\\_').replace(/\.\*$/, '.%')));
    const max = this.config.WEBHOOK_REPLAY_MAX_EVENTS;
    const events = (await this.dataSource.query(
      `SELECT seq, event_id, type, occurred_at, agent_id, data FROM company_events
       WHERE company_id = $1 AND created_at >= $2 AND created_at < $3 AND type LIKE ANY($4::text[])
       ORDER BY seq LIMIT $5`,
      [companyId, since, until, likes, max + 1],
    )) as {
      seq: string;
      event_id: string;
      type: string;
      occurred_at: Date;
      agent_id: string | null;
      data: Record<string, unknown>;
    }[];
    if (events.length > max) {
      throw deliveriesError(
        'replay-too-large',
        `The window holds more than ${max} events (WEBHOOK_REPLAY_MAX_EVENTS): replay a shorter one.`,
        { field: 'since', max },
      );
    }
    if (events.length > 0) {
      const bodies = events.map((ev) =>
        JSON.stringify({
          id: ev.event_id,
          type: ev.type,
          companyId,
          seq: Number(ev.seq),
          occurredAt: ev.occurred_at.toISOString(),
          agentId: ev.agent_id,
          data: ev.data,
        } satisfies Omit<EventEnvelope, 'type'> & { type: string }),
      );
      await this.dataSource.query(
        `INSERT INTO webhook_deliveries (company_id, endpoint_id, event_id, event_type, event_seq, body, origin, status, next_attempt_at)
         SELECT $1, $2, ev, t, s, b, 'replay', 'pending', $3
         FROM unnest($4::uuid[], $5::varchar[], $6::bigint[], $7::text[]) AS x(ev, t, s, b)`,
        [
          companyId,
          endpointId,
          now,
          events.map((e) => e.event_id),
          events.map((e) => e.type),
          events.map((e) => e.seq),
          bodies,
        ],
      );
    }
    const result: ReplayResultDto = {
      queued: events.length,
      from: events.length > 0 ? Number(events[0]!.seq) : null,
      to: events.length > 0 ? Number(events[events.length - 1]!.seq) : null,
    };
    await this.audit.record({
      companyId,
      ...actorOf(tenant.principal),
      action: 'webhook_endpoint.replayed',
      targetType: 'webhook_endpoint',
      targetId: endpointId,
      details: { since: since.toISOString(), until: until.toISOString(), types: dto.types ?? null, ...result },
    });
    this.dispatcher.wake();
    return result;
  }

  /**
   * Sends a `webhook.test` event (seq 0: not part of the company's stream) to the endpoint now,
   * whether it is enabled or not, and returns the attempt. A test never retries and never counts
   * towards the endpoint's health.
   */
  async test(tenant: Tenant, endpointId: string): Promise<WebhookTestResultDto> {
    const { companyId } = tenant;
    const endpoint = await this.endpoints.get(companyId, endpointId);
    const now = this.clock.now();
    const envelope: EventEnvelope = {
      id: randomUUID(),
      type: 'webhook.test',
      companyId,
      seq: 0,
      occurredAt: now.toISOString(),
      agentId: null,
      data: { endpointId, message: 'A test event from Switchboard.' },
    };
    const body = JSON.stringify(envelope);
    const lease = new Date(now.getTime() + this.config.WEBHOOK_DELIVERY_TIMEOUT_MS + 5_000);
    const [row] = rowsOf<{ id: string }>(
      await this.dataSource.query(
        `INSERT INTO webhook_deliveries (company_id, endpoint_id, event_id, event_type, event_seq, body, origin, status, lease_until)
         VALUES ($1, $2, $3, 'webhook.test', 0, $4, 'test', 'delivering', $5)
         RETURNING id`,
        [companyId, endpointId, envelope.id, body, lease],
      ),
    );
    const outcome = await this.dispatcher.sendNow({
      id: row!.id,
      companyId,
      endpointId,
      eventId: envelope.id,
      eventType: envelope.type,
      body,
      origin: 'test',
      attempts: 0,
      url: endpoint.url,
      headers: endpoint.headers ?? {},
      secrets: this.dispatcher.secretsOf(endpoint),
    });
    return {
      deliveryId: row!.id,
      eventId: envelope.id,
      ok: outcome.status === 'succeeded',
      attempt: {
        attempt: outcome.attempt,
        startedAt: outcome.startedAt.toISOString(),
        statusCode: outcome.statusCode,
        latencyMs: outcome.latencyMs,
        errorClass: outcome.errorClass,
        responseSnippet: outcome.snippet,
        nextAttemptAt: null,
      },
    };
  }

  /** Deletes deliveries (and their attempts) completed longer ago than WEBHOOK_DELIVERY_RETENTION_DAYS. */
  @Cron(CronExpression.EVERY_HOUR)
  async sweep(): Promise<number> {
    const cutoff = new Date(this.clock.now().getTime() - this.config.WEBHOOK_DELIVERY_RETENTION_DAYS * 86_400_000);
    let total = 0;
    for (;;) {
      const deleted = rowsOf<{ id: string }>(
        await this.dataSource.query(
          `DELETE FROM webhook_deliveries WHERE id IN (
             SELECT id FROM webhook_deliveries WHERE completed_at < $1 LIMIT $2
           ) RETURNING id`,
          [cutoff, SWEEP_BATCH],
        ),
      );
      total += deleted.length;
      if (deleted.length < SWEEP_BATCH) break;
    }
    if (total > 0) this.logger.log({ deleted: total }, 'swept old webhook deliveries');
    return total;
  }

  private async find(companyId: string, endpointId: string, deliveryId: string): Promise<WebhookDeliveryEntity> {
    const row = await this.dataSource
      .getRepository(WebhookDeliveryEntity)
      .findOne({ where: { id: deliveryId, endpointId, companyId } });
    if (!row) throw deliveriesError('not-found', 'No such delivery for this endpoint.');
    return row;
  }

  private async attemptsOf(ids: string[]): Promise<Map<string, WebhookDeliveryAttemptDto[]>> {
    const map = new Map<string, WebhookDeliveryAttemptDto[]>();
    if (ids.length === 0) return map;
    const rows = await this.dataSource
      .getRepository(WebhookDeliveryAttemptEntity)
      .createQueryBuilder('a')
      .where('a.delivery_id IN (:...ids)', { ids })
      .orderBy('a.delivery_id')
      .addOrderBy('a.attempt')
      .addOrderBy('a.started_at')
      .getMany();
    for (const a of rows) {
      const list = map.get(a.deliveryId) ?? [];
      list.push({
        attempt: a.attempt,
        startedAt: a.startedAt.toISOString(),
        statusCode: a.statusCode,
        latencyMs: a.latencyMs,
        errorClass: a.errorClass,
        responseSnippet: a.responseSnippet,
        nextAttemptAt: a.nextAttemptAt?.toISOString() ?? null,
      });
      map.set(a.deliveryId, list);
    }
    return map;
  }
}

function toDto(d: WebhookDeliveryEntity, attempts: WebhookDeliveryAttemptDto[]): WebhookDeliveryDto {
  return {
    id: d.id,
    endpointId: d.endpointId,
    eventId: d.eventId,
    eventType: d.eventType,
    eventSeq: Number(d.eventSeq),
    origin: d.origin,
    status: d.status,
    attemptCount: d.attempts,
    nextAttemptAt: d.nextAttemptAt?.toISOString() ?? null,
    lastStatusCode: d.lastStatusCode,
    lastErrorClass: d.lastErrorClass,
    createdAt: d.createdAt.toISOString(),
    completedAt: d.completedAt?.toISOString() ?? null,
    attempts,
  };
}
