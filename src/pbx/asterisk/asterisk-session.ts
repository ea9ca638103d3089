import { randomUUID } from 'node:crypto';
import type { CallEvent } from '../../calls/call-event.js';
import { toE164 } from '../../common/phone.js';
import type { CallDirection } from '../../calls/call-state.js';
import { PbxError, type OriginateRequest, type OriginateResult, type ProviderCallStatus } from '../pbx-provider.js';
import { AmiActionError, AmiClient, type AmiClientOptions, type AmiConnectionState } from './ami-client.js';
import { AmiCallMapper, type AsteriskCallEvent, channelPeer } from './ami-call-mapper.js';
import { amiHeader, type AmiFields } from './ami-parser.js';
import type { AsteriskSecrets, AsteriskSettings } from './asterisk.driver.js';

/** What a session needs from the application: applying call events and reading the open calls. */
export interface SessionSink {
  apply(event: CallEvent): Promise<unknown>;
  /** Several events of one call, in one transaction. */
  applyAll(events: CallEvent[]): Promise<unknown>;
  activeProviderCallIds(companyId: string, connectionId: string): Promise<string[]>;
  onState(connectionId: string, state: AmiConnectionState, reason: string | undefined): void;
  warn(message: string, details: Record<string, unknown>): void;
}

export interface SessionTiming {
  pingIntervalMs: number;
  pingTimeoutMs: number;
  reconnectMaxMs: number;
  authRetryMs: number;
  /** How long originate waits for Asterisk to create the agent's channel. */
  originateTieMs: number;
}

const LOST = 'lost during disconnect';

/**
 * One AMI connection held by this instance: the AMI client, the event mapper (one per connection,
 * fed in order), the channels of each live call (for Hangup and PlayDTMF), and the commands.
 * Events are applied one after another, in the order Asterisk sent them. After every (re)connect,
 * `CoreShowChannels` resynchronises: calls we have open that Asterisk no longer has are ended
 * ("lost during disconnect"); calls Asterisk has that we do not know are created.
 */
export class AsteriskSession {
  readonly client: AmiClient;
  private readonly mapper: AmiCallMapper;
  private readonly isAgentChannel: (channel: string) => boolean;
  /** Linkedid → its live channels. */
  private readonly channels = new Map<string, Map<string, string>>();
  private queue: Promise<void> = Promise.resolve();
  /** Mapped events waiting for the next flush, in order. */
  private readonly pending: CallEvent[] = [];
  private flushQueued = false;
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
      onConnected: () => this.enqueue(() => this.resync()),
      onWarning: (w) => sink.warn('AMI input skipped', { connectionId: connection.id, ...w }),
      ...clientOptions,
    });
  }

  start(): void {
    this.client.start();
  }

  async stop(): Promise<void> {
    await this.client.stop();
    await this.queue;
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
   * arrive together; the flush that follows applies each run of one call's events in one
   * transaction (a caller's new channel and the dial to the agent: one commit, one screen pop).
   */
  private onEvent(fields: AmiFields, at: Date): void {
    this.track(fields);
    const events = this.mapper.map(fields, at);
    for (const actionId of [...this.tieWaiters.keys()]) {
      if (this.mapper.linkedidOf(actionId) || isOriginateResponse(fields, actionId)) this.tieWaiters.get(actionId)!();
    }
    if (events.length === 0) return;
    for (const e of events) this.pending.push(this.canonical(e));
    if (!this.flushQueued) {
      this.flushQueued = true;
      void this.enqueue(() => this.flush());
    }
  }

  private async flush(): Promise<void> {
    this.flushQueued = false;
    const batch = this.pending.splice(0);
    let i = 0;
    while (i < batch.length) {
      const key = batch[i]!.providerCallId;
      let j = i + 1;
      while (j < batch.length && batch[j]!.providerCallId === key) j++;
      const group = batch.slice(i, j);
      // One more try after a moment (a failover, a lost connection): AMI will not send them again.
      await this.sink
        .applyAll(group)
        .catch(() => new Promise((r) => setTimeout(r, 200)).then(() => this.sink.applyAll(group)))
        .catch((error: unknown) =>
          this.sink.warn('AMI call events not applied', {
            connectionId: this.connection.id,
            providerCallId: key,
            eventKeys: group.map((e) => e.eventKey),
            err: error,
          }),
        );
      i = j;
    }
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
   * queue, so no event of the new connection is applied before it.
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

    const open = new Set(await this.sink.activeProviderCallIds(this.connection.companyId, this.connection.id));
    for (const id of open) {
      if (live.has(id) || id.startsWith('originate:')) continue;
      this.mapper.forget(id);
      await this.sink.apply({
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
      const answered = legs.length >= 2 && legs.every((l) => amiHeader(l.fields, 'ChannelStateDesc') === 'Up');
      const first = legs.find((l) => l.uniqueid === linkedid) ?? legs[0]!;
      const direction: CallDirection = this.isAgentChannel(first.channel) ? 'outbound' : 'inbound';
      this.mapper.adopt(
        linkedid,
        legs.map((l) => l.uniqueid),
        { direction, answered, ...(agentExtension ? { agentExtension } : {}) },
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
      await this.sink.apply({
        ...base,
        eventKey: `resync:${linkedid}:found`,
        kind: 'ringing',
        at: now,
        ...(from ? { from } : {}),
        ...(to ? { to } : {}),
      });
      if (answered)
        await this.sink.apply({ ...base, eventKey: `resync:${linkedid}:answered`, kind: 'answered', at: now });
    }
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
