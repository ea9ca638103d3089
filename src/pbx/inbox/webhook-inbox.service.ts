import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import type { Tenant } from '../../common/access/principal.js';
import { AppException } from '../../common/errors/problem.js';
import { maskDeep } from '../../common/logging/mask.js';
import { type CursorPage, keysetPage } from '../../common/pagination.js';
import { enforce } from '../../common/rate-limit/rate-limit.js';
import { RateLimitService } from '../../common/rate-limit/rate-limit.service.js';
import { CallsService } from '../../calls/calls.service.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import { MessagesService } from '../../messages/messages.service.js';
import { type LoadedConnection, PbxConnectionsService } from '../connections/pbx-connections.service.js';
import { type InboundWebhook, PbxError, type VerifiedWebhook } from '../pbx-provider.js';
import type { InboxItemDto, ListInboxQuery } from './webhook-inbox.dto.js';
import { InboxWriter } from './inbox-writer.js';
import { WebhookInboxEntity } from './webhook-inbox.entity.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** How long a processor holds a claimed row before another may take it (a crash lets go then). */
const CLAIM_SECONDS = 60;
const SWEEP_BATCH = 100;
/** Rows one worker claims and marks together. */
const PROCESS_BATCH = 50;
/** Rows waiting in memory for processing; more are left to the sweeper. */
const MAX_QUEUED = 10_000;

export interface IngestResult {
  duplicate: boolean;
  inboxId: string | null;
  ack: { contentType: string; body: string } | null;
}

interface ClaimedRow {
  id: string;
  company_id: string;
  connection_id: string;
  provider: string;
  kind: string;
  event_id: string;
  payload: unknown;
  attempts: number;
}

/**
 * Provider webhooks, exactly once in effect: verify (401 and nothing stored when it fails), write
 * to the inbox (unique per connection and provider event id) and answer 2xx, then process after
 * the commit. Processing is idempotent (call events by key, voicemails and messages by provider
 * id), so a row processed twice after a crash changes nothing the second time. Rows left pending
 * are claimed again by the sweeper; failures retry with backoff, then end `failed`.
 */
@Injectable()
export class WebhookInboxService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(WebhookInboxService.name);
  private readonly inFlight = new Set<Promise<void>>();
  private sweeper: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly queued: string[] = [];
  private readonly writer: InboxWriter;
  private running = 0;
  /** Tests turn immediate processing off to stand for a crash between commit and processing. */
  processAfterCommit = true;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(WebhookInboxEntity) private readonly inbox: Repository<WebhookInboxEntity>,
    private readonly connections: PbxConnectionsService,
    private readonly calls: CallsService,
    private readonly messages: MessagesService,
    private readonly rateLimits: RateLimitService,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
  ) {
    this.writer = new InboxWriter(dataSource);
  }

  onApplicationBootstrap(): void {
    this.sweeper = setInterval(() => this.track(this.sweep()), this.config.WEBHOOK_SWEEP_INTERVAL_MS);
    this.sweeper.unref();
    // Rows a previous run left behind.
    this.track(this.sweep());
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    clearInterval(this.sweeper);
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  async ingest(
    provider: string,
    connectionId: string,
    route: string,
    request: Omit<InboundWebhook, 'route'>,
    reply?: Parameters<typeof enforce>[1],
  ): Promise<IngestResult> {
    const connection = UUID.test(connectionId) ? await this.connections.loadForWebhook(connectionId) : null;
    const driver = connection && connection.provider === provider ? this.connections.driverOf(connection) : null;
    if (!connection || !driver || !driver.webhookRoutes.includes(route)) {
      throw new AppException('not-found', 404, 'No such webhook endpoint.');
    }
    if (!connection.companyActive) {
      throw new AppException('company-suspended', 403, 'The company of this connection is suspended.');
    }
    enforce(
      await this.rateLimits.hit(`webhook:${connection.id}`, this.config.RATE_LIMIT_WEBHOOK_PER_MIN),
      reply,
      'this connection',
    );
    let verified: VerifiedWebhook;
    try {
      verified = await this.connections.clientOf(connection).verifyWebhook({ ...request, route });
    } catch (error) {
      if (!(error instanceof PbxError)) throw error;
      if (error.code === 'AUTH') {
        this.logger.warn({ connectionId, provider, reason: error.message }, 'webhook refused: not verified');
        throw new AppException('invalid-signature', 401, 'The webhook signature is missing or does not verify.');
      }
      throw new AppException('malformed-webhook', 400, `The webhook cannot be read: ${error.message}`);
    }
    const inboxId = await this.writer.write({
      companyId: connection.companyId,
      connectionId: connection.id,
      provider,
      route,
      kind: verified.kind.slice(0, 32),
      eventId: verified.eventId.slice(0, 200),
      payloadJson: JSON.stringify(verified.payload ?? null),
    });
    // Committed: processing may start; the answer does not wait for it.
    if (inboxId && this.processAfterCommit && !this.stopping) this.schedule(inboxId);
    return { duplicate: inboxId === null, inboxId, ack: driver.webhookAck(route) };
  }

  /**
   * Queues a committed row for processing. At most WEBHOOK_PROCESS_CONCURRENCY rows are processed
   * at once, so the background work leaves the pool's other connections to the webhooks coming in
   * (ingestion must stay fast; processing may lag). Past the queue's bound, rows wait for the
   * sweeper instead of memory.
   */
  private schedule(id: string): void {
    if (this.queued.length >= MAX_QUEUED) return;
    this.queued.push(id);
    this.drain();
  }

  private drain(): void {
    while (!this.stopping && this.running < this.config.WEBHOOK_PROCESS_CONCURRENCY && this.queued.length > 0) {
      const ids = this.queued.splice(0, PROCESS_BATCH);
      this.running++;
      this.track(
        this.processMany(ids).finally(() => {
          this.running--;
          this.drain();
        }),
      );
    }
  }

  /** Claims a pending row and applies what it means; false when it was not claimable. */
  async process(id: string): Promise<boolean> {
    return (await this.processMany([id])) > 0;
  }

  /**
   * Claims the pending rows among `ids` (one UPDATE), applies each in order, and marks those
   * done in one UPDATE: three commits per batch instead of per row. A row that fails is put back
   * with its error and a backoff (2^attempts s, at most 10 minutes), or marked failed. Returns how
   * many rows were claimed.
   */
  async processMany(ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    // An UPDATE … RETURNING answers [rows, affected count] through TypeORM. `status || ''` on
    // purpose: it does not match the partial index of pending rows, so the planner finds the
    // rows by primary key instead of scanning that index (tens of thousands of entries in a burst).
    const [claimed] = (await this.dataSource.query(
      `UPDATE webhook_inbox SET attempts = attempts + 1, locked_until = now() + make_interval(secs => $2)
       WHERE id = ANY($1::uuid[]) AND status || '' = 'pending' AND (locked_until IS NULL OR locked_until < now())
       RETURNING id, company_id, connection_id, provider, kind, event_id, payload, attempts, received_at`,
      [ids, CLAIM_SECONDS],
    )) as [(ClaimedRow & { received_at: Date })[], number];
    // In the order they were received (a call's events in the order the provider sent them).
    claimed.sort((a, b) => a.received_at.getTime() - b.received_at.getTime());
    const done: string[] = [];
    for (const row of claimed) {
      await this.yieldToRequests();
      try {
        await this.apply(row);
        done.push(row.id);
      } catch (error) {
        const message = (error as Error).message.slice(0, 500);
        const failed = row.attempts >= this.config.WEBHOOK_MAX_ATTEMPTS;
        this.logger.warn({ err: error, inboxId: row.id, attempts: row.attempts, failed }, 'webhook processing failed');
        await this.dataSource.query(
          `UPDATE webhook_inbox SET status = $2, last_error = $3,
             locked_until = now() + make_interval(secs => least(600, power(2, attempts)))
           WHERE id = $1`,
          [row.id, failed ? 'failed' : 'pending', message],
        );
      }
    }
    if (done.length > 0) {
      await this.dataSource.query(
        `UPDATE webhook_inbox SET status = 'processed', processed_at = now(), locked_until = NULL, last_error = NULL
         WHERE id = ANY($1::uuid[])`,
        [done],
      );
    }
    return claimed.length;
  }

  /**
   * Background work gives way to requests: while queries wait for a connection of the pool (a
   * burst of incoming webhooks), the next row waits a little (at most about a second), so the
   * answers keep their latency and the processing catches up once the burst is over.
   */
  private async yieldToRequests(): Promise<void> {
    const pool = (this.dataSource.driver as unknown as { master?: { waitingCount: number } }).master;
    for (let i = 0; i < 100 && !this.stopping && (pool?.waitingCount ?? 0) > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Processes rows left pending (older than WEBHOOK_SWEEP_AFTER_MS, not held); returns how many. */
  async sweep(): Promise<number> {
    if (this.stopping) return 0;
    let done = 0;
    try {
      const rows = (await this.dataSource.query(
        `SELECT id FROM webhook_inbox
         WHERE status = 'pending' AND received_at <= now() - make_interval(secs => $1)
           AND (locked_until IS NULL OR locked_until < now())
         ORDER BY received_at LIMIT $2`,
        [this.config.WEBHOOK_SWEEP_AFTER_MS / 1000, SWEEP_BATCH],
      )) as { id: string }[];
      for (let i = 0; i < rows.length && !this.stopping; i += PROCESS_BATCH) {
        done += await this.processMany(rows.slice(i, i + PROCESS_BATCH).map((r) => r.id));
      }
    } catch (error) {
      if (!this.stopping) this.logger.warn({ err: error }, 'webhook inbox sweep failed');
    }
    return done;
  }

  async list(tenant: Tenant, query: ListInboxQuery): Promise<CursorPage<InboxItemDto>> {
    const qb = this.inbox.createQueryBuilder('w').where('w.company_id = :companyId', { companyId: tenant.companyId });
    if (query.status) qb.andWhere('w.status = :status', { status: query.status });
    if (query.connectionId) qb.andWhere('w.connection_id = :connectionId', { connectionId: query.connectionId });
    if (query.provider) qb.andWhere('w.provider = :provider', { provider: query.provider });
    return keysetPage(qb, 'w', 'received_at', query, toInboxItem);
  }

  private async apply(row: ClaimedRow): Promise<void> {
    const connection = await this.connections.loadForWebhook(row.connection_id);
    if (!connection) throw new Error('the connection was removed');
    const records = this.connections
      .clientOf(connection)
      .parseWebhook({ eventId: row.event_id, kind: row.kind, payload: row.payload });
    const source = { companyId: row.company_id, connectionId: row.connection_id, provider: row.provider };
    for (const event of records.calls) {
      await this.calls.apply({
        ...event,
        companyId: row.company_id,
        provider: row.provider,
        connectionId: row.connection_id,
      });
    }
    for (const vm of records.voicemails) {
      const callId = vm.providerCallId ? await this.callIdOf(connection, vm.providerCallId) : null;
      await this.messages.recordVoicemail(source, vm, callId);
    }
    for (const message of records.messages) await this.messages.recordMessage(source, message);
  }

  private callIdOf(connection: LoadedConnection, providerCallId: string): Promise<string | null> {
    return this.calls.idOfProviderCall(connection.companyId, connection.id, providerCallId);
  }

  private track(work: Promise<unknown>): void {
    const p = work.then(
      () => undefined,
      (error: unknown) => {
        if (!this.stopping) this.logger.error({ err: error }, 'webhook inbox work failed');
      },
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}

export function toInboxItem(w: WebhookInboxEntity): InboxItemDto {
  return {
    id: w.id,
    connectionId: w.connectionId,
    provider: w.provider,
    route: w.route,
    kind: w.kind,
    eventId: w.eventId,
    status: w.status,
    attempts: w.attempts,
    lastError: w.lastError,
    receivedAt: w.receivedAt.toISOString(),
    processedAt: w.processedAt ? w.processedAt.toISOString() : null,
    // Phone numbers masked (to their last 4 digits), as in the logs.
    payload: maskDeep(w.payload),
  };
}
