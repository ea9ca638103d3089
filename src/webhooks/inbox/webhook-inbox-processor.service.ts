import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { CallApplyService } from '../../calls/call-apply.service.js';
import type { CallEvent } from '../../calls/call-event.js';
import { CallQueriesService } from '../../calls/call-queries.service.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import { NotificationsService } from '../../database/notifications.service.js';
import type { EventEnvelope } from '../../events/event-envelope.js';
import { EventsService } from '../../events/events.service.js';
import { MessagesService } from '../../messages/messages.service.js';
import { PbxConnectionsService } from '../../pbx/connections/pbx-connections.service.js';
import { PbxRegistry } from '../../pbx/pbx-registry.js';
import type { WebhookRecords } from '../../pbx/pbx-provider.js';
import { INBOX_PARTITIONS, recordsFromJson } from './inbox-records.js';

/** The first key of the inbox partitions' advisory locks (the second is the partition). */
const PARTITION_LOCK_SPACE = 7_311_001;
/** Candidate rows looked at to choose partitions (a multiple of the batch). */
const CANDIDATES_PER_BATCH = 4;
/** NOTIFY other instances at most this often while webhooks come in (ms). */
const NOTIFY_EVERY_MS = 50;
const NOTIFY_TOPIC = 'inbox';

interface ClaimedRow {
  id: string;
  company_id: string;
  /** Null for the generic incoming webhook (its rows always carry records). */
  connection_id: string | null;
  provider: string;
  kind: string;
  event_id: string;
  /** Only for rows stored without records (older rows, or a payload the mapper refused at ingest). */
  payload: unknown;
  records: unknown;
  attempts: number;
}

export interface InboxBacklog {
  pending: number;
  /** Age of the oldest pending row, seconds (0 when none). */
  oldestAgeSeconds: number;
}

/**
 * Processes the webhook inbox: ONE loop for live and recovery work. Each worker, in one
 * transaction, takes the advisory locks of some partitions that have pending rows (a partition is
 * a hash of the call, set at ingest: one call's rows are applied in order by every worker of
 * every instance), claims their oldest pending rows (`FOR UPDATE SKIP LOCKED`, by seq, LIMIT
 * WEBHOOK_PROCESS_BATCH), applies them set-based (CallApplyService.applyIn, in the same
 * transaction), marks them processed and commits; then the company events are published, in
 * sequence order. A crash rolls back: the rows are claimable again at once (no lease, no age
 * rule, no in-memory queue). Ingest wakes the workers (the writer's signal after its commit, and
 * NOTIFY for the other instances); a short poll is the fallback. A batch that fails is rolled back
 * and its rows are applied one by one: a row that fails alone gets its error and a backoff
 * (2^attempts s, at most 10 min), and is `failed` after WEBHOOK_MAX_ATTEMPTS.
 */
@Injectable()
export class WebhookInboxProcessorService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(WebhookInboxProcessorService.name);
  private readonly workers = new Set<Promise<void>>();
  private wakers: (() => void)[] = [];
  /** The workers' batches in progress (what `pause` waits for). */
  private readonly batches = new Set<Promise<number>>();
  private stopping = false;
  private paused: boolean;
  private lastNotify = 0;
  private processed = 0;
  private failedRows = 0;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly connections: PbxConnectionsService,
    private readonly registry: PbxRegistry,
    private readonly calls: CallApplyService,
    private readonly queries: CallQueriesService,
    private readonly messages: MessagesService,
    private readonly events: EventsService,
    private readonly notifications: NotificationsService,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
  ) {
    this.paused = !config.WEBHOOK_PROCESSING_ENABLED;
  }

  onApplicationBootstrap(): void {
    this.notifications.on(NOTIFY_TOPIC, () => this.wake());
    // A lost listener may have missed notifications: look now.
    this.notifications.onReset(() => this.wake());
    for (let i = 0; i < this.config.WEBHOOK_PROCESS_WORKERS; i++) {
      const worker = this.run(i);
      this.workers.add(worker);
      void worker.finally(() => this.workers.delete(worker));
    }
  }

  /** Finishes the batches in flight and stops claiming. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.wake();
    await Promise.allSettled([...this.workers]);
  }

  /**
   * Stops claiming; rows accumulate until `resume`. Resolves once the batches the workers had
   * begun are over: a batch begun before the pause may still claim rows committed after it.
   */
  async pause(): Promise<void> {
    this.paused = true;
    await Promise.allSettled([...this.batches]);
  }

  resume(): void {
    this.paused = false;
    this.wake();
  }

  /** Rows processed by this instance since it started (a counter for /metrics). */
  get processedCount(): number {
    return this.processed;
  }

  /** Rows this instance marked failed (out of attempts). */
  get failedCount(): number {
    return this.failedRows;
  }

  /** After the writer committed rows: wake the workers here, and tell the other instances. */
  ingested(): void {
    this.wake();
    const now = Date.now();
    if (now - this.lastNotify < NOTIFY_EVERY_MS) return;
    this.lastNotify = now;
    void this.notifications.notify(this.dataSource.manager, NOTIFY_TOPIC, '').catch(() => undefined);
  }

  /** Pending rows and the age of the oldest (health and metrics). */
  async backlog(): Promise<InboxBacklog> {
    const [row] = (await this.dataSource.query(
      `SELECT count(*)::int AS pending,
              COALESCE(EXTRACT(EPOCH FROM now() - min(received_at)), 0)::float8 AS oldest
       FROM webhook_inbox WHERE status = 'pending'`,
    )) as { pending: number; oldest: number }[];
    return { pending: row?.pending ?? 0, oldestAgeSeconds: Math.max(0, Math.round((row?.oldest ?? 0) * 10) / 10) };
  }

  /**
   * Processes batches until nothing is claimable (tests and benchmarks: "drain now", whether the
   * workers run or not). Returns how many rows were claimed.
   */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.processBatch();
      if (n === 0) return total;
      total += n;
    }
  }

  private async run(worker: number): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      if (this.paused) {
        await this.idle(this.config.WEBHOOK_POLL_INTERVAL_MS);
        continue;
      }
      let claimed: number;
      try {
        const batch = this.processBatch();
        this.batches.add(batch);
        claimed = await batch.finally(() => this.batches.delete(batch));
        failures = 0;
      } catch (error) {
        // The database is unreachable or refused even the one-by-one retries: wait and look again.
        failures++;
        if (!this.stopping) this.logger.warn({ err: error, worker }, 'webhook inbox batch failed');
        await this.idle(Math.min(this.config.WEBHOOK_POLL_INTERVAL_MS * 2 ** Math.min(failures, 5), 30_000));
        continue;
      }
      if (claimed === 0) await this.idle(this.config.WEBHOOK_POLL_INTERVAL_MS);
    }
  }

  private wake(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const w of wakers) w();
  }

  /** Waits for a wake-up (ingest, NOTIFY, stop) or the timeout, whichever comes first. */
  private idle(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakers.push(done);
    });
  }

  /**
   * One batch: claim, apply, mark, commit, publish. On failure the batch is rolled back and its
   * rows are applied one at a time (each its own transaction), so one bad row cannot hold the
   * others back. Returns how many rows were claimed.
   */
  async processBatch(): Promise<number> {
    let claimed: ClaimedRow[] = [];
    try {
      const envelopes = await this.dataSource.transaction(async (m) => {
        const partitions = await this.lockPartitions(m);
        if (partitions.length === 0) return [];
        claimed = await this.claim(m, partitions, this.config.WEBHOOK_PROCESS_BATCH);
        return this.applyAndMark(m, claimed);
      });
      this.events.publish(envelopes);
      this.processed += claimed.length;
      return claimed.length;
    } catch (error) {
      if (claimed.length === 0) throw error;
      this.logger.warn(
        { err: error, rows: claimed.length },
        'webhook inbox batch rolled back; applying its rows one by one',
      );
      for (const row of claimed) await this.processOne(row.id);
      return claimed.length;
    }
  }

  /** One row in its own transaction; a failure is recorded on the row (error, backoff, failed). */
  private async processOne(id: string): Promise<void> {
    let row: ClaimedRow | undefined;
    try {
      const envelopes = await this.dataSource.transaction(async (m) => {
        const [found] = (await m.query(
          `SELECT ${ROW_COLUMNS} FROM webhook_inbox
           WHERE id = $1 AND status = 'pending' AND pg_try_advisory_xact_lock($2, partition)
           FOR UPDATE SKIP LOCKED`,
          [id, PARTITION_LOCK_SPACE],
        )) as ClaimedRow[];
        // Processed meanwhile, or its partition is held by another worker (which will take it).
        if (!found) return [];
        row = found;
        return this.applyAndMark(m, [found]);
      });
      this.events.publish(envelopes);
      if (row) this.processed++;
    } catch (error) {
      if (!row) throw error;
      await this.markFailure(row, error);
    }
  }

  private async markFailure(row: ClaimedRow, error: unknown): Promise<void> {
    const attempts = row.attempts + 1;
    const failed = attempts >= this.config.WEBHOOK_MAX_ATTEMPTS;
    const message = (error instanceof Error ? error.message : String(error)).slice(0, 500);
    this.logger.warn({ err: error, inboxId: row.id, attempts, failed }, 'webhook processing failed');
    await this.dataSource.query(
      `UPDATE webhook_inbox SET status = $2, attempts = $3, last_error = $4,
         next_attempt_at = now() + make_interval(secs => least(600, power(2, $3::int)))
       WHERE id = $1 AND status = 'pending'`,
      [row.id, failed ? 'failed' : 'pending', attempts, message],
    );
    if (failed) this.failedRows++;
  }

  /**
   * The advisory locks of the partitions that hold the oldest claimable rows, in the order of
   * their oldest row, just enough of them to fill one batch (and at most this worker's share), so
   * that the other workers, here and on other instances, find partitions of their own; held to
   * the end of the transaction. A partition another transaction holds is skipped: its rows wait
   * for that one, which applies them in order.
   */
  private async lockPartitions(m: EntityManager): Promise<number[]> {
    const batch = this.config.WEBHOOK_PROCESS_BATCH;
    const share = Math.ceil(INBOX_PARTITIONS / this.config.WEBHOOK_PROCESS_WORKERS);
    // OFFSET 0 keeps the sorted subquery apart, and CASE orders the test before the lock: the
    // volatile lock function runs on the rows one by one, in that order, until LIMIT is reached.
    const rows = (await m.query(
      `SELECT s.partition FROM (
         SELECT p.partition, sum(p.n) OVER (ORDER BY p.first, p.partition) - p.n AS before FROM (
           SELECT c.partition, min(c.received_at) AS first, count(*) AS n FROM (
             SELECT partition, received_at FROM webhook_inbox
             WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
             ORDER BY received_at LIMIT $1
           ) c GROUP BY c.partition
         ) p
         ORDER BY p.first, p.partition OFFSET 0
       ) s
       WHERE CASE WHEN s.before < $3 THEN pg_try_advisory_xact_lock($2, s.partition) ELSE false END
       LIMIT $4`,
      [batch * CANDIDATES_PER_BATCH, PARTITION_LOCK_SPACE, batch, share],
    )) as { partition: number }[];
    return rows.map((r) => r.partition);
  }

  private async claim(m: EntityManager, partitions: number[], limit: number): Promise<ClaimedRow[]> {
    return (await m.query(
      `SELECT ${ROW_COLUMNS} FROM webhook_inbox
       WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
         AND partition = ANY($1::smallint[])
       ORDER BY seq LIMIT $2
       FOR UPDATE SKIP LOCKED`,
      [partitions, limit],
    )) as ClaimedRow[];
  }

  /**
   * Applies the claimed rows (in seq order) and marks them processed, in the caller's
   * transaction; returns the company events to publish after the commit.
   */
  private async applyAndMark(m: EntityManager, rows: ClaimedRow[]): Promise<EventEnvelope[]> {
    if (rows.length === 0) return [];
    const events: CallEvent[] = [];
    const others: { row: ClaimedRow; records: WebhookRecords }[] = [];
    for (const row of rows) {
      const records = await this.recordsOf(row);
      for (const e of records.calls) {
        events.push({ ...e, companyId: row.company_id, provider: row.provider, connectionId: row.connection_id });
      }
      if (records.voicemails.length > 0 || records.messages.length > 0) others.push({ row, records });
    }
    // Voicemails and messages first (rare): they are written in transactions of their own by
    // MessagesService (idempotent by provider id, so a batch rolled back and applied again does
    // not record them twice); done before this transaction takes any company's counter lock.
    for (const { row, records } of others) await this.recordOthers(row, records);
    const outcome = await this.calls.applyIn(m, events);
    // clock_timestamp(), not now(): this transaction may have begun before the row was written
    // (each statement sees newer commits), and processed_at must not precede received_at.
    await m.query(
      `UPDATE webhook_inbox SET status = 'processed', processed_at = clock_timestamp(), attempts = attempts + 1,
         last_error = NULL, next_attempt_at = NULL
       WHERE id = ANY($1::uuid[])`,
      [rows.map((r) => r.id)],
    );
    return outcome.envelopes;
  }

  /** What the mapper made of the row at ingest; rows stored without (older ones) are mapped now. */
  private async recordsOf(row: ClaimedRow): Promise<WebhookRecords> {
    if (row.records) return recordsFromJson(row.records);
    if (!row.connection_id) throw new Error('the row has neither records nor a connection');
    const connection = await this.connections.loadForWebhook(row.connection_id);
    if (!connection) throw new Error('the connection was removed');
    return this.registry
      .client(connection, connection.version)
      .parseWebhook({ eventId: row.event_id, kind: row.kind, payload: row.payload });
  }

  private async recordOthers(row: ClaimedRow, records: WebhookRecords): Promise<void> {
    // Voicemails and messages come from provider connections only (the generic webhook carries calls).
    if (!row.connection_id) throw new Error('a voicemail or message without a connection');
    const source = { companyId: row.company_id, connectionId: row.connection_id, provider: row.provider };
    for (const vm of records.voicemails) {
      const callId = vm.providerCallId
        ? await this.queries.idOfProviderCall(row.company_id, row.connection_id, vm.providerCallId)
        : null;
      await this.messages.recordVoicemail(source, vm, callId);
    }
    for (const message of records.messages) await this.messages.recordMessage(source, message);
  }
}

const ROW_COLUMNS = `id, company_id, connection_id, provider, kind, event_id,
  CASE WHEN records IS NULL THEN payload END AS payload, records, attempts`;
