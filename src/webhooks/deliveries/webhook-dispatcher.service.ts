import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Subscription } from 'rxjs';
import { DataSource, type EntityManager } from 'typeorm';
import { AuditService } from '../../audit/audit.service.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import type { EventEnvelope } from '../../events/event-envelope.js';
import { EventsService } from '../../events/events.service.js';
import { matchesEventType } from '../endpoints/event-type-filter.js';
import { SsrfGuard } from '../endpoints/ssrf-guard.js';
import { WebhookEndpointEntity } from '../endpoints/webhook-endpoint.entity.js';
import { WebhookEndpointsService } from '../endpoints/webhook-endpoints.service.js';
import { retryDelayMs } from './retry-schedule.js';
import { WebhookClock } from './webhook-clock.js';
import type { DeliveryErrorClass, DeliveryOrigin, DeliveryStatus } from './webhook-delivery.entity.js';
import { type SendResult, WebhookSender } from './webhook-sender.js';

/** Endpoints looked at per fan-out transaction, and events per endpoint per transaction. */
const FANOUT_ENDPOINTS = 100;
const FANOUT_EVENTS = 500;
/** Claims per endpoint (and in all) up to this many times the concurrency: the next sends are at hand. */
const PREFETCH = 2;
/** A claim's lease lasts twice the send timeout plus this. */
const LEASE_MARGIN_MS = 5_000;
/** A healthy endpoint's last success is written this often at most (ms). */
const HEALTHY_WRITE_EVERY_MS = 1_000;
/** Results written per transaction at most. */
const FLUSH_MAX = 500;

/** A claimed delivery with what is needed to send it. */
export interface ClaimedDelivery {
  id: string;
  companyId: string;
  endpointId: string;
  eventId: string;
  eventType: string;
  body: string;
  origin: DeliveryOrigin;
  /** Attempts made before this one. */
  attempts: number;
  url: string;
  headers: Record<string, string>;
  secrets: string[];
}

/** The outcome of one attempt, as written to the delivery log. */
export interface AttemptOutcome {
  deliveryId: string;
  attempt: number;
  startedAt: Date;
  statusCode: number | null;
  latencyMs: number;
  errorClass: DeliveryErrorClass | null;
  snippet: string | null;
  nextAttemptAt: Date | null;
  status: DeliveryStatus;
}

interface Finished {
  row: ClaimedDelivery;
  result: SendResult;
  /** Set when the result is written (the test route waits for it). */
  written?: (outcome: AttemptOutcome) => void;
}

interface Bucket {
  tokens: number;
  at: number;
}

interface ClaimRow {
  id: string;
  company_id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  body: string;
  origin: DeliveryOrigin;
  attempts: number;
  url: string;
  headers: Record<string, string>;
  secret_sealed: string;
  previous_secret_sealed: string | null;
  previous_secret_expires_at: Date | null;
  rate_limit_per_second: number | null;
}

/**
 * Outbound deliveries, at least once (DESIGN.md "Events"; issue 12 "Delivery").
 *
 * - Fan-out: company_events is the durable source. For each enabled endpoint (rows locked
 *   `FOR UPDATE SKIP LOCKED`: instances share the work), the events of its company after its
 *   `fanout_seq` become delivery rows (unique per endpoint and event) and `fanout_seq` moves on, in
 *   one transaction. Woken by EventsService.produced$ after each commit here, and by a poll for
 *   the events other instances commit; nothing depends on memory, so a kill -9 loses nothing.
 * - Dispatch: due rows are claimed in batches (`FOR UPDATE SKIP LOCKED`, status `delivering`
 *   with a lease: a dead instance's claims are taken again once it passes), per endpoint no more
 *   than its free slots (WEBHOOK_ENDPOINT_CONCURRENCY in flight per endpoint, its rate limit's
 *   tokens) and WEBHOOK_DELIVERY_CONCURRENCY in all: an endpoint that is slow fills its own
 *   slots, never those of others. Results are written in batches: the attempt log, the
 *   delivery's next step (retry with backoff and jitter, or failed after the last), the
 *   endpoint's health; an endpoint answering 410, or failing for WEBHOOK_ENDPOINT_DISABLE_AFTER_MS,
 *   is disabled, with a `webhook.endpoint.disabled` company event and an audit entry.
 * - Claims run ahead of the sends (up to twice the concurrency, per endpoint and in all), so
 *   the next send of an endpoint never waits for a query; the lease covers that wait.
 * - Stop: no more claims; claims not sent yet are given back at once (pending, due now: another
 *   instance takes them); the sends in flight finish (each is bounded by the timeout, the wait by
 *   SHUTDOWN_GRACE_MS); sends cut short give their claim back too.
 */
@Injectable()
export class WebhookDispatcherService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(WebhookDispatcherService.name);
  private readonly sender: WebhookSender;
  private readonly inFlight = new Map<string, AbortController>();
  private readonly perEndpoint = new Map<string, number>();
  /** Claimed deliveries waiting for a free slot of their endpoint, by endpoint. */
  private readonly queued = new Map<string, ClaimedDelivery[]>();
  private queuedCount = 0;
  private readonly buckets = new Map<string, Bucket>();
  /** When this instance last wrote the success of an endpoint that was healthy (performance.now()). */
  private readonly healthyWritten = new Map<string, number>();
  /** Rate limits (per second) of the endpoints that have one, as last claimed. */
  private readonly rates = new Map<string, number>();
  private readonly finished: Finished[] = [];
  private subscription?: Subscription;
  private poller?: NodeJS.Timeout;
  private rateTimer?: NodeJS.Timeout;
  private running = false;
  private stopping = false;
  private fanoutBusy: Promise<void> | null = null;
  private fanoutAgain = false;
  private pumpBusy: Promise<void> | null = null;
  private pumpAgain = false;
  private flushBusy: Promise<void> | null = null;
  private flushScheduled = false;
  private flushRetry?: NodeJS.Timeout;
  private flushLock: Promise<void> = Promise.resolve();
  /** Counters for /metrics (this instance, since it started). */
  readonly outcomes = { success: 0, failure: 0, gave_up: 0 };
  /** Observers of each attempt's duration (seconds): the metrics histogram. */
  private readonly durationObservers: ((seconds: number) => void)[] = [];

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly endpoints: WebhookEndpointsService,
    guard: SsrfGuard,
    private readonly events: EventsService,
    private readonly audit: AuditService,
    private readonly clock: WebhookClock,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
  ) {
    this.sender = new WebhookSender(
      guard.connector({ timeoutMs: config.WEBHOOK_DELIVERY_TIMEOUT_MS }),
      config.WEBHOOK_DELIVERY_TIMEOUT_MS,
      config.WEBHOOK_ENDPOINT_CONCURRENCY,
    );
  }

  onApplicationBootstrap(): void {
    if (!this.config.WEBHOOK_DELIVERY_ENABLED) return;
    this.running = true;
    this.subscription = this.events.produced$.subscribe(() => this.wakeFanout());
    const poll = Math.min(this.config.WEBHOOK_POLL_INTERVAL_MS, 1_000);
    this.poller = setInterval(() => {
      this.wakeFanout();
      void this.reapLeases().finally(() => this.wake());
    }, poll);
    this.poller.unref();
    this.wakeFanout();
    this.wake();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.running = false;
    this.subscription?.unsubscribe();
    clearInterval(this.poller);
    clearTimeout(this.rateTimer);
    await Promise.allSettled([this.fanoutBusy, this.pumpBusy]);
    // Claims not sent yet go back at once (another instance takes them).
    this.unqueue();
    // The sends in flight finish (each is bounded by the timeout) unless the grace runs out.
    const deadline = Date.now() + this.config.SHUTDOWN_GRACE_MS;
    while (this.inFlight.size > 0 && Date.now() < deadline) await sleep(20);
    for (const controller of this.inFlight.values()) controller.abort(new Error('shutting down'));
    while (this.inFlight.size > 0) await sleep(5);
    clearTimeout(this.flushRetry);
    await this.flushAll();
    await this.sender.close();
  }

  /** Observes the duration of every attempt (for the metrics histogram). */
  onAttemptDuration(observer: (seconds: number) => void): void {
    this.durationObservers.push(observer);
  }

  /** Sends in flight on this instance. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Pending and in-flight deliveries per endpoint (all instances): one GROUP BY. */
  async pendingByEndpoint(): Promise<{ endpointId: string; pending: number }[]> {
    const rows = (await this.dataSource.query(
      `SELECT endpoint_id, count(*)::int AS pending FROM webhook_deliveries
       WHERE status IN ('pending', 'delivering') GROUP BY endpoint_id`,
    )) as { endpoint_id: string; pending: number }[];
    return rows.map((r) => ({ endpointId: r.endpoint_id, pending: r.pending }));
  }

  /** Looks for due deliveries now (after rows were queued by a route, or a test moved the clock). */
  wake(): void {
    if (!this.running) return;
    if (this.pumpBusy) {
      this.pumpAgain = true;
      return;
    }
    this.pumpBusy = this.pump()
      .catch((error: unknown) => {
        if (!this.stopping) this.logger.warn({ err: error }, 'webhook delivery claim failed');
      })
      .finally(() => {
        this.pumpBusy = null;
        if (this.pumpAgain && this.running) {
          this.pumpAgain = false;
          this.wake();
        }
      });
  }

  /** Turns new company events into deliveries now. */
  wakeFanout(): void {
    if (!this.running) return;
    if (this.fanoutBusy) {
      this.fanoutAgain = true;
      return;
    }
    this.fanoutBusy = this.fanoutUntilDone()
      .catch((error: unknown) => {
        if (!this.stopping) this.logger.warn({ err: error }, 'webhook fan-out failed');
      })
      .finally(() => {
        this.fanoutBusy = null;
        if (this.fanoutAgain && this.running) {
          this.fanoutAgain = false;
          this.wakeFanout();
        }
      });
  }

  /**
   * Sends one delivery row that the caller inserted as `delivering` (the test route), outside the
   * claim loop, and resolves with its attempt once written.
   */
  async sendNow(row: ClaimedDelivery): Promise<AttemptOutcome> {
    const controller = new AbortController();
    this.inFlight.set(row.id, controller);
    let written!: (outcome: AttemptOutcome) => void;
    const outcome = new Promise<AttemptOutcome>((resolve) => (written = resolve));
    try {
      const result = await this.sendOne(row, controller.signal);
      this.finished.push({ row, result, written });
    } finally {
      this.inFlight.delete(row.id);
    }
    this.scheduleFlush();
    return outcome;
  }

  /** The endpoint's signing secrets (current, then previous during a rotation's overlap). */
  secretsOf(endpoint: WebhookEndpointEntity): string[] {
    return this.endpoints.signingSecrets(endpoint, this.clock.now());
  }

  // ---------------------------------------------------------------------------------------------
  // Fan-out

  private async fanoutUntilDone(): Promise<void> {
    while (this.running && (await this.fanoutOnce())) {
      /* a full batch: look again */
    }
  }

  /** One fan-out transaction; true when there may be more to do right away. */
  private async fanoutOnce(): Promise<boolean> {
    const now = this.clock.now();
    let more = false;
    let inserted = 0;
    await this.dataSource.transaction(async (m) => {
      const endpoints = (await m.query(
        `SELECT e.id, e.company_id, e.event_types, e.fanout_seq
         FROM webhook_endpoints e JOIN event_counters c ON c.company_id = e.company_id
         WHERE e.enabled AND c.last_seq > e.fanout_seq
         LIMIT $1
         FOR UPDATE OF e SKIP LOCKED`,
        [FANOUT_ENDPOINTS],
      )) as { id: string; company_id: string; event_types: string[]; fanout_seq: string }[];
      if (endpoints.length === 0) return;
      more = endpoints.length === FANOUT_ENDPOINTS;
      const events = (await m.query(
        `SELECT x.endpoint_id, ev.seq, ev.event_id, ev.type, ev.occurred_at, ev.agent_id, ev.data
         FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS x(endpoint_id, company_id, from_seq)
         CROSS JOIN LATERAL (
           SELECT seq, event_id, type, occurred_at, agent_id, data FROM company_events
           WHERE company_id = x.company_id AND seq > x.from_seq ORDER BY seq LIMIT $4
         ) ev`,
        [
          endpoints.map((e) => e.id),
          endpoints.map((e) => e.company_id),
          endpoints.map((e) => e.fanout_seq),
          FANOUT_EVENTS,
        ],
      )) as {
        endpoint_id: string;
        seq: string;
        event_id: string;
        type: string;
        occurred_at: Date;
        agent_id: string | null;
        data: Record<string, unknown>;
      }[];
      const byId = new Map(endpoints.map((e) => [e.id, e]));
      const lastSeq = new Map<string, string>();
      const counts = new Map<string, number>();
      const rows = { company: [] as string[], endpoint: [] as string[], event: [] as string[] };
      const cols = { type: [] as string[], seq: [] as string[], body: [] as string[] };
      for (const ev of events) {
        const endpoint = byId.get(ev.endpoint_id)!;
        lastSeq.set(ev.endpoint_id, ev.seq);
        counts.set(ev.endpoint_id, (counts.get(ev.endpoint_id) ?? 0) + 1);
        if (!matchesEventType(endpoint.event_types, ev.type)) continue;
        const envelope: EventEnvelope = {
          id: ev.event_id,
          type: ev.type as EventEnvelope['type'],
          companyId: endpoint.company_id,
          seq: Number(ev.seq),
          occurredAt: ev.occurred_at.toISOString(),
          agentId: ev.agent_id,
          data: ev.data,
        };
        rows.company.push(endpoint.company_id);
        rows.endpoint.push(ev.endpoint_id);
        rows.event.push(ev.event_id);
        cols.type.push(ev.type);
        cols.seq.push(ev.seq);
        cols.body.push(JSON.stringify(envelope));
      }
      if ([...counts.values()].some((n) => n >= FANOUT_EVENTS)) more = true;
      // Endpoints whose events were all pruned already: move them to the counter.
      const advance = endpoints.map((e) => lastSeq.get(e.id) ?? null);
      const [result] = (await m.query(
        `WITH ins AS (
           INSERT INTO webhook_deliveries (company_id, endpoint_id, event_id, event_type, event_seq, body, origin, status, next_attempt_at)
           SELECT c, e, ev, t, s, b, 'event', 'pending', $7::timestamptz
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::varchar[], $5::bigint[], $6::text[]) AS x(c, e, ev, t, s, b)
           ON CONFLICT (endpoint_id, event_id) WHERE origin = 'event' DO NOTHING
           RETURNING 1
         ), moved AS (
           UPDATE webhook_endpoints w
           SET fanout_seq = COALESCE(v.seq, (SELECT last_seq FROM event_counters c WHERE c.company_id = w.company_id))
           FROM unnest($8::uuid[], $9::bigint[]) AS v(id, seq)
           WHERE w.id = v.id
           RETURNING 1
         )
         SELECT (SELECT count(*) FROM ins)::int AS inserted`,
        [
          rows.company,
          rows.endpoint,
          rows.event,
          cols.type,
          cols.seq,
          cols.body,
          now,
          endpoints.map((e) => e.id),
          advance,
        ],
      )) as { inserted: number }[];
      inserted = result?.inserted ?? 0;
    });
    if (inserted > 0) this.wake();
    return more;
  }

  // ---------------------------------------------------------------------------------------------
  // Claim and send

  private async pump(): Promise<void> {
    const total = this.config.WEBHOOK_DELIVERY_CONCURRENCY;
    while (this.running) {
      const want = total * PREFETCH - this.inFlight.size - this.queuedCount;
      if (want <= 0) return;
      const rows = await this.claim(want);
      for (const row of rows) {
        const queue = this.queued.get(row.endpointId) ?? [];
        queue.push(row);
        this.queued.set(row.endpointId, queue);
        this.queuedCount++;
      }
      this.startQueued();
      if (rows.length < want) return;
    }
  }

  /** Starts claimed deliveries while their endpoint and this instance have free slots. */
  private startQueued(): void {
    const total = this.config.WEBHOOK_DELIVERY_CONCURRENCY;
    const limit = this.config.WEBHOOK_ENDPOINT_CONCURRENCY;
    for (const [endpointId, queue] of this.queued) {
      while (queue.length > 0 && this.inFlight.size < total && (this.perEndpoint.get(endpointId) ?? 0) < limit) {
        this.queuedCount--;
        this.start(queue.shift()!);
      }
      if (queue.length === 0) this.queued.delete(endpointId);
      if (this.inFlight.size >= total) return;
    }
  }

  /** Gives back the claims not sent yet (of some endpoints, or all): due again at once, anywhere. */
  private unqueue(endpointIds: Iterable<string> = [...this.queued.keys()]): void {
    for (const endpointId of endpointIds) {
      const queue = this.queued.get(endpointId);
      if (!queue) continue;
      this.queued.delete(endpointId);
      this.queuedCount -= queue.length;
      for (const row of queue) {
        this.finished.push({
          row,
          result: {
            ok: false,
            statusCode: null,
            errorClass: 'aborted',
            snippet: null,
            latencyMs: 0,
            startedAt: new Date(),
          },
        });
      }
    }
  }

  /** Free slots of the endpoints this instance knows (in flight, claimed, rate-limit tokens). */
  private slots(): { ids: string[]; free: number[] } {
    const ids: string[] = [];
    const free: number[] = [];
    const limit = this.config.WEBHOOK_ENDPOINT_CONCURRENCY * PREFETCH;
    let nextToken = Infinity;
    const seen = new Set<string>([...this.perEndpoint.keys(), ...this.buckets.keys(), ...this.queued.keys()]);
    for (const id of seen) {
      let slots = limit - (this.perEndpoint.get(id) ?? 0) - (this.queued.get(id)?.length ?? 0);
      const bucket = this.buckets.get(id);
      if (bucket) {
        const tokens = Math.floor(bucket.tokens);
        if (tokens < 1) nextToken = Math.min(nextToken, Math.max(1, Math.ceil((1 - bucket.tokens) * 1000)));
        slots = Math.min(slots, tokens);
      }
      ids.push(id);
      free.push(Math.max(0, slots));
    }
    if (nextToken !== Infinity && !this.rateTimer && this.running) {
      this.rateTimer = setTimeout(() => {
        this.rateTimer = undefined;
        this.wake();
      }, nextToken);
      this.rateTimer.unref();
    }
    return { ids, free };
  }

  private refill(id: string, ratePerSecond: number | null): void {
    if (!ratePerSecond || ratePerSecond <= 0) {
      this.buckets.delete(id);
      return;
    }
    const now = performance.now();
    const bucket = this.buckets.get(id);
    if (!bucket) {
      this.buckets.set(id, { tokens: ratePerSecond, at: now });
      return;
    }
    bucket.tokens = Math.min(ratePerSecond, bucket.tokens + ((now - bucket.at) / 1000) * ratePerSecond);
    bucket.at = now;
  }

  /** Refills the buckets of the rate-limited endpoints known here (before a claim reads them). */
  private refillAll(): void {
    const now = performance.now();
    for (const [id, bucket] of this.buckets) {
      const rate = this.rates.get(id);
      if (!rate) {
        this.buckets.delete(id);
        continue;
      }
      bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.at) / 1000) * rate);
      bucket.at = now;
    }
  }

  private async claim(limit: number): Promise<ClaimedDelivery[]> {
    this.refillAll();
    const { ids, free } = this.slots();
    const now = this.clock.now();
    // A claim waits for at most one send of its endpoint before its own (PREFETCH = 2).
    const lease = new Date(now.getTime() + 2 * this.config.WEBHOOK_DELIVERY_TIMEOUT_MS + LEASE_MARGIN_MS);
    const rows = (await this.dataSource.query(
      `WITH slots AS (
         SELECT e.id, COALESCE(f.free, LEAST($3::int, COALESCE(e.rate_limit_per_second, $3::int))) AS free
         FROM webhook_endpoints e
         LEFT JOIN unnest($1::uuid[], $2::int[]) AS f(id, free) ON f.id = e.id
         WHERE e.enabled
       ), picked AS (
         SELECT d.id FROM slots s
         CROSS JOIN LATERAL (
           SELECT d.id FROM webhook_deliveries d
           WHERE d.endpoint_id = s.id AND d.status = 'pending' AND d.next_attempt_at <= $4::timestamptz
           ORDER BY d.next_attempt_at
           LIMIT s.free
           FOR UPDATE SKIP LOCKED
         ) d
         WHERE s.free > 0
         LIMIT $5
       )
       UPDATE webhook_deliveries d SET status = 'delivering', lease_until = $6::timestamptz
       FROM picked, webhook_endpoints e
       WHERE d.id = picked.id AND e.id = d.endpoint_id AND d.status = 'pending'
       RETURNING d.id, d.company_id, d.endpoint_id, d.event_id, d.event_type, d.body, d.origin, d.attempts,
                 e.url, e.headers, e.secret_sealed, e.previous_secret_sealed, e.previous_secret_expires_at,
                 e.rate_limit_per_second`,
      [ids, free, this.config.WEBHOOK_ENDPOINT_CONCURRENCY * PREFETCH, now, limit, lease],
    )) as unknown;
    const list = rowsOf<ClaimRow>(rows);
    const claimed: ClaimedDelivery[] = [];
    for (const r of list) {
      const endpoint = Object.assign(new WebhookEndpointEntity(), {
        id: r.endpoint_id,
        companyId: r.company_id,
        secretSealed: r.secret_sealed,
        previousSecretSealed: r.previous_secret_sealed,
        previousSecretExpiresAt: r.previous_secret_expires_at,
      });
      let secrets: string[];
      try {
        secrets = this.secretsOf(endpoint);
      } catch (error) {
        this.logger.error({ err: error, endpointId: r.endpoint_id }, 'cannot unseal a webhook endpoint secret');
        secrets = [];
      }
      if (r.rate_limit_per_second) {
        this.rates.set(r.endpoint_id, r.rate_limit_per_second);
        this.refill(r.endpoint_id, r.rate_limit_per_second);
        this.buckets.get(r.endpoint_id)!.tokens -= 1;
      } else {
        this.rates.delete(r.endpoint_id);
        this.buckets.delete(r.endpoint_id);
      }
      claimed.push({
        id: r.id,
        companyId: r.company_id,
        endpointId: r.endpoint_id,
        eventId: r.event_id,
        eventType: r.event_type,
        body: r.body,
        origin: r.origin,
        attempts: r.attempts,
        url: r.url,
        headers: r.headers ?? {},
        secrets,
      });
    }
    return claimed;
  }

  private start(row: ClaimedDelivery): void {
    const controller = new AbortController();
    this.inFlight.set(row.id, controller);
    this.perEndpoint.set(row.endpointId, (this.perEndpoint.get(row.endpointId) ?? 0) + 1);
    void this.sendOne(row, controller.signal)
      .then((result) => {
        this.finished.push({ row, result });
      })
      .finally(() => {
        this.inFlight.delete(row.id);
        const n = (this.perEndpoint.get(row.endpointId) ?? 1) - 1;
        if (n <= 0) this.perEndpoint.delete(row.endpointId);
        else this.perEndpoint.set(row.endpointId, n);
        this.scheduleFlush();
        if (!this.running) return;
        this.startQueued();
        // Claim more once the endpoint's own claims run low (or others may be waiting).
        const left = this.queued.get(row.endpointId)?.length ?? 0;
        if (left <= this.config.WEBHOOK_ENDPOINT_CONCURRENCY / 2) this.wake();
      });
  }

  private async sendOne(row: ClaimedDelivery, signal: AbortSignal): Promise<SendResult> {
    if (row.secrets.length === 0) {
      return { ok: false, statusCode: null, errorClass: 'unknown', snippet: null, latencyMs: 0, startedAt: new Date() };
    }
    const result = await this.sender.send({
      endpointId: row.endpointId,
      url: row.url,
      eventId: row.eventId,
      body: row.body,
      secrets: row.secrets,
      headers: row.headers,
      at: this.clock.now(),
      signal,
    });
    for (const observe of this.durationObservers) observe(result.latencyMs / 1000);
    return result;
  }

  // ---------------------------------------------------------------------------------------------
  // Results

  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushBusy) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushBusy = this.flushAll()
        .catch((error: unknown) => {
          // The database is away: the results stay here and are written later (their leases may
          // expire meanwhile: the delivery is then sent again, at least once).
          this.logger.warn({ err: error }, 'writing webhook delivery results failed');
          this.flushRetry = setTimeout(() => this.scheduleFlush(), 1_000);
          this.flushRetry.unref();
        })
        .finally(() => {
          this.flushBusy = null;
          if (this.finished.length > 0 && !this.flushRetry) this.scheduleFlush();
        });
    });
  }

  /** Writes every result waiting; one writer at a time (a result is written once). */
  private flushAll(): Promise<void> {
    const run = this.flushLock.then(() => this.flushWaiting());
    this.flushLock = run.catch(() => undefined);
    return run;
  }

  private async flushWaiting(): Promise<void> {
    this.flushRetry = undefined;
    while (this.finished.length > 0) {
      const batch = this.finished.slice(0, FLUSH_MAX);
      await this.write(batch);
      this.finished.splice(0, batch.length);
    }
  }

  /** Writes a batch of results in one transaction: attempts, deliveries, endpoint health. */
  private async write(batch: Finished[]): Promise<void> {
    const now = this.clock.now();
    const schedule = this.config.WEBHOOK_RETRY_SCHEDULE;
    const released: string[] = [];
    const outcomes: { f: Finished; o: AttemptOutcome }[] = [];
    for (const f of batch) {
      // Cut short by the stop: not an attempt; the claim is given back.
      if (f.result.errorClass === 'aborted' && f.row.origin !== 'test') {
        released.push(f.row.id);
        continue;
      }
      const attempt = f.row.attempts + 1;
      let status: DeliveryStatus;
      let next: Date | null = null;
      if (f.result.ok) status = 'succeeded';
      else if (f.row.origin === 'test') status = 'failed';
      else {
        const delay = retryDelayMs(schedule, attempt, this.config.WEBHOOK_RETRY_JITTER_PCT);
        if (delay === null) status = 'failed';
        else {
          status = 'pending';
          next = new Date(now.getTime() + delay);
        }
      }
      outcomes.push({
        f,
        o: {
          deliveryId: f.row.id,
          attempt,
          startedAt: f.result.startedAt,
          statusCode: f.result.statusCode,
          latencyMs: f.result.latencyMs,
          errorClass: f.result.errorClass,
          snippet: f.result.snippet,
          nextAttemptAt: next,
          status,
        },
      });
    }

    // Endpoint health, from the results in the order they came (tests do not count).
    const health = new Map<string, { companyId: string; successAt: Date | null; failAt: Date | null; gone: boolean }>();
    for (const { f, o } of outcomes) {
      if (f.row.origin === 'test') continue;
      const h = health.get(f.row.endpointId) ?? {
        companyId: f.row.companyId,
        successAt: null,
        failAt: null,
        gone: false,
      };
      if (o.status === 'succeeded') {
        h.successAt = now;
        h.failAt = null;
      } else {
        h.failAt ??= now;
        if (o.statusCode === 410) h.gone = true;
      }
      health.set(f.row.endpointId, h);
    }
    // A healthy endpoint's success is written at most once a second (its row is not locked for
    // every batch); any failure is written at once.
    const clock = performance.now();
    for (const [id, h] of health) {
      if (h.failAt !== null) this.healthyWritten.delete(id);
      else if (clock - (this.healthyWritten.get(id) ?? -Infinity) < HEALTHY_WRITE_EVERY_MS) health.delete(id);
      else this.healthyWritten.set(id, clock);
    }

    const published: EventEnvelope[] = [];
    const rows = outcomes.map(({ f, o }) => ({ ...o, companyId: f.row.companyId, endpointId: f.row.endpointId }));
    // The attempts and the deliveries' next step: one statement.
    const record = async (runner: { query(sql: string, params: unknown[]): Promise<unknown> }) => {
      if (rows.length === 0) return;
      await runner.query(
        `WITH v AS (
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::timestamptz[], $6::int[], $7::int[],
                                $8::varchar[], $9::text[], $10::timestamptz[], $11::varchar[])
             AS v(id, company_id, endpoint_id, attempt, started_at, code, latency, error, snippet, next, status)
         ), logged AS (
           INSERT INTO webhook_delivery_attempts
             (delivery_id, company_id, endpoint_id, attempt, started_at, status_code, latency_ms, error_class, response_snippet, next_attempt_at)
           SELECT id, company_id, endpoint_id, attempt, started_at, code, latency, error, snippet, next FROM v
         )
         UPDATE webhook_deliveries d SET
           status = v.status, attempts = v.attempt, next_attempt_at = v.next, lease_until = NULL,
           last_status_code = v.code, last_error_class = v.error,
           completed_at = CASE WHEN v.status IN ('succeeded', 'failed') THEN $12::timestamptz ELSE NULL END
         FROM v WHERE d.id = v.id`,
        [
          rows.map((r) => r.deliveryId),
          rows.map((r) => r.companyId),
          rows.map((r) => r.endpointId),
          rows.map((r) => r.attempt),
          rows.map((r) => r.startedAt),
          rows.map((r) => r.statusCode),
          rows.map((r) => r.latencyMs),
          rows.map((r) => r.errorClass),
          rows.map((r) => r.snippet),
          rows.map((r) => r.nextAttemptAt),
          rows.map((r) => r.status),
          now,
        ],
      );
    };
    if (released.length === 0 && health.size === 0) await record(this.dataSource);
    else
      await this.dataSource.transaction(async (m) => {
        if (released.length > 0) {
          await m.query(
            `UPDATE webhook_deliveries SET status = 'pending', lease_until = NULL, next_attempt_at = $2
             WHERE id = ANY($1::uuid[]) AND status = 'delivering'`,
            [released, now],
          );
        }
        await record(m);
        if (health.size === 0) return;
        const ids = [...health.keys()].sort();
        const hs = ids.map((id) => health.get(id)!);
        // The endpoint rows in one order (by id), whatever instance writes: no deadlock between them.
        await m.query('SELECT id FROM webhook_endpoints WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE', [ids]);
        await m.query(
          `UPDATE webhook_endpoints e SET
           last_success_at = COALESCE(v.success_at, e.last_success_at),
           failing_since = CASE WHEN v.fail_at IS NULL THEN NULL
                                WHEN v.success_at IS NOT NULL THEN v.fail_at
                                ELSE COALESCE(e.failing_since, v.fail_at) END
         FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS v(id, success_at, fail_at)
         WHERE e.id = v.id`,
          [ids, hs.map((h) => h.successAt), hs.map((h) => h.failAt)],
        );
        const disabled = (await m.query(
          `UPDATE webhook_endpoints e SET enabled = false, disabled_at = $4::timestamptz,
           disabled_reason = CASE WHEN v.gone THEN 'gone' ELSE 'failing' END
         FROM unnest($1::uuid[], $2::bool[], $3::bool[]) AS v(id, gone, failing)
         WHERE e.id = v.id AND e.enabled
           AND (v.gone OR (v.failing AND e.failing_since IS NOT NULL
                           AND e.failing_since <= $4::timestamptz - $5::int8 * interval '1 millisecond'))
         RETURNING e.id, e.company_id, e.url, e.disabled_reason`,
          [
            ids,
            hs.map((h) => h.gone),
            hs.map((h) => h.failAt !== null),
            now,
            this.config.WEBHOOK_ENDPOINT_DISABLE_AFTER_MS,
          ],
        )) as unknown;
        const list = rowsOf<{ id: string; company_id: string; url: string; disabled_reason: 'gone' | 'failing' }>(
          disabled,
        );
        // Company events in a fixed order (by company) against deadlocks on the event counters.
        for (const d of [...list].sort((a, b) => a.company_id.localeCompare(b.company_id))) {
          published.push(await this.disabledIn(m, d.company_id, d.id, d.url, d.disabled_reason, now));
        }
      });
    this.events.publish(published);
    if (published.length > 0) {
      // Their claims not sent yet go back (pending: sent if the endpoint is enabled again).
      this.unqueue(published.map((e) => String(e.data.endpointId)));
      this.wakeFanout();
    }

    for (const { f, o } of outcomes) {
      if (o.status === 'succeeded') this.outcomes.success++;
      else if (o.status === 'failed') this.outcomes.gave_up++;
      else this.outcomes.failure++;
      f.written?.(o);
    }
  }

  private async disabledIn(
    m: EntityManager,
    companyId: string,
    endpointId: string,
    url: string,
    reason: 'gone' | 'failing',
    now: Date,
  ): Promise<EventEnvelope> {
    this.logger.warn({ endpointId, companyId, reason }, 'webhook endpoint disabled');
    await this.audit.record(
      {
        companyId,
        actorType: 'system',
        action: 'webhook_endpoint.disabled',
        targetType: 'webhook_endpoint',
        targetId: endpointId,
        details: { reason, url },
      },
      m,
    );
    return this.events.append(m, companyId, 'webhook.endpoint.disabled', { endpointId, url, reason }, null, now);
  }

  /** Claims whose lease passed (their instance died): due again at once. */
  private async reapLeases(): Promise<void> {
    if (!this.running) return;
    try {
      await this.dataSource.query(
        `UPDATE webhook_deliveries SET status = 'pending', lease_until = NULL, next_attempt_at = $1
         WHERE status = 'delivering' AND lease_until < $1 AND NOT (id = ANY($2::uuid[]))`,
        [this.clock.now(), [...this.inFlight.keys(), ...[...this.queued.values()].flat().map((r) => r.id)]],
      );
    } catch (error) {
      if (!this.stopping) this.logger.warn({ err: error }, 'webhook lease sweep failed');
    }
  }
}

/** The rows of a query: TypeORM answers `[rows, count]` for UPDATE … RETURNING, the rows for SELECT. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result) && result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number') {
    return result[0] as T[];
  }
  return result as T[];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
