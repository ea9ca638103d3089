import { toE164 } from '../../common/phone.js';
import type { CallEvent } from '../../calls/call-event.js';
import type { CallDirection, EndReason } from '../../calls/call-state.js';
import { amiHeader, type AmiFields } from './ami-parser.js';

/**
 * Turns the AMI events of one connection (in order) into canonical call events. Pure state, no
 * I/O: the caller adds `companyId` and `connectionId`, resolves the agent by extension and applies.
 *
 * - The legs of one call share `Linkedid` (the first channel's `Uniqueid`): providerCallId.
 * - First channel of a call from outside (a trunk) → `ringing`, inbound, with the caller's number
 *   and name and the DID dialled. `DialBegin` to an agent's channel → `ringing` at that agent.
 *   `BridgeEnter` that puts a second leg of the call in a bridge → `answered`. `DialEnd`
 *   NOANSWER / BUSY / CANCEL (no other dial of the call pending, not answered) → `ended` missed /
 *   busy / abandoned; the last `Hangup` of the call → `ended` (completed when answered, else the
 *   reason already known) with `Cause`/`Cause-txt`.
 * - Click-to-call: `noteOriginate(sentFields)` when our `Originate` is sent; its channel's first
 *   leg is tied by the channel variable carrying our request id (`VarSet`, kept by the parser's
 *   `keepVarSet`) or by the channel name; `OriginateResponse` `Failure` → `ended` failed with the
 *   reason. Such calls are outbound and carry `clickToCall` (ActionID, request id).
 * - Times: the `Timestamp` header (manager.conf `timestampevents=yes`) when present, else the
 *   time of arrival given by the caller. Event keys depend only on the AMI event (ids, event name,
 *   Timestamp), so a replay of the same events gives the same keys.
 */

export type AsteriskCallEvent = Omit<CallEvent, 'companyId' | 'connectionId'> & {
  provider: 'asterisk';
  /** Set on the events of a call we originated (click-to-call). */
  clickToCall?: { actionId: string; requestId?: string };
};

export interface AmiCallMapperOptions {
  /** The channel variable carrying our call id on an originate (default CTI_REQUEST_ID). */
  requestIdVariable?: string;
  /** Whether a peer name is an agent extension (default: 2 to 8 digits). */
  isAgentExtension?: (peer: string) => boolean;
  /** For numbers without a country code (default US). */
  defaultCountry?: Parameters<typeof toE164>[1];
}

interface Originate {
  actionId: string;
  channel?: string;
  exten?: string;
  callerIdNum?: string;
  requestId?: string;
  linkedid?: string;
}

interface CallCtx {
  linkedid: string;
  direction: CallDirection;
  live: Set<string>;
  /** DestUniqueids of dials still ringing. */
  dialing: Set<string>;
  answered: boolean;
  /** The failure reason known before the final hangup (DialEnd or OriginateResponse). */
  endReason?: EndReason;
  failureCause?: string;
  agentExtension?: string;
  originate?: Originate;
  ended: boolean;
  /** Legs of the call per bridge. */
  bridges: Map<string, Set<string>>;
}

const UNKNOWN = '<unknown>';
const DIAL_END_REASON: Record<string, EndReason> = {
  NOANSWER: 'missed',
  BUSY: 'busy',
  CANCEL: 'abandoned',
  CONGESTION: 'failed',
  CHANUNAVAIL: 'failed',
};
/** OriginateResponse `Reason` (Asterisk's AST_CONTROL_* of the outgoing leg). */
const ORIGINATE_REASON: Record<string, string> = {
  '0': 'channel unavailable or unknown',
  '1': 'hung up',
  '3': 'no answer',
  '5': 'busy',
  '8': 'congestion',
};

const defaultIsAgentExtension = (peer: string) => /^\d{2,8}$/.test(peer);

/** The peer of a channel name: `PJSIP/1001-00000008` → 1001, `SIP/1001-…`, `Local/1001@ctx-…` → 1001. */
export function channelPeer(channel: string): string | undefined {
  const slash = channel.indexOf('/');
  if (slash < 0) return undefined;
  const tech = channel.slice(0, slash);
  const rest = channel.slice(slash + 1);
  if (tech === 'Local') {
    const at = rest.indexOf('@');
    return at > 0 ? rest.slice(0, at) : undefined;
  }
  if (tech !== 'PJSIP' && tech !== 'SIP' && tech !== 'IAX2') return undefined;
  const dash = rest.lastIndexOf('-');
  // `PJSIP/1001` (an originate's channel) has no suffix; `PJSIP/+1555…@carrier` is a dial string.
  const peer = dash > 0 ? rest.slice(0, dash) : rest;
  return peer.includes('@') ? undefined : peer;
}

/** The live Linkedids of a CoreShowChannels response (its CoreShowChannel events). */
export function resync(coreShowChannelsEvents: readonly AmiFields[]): Set<string> {
  const live = new Set<string>();
  for (const fields of coreShowChannelsEvents) {
    if (amiHeader(fields, 'Event') !== 'CoreShowChannel') continue;
    const id = amiHeader(fields, 'Linkedid') ?? amiHeader(fields, 'Uniqueid');
    if (id) live.add(id);
  }
  return live;
}

export class AmiCallMapper {
  private readonly requestIdVariable: string;
  private readonly isAgentExtension: (peer: string) => boolean;
  private readonly defaultCountry: Parameters<typeof toE164>[1];
  private readonly calls = new Map<string, CallCtx>();
  /** Uniqueid → Linkedid of the channels seen. */
  private readonly channels = new Map<string, string>();
  private readonly originates = new Map<string, Originate>();

  constructor(options: AmiCallMapperOptions = {}) {
    this.requestIdVariable = options.requestIdVariable ?? 'CTI_REQUEST_ID';
    this.isAgentExtension = options.isAgentExtension ?? defaultIsAgentExtension;
    this.defaultCountry = options.defaultCountry ?? 'US';
  }

  /** Our `Originate` action, as sent (ActionID, Channel, Exten, CallerID, Variable…). */
  noteOriginate(sent: AmiFields): void {
    const actionId = amiHeader(sent, 'ActionID');
    if (!actionId) return;
    const o: Originate = { actionId, channel: amiHeader(sent, 'Channel'), exten: amiHeader(sent, 'Exten') };
    const callerId = amiHeader(sent, 'CallerID');
    if (callerId) o.callerIdNum = /<([^>]*)>/.exec(callerId)?.[1] ?? callerId;
    for (const [k, v] of sent) {
      if (k !== 'Variable') continue;
      for (const pair of v.split(',')) {
        const eq = pair.indexOf('=');
        if (eq > 0 && pair.slice(0, eq) === this.requestIdVariable) o.requestId = pair.slice(eq + 1);
      }
    }
    this.originates.set(actionId, o);
  }

  /** The Linkedid our Originate (by its ActionID) was tied to, once its first channel appeared. */
  linkedidOf(actionId: string): string | undefined {
    return this.originates.get(actionId)?.linkedid;
  }

  /**
   * Takes on a call found live by `CoreShowChannels` that this mapper has not seen start (after a
   * restart or a takeover), so that its later events (`BridgeEnter`, `Hangup`) map.
   */
  adopt(
    linkedid: string,
    uniqueids: readonly string[],
    known: { direction: CallDirection; answered: boolean; agentExtension?: string },
  ): void {
    if (this.calls.has(linkedid)) return;
    const call = this.newCall(linkedid, known.direction);
    call.answered = known.answered;
    if (known.agentExtension) call.agentExtension = known.agentExtension;
    for (const id of uniqueids) {
      call.live.add(id);
      this.channels.set(id, linkedid);
    }
  }

  /** Drops what is known of a call (it vanished while we were away). */
  forget(linkedid: string): void {
    const call = this.calls.get(linkedid);
    if (!call) return;
    for (const id of call.live) this.channels.delete(id);
    if (call.originate) this.originates.delete(call.originate.actionId);
    this.calls.delete(linkedid);
  }

  /** The Linkedids of the calls in progress, as this mapper knows them. */
  activeCalls(): string[] {
    return [...this.calls.values()].filter((c) => !c.ended).map((c) => c.linkedid);
  }

  /** Maps one AMI event (received at `receivedAt`) to zero or more call events. */
  map(fields: AmiFields, receivedAt: Date): AsteriskCallEvent[] {
    const name = fields[0]?.[0] === 'Event' ? fields[0][1] : undefined;
    switch (name) {
      case 'Newchannel':
        return this.newChannel(fields, receivedAt);
      case 'VarSet':
        this.varSet(fields);
        return [];
      case 'DialBegin':
        return this.dialBegin(fields, receivedAt);
      case 'DialEnd':
        return this.dialEnd(fields, receivedAt);
      case 'BridgeEnter':
        return this.bridgeEnter(fields, receivedAt);
      case 'Hangup':
        return this.hangup(fields, receivedAt);
      case 'OriginateResponse':
        return this.originateResponse(fields, receivedAt);
      default:
        return [];
    }
  }

  private at(fields: AmiFields, receivedAt: Date): Date {
    const ts = amiHeader(fields, 'Timestamp');
    if (ts) {
      const seconds = Number(ts);
      if (Number.isFinite(seconds) && seconds > 0) return new Date(Math.round(seconds * 1000));
    }
    return receivedAt;
  }

  private key(fields: AmiFields, ...parts: string[]): string {
    const ts = amiHeader(fields, 'Timestamp');
    return ['ami', ...parts, ...(ts ? [ts] : [])].join(':');
  }

  private agentOf(channel: string | undefined): string | undefined {
    if (!channel) return undefined;
    const peer = channelPeer(channel);
    return peer && this.isAgentExtension(peer) ? peer : undefined;
  }

  private number(value: string | undefined): string | undefined {
    if (!value || value === UNKNOWN) return undefined;
    return toE164(value, this.defaultCountry) ?? value;
  }

  private event(
    call: CallCtx,
    e: Omit<AsteriskCallEvent, 'provider' | 'providerCallId' | 'direction'>,
  ): AsteriskCallEvent {
    const out: AsteriskCallEvent = {
      provider: 'asterisk',
      providerCallId: call.linkedid,
      direction: call.direction,
      ...e,
    };
    if (call.originate) {
      out.clickToCall = { actionId: call.originate.actionId };
      if (call.originate.requestId) out.clickToCall.requestId = call.originate.requestId;
    }
    return out;
  }

  private newCall(linkedid: string, direction: CallDirection): CallCtx {
    const call: CallCtx = {
      linkedid,
      direction,
      live: new Set(),
      dialing: new Set(),
      answered: false,
      ended: false,
      bridges: new Map(),
    };
    this.calls.set(linkedid, call);
    return call;
  }

  private tieOriginate(call: CallCtx, o: Originate): void {
    call.originate = o;
    call.direction = 'outbound';
    o.linkedid = call.linkedid;
    call.agentExtension ??= this.agentOf(o.channel);
  }

  private newChannel(fields: AmiFields, receivedAt: Date): AsteriskCallEvent[] {
    const uniqueid = amiHeader(fields, 'Uniqueid');
    const linkedid = amiHeader(fields, 'Linkedid') ?? uniqueid;
    if (!uniqueid || !linkedid) return [];
    this.channels.set(uniqueid, linkedid);
    const existing = this.calls.get(linkedid);
    if (existing) {
      existing.live.add(uniqueid);
      return [];
    }
    const channel = amiHeader(fields, 'Channel') ?? '';
    const agent = this.agentOf(channel);
    const state = amiHeader(fields, 'ChannelState');
    if (agent) {
      const call = this.newCall(linkedid, 'outbound');
      call.live.add(uniqueid);
      call.agentExtension = agent;
      // A Down channel of an agent is one we (or someone) originated: tie it to our Originate.
      if (state === '0') {
        for (const o of this.originates.values()) {
          if (!o.linkedid && o.channel && channel.startsWith(`${o.channel}-`)) {
            this.tieOriginate(call, o);
            break;
          }
        }
        return [];
      }
      // The agent picked up the phone and dialled.
      const exten = amiHeader(fields, 'Exten');
      if (exten && this.isAgentExtension(exten)) call.direction = 'internal';
      return [
        this.event(call, {
          eventKey: this.key(fields, uniqueid, 'Newchannel'),
          kind: 'ringing',
          at: this.at(fields, receivedAt),
          from: agent,
          to: this.number(exten),
          agent: { extension: agent },
          raw: fields,
        }),
      ];
    }
    const call = this.newCall(linkedid, 'inbound');
    call.live.add(uniqueid);
    const callerName = amiHeader(fields, 'CallerIDName');
    return [
      this.event(call, {
        eventKey: this.key(fields, uniqueid, 'Newchannel'),
        kind: 'ringing',
        at: this.at(fields, receivedAt),
        from: this.number(amiHeader(fields, 'CallerIDNum')),
        to: this.number(amiHeader(fields, 'Exten')),
        callerName: callerName && callerName !== UNKNOWN ? callerName : undefined,
        raw: fields,
      }),
    ];
  }

  private varSet(fields: AmiFields): void {
    if (amiHeader(fields, 'Variable') !== this.requestIdVariable) return;
    const requestId = amiHeader(fields, 'Value');
    const linkedid = amiHeader(fields, 'Linkedid');
    const call = linkedid ? this.calls.get(linkedid) : undefined;
    if (!call || !requestId) return;
    if (call.originate?.requestId === requestId) return;
    for (const o of this.originates.values()) {
      if (o.requestId === requestId) {
        if (call.originate && call.originate !== o) delete call.originate.linkedid;
        this.tieOriginate(call, o);
        return;
      }
    }
    // Our variable, but an originate we did not note (sent before a restart): still ours.
    this.tieOriginate(call, { actionId: `request:${requestId}`, requestId, channel: amiHeader(fields, 'Channel') });
  }

  private dialBegin(fields: AmiFields, receivedAt: Date): AsteriskCallEvent[] {
    const destUniqueid = amiHeader(fields, 'DestUniqueid');
    const linkedid = amiHeader(fields, 'DestLinkedid') ?? amiHeader(fields, 'Linkedid');
    const call = linkedid ? this.calls.get(linkedid) : undefined;
    if (!call || !destUniqueid) return [];
    const agent = this.agentOf(amiHeader(fields, 'DestChannel'));
    if (!agent) return [];
    call.dialing.add(destUniqueid);
    call.agentExtension = agent;
    const o = call.originate;
    return [
      this.event(call, {
        eventKey: this.key(fields, destUniqueid, 'DialBegin'),
        kind: 'ringing',
        at: this.at(fields, receivedAt),
        ...(o ? { from: this.number(o.callerIdNum), to: this.number(o.exten) } : {}),
        agent: { extension: agent },
        raw: fields,
      }),
    ];
  }

  private dialEnd(fields: AmiFields, receivedAt: Date): AsteriskCallEvent[] {
    const destUniqueid = amiHeader(fields, 'DestUniqueid');
    const linkedid = amiHeader(fields, 'DestLinkedid') ?? amiHeader(fields, 'Linkedid');
    const call = linkedid ? this.calls.get(linkedid) : undefined;
    if (!call || !destUniqueid || !call.dialing.delete(destUniqueid)) return [];
    const status = amiHeader(fields, 'DialStatus') ?? '';
    if (status === 'ANSWER') return [];
    const reason = DIAL_END_REASON[status];
    if (!reason || call.answered || call.dialing.size > 0 || call.ended) return [];
    call.endReason = reason;
    call.ended = true;
    const agent = this.agentOf(amiHeader(fields, 'DestChannel'));
    return [
      this.event(call, {
        eventKey: this.key(fields, destUniqueid, 'DialEnd'),
        kind: 'ended',
        at: this.at(fields, receivedAt),
        endReason: reason,
        ...(agent ? { agent: { extension: agent } } : {}),
        raw: fields,
      }),
    ];
  }

  private bridgeEnter(fields: AmiFields, receivedAt: Date): AsteriskCallEvent[] {
    const uniqueid = amiHeader(fields, 'Uniqueid');
    const linkedid = amiHeader(fields, 'Linkedid');
    const bridge = amiHeader(fields, 'BridgeUniqueid');
    const call = linkedid ? this.calls.get(linkedid) : undefined;
    if (!call || !uniqueid || !bridge) return [];
    let legs = call.bridges.get(bridge);
    if (!legs) call.bridges.set(bridge, (legs = new Set()));
    legs.add(uniqueid);
    const agent = this.agentOf(amiHeader(fields, 'Channel')) ?? this.connectedAgent(fields);
    if (agent) call.agentExtension = agent;
    if (legs.size < 2 || call.answered) return [];
    call.answered = true;
    return [
      this.event(call, {
        eventKey: this.key(fields, uniqueid, 'BridgeEnter', bridge),
        kind: 'answered',
        at: this.at(fields, receivedAt),
        ...(call.agentExtension ? { agent: { extension: call.agentExtension } } : {}),
        raw: fields,
      }),
    ];
  }

  /** The agent on the other side of a leg, from its connected line. */
  private connectedAgent(fields: AmiFields): string | undefined {
    const num = amiHeader(fields, 'ConnectedLineNum');
    return num && this.isAgentExtension(num) ? num : undefined;
  }

  private hangup(fields: AmiFields, receivedAt: Date): AsteriskCallEvent[] {
    const uniqueid = amiHeader(fields, 'Uniqueid');
    const linkedid = amiHeader(fields, 'Linkedid') ?? (uniqueid ? this.channels.get(uniqueid) : undefined);
    const call = linkedid ? this.calls.get(linkedid) : undefined;
    if (!call || !uniqueid) return [];
    this.channels.delete(uniqueid);
    call.live.delete(uniqueid);
    call.dialing.delete(uniqueid);
    if (call.live.size > 0) return [];
    this.calls.delete(call.linkedid);
    if (call.originate) this.originates.delete(call.originate.actionId);
    const cause = amiHeader(fields, 'Cause');
    const text = amiHeader(fields, 'Cause-txt');
    const hangupCause = call.failureCause ? undefined : [cause, text].filter(Boolean).join(' ') || undefined;
    const endReason: EndReason = call.answered
      ? 'completed'
      : (call.endReason ?? (call.originate ? 'failed' : 'abandoned'));
    call.ended = true;
    return [
      this.event(call, {
        eventKey: this.key(fields, uniqueid, 'Hangup'),
        kind: 'ended',
        at: this.at(fields, receivedAt),
        endReason,
        hangupCause,
        ...(call.agentExtension ? { agent: { extension: call.agentExtension } } : {}),
        raw: fields,
      }),
    ];
  }

  private originateResponse(fields: AmiFields, receivedAt: Date): AsteriskCallEvent[] {
    const actionId = amiHeader(fields, 'ActionID');
    if (!actionId) return [];
    const o = this.originates.get(actionId);
    const uniqueid = amiHeader(fields, 'Uniqueid');
    let call = o?.linkedid ? this.calls.get(o.linkedid) : undefined;
    if (!call && uniqueid && uniqueid !== UNKNOWN) {
      const linkedid = this.channels.get(uniqueid);
      call = linkedid ? this.calls.get(linkedid) : undefined;
      if (call && o && !call.originate) this.tieOriginate(call, o);
    }
    if (amiHeader(fields, 'Response') !== 'Failure') return [];
    const origin: Originate = o ?? {
      actionId,
      channel: amiHeader(fields, 'Channel'),
      exten: amiHeader(fields, 'Exten'),
      callerIdNum: amiHeader(fields, 'CallerIDNum'),
    };
    if (!call) {
      // No channel was ever made (unknown endpoint…): the call exists only as our request.
      call = this.newCall(`originate:${actionId}`, 'outbound');
      this.calls.delete(call.linkedid);
      this.tieOriginate(call, origin);
    }
    this.originates.delete(actionId);
    if (call.answered) return [];
    const reason = amiHeader(fields, 'Reason') ?? '';
    call.endReason = 'failed';
    call.failureCause = `originate failed: ${ORIGINATE_REASON[reason] ?? 'failure'} (reason ${reason || '?'})`;
    call.ended = true;
    return [
      this.event(call, {
        eventKey: this.key(fields, 'originate', actionId, 'OriginateResponse'),
        kind: 'ended',
        at: this.at(fields, receivedAt),
        from: this.number(origin.callerIdNum),
        to: this.number(origin.exten),
        endReason: 'failed',
        hangupCause: call.failureCause,
        ...(call.agentExtension ? { agent: { extension: call.agentExtension } } : {}),
        raw: fields,
      }),
    ];
  }
}
