import { deriveCall, mergeFacts, type CallState, type DerivedCall } from '../../calls/call-state.js';
import { loadAmiFixture, timeline, type AmiFixtureName } from '../../../test/support/ami-simulator.js';
import { AmiCallMapper, channelPeer, resync, type AsteriskCallEvent } from './ami-call-mapper.js';
import { AmiParser, amiHeader, type AmiFields } from './ami-parser.js';

/** t = 0 of a session: its SuccessfulAuth's EventTV (the recorder's clock) minus its offset. */
function baseTime(name: AmiFixtureName): number {
  const f = loadAmiFixture(name);
  const auth = f.received.find((r) => amiHeader(r.fields, 'Event') === 'SuccessfulAuth')!;
  return Date.parse(amiHeader(auth.fields, 'EventTV')!.replace('+0000', 'Z')) - auth.t;
}

/**
 * Runs a session through the parser (raw bytes, noise skipped, our VarSet kept) and the mapper,
 * the actions we sent noted in time order; returns the call events.
 */
function run(name: AmiFixtureName): AsteriskCallEvent[] {
  const f = loadAmiFixture(name);
  const base = baseTime(name);
  const parsed: AmiFields[] = [];
  const parser = new AmiParser({ onMessage: (m) => parsed.push(m), keepVarSet: ['CTI_REQUEST_ID'] });
  parser.push(f.ami);
  // Arrival times from the .jsonl, matched to the parsed messages in order.
  const items = timeline(f);
  const mapper = new AmiCallMapper();
  const out: AsteriskCallEvent[] = [];
  let p = 0;
  for (const item of items) {
    if (item.sent) {
      if (amiHeader(item.sent, 'Action') === 'Originate') mapper.noteOriginate(item.sent);
      continue;
    }
    if (p < parsed.length && parsed[p] !== undefined && JSON.stringify(parsed[p]) === JSON.stringify(item.fields)) {
      out.push(...mapper.map(parsed[p]!, new Date(base + item.t)));
      p++;
    }
  }
  expect(p).toBe(parsed.length);
  return out;
}

function fold(events: AsteriskCallEvent[]): Map<string, DerivedCall> {
  const states = new Map<string, CallState>();
  for (const e of events) {
    const facts = { ...e, agentId: e.agent?.extension };
    states.set(e.providerCallId, mergeFacts(states.get(e.providerCallId) ?? {}, facts));
  }
  return new Map([...states].map(([id, s]) => [id, deriveCall(s, new Date(0))]));
}

const kinds = (events: AsteriskCallEvent[]) => events.map((e) => [e.kind, e.agent?.extension ?? null]);
const at = (name: AmiFixtureName, t: number) => new Date(baseTime(name) + t);

describe('AmiCallMapper on the recorded sessions', () => {
  it('inbound-answered: ringing, ringing at 1001, answered, completed', () => {
    const events = run('inbound-answered');
    expect(kinds(events)).toEqual([
      ['ringing', null],
      ['ringing', '1001'],
      ['answered', '1001'],
      ['ended', '1001'],
    ]);
    expect(new Set(events.map((e) => e.providerCallId))).toEqual(new Set(['1795235277.3']));
    const call = fold(events).get('1795235277.3')!;
    expect(call).toMatchObject({
      status: 'completed',
      direction: 'inbound',
      fromNumber: '+15551230001',
      toNumber: '+15550001234',
      callerName: null,
      agentId: '1001',
      ringingAt: at('inbound-answered', 1002),
      answeredAt: at('inbound-answered', 1006),
      endedAt: at('inbound-answered', 7003),
      ringSeconds: 0,
      talkSeconds: 6,
      endReason: 'completed',
      hangupCause: '16 Normal Clearing',
    });
  });

  it('inbound-unanswered: ringing at 1002, missed after 8 s, the cause from the final hangup', () => {
    const events = run('inbound-unanswered');
    expect(kinds(events)).toEqual([
      ['ringing', null],
      ['ringing', '1002'],
      ['ended', '1002'],
      ['ended', '1002'],
    ]);
    const call = fold(events).get('1795235296.6')!;
    expect(call).toMatchObject({
      status: 'missed',
      direction: 'inbound',
      fromNumber: '+15551230001',
      toNumber: '+15550002001',
      agentId: '1002',
      ringingAt: at('inbound-unanswered', 1003),
      answeredAt: null,
      endedAt: at('inbound-unanswered', 9010),
      ringSeconds: 8,
      talkSeconds: null,
      endReason: 'missed',
      hangupCause: '16 Normal Clearing',
    });
  });

  it('inbound-abandoned: the caller hangs up after 3 s while 1002 rings', () => {
    const events = run('inbound-abandoned');
    expect(kinds(events)).toEqual([
      ['ringing', null],
      ['ringing', '1002'],
      ['ended', '1002'],
      ['ended', '1002'],
    ]);
    const call = fold(events).get('1795235311.10')!;
    expect(call).toMatchObject({
      status: 'abandoned',
      direction: 'inbound',
      fromNumber: '+15551230001',
      toNumber: '+15550002001',
      agentId: '1002',
      ringingAt: at('inbound-abandoned', 1002),
      answeredAt: null,
      endedAt: at('inbound-abandoned', 4002),
      ringSeconds: 3,
      talkSeconds: null,
      endReason: 'abandoned',
      hangupCause: '127 Interworking, unspecified',
    });
  });

  it('click-to-call: outbound, ringing at 1001, answered when the customer joins, completed', () => {
    const events = run('click-to-call');
    expect(kinds(events)).toEqual([
      ['ringing', '1001'],
      ['answered', '1001'],
      ['ended', '1001'],
    ]);
    for (const e of events) expect(e.clickToCall).toEqual({ actionId: 'c2c-1', requestId: 'req-123' });
    const call = fold(events).get('1795235317.13')!;
    expect(call).toMatchObject({
      status: 'completed',
      direction: 'outbound',
      fromNumber: '+15550001234',
      toNumber: '+15551230001',
      agentId: '1001',
      ringingAt: at('click-to-call', 1002),
      answeredAt: at('click-to-call', 1005),
      endedAt: at('click-to-call', 7015),
      ringSeconds: 0,
      talkSeconds: 6,
      endReason: 'completed',
      hangupCause: '16 Normal Clearing',
    });
  });

  it('originate-failures: no answer at 1002 and unknown 1009 both end as failed with the reason', () => {
    const events = run('originate-failures');
    expect(events.map((e) => [e.providerCallId, e.kind, e.agent?.extension ?? null])).toEqual([
      ['1795235327.16', 'ringing', '1002'],
      ['1795235327.16', 'ended', '1002'],
      ['1795235327.16', 'ended', '1002'],
      ['originate:c2c-3', 'ended', '1009'],
    ]);
    const calls = fold(events);
    expect(calls.get('1795235327.16')).toMatchObject({
      status: 'failed',
      direction: 'outbound',
      fromNumber: '+15550001234',
      toNumber: '+15551230001',
      agentId: '1002',
      ringingAt: at('originate-failures', 1002),
      answeredAt: null,
      endedAt: at('originate-failures', 6003),
      ringSeconds: 5,
      talkSeconds: null,
      endReason: 'failed',
      hangupCause: 'originate failed: no answer (reason 3)',
    });
    expect(calls.get('originate:c2c-3')).toMatchObject({
      status: 'failed',
      direction: 'outbound',
      fromNumber: null,
      toNumber: '+15551230001',
      agentId: '1009',
      ringingAt: null,
      answeredAt: null,
      endedAt: at('originate-failures', 8001),
      endReason: 'failed',
      hangupCause: 'originate failed: channel unavailable or unknown (reason 0)',
    });
    expect(events.find((e) => e.providerCallId === 'originate:c2c-3')!.clickToCall).toEqual({ actionId: 'c2c-3' });
  });

  it('click-to-call is still tied to our request by its channel variable when the Originate was not noted', () => {
    const f = loadAmiFixture('click-to-call');
    const mapper = new AmiCallMapper();
    const events = f.received.flatMap((r) => mapper.map(r.fields, new Date(baseTime('click-to-call') + r.t)));
    expect(kinds(events)).toEqual([
      ['ringing', '1001'],
      ['answered', '1001'],
      ['ended', '1001'],
    ]);
    expect(events.every((e) => e.direction === 'outbound' && e.clickToCall?.requestId === 'req-123')).toBe(true);
  });

  it.each([
    'inbound-answered',
    'inbound-unanswered',
    'inbound-abandoned',
    'click-to-call',
    'originate-failures',
  ] as const)('%s: a replay gives the same event keys, all distinct', (name) => {
    const a = run(name).map((e) => e.eventKey);
    const b = run(name).map((e) => e.eventKey);
    expect(b).toEqual(a);
    expect(new Set(a).size).toBe(a.length);
  });

  it('uses the Timestamp header when present (and puts it in the key)', () => {
    const mapper = new AmiCallMapper();
    const [e] = mapper.map(
      [
        ['Event', 'Newchannel'],
        ['Timestamp', '1795235277.250000'],
        ['Channel', 'PJSIP/carrier-00000002'],
        ['ChannelState', '4'],
        ['CallerIDNum', '5551230001'],
        ['CallerIDName', 'Jane Roe'],
        ['Exten', '+15550001234'],
        ['Uniqueid', '1795235277.3'],
        ['Linkedid', '1795235277.3'],
      ],
      new Date(0),
    );
    expect(e).toMatchObject({
      kind: 'ringing',
      at: new Date(1795235277250),
      from: '+15551230001',
      callerName: 'Jane Roe',
      eventKey: 'ami:1795235277.3:Newchannel:1795235277.250000',
    });
  });
});

describe('channelPeer and resync', () => {
  it('finds the peer of PJSIP, SIP and Local channels', () => {
    expect(channelPeer('PJSIP/1001-00000008')).toBe('1001');
    expect(channelPeer('SIP/1001-0000abcd')).toBe('1001');
    expect(channelPeer('Local/1001@from-queue-00000001;1')).toBe('1001');
    expect(channelPeer('PJSIP/1009')).toBe('1009');
    expect(channelPeer('PJSIP/carrier-00000002')).toBe('carrier');
    expect(channelPeer('PJSIP/+15551230001@carrier')).toBeUndefined();
    expect(channelPeer('DAHDI/1-1')).toBeUndefined();
  });

  it('resync returns the Linkedids of the CoreShowChannel events', () => {
    const f = loadAmiFixture('click-to-call');
    const list = f.received.map((r) => r.fields).filter((m) => amiHeader(m, 'ActionID') === 'show-1');
    expect(list).toHaveLength(4);
    expect(resync(list)).toEqual(new Set(['1795235317.13']));
    expect(resync([])).toEqual(new Set());
  });
});
