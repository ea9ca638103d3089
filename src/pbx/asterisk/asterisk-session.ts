import { randomUUID } from 'node:crypto';
import type { CallEvent } from '../../calls/call-event.js';
import { toE164 } from '../../common/phone.js';
import type { CallDirection } from '../../calls/call-state.js';
import { PbxError, type OriginateRequest, type OriginateResult, type ProviderCallStatus } from '../pbx-provider.js';
import {
  AmiActionError,
  AmiClient,
  type AmiClientOptions,
  type AmiConnectionState,
  backoffDelay,
} from './ami-client.js';
import { AmiCallMapper, type AsteriskCallEvent, channelPeer } from './ami-call-mapper.js';
import { amiHeader, type AmiFields } from './ami-parser.js';
import type { AsteriskSecrets, AsteriskSettings } from './asterisk.driver.js';

/** What a session needs from the application: applying call events and reading the open calls. */
export interface SessionSink {
  /**
   * Stores the events of many calls, in the order given (each call's events keep their order).
   * Idempotent: the session retries a batch that failed, in whole, so events already stored by
   * a failed attempt must be skipped (they are, by their event key). Resolves once stored.
   */
  applyBatch(events: readonly CallEvent[]): Promise<unknown>;
  activeProviderCallIds(companyId: string, connectionId: string): Promise<string[]>;
  onState(connectionId: string, state: AmiConnectionState, reason: string | undefined): void;
  warn(message: string, details: Record<string, unknown>): void;
  info(message: string, details: Record<string, unknown>): void;
}

export interface SessionTiming {
  pingIntervalMs: number;
  pingTimeoutMs: number;
  reconnectMaxMs: number;
  authRetryMs: number;
  /** How long originate waits for Asterisk to create the agent's channel. */
  originateTieMs: number;
  /** Ceiling of the delay between two attempts to store events (it starts at 100 ms, doubling). */
  applyRetryMaxMs: number;
  /** Events waiting to be stored past which the socket is no longer read (back-pressure). */
  pendingMaxEvents: number;
  /** stop(): how long events not yet stored are still tried before they are given up (logged). */
  stopGraceMs: number;
}

/** Events stored in one call of applyBatch at most (what waits longer goes in the next). */
export const AMI_BATCH_MAX = 1_000;
const APPLY_BACKOFF = { initialMs: 100, factor: 2, jitter: 0.3 } as const;

const LOST = 'lost during disconnect';

/**
 * One AMI connection held by this instance: the AMI client, the event mapper (one per connection,
 * fed in order), the channels of each live call (for Hangup and PlayDTMF), and the commands.
 * Events are stored in the order Asterisk sent them. After every (re)connect,
 * `CoreShowChannels` resynchronises: calls we have open that Asterisk no longer has are ended
 * ("lost during disconnect"); calls Asterisk has that we do not know are created.
 *
 * Durability (issue 11 §5). Asterisk never sends an event twice, so an event mapped here exists
 * nowhere else until it is stored. Choice: keep it in memory and RETRY until stored (backoff from
 * 100 ms doubling to `applyRetryMaxMs`, ±30 % jitter), rather than journal it first. A journal
 * would have to be local (PostgreSQL is what is down): a file to fsync per event on the hot path,
 * replayed at start by the same instance only, while after a crash another instance takes the
 * connection over and rebuilds the live calls from `CoreShowChannels` anyway (the resync). What
 * the memory path can lose is what a crash of this process loses in any case, and the resync
 * repairs it the same way. Memory stays bounded: past `pendingMaxEvents` waiting events the
 * socket is no longer read (AmiClient.pause(): TCP flow control, nothing dropped by us) until the
 * backlog is down to half. Asterisk drops a manager session it cannot write to (manager.conf
 * `writetimeout`), so a pause long enough ends in a reconnect, and the resync after it then runs
 * after every event of before was stored — the order holds: the drain and the resync run in one
 * queue, and AmiClient holds the new connection's events until the resync is done (past the same
 * bound it stops reading rather than deliver them early).
 * Batching (§6): everything waiting when a store begins goes in ONE applyBatch (up to
 * AMI_BATCH_MAX events, of many calls), so the rate is bounded by the batch apply, not by one
 * transaction per call; an event arriving on an idle session is stored alone at once (screen pop).
 */
export class AsteriskSession {
  readonly client: AmiClient;
  private readonly mapper: AmiCallMapper;
  private readonly isAgentChannel: (channel: string) => boolean;
  /** Linkedid → its live channels. */
  private readonly channels = new Map<string, Map<string, string>>();
  private queue: Promise<void> = Promise.resolve();
  /** Mapped events not stored yet, in arrival order (the head is being stored or retried). */
  private readonly pending: CallEvent[] = [];
  private flushQueued = false;
  /** Set by stop(): after it, failed stores are given up (logged) instead of retried. */
  private stopDeadline: number | undefined;
  /** From a login until its resync is stored (the new connection's events wait meanwhile). */
  resyncing = false;
  /** Cuts the current retry delay short (stop()). */
  private wake: (() => void) | undefined;
  private readonly tieWaiters = new Map<string, () => void>();

  constructor(
    readonly connection: {
      id: string;
      companyId: string;
      settings: AsteriskSettings;
      secrets: AsteriskSecrets;
      version: string;
    },
    private readonly sink: SessionSink,
    private readonly timing: SessionTiming,
    clientOptions: Partial<AmiClientOptions> = {},
  ) {
    const s = connection.settings;
    const agentPattern = new RegExp(s.agentExtensionPattern);
    this.isAgentChannel = (channel: string) => {
      const peer = channelPeer(channel);
      return peer !== undefined && agentPattern.test(peer);
    };
    this.mapper = new AmiCallMapper({
      requestIdVariable: s.requestIdVariable,
      isAgentExtension: (peer) => agentPattern.test(peer),
    });
    this.client = new AmiClient({
      host: s.host,
      port: s.port,
      username: s.username,
      secret: connection.secrets.secret,
      keepVarSet: [s.requestIdVariable],
      pingIntervalMs: timing.pingIntervalMs,
      pingTimeoutMs: timing.pingTimeoutMs,
      backoff: { maxMs: timing.reconnectMaxMs },
      authRetryMs: timing.authRetryMs,
      onEvent: (fields, at) => this.onEvent(fields, at),
      onState: (state, reason) => sink.onState(connection.id, state, reason),
      onConnected: () => {
        this.resyncing = true;
        return this.enqueue(() => this.resync()).finally(() => (this.resyncing = false));
      },
      onWarning: (w) =>
        sink.warn(w.code === 'event-buffer-full' ? 'AMI events held' : 'AMI input skipped', {
          connectionId: connection.id,
          ...w,
        }),
      // Held during a resync (AmiClient buffers them): the same bound as the events to store.
      maxBufferedEvents: timing.pendingMaxEvents,
      ...clientOptions,
    });
  }

  start(): void {
    this.client.start();
  }

  /** Stops reading and tries, for up to `stopGraceMs`, to store what is still waiting. */
  async stop(): Promise<void> {
    this.stopDeadline = Date.now() + this.timing.stopGraceMs;
    this.wake?.();
    await this.client.stop();
    await this.queue;
  }

  /** Events received and not stored yet. */
  get pendingCount(): number {
    return this.pending.length;
  }

  // --- commands -----------------------------------------------------------------------------------

  /**
   * Originate (Async) of the agent's channel into the configured context with the customer's
   * number, our ActionID and our call id in a channel variable. Resolves with the call's Linkedid
   * once Asterisk made the agent's channel, or with the originate's own key when Asterisk refused
   * it at once (its `OriginateResponse: Failure` then ends that call as failed).
   */
  async originate(request: OriginateRequest): Promise<OriginateResult> {
    const s = this.connection.settings;
    const extension = request.agent.externalId ?? request.agent.extension;
    if (!extension || !/^[\w+*#.-]{1,40}$/.test(extension)) {
      throw new PbxError('REJECTED', 'The agent has no extension on this Asterisk (agent extension or user mapping).');
    }
    const actionId = `sb-orig-${randomUUID()}`;
    const exten = s.stripPlus ? request.to.replace(/^\+/, '') : request.to;
    const shown = request.callerId ?? s.originateCallerId ?? request.to;
    const fields: AmiFields = [
      ['Action', 'Originate'],
      ['ActionID', actionId],
      ['Channel', s.agentChannel.replace('{extension}', extension)],
      ['Context', s.context],
      ['Exten', exten],
      ['Priority', '1'],
      ['Async', 'true'],
      ['Timeout', String(s.originateTimeoutMs)],
      ['CallerID', `"${s.originateCallerName}" <${shown}>`],
      ['Variable', `${s.requestIdVariable}=${request.callId}`],
    ];
    // Noted before sending: the agent's channel may appear before the Response does.
    this.mapper.noteOriginate(fields);
    const tied = new Promise<void>((resolve) => this.tieWaiters.set(actionId, resolve));
    try {
      await this.client.action(fields);
    } catch (error) {
      this.tieWaiters.delete(actionId);
      throw toPbxError(error);
    }
    const timer = new Promise<void>((resolve) => setTimeout(resolve, this.timing.originateTieMs).unref());
    await Promise.race([tied, timer]);
    this.tieWaiters.delete(actionId);
    return { providerCallId: this.mapper.linkedidOf(actionId) ?? `originate:${actionId}` };
  }

  /** Hangs up the call: its first channel (the whole call goes with it), else every live one. */
  async hangup(providerCallId: string): Promise<void> {
    const live = this.channels.get(providerCallId);
    if (!live || live.size === 0) throw new PbxError('NOT_FOUND', 'Asterisk has no live channel for this call.');
    const first = live.get(providerCallId);
    const targets = first ? [first] : [...live.values()];
    for (const channel of targets) {
      await this.client
        .action([
          ['Action', 'Hangup'],
          ['Channel', channel],
          ['Cause', '16'],
        ])
        .catch((error: unknown) => {
          // Gone between our look and the action: what was asked is done.
          if (!(error instanceof AmiActionError)) throw toPbxError(error);
        });
    }
  }

  /** PlayDTMF on the customer's leg (the live channel that is not an agent's), digit by digit. */
  async sendDtmf(providerCallId: string, digits: string): Promise<void> {
    const live = [...(this.channels.get(providerCallId)?.values() ?? [])];
    const customer = live.find((c) => !this.isAgentChannel(c)) ?? live[live.length - 1];
    if (!customer) throw new PbxError('NOT_FOUND', 'Asterisk has no live channel for this call.');
    for (const digit of digits) {
      await this.client
        .action([
          ['Action', 'PlayDTMF'],
          ['Channel', customer],
          ['Digit', digit],
          ['Duration', '250'],
        ])
        .catch((error: unknown) => {
          throw toPbxError(error);
        });
    }
  }

  async status(providerCallId: string): Promise<ProviderCallStatus> {
    const { events } = await this.client.listAction([['Action', 'CoreShowChannels']]).catch((error: unknown) => {
      throw toPbxError(error);
    });
    const legs = events.filter(
      (e) => amiHeader(e, 'Event') === 'CoreShowChannel' && amiHeader(e, 'Linkedid') === providerCallId,
    );
    if (legs.length === 0) return { state: 'gone', ended: true };
    const up = legs.some((e) => amiHeader(e, 'ChannelStateDesc') === 'Up');
    return { state: up ? 'up' : (amiHeader(legs[0]!, 'ChannelStateDesc') ?? 'ringing').toLowerCase(), ended: false };
  }

  // --- events -------------------------------------------------------------------------------------

  private enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.queue
      .then(work)
      .catch((error: unknown) =>
        this.sink.warn('AMI event not applied', { connectionId: this.connection.id, err: error }),
      );
    this.queue = next;
    return next;
  }

  /**
   * Maps an event as it arrives (in order) and queues what it means. The events of one TCP read
   * arrive together, and whatever arrives while a store runs waits for the next: each store takes
   * all that waits, as one batch (a caller's new channel and the dial to the agent: one commit,
   * one screen pop).
   */
  private onEvent(fields: AmiFields, at: Date): void {
    this.track(fields);
    const events = this.mapper.map(fields, at);
    for (const actionId of [...this.tieWaiters.keys()]) {
      if (this.mapper.linkedidOf(actionId) || isOriginateResponse(fields, actionId)) this.tieWaiters.get(actionId)!();
    }
    if (events.length === 0) return;
    for (const e of events) this.pending.push(this.canonical(e));
    if (this.pending.length >= this.timing.pendingMaxEvents && !this.client.isPaused) {
      this.sink.warn('AMI events wait to be stored: no longer reading the AMI socket', {
        connectionId: this.connection.id,
        pending: this.pending.length,
      });
      this.client.pause();
    }
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    void this.enqueue(() => this.flush());
  }

  /**
   * Stores what waits, batch after batch, until nothing does. A batch that fails is retried, in
   * whole and before anything after it (order per call), after a growing delay; it is given up
   * only once stop() was called and its grace is over.
   */
  private async flush(): Promise<void> {
    let attempt = 0;
    let firstFailure = 0;
    while (this.pending.length > 0) {
      const batch = this.pending.slice(0, AMI_BATCH_MAX);
      try {
        await this.sink.applyBatch(batch);
      } catch (error) {
        attempt++;
        firstFailure ||= Date.now();
        if (this.stopDeadline !== undefined && Date.now() >= this.stopDeadline) {
          this.pending.splice(0);
          this.sink.warn('AMI events given up: not stored before the session stopped', {
            connectionId: this.connection.id,
            events: batch.length,
            eventKeys: batch.slice(0, 50).map((e) => e.eventKey),
            attempts: attempt,
            err: error,
          });
          break;
        }
        const delay = backoffDelay(attempt - 1, { ...APPLY_BACKOFF, maxMs: this.timing.applyRetryMaxMs });
        this.sink.warn('AMI events not stored yet: retrying', {
          connectionId: this.connection.id,
          pending: this.pending.length,
          attempt,
          retryInMs: delay,
          err: error,
        });
        await this.sleep(delay);
        continue;
      }
      this.pending.splice(0, batch.length);
      if (attempt > 0) {
        this.sink.info('AMI events stored after failed attempts', {
          connectionId: this.connection.id,
          attempts: attempt + 1,
          afterMs: Date.now() - firstFailure,
          pending: this.pending.length,
        });
        attempt = 0;
        firstFailure = 0;
      }
      if (this.client.isPaused && this.pending.length <= this.timing.pendingMaxEvents / 2) this.client.resume();
    }
    // Nothing waits: the next event schedules a flush of its own.
    this.flushQueued = false;
    if (this.client.isPaused) this.client.resume();
  }

  /** Keeps the live channels of each call (names for Hangup and PlayDTMF). */
  private track(fields: AmiFields): void {
    const name = amiHeader(fields, 'Event');
    const uniqueid = amiHeader(fields, 'Uniqueid');
    const linkedid = amiHeader(fields, 'Linkedid') ?? uniqueid;
    if (!uniqueid || !linkedid) return;
    if (name === 'Newchannel') {
      let live = this.channels.get(linkedid);
      if (!live) this.channels.set(linkedid, (live = new Map()));
      live.set(uniqueid, amiHeader(fields, 'Channel') ?? '');
    } else if (name === 'Hangup') {
      const live = this.channels.get(linkedid);
      live?.delete(uniqueid);
      if (live && live.size === 0) this.channels.delete(linkedid);
    }
  }

  private canonical(e: AsteriskCallEvent): CallEvent {
    const { clickToCall, ...rest } = e;
    return {
      ...rest,
      companyId: this.connection.companyId,
      connectionId: this.connection.id,
      // A call we originated carries our call id: the record created by it keeps that id.
      ...(clickToCall?.requestId ? { callId: clickToCall.requestId } : {}),
    };
  }

  /**
   * After a (re)connect: what Asterisk has now against what we have open. Runs in the event
   * queue, after every event of before was stored (their flush is ahead of it), so the calls we
   * read as open are up to date; no event of the new connection is applied before it (AmiClient
   * holds them until it is done). Its own events go through the same durable flush.
   */
  private async resync(): Promise<void> {
    const { events } = await this.client.listAction([['Action', 'CoreShowChannels']]);
    const now = new Date();
    const live = new Map<string, { uniqueid: string; channel: string; fields: AmiFields }[]>();
    for (const fields of events) {
      if (amiHeader(fields, 'Event') !== 'CoreShowChannel') continue;
      const uniqueid = amiHeader(fields, 'Uniqueid');
      const linkedid = amiHeader(fields, 'Linkedid') ?? uniqueid;
      if (!uniqueid || !linkedid) continue;
      let legs = live.get(linkedid);
      if (!legs) live.set(linkedid, (legs = []));
      legs.push({ uniqueid, channel: amiHeader(fields, 'Channel') ?? '', fields });
    }
    // Channels as Asterisk has them now.
    this.channels.clear();
    for (const [linkedid, legs] of live) {
      this.channels.set(linkedid, new Map(legs.map((l) => [l.uniqueid, l.channel])));
    }

    const open = new Set(await this.openCalls());
    const found: CallEvent[] = [];
    const answered: CallEvent[] = [];
    for (const id of open) {
      if (live.has(id) || id.startsWith('originate:')) continue;
      this.mapper.forget(id);
      found.push({
        companyId: this.connection.companyId,
        connectionId: this.connection.id,
        provider: 'asterisk',
        providerCallId: id,
        eventKey: `resync:${id}:lost`,
        kind: 'ended',
        at: now,
        hangupCause: LOST,
        raw: { resync: 'not among the channels after reconnecting' },
      });
    }
    for (const [linkedid, legs] of live) {
      const agentLeg = legs.find((l) => this.isAgentChannel(l.channel));
      const agentExtension = agentLeg ? channelPeer(agentLeg.channel) : undefined;
      const up = legs.length >= 2 && legs.every((l) => amiHeader(l.fields, 'ChannelStateDesc') === 'Up');
      const first = legs.find((l) => l.uniqueid === linkedid) ?? legs[0]!;
      const direction: CallDirection = this.isAgentChannel(first.channel) ? 'outbound' : 'inbound';
      this.mapper.adopt(
        linkedid,
        legs.map((l) => l.uniqueid),
        { direction, answered: up, ...(agentExtension ? { agentExtension } : {}) },
      );
      if (open.has(linkedid)) continue;
      const base = {
        companyId: this.connection.companyId,
        connectionId: this.connection.id,
        provider: 'asterisk',
        providerCallId: linkedid,
        direction,
        ...(agentExtension ? { agent: { extension: agentExtension } } : {}),
        raw: { resync: 'found among the channels after reconnecting' },
      };
      const from = phone(amiHeader(first.fields, 'CallerIDNum'));
      const to = phone(amiHeader(first.fields, 'Exten'));
      found.push({
        ...base,
        eventKey: `resync:${linkedid}:found`,
        kind: 'ringing',
        at: now,
        ...(from ? { from } : {}),
        ...(to ? { to } : {}),
      });
      if (up) answered.push({ ...base, eventKey: `resync:${linkedid}:answered`, kind: 'answered', at: now });
    }
    // The answers in a store after the ringings: same instant, and the timeline orders events of
    // one instant by their commit.
    for (const batch of [found, answered]) {
      if (batch.length === 0) continue;
      this.pending.push(...batch);
      await this.flush();
    }
  }

  /** The calls of this connection we have open, read again until PostgreSQL answers (or stop()). */
  private async openCalls(): Promise<string[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.sink.activeProviderCallIds(this.connection.companyId, this.connection.id);
      } catch (error) {
        if (this.stopDeadline !== undefined && Date.now() >= this.stopDeadline) throw error;
        const delay = backoffDelay(attempt, { ...APPLY_BACKOFF, maxMs: this.timing.applyRetryMaxMs });
        this.sink.warn('AMI resync: open calls not read yet, retrying', {
          connectionId: this.connection.id,
          attempt: attempt + 1,
          retryInMs: delay,
          err: error,
        });
        await this.sleep(delay);
      }
    }
  }

  /** A retry delay that stop() cuts short. */
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => (this.wake = undefined));
  }
}

/** A number as the mapper writes it: E.164 when it is one, digits (an extension) otherwise. */
function phone(value: string | undefined): string | undefined {
  if (!value || value === '<unknown>' || !/^\+?\d+$/.test(value)) return undefined;
  return toE164(value) ?? value;
}

function isOriginateResponse(fields: AmiFields, actionId: string): boolean {
  return amiHeader(fields, 'Event') === 'OriginateResponse' && amiHeader(fields, 'ActionID') === actionId;
}

function toPbxError(error: unknown): PbxError {
  if (error instanceof PbxError) return error;
  if (error instanceof AmiActionError) return new PbxError('REJECTED', `Asterisk refused: ${error.message}`);
  return new PbxError('TRANSIENT', `AMI unavailable: ${(error as Error).message}`);
}
