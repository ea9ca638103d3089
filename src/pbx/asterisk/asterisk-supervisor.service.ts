import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { CallApplyService } from '../../calls/call-apply.service.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import { DATABASE_URL } from '../../database/database.tokens.js';
import { NotificationsService } from '../../database/notifications.service.js';
import { PbxConnectionsService } from '../connections/pbx-connections.service.js';
import { PbxRegistry } from '../pbx-registry.js';
import { type OriginateRequest, type OriginateResult, PbxError, type ProviderCallStatus } from '../pbx-provider.js';
import type { AmiConnectionState } from './ami-client.js';
import { AsteriskSession } from './asterisk-session.js';
import type { AmiGateway, AsteriskSecrets, AsteriskSettings } from './asterisk.driver.js';

/** The class id of our advisory locks (the second key is the connection's hash). */
const LOCK_CLASS = 0x5342;
const RPC_TOPIC = 'ami-rpc';
const RPC_REPLY_TOPIC = 'ami-rpc-reply';

/** One connection's live state as the status API shows it. */
export interface AsteriskConnectionStatus {
  state: Exclude<AmiConnectionState, 'stopped'> | 'standby';
  reason: string | null;
  since: string | null;
  /** The instance holding the AMI connection, when one does. */
  holder: string | null;
}

type Command =
  | { op: 'originate'; request: OriginateRequest }
  | { op: 'hangup'; providerCallId: string }
  | { op: 'dtmf'; providerCallId: string; digits: string }
  | { op: 'status'; providerCallId: string };

/**
 * Holds the company AMI connections: exactly one instance holds a given connection at a time
 * (a PostgreSQL advisory lock keyed by the connection, on a session of its own: when the instance
 * dies, its session ends and the lock with it). Every instance tries, every ASTERISK_LOCK_POLL_MS,
 * to take the connections nobody holds, so a standby takes over within that period plus a login.
 * The holder writes the connection's state (connected / reconnecting / failed with its reason)
 * to the connection row with a heartbeat; any instance answers the status from there.
 * Commands (originate, hangup, DTMF, status) go to the holder: locally, or through a PostgreSQL
 * NOTIFY request/reply when another instance holds it.
 */
@Injectable()
export class AsteriskSupervisor implements OnApplicationBootstrap, BeforeApplicationShutdown, AmiGateway {
  private readonly logger = new Logger(AsteriskSupervisor.name);
  readonly instanceId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly sessions = new Map<string, AsteriskSession>();
  private readonly pendingReplies = new Map<
    string,
    (reply: { ok: boolean; value?: unknown; error?: { code: string; message: string } }) => void
  >();
  /** Per connection: the last of its runtime-row writes, the next one waits for it (see writeState). */
  private readonly runtimeWrites = new Map<string, Promise<void>>();
  private lockClient: pg.Client | null = null;
  /** The last unlock queued on the lock session (see release). */
  /** The lock session's queries, one after another (pg runs one query at a time per client). */
  private lockQueries: Promise<unknown> = Promise.resolve();
  /** The lock session was lost while holding connections: their locks are to be taken again. */
  private relock = false;
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | null = null;
  private stopped = false;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(DATABASE_URL) private readonly databaseUrl: string,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
    private readonly connections: PbxConnectionsService,
    private readonly registry: PbxRegistry,
    private readonly calls: CallApplyService,
    private readonly notifications: NotificationsService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.ASTERISK_ENABLED) return;
    this.notifications.on('pbx-connection', () => this.soon());
    this.notifications.on(RPC_TOPIC, (payload) => void this.onRpc(payload));
    this.notifications.on(RPC_REPLY_TOPIC, (payload) => this.onRpcReply(payload));
    this.timer = setInterval(() => this.soon(), this.config.ASTERISK_LOCK_POLL_MS);
    this.timer.unref();
    this.soon();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.reconciling;
    await Promise.all([...this.sessions.keys()].map((id) => this.release(id, 'instance stopping')));
    // Ours to end: not a lost session.
    const client = this.lockClient;
    this.lockClient = null;
    await client?.end().catch(() => undefined);
  }

  /** The connections this instance holds, with their state (for /health/ready). */
  held(): { id: string; state: AmiConnectionState; reason: string | null }[] {
    return [...this.sessions.entries()].map(([id, s]) => ({
      id,
      state: s.client.state,
      reason: s.client.reason ?? null,
    }));
  }

  /**
   * Per held connection: AMI events received and not stored yet, whether reading is paused for
   * them, and whether a resync is under way.
   */
  backlog(): { id: string; pending: number; paused: boolean; resyncing: boolean }[] {
    return [...this.sessions.entries()].map(([id, s]) => ({
      id,
      pending: s.pendingCount,
      paused: s.client.isPaused,
      resyncing: s.resyncing,
    }));
  }

  async status(companyId: string, connectionId: string): Promise<AsteriskConnectionStatus> {
    const [row] = (await this.dataSource.query(
      `SELECT runtime_state, runtime_reason, runtime_holder, runtime_at,
              runtime_at > now() - make_interval(secs => $3) AS fresh
       FROM pbx_connections WHERE id = $1 AND company_id = $2`,
      [connectionId, companyId, this.staleAfterSeconds],
    )) as {
      runtime_state: string | null;
      runtime_reason: string | null;
      runtime_holder: string | null;
      runtime_at: Date | null;
      fresh: boolean | null;
    }[];
    if (!row?.runtime_state || !row.fresh || row.runtime_state === 'stopped') {
      return { state: 'standby', reason: 'no instance holds this connection right now', since: null, holder: null };
    }
    return {
      state: row.runtime_state as Exclude<AmiConnectionState, 'stopped'>,
      reason: row.runtime_reason,
      since: row.runtime_at ? row.runtime_at.toISOString() : null,
      holder: row.runtime_holder,
    };
  }

  // --- AmiGateway: commands go to the holder ------------------------------------------------------

  originate(connectionId: string, request: OriginateRequest): Promise<OriginateResult> {
    return this.command(connectionId, { op: 'originate', request }) as Promise<OriginateResult>;
  }

  async hangup(connectionId: string, providerCallId: string): Promise<void> {
    await this.command(connectionId, { op: 'hangup', providerCallId });
  }

  async sendDtmf(connectionId: string, providerCallId: string, digits: string): Promise<void> {
    await this.command(connectionId, { op: 'dtmf', providerCallId, digits });
  }

  callStatus(connectionId: string, providerCallId: string): Promise<ProviderCallStatus> {
    return this.command(connectionId, { op: 'status', providerCallId }) as Promise<ProviderCallStatus>;
  }

  private async command(connectionId: string, command: Command): Promise<unknown> {
    const local = this.sessions.get(connectionId);
    if (local) return this.run(local, command);
    if (!this.config.ASTERISK_ENABLED) throw new PbxError('TRANSIENT', 'Asterisk connections are disabled here.');
    // Another instance holds it: ask it, and wait for its answer.
    const id = randomUUID();
    const reply = new Promise<{ ok: boolean; value?: unknown; error?: { code: string; message: string } }>((resolve) =>
      this.pendingReplies.set(id, resolve),
    );
    await this.dataSource.transaction((m) =>
      this.notifications.notify(m, RPC_TOPIC, JSON.stringify({ id, connectionId, command })),
    );
    const timeout = new Promise<null>((resolve) =>
      setTimeout(() => resolve(null), this.config.ASTERISK_COMMAND_TIMEOUT_MS).unref(),
    );
    const answer = await Promise.race([reply, timeout]);
    this.pendingReplies.delete(id);
    if (!answer) throw new PbxError('TRANSIENT', 'No instance holds this AMI connection right now.');
    if (!answer.ok)
      throw new PbxError((answer.error?.code ?? 'TRANSIENT') as PbxError['code'], answer.error?.message ?? 'failed');
    return answer.value;
  }

  private run(session: AsteriskSession, command: Command): Promise<unknown> {
    if (session.client.state !== 'connected') {
      return Promise.reject(new PbxError('TRANSIENT', `The AMI connection is ${session.client.state}.`));
    }
    switch (command.op) {
      case 'originate':
        return session.originate(command.request);
      case 'hangup':
        return session.hangup(command.providerCallId);
      case 'dtmf':
        return session.sendDtmf(command.providerCallId, command.digits);
      case 'status':
        return session.status(command.providerCallId);
    }
  }

  private async onRpc(payload: string): Promise<void> {
    let request: { id: string; connectionId: string; command: Command };
    try {
      request = JSON.parse(payload) as typeof request;
    } catch {
      return;
    }
    const session = this.sessions.get(request.connectionId);
    if (!session) return; // not ours: the holder answers
    let reply: { id: string; ok: boolean; value?: unknown; error?: { code: string; message: string } };
    try {
      reply = { id: request.id, ok: true, value: (await this.run(session, request.command)) ?? null };
    } catch (error) {
      const e = error instanceof PbxError ? error : new PbxError('TRANSIENT', (error as Error).message);
      reply = { id: request.id, ok: false, error: { code: e.code, message: e.message } };
    }
    await this.dataSource
      .transaction((m) => this.notifications.notify(m, RPC_REPLY_TOPIC, JSON.stringify(reply)))
      .catch((error: unknown) => this.logger.warn({ err: error }, 'AMI command reply not sent'));
  }

  private onRpcReply(payload: string): void {
    try {
      const reply = JSON.parse(payload) as {
        id: string;
        ok: boolean;
        value?: unknown;
        error?: { code: string; message: string };
      };
      this.pendingReplies.get(reply.id)?.(reply);
    } catch {
      // not one of ours
    }
  }

  // --- holding connections ------------------------------------------------------------------------

  private get staleAfterSeconds(): number {
    return Math.max(15, (this.config.ASTERISK_LOCK_POLL_MS * 3) / 1000);
  }

  private soon(): void {
    if (this.stopped || this.reconciling) return;
    this.reconciling = this.reconcile()
      .catch((error: unknown) => this.logger.warn({ err: error }, 'Asterisk reconcile failed'))
      .finally(() => (this.reconciling = null));
  }

  /** Takes the connections nobody holds, lets go of those removed or changed, beats the heart. */
  private async reconcile(): Promise<void> {
    const client = await this.locks();
    const rows = (await this.dataSource.query(
      `SELECT p.id, p.updated_at FROM pbx_connections p JOIN companies c ON c.id = p.company_id
       WHERE p.provider = 'asterisk' AND p.deleted_at IS NULL AND c.status = 'active'`,
    )) as { id: string; updated_at: Date }[];
    const wanted = new Map(rows.map((r) => [r.id, r.updated_at.getTime()]));
    for (const [id, session] of this.sessions) {
      const version = wanted.get(id);
      if (version === undefined || !session.connection.version.startsWith(`${version}:`)) {
        await this.release(id, version === undefined ? 'connection removed' : 'connection changed');
      }
    }
    for (const id of wanted.keys()) {
      if (this.stopped || this.sessions.has(id)) continue;
      if (!(await this.tryLock(client, id))) continue;
      try {
        await this.hold(id);
      } catch (error) {
        this.logger.warn({ err: error, connectionId: id }, 'could not hold the AMI connection');
        await this.onLockSession(client, 'SELECT pg_advisory_unlock($1, hashtext($2))', id).catch(() => undefined);
      }
    }
    if (this.sessions.size > 0) {
      await this.dataSource.query(
        `UPDATE pbx_connections SET runtime_at = now() WHERE id = ANY($1::uuid[]) AND runtime_holder = $2`,
        [[...this.sessions.keys()], this.instanceId],
      );
    }
  }

  private async hold(id: string): Promise<void> {
    const [row] = (await this.dataSource.query('SELECT company_id FROM pbx_connections WHERE id = $1', [id])) as {
      company_id: string;
    }[];
    if (!row) return;
    const loaded = await this.connections.load(row.company_id, id);
    const settings = this.registry.driver(loaded.provider).settingsSchema.parse(loaded.settings) as AsteriskSettings;
    const session = new AsteriskSession(
      {
        id,
        companyId: loaded.companyId,
        settings,
        secrets: loaded.secrets as AsteriskSecrets,
        version: loaded.version,
      },
      {
        applyBatch: (events) => this.calls.applyBatch(events),
        activeProviderCallIds: (companyId, connectionId) => this.calls.activeProviderCallIds(companyId, connectionId),
        onState: (connectionId, state, reason) => void this.writeState(connectionId, state, reason),
        warn: (message, details) => this.logger.warn(details, message),
        info: (message, details) => this.logger.log(details, message),
      },
      {
        pingIntervalMs: this.config.AMI_PING_INTERVAL_MS,
        pingTimeoutMs: this.config.AMI_PING_TIMEOUT_MS,
        reconnectMaxMs: this.config.AMI_RECONNECT_MAX_MS,
        authRetryMs: this.config.AMI_AUTH_RETRY_MS,
        originateTieMs: 3_000,
        applyRetryMaxMs: this.config.AMI_APPLY_RETRY_MAX_MS,
        pendingMaxEvents: this.config.AMI_PENDING_MAX_EVENTS,
        stopGraceMs: this.config.SHUTDOWN_GRACE_MS,
      },
    );
    this.sessions.set(id, session);
    this.logger.log({ connectionId: id, instance: this.instanceId }, 'holding the AMI connection');
    await this.writeState(id, 'connecting', undefined);
    session.start();
  }

  private async release(id: string, why: string): Promise<void> {
    const session = this.sessions.get(id);
    if (!session) return;
    this.sessions.delete(id);
    await session
      .stop()
      .catch((error: unknown) => this.logger.warn({ err: error, connectionId: id }, 'AMI stop failed'));
    // After the session's own state writes still on their way (see writeState).
    await this.serialized(id, () =>
      this.dataSource
        .query(
          `UPDATE pbx_connections SET runtime_state = NULL, runtime_reason = $3, runtime_holder = NULL, runtime_at = now()
         WHERE id = $1 AND runtime_holder = $2`,
          [id, this.instanceId, why],
        )
        .catch(() => undefined),
    );
    // Several connections are released at once when the instance stops: their unlocks share the
    // lock session with the reconcile's lock attempts, so they queue (see onLockSession).
    const client = this.lockClient;
    if (client) {
      await this.onLockSession(client, 'SELECT pg_advisory_unlock($1, hashtext($2))', id).catch(() => undefined);
    }
    this.logger.log({ connectionId: id, why }, 'released the AMI connection');
  }

  /**
   * Fix (e2e test/asterisk.e2e-spec.ts): the state changes of a connection come in bursts
   * (connecting → connected within a few ms) and were written fire-and-forget, each UPDATE on
   * whichever pooled connection was free, so they could commit out of order: the row kept
   * 'connecting' while the session was connected (the status API said so for good, nothing else
   * being written until the next change). The writes of a connection now go one after another,
   * in the order the states changed; release() writes through the same chain.
   */
  private writeState(id: string, state: AmiConnectionState, reason: string | undefined): Promise<void> {
    if (state === 'stopped' || !this.sessions.has(id)) return Promise.resolve();
    return this.serialized(id, () =>
      this.dataSource
        .query(
          `UPDATE pbx_connections SET runtime_state = $2, runtime_reason = $3, runtime_holder = $4, runtime_at = now()
         WHERE id = $1`,
          [id, state, reason ?? null, this.instanceId],
        )
        .then(
          () => undefined,
          (error: unknown) => this.logger.warn({ err: error, connectionId: id }, 'AMI state not saved'),
        ),
    );
  }

  /** Runs a write of the connection's runtime row after the ones before it. */
  private serialized(id: string, write: () => Promise<unknown>): Promise<void> {
    const next = (this.runtimeWrites.get(id) ?? Promise.resolve()).then(write).then(
      () => undefined,
      () => undefined,
    );
    this.runtimeWrites.set(id, next);
    void next.then(() => {
      if (this.runtimeWrites.get(id) === next) this.runtimeWrites.delete(id);
    });
    return next;
  }

  /**
   * The session our advisory locks live on. When it is lost, so are the locks, but the held
   * connections are KEPT (issue 11 §5): the session is lost when PostgreSQL is (a restart, a
   * network cut), and then no other instance can take a lock either, while letting the AMI
   * connection go would lose every event Asterisk sends meanwhile (the session keeps them until
   * they are stored). The next reconcile opens a new lock session and takes each held
   * connection's lock again; one another instance took first (we alone were cut off from
   * PostgreSQL) is let go then — both held it for at most one poll period, and both stored the
   * same events, which applying skips the second time (event keys).
   */
  private async locks(): Promise<pg.Client> {
    if (this.lockClient) return this.lockClient;
    const client = new pg.Client({ connectionString: this.databaseUrl, application_name: 'switchboard-ami-locks' });
    const lost = () => {
      if (this.lockClient !== client) return;
      this.lockClient = null;
      if (this.sessions.size === 0) return;
      this.relock = true;
      this.logger.warn('the advisory-lock session was lost: keeping the AMI connections, locking them again');
    };
    client.on('error', lost);
    client.on('end', lost);
    await client.connect();
    this.lockClient = client;
    if (this.relock) {
      try {
        for (const id of [...this.sessions.keys()]) {
          if (!(await this.tryLock(client, id)))
            await this.release(id, 'taken by another instance while our lock session was lost');
        }
        this.relock = false;
        this.logger.log({ held: this.sessions.size }, 'advisory-lock session back: AMI connections locked again');
      } catch (error) {
        this.lockClient = null;
        await client.end().catch(() => undefined);
        throw error;
      }
    }
    return client;
  }

  private async tryLock(client: pg.Client, id: string): Promise<boolean> {
    const { rows } = await this.onLockSession(client, 'SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', id);
    return (rows[0] as { ok?: boolean } | undefined)?.ok === true;
  }

  /**
   * Runs one query on the lock session after those queued before it: reconcile, release and the
   * relock after a lost session all use it, and pg deprecates a second query on a busy client.
   */
  private onLockSession(client: pg.Client, sql: string, id: string): Promise<pg.QueryResult> {
    const run = this.lockQueries.then(
      () => client.query(sql, [LOCK_CLASS, id]),
      () => client.query(sql, [LOCK_CLASS, id]),
    );
    this.lockQueries = run.catch(() => undefined);
    return run;
  }
}
