import { deriveCall, mergeFacts, type CallState, type DerivedCall } from '../../calls/call-state.js';
import {
  clickToCallDeliveries,
  inboundAnsweredDeliveries,
  inboundRow,
  missedCallDeliveries,
  netsapiensSignedUrl,
  type NetsapiensDelivery,
} from '../../../test/fakes/netsapiens-fake.js';
import type { ProviderCallEvent } from '../pbx-provider.js';
import { NetsapiensCallMapper, netsapiensProviderCallId, netsapiensTime } from './netsapiens-call-mapper.js';

const DOMAIN = 'acme.15550.service';
const START = new Date('2026-11-21T09:59:00.000Z');
const postUrl = netsapiensSignedUrl(
  'https://switchboard.example.test/webhooks/netsapiens/c1',
  'test-webhook-secret-0123456789',
);
const mapper = new NetsapiensCallMapper({ domain: DOMAIN });

/** Maps deliveries as they arrive, one every 3 s (the platform polls every 3 s). */
function mapAll(deliveries: NetsapiensDelivery[], order = deliveries.map((_d, i) => i)): ProviderCallEvent[] {
  return order.flatMap((i) =>
    mapper.map(
      JSON.parse(deliveries[i]!.body) as Record<string, unknown>[],
      new Date(START.getTime() + 3000 * (i + 1) + 10_000),
    ),
  );
}

function fold(events: ProviderCallEvent[]): Map<string, DerivedCall> {
  const states = new Map<string, CallState>();
  for (const e of events) {
    states.set(
      e.providerCallId,
      mergeFacts(states.get(e.providerCallId) ?? {}, { ...e, agentId: e.agent?.externalId }),
    );
  }
  return new Map([...states].map(([id, s]) => [id, deriveCall(s, new Date(0))]));
}

const only = (calls: Map<string, DerivedCall>) => {
  expect(calls.size).toBe(1);
  return [...calls.values()][0]!;
};

describe('NetsapiensCallMapper on call-model deliveries', () => {
  it('inbound answered: ringing at the agent, answered, completed; one call, E.164 numbers, caller name', () => {
    const deliveries = inboundAnsweredDeliveries({
      postUrl,
      domain: DOMAIN,
      start: START,
      callId: '0_2811496512@192.0.2.10',
      from: '15555550142',
      callerName: 'PAT CUSTOMER',
      did: '15555550100',
      user: '1001',
      ringSeconds: 6,
    });
    const events = mapAll(deliveries);
    expect(events.map((e) => e.kind)).toEqual(['ringing', 'ringing', 'answered', 'ringing', 'answered', 'ended']);
    // The same leg in several snapshots gives the same keys.
    expect(new Set(events.map((e) => e.eventKey)).size).toBe(3);
    const call = only(fold(events));
    expect(call).toMatchObject({
      status: 'completed',
      direction: 'inbound',
      fromNumber: '+15555550142',
      toNumber: '+15555550100',
      callerName: 'PAT CUSTOMER',
      agentId: '1001',
      endReason: 'completed',
      ringSeconds: 6,
    });
    expect(call.talkSeconds).toBeGreaterThan(0);
  });

  it('gives the same record whatever the order the deliveries are processed in, and with duplicates', () => {
    const deliveries = inboundAnsweredDeliveries({
      postUrl,
      domain: DOMAIN,
      start: START,
      callId: 'abc@192.0.2.10',
      from: '15555550142',
      did: '15555550100',
      user: '1001',
    });
    const inOrder = only(fold(mapAll(deliveries)));
    // The removal timed as it was when it first arrived (the inbox keeps that arrival time).
    const events = mapAll(deliveries);
    const reversed = [...events].reverse();
    expect(only(fold([...reversed, ...events]))).toEqual(inOrder);
  });

  it('missed multi-ring: every leg rings, all removed unanswered → missed', () => {
    const events = mapAll(
      missedCallDeliveries({
        postUrl,
        domain: DOMAIN,
        start: START,
        callId: '0_3920117731@192.0.2.11',
        from: '15555550177',
        did: '15555550100',
        users: ['1002', '1003'],
      }),
    );
    expect(events.filter((e) => e.kind === 'ringing').map((e) => e.agent?.externalId)).toEqual([
      '1002',
      '1003',
      '1002',
      '1003',
    ]);
    expect(events.filter((e) => e.kind === 'ended').map((e) => e.endReason)).toEqual(['missed', 'missed']);
    expect(only(fold(events))).toMatchObject({ status: 'missed', direction: 'inbound', answeredAt: null });
  });

  it('a losing leg removed while another leg of the call is still up ends nothing', () => {
    const base = { domain: DOMAIN, callId: 'race@192.0.2.12', start: START, from: '15555550188', did: '15555550101' };
    const events = mapper.map(
      [inboundRow({ ...base, user: '1002' }), inboundRow({ ...base, user: '1003', removed: true })],
      new Date(START.getTime() + 5000),
    );
    expect(events.map((e) => e.kind)).toEqual(['ringing', 'ringing']);
  });

  it('click-to-call: ringing at the agent, the agent leg neither answers nor ends the call, completed outbound', () => {
    const callId = '3f2b8c1e9d7a4b6c8e0f1a2b3c4d5e6f';
    const events = mapAll(
      clickToCallDeliveries({
        postUrl,
        domain: DOMAIN,
        start: START,
        callId,
        user: '1001',
        to: '15555550199',
        callerId: '15555550100',
      }),
    );
    expect(new Set(events.map((e) => e.providerCallId))).toEqual(new Set([callId]));
    expect(events.every((e) => e.direction === 'outbound')).toBe(true);
    expect(events.filter((e) => e.kind === 'answered')).toHaveLength(2); // one leg, two snapshots
    const call = only(fold(events));
    expect(call).toMatchObject({
      status: 'completed',
      direction: 'outbound',
      agentId: '1001',
      answeredAt: new Date(START.getTime() + 8000),
    });
    // The first event names the agent's phone ringing; the customer's number comes from the second leg.
    expect(call.ringingAt).toEqual(START);
  });

  it('reads the v2 (hyphenated) active-call names', () => {
    const [e] = mapper.map(
      [
        {
          'call-orig-call-id': 'v2@192.0.2.13',
          'call-orig-user': '1001',
          'call-orig-domain': DOMAIN,
          'caller-id-number': '15555550100',
          'call-dialed-number': '15555550166',
          'call-term-call-id': 't2',
          'call-term-user': '',
          'call-term-domain': '*',
          'call-start-datetime': '2026-11-21T09:59:45+00:00',
          'call-answer-datetime': '',
        },
      ],
      START,
    );
    expect(e).toMatchObject({
      kind: 'ringing',
      providerCallId: 'v2@192.0.2.13',
      direction: 'outbound',
      from: '+15555550100',
      to: '+15555550166',
      at: new Date('2026-11-21T09:59:45.000Z'),
      agent: { provider: 'netsapiens', externalId: '1001', extension: '1001' },
    });
  });

  it('keeps extensions as digits, drops what is not a number, and a name that is only the number', () => {
    const [e] = mapper.map(
      [
        inboundRow({
          domain: DOMAIN,
          callId: 'x@192.0.2.1',
          start: START,
          from: 'anonymous',
          callerName: '5555550142',
          did: 'sip:main-line@example.test',
          user: '1001',
        }),
      ],
      START,
    );
    expect(e!.from).toBeUndefined();
    expect(e!.to).toBeUndefined();
    expect(e!.callerName).toBe('5555550142');
    const [f] = mapper.map(
      [
        inboundRow({
          domain: DOMAIN,
          callId: 'y@192.0.2.1',
          start: START,
          from: '15555550142',
          callerName: '+1 (555) 555-0142',
          did: '200',
          user: '1001',
        }),
      ],
      START,
    );
    expect(f).toMatchObject({ from: '+15555550142', to: '200' });
    expect(f!.callerName).toBeUndefined();
  });

  it('is another call in another domain (a side is ours only in the connection domain)', () => {
    const other = new NetsapiensCallMapper({ domain: 'other.service' });
    const [e] = other.map(
      [
        inboundRow({
          domain: DOMAIN,
          callId: 'z@1',
          start: START,
          from: '15555550142',
          did: '15555550100',
          user: '1001',
        }),
      ],
      START,
    );
    expect(e!.agent).toBeUndefined();
  });

  it('parses NetSapiens times (UTC) and treats zero and garbage as absent', () => {
    expect(netsapiensTime('2026-11-21 09:59:50')).toEqual(new Date('2026-11-21T09:59:50.000Z'));
    expect(netsapiensTime('2026-11-21T09:59:50-05:00')).toEqual(new Date('2026-11-21T14:59:50.000Z'));
    expect(netsapiensTime('0000-00-00 00:00:00')).toBeUndefined();
    expect(netsapiensTime('')).toBeUndefined();
    expect(netsapiensTime('soon')).toBeUndefined();
  });

  it('keeps provider call ids within 128 characters', () => {
    expect(netsapiensProviderCallId({ orig_callid: 'abc' })).toBe('abc');
    const long = netsapiensProviderCallId({ orig_callid: 'x'.repeat(300) });
    expect(long).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});
