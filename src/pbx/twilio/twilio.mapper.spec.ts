import { deriveCall, mergeFacts, type CallFacts, type CallState, type DerivedCall } from '../../calls/call-state.js';
import {
  emitCallLifecycle,
  twilioDelivery,
  twilioIncomingMessage,
  twilioJsonDelivery,
  twilioMessageStatus,
  twilioStatusCallback,
  type LifecycleOptions,
  type TwilioDelivery,
  type TwilioOutcome,
} from '../../../test/fakes/twilio-fake.js';
import { PbxError, type InboundWebhook, type PbxEnvironment, type ProviderCallEvent } from '../pbx-provider.js';
import { TwilioDriver } from './twilio.driver.js';
import {
  mapCallWebhook,
  mapMessageWebhook,
  parseTwilioPayload,
  twilioEventId,
  type TwilioWebhookPayload,
} from './twilio.mapper.js';

const ACCOUNT = 'AC0123456789abcdef0123456789abcdef';
const TOKEN = 'test-webhook-secret-0123456789';
const CONN = '11111111-1111-4111-8111-111111111111';
const BASE = `https://switchboard.example.test/webhooks/twilio/${CONN}`;
const CALL_ID = '33333333-3333-4333-8333-333333333333';
const COMPANY_NUMBER = '+15550100000';
const AGENT = '+15550100010';
const CUSTOMER = '+15550100099';
const PARENT = 'CA1a2b3c4d5e6f708192a3b4c5d6e7f801';
const CHILD = 'CA9f8e7d6c5b4a39281706f5e4d3c2b1a0';
const START = new Date('2026-11-21T10:00:00.000Z');

const env: PbxEnvironment = {
  publicBaseUrl: 'https://switchboard.example.test',
  baseUrls: {
    dialpadProduction: 'https://d.test',
    dialpadSandbox: 'https://s.d.test',
    twilio: 'https://api.twilio.example.test',
  },
  httpTimeoutMs: 2000,
  allowHttp: false,
  // The deliveries below are stamped from START on: judged a minute later (the injected clock).
  now: () => START.getTime() + 60_000,
};
const provider = new TwilioDriver().connect(
  {
    id: CONN,
    companyId: '22222222-2222-4222-8222-222222222222',
    provider: 'twilio',
    settings: { accountSid: ACCOUNT, callerId: COMPANY_NUMBER },
    secrets: { authToken: TOKEN },
  },
  env,
);

function toInbound(d: TwilioDelivery): InboundWebhook {
  return {
    route: d.route,
    url: d.url,
    headers: d.headers,
    contentType: d.headers['content-type']!,
    rawBody: Buffer.from(d.body),
    body: d.params,
  };
}

/** Verifies and maps deliveries as the webhook pipeline does. */
async function events(deliveries: TwilioDelivery[]): Promise<ProviderCallEvent[]> {
  const out: ProviderCallEvent[] = [];
  for (const d of deliveries) {
    const verified = await provider.verifyWebhook(toInbound(d));
    out.push(...provider.parseWebhook(JSON.parse(JSON.stringify(verified)) as typeof verified).calls);
  }
  return out;
}

/** Folds events into a call record the way calls-service does, agent refs resolved by externalId. */
function record(evs: ProviderCallEvent[]): DerivedCall {
  let state: CallState = {};
  for (const e of evs) {
    const facts: CallFacts = { ...e, agentId: e.agent?.externalId ? `agent:${e.agent.externalId}` : undefined };
    state = mergeFacts(state, facts);
  }
  return deriveCall(state, START);
}

const lifecycle = (scenario: LifecycleOptions['scenario'], outcome: TwilioOutcome, agent = AGENT) =>
  emitCallLifecycle({
    scenario,
    outcome,
    authToken: TOKEN,
    accountSid: ACCOUNT,
    parentUrl: scenario === 'click-to-call' ? `${BASE}/status?callId=${CALL_ID}&leg=agent` : `${BASE}/status`,
    childUrl:
      scenario === 'click-to-call'
        ? `${BASE}/status?callId=${CALL_ID}&leg=customer&parentCallSid=${PARENT}`
        : `${BASE}/status`,
    parentSid: PARENT,
    childSid: CHILD,
    agent,
    customer: CUSTOMER,
    companyNumber: COMPANY_NUMBER,
    start: START,
    talkSeconds: 60,
    callerName: 'Jane Example',
  });

function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('Twilio call lifecycles → call record', () => {
  it('click-to-call answered: outbound, rings the agent first, answered when the customer answers, ends with the agent leg', async () => {
    const evs = await events(lifecycle('click-to-call', 'answered'));
    expect(new Set(evs.map((e) => e.providerCallId))).toEqual(new Set([PARENT]));
    const call = record(evs);
    expect(call).toMatchObject({
      status: 'completed',
      direction: 'outbound',
      fromNumber: COMPANY_NUMBER,
      toNumber: CUSTOMER,
      agentId: `agent:${AGENT}`,
      ringingAt: new Date(START.getTime() + 1000),
      answeredAt: new Date(START.getTime() + 9000),
      endedAt: new Date(START.getTime() + 70_000),
      talkSeconds: 61,
      endReason: 'completed',
    });
    // The agent picking up is not the call being answered.
    const agentPickup = evs.find((e) => e.eventKey.startsWith(`${PARENT}:in-progress`));
    expect(agentPickup?.kind).toBe('updated');
  });

  it('click-to-call to a busy customer ends busy; an unanswered one ends missed', async () => {
    expect(record(await events(lifecycle('click-to-call', 'busy')))).toMatchObject({
      status: 'busy',
      answeredAt: null,
      hangupCause: 'busy (SIP 486)',
    });
    expect(record(await events(lifecycle('click-to-call', 'no-answer')))).toMatchObject({
      status: 'missed',
      endReason: 'missed',
      answeredAt: null,
    });
  });

  it('click-to-call to a Voice SDK agent names the agent by client identity', async () => {
    const evs = await events(lifecycle('click-to-call', 'answered', 'client:alice'));
    expect(evs.find((e) => e.kind === 'ringing')?.agent).toEqual({ provider: 'twilio', externalId: 'client:alice' });
    expect(record(evs)).toMatchObject({ status: 'completed', agentId: 'agent:client:alice', toNumber: CUSTOMER });
  });

  it('inbound answered by an agent: inbound, caller and DID from the parent, answered by the agent leg', async () => {
    const evs = await events(lifecycle('inbound', 'answered', 'client:alice'));
    expect(new Set(evs.map((e) => e.providerCallId))).toEqual(new Set([PARENT]));
    expect(record(evs)).toMatchObject({
      status: 'completed',
      direction: 'inbound',
      fromNumber: CUSTOMER,
      toNumber: COMPANY_NUMBER,
      callerName: 'Jane Example',
      agentId: 'agent:client:alice',
      ringingAt: new Date(START.getTime() + 3000),
      answeredAt: new Date(START.getTime() + 8000),
    });
    // The screen pop: the ringing event carries the caller's number and the agent.
    expect(evs.find((e) => e.kind === 'ringing')).toMatchObject({
      from: CUSTOMER,
      agent: { externalId: 'client:alice' },
    });
  });

  it('inbound that no agent answers is missed, even when the agent leg was busy', async () => {
    expect(record(await events(lifecycle('inbound', 'no-answer')))).toMatchObject({
      status: 'missed',
      answeredAt: null,
    });
    expect(record(await events(lifecycle('inbound', 'busy')))).toMatchObject({ status: 'missed', endReason: 'missed' });
  });

  it.each(['click-to-call', 'inbound'] as const)(
    '%s: any order and any redelivery of the callbacks give the same record',
    async (scenario) => {
      const evs = await events(lifecycle(scenario, 'answered'));
      const expected = record(evs);
      for (const seed of [1, 2, 3, 4, 5]) {
        const again = [...shuffled(evs, seed), ...shuffled(evs, seed + 10).slice(0, 3)];
        expect(record(again)).toEqual(expected);
      }
      expect(new Set(evs.map((e) => e.eventKey)).size).toBe(evs.length);
    },
  );
});

const payload = (
  params: Record<string, string>,
  query: Record<string, string> = {},
  route: 'status' | 'sms' = 'status',
) => ({ route, query, params, receivedAt: '2026-11-21T10:00:00.000Z' }) satisfies TwilioWebhookPayload;

const callback = (over: Partial<Parameters<typeof twilioStatusCallback>[0]> = {}) =>
  twilioStatusCallback({
    accountSid: ACCOUNT,
    callSid: PARENT,
    status: 'ringing',
    direction: 'inbound',
    from: CUSTOMER,
    to: COMPANY_NUMBER,
    at: new Date('2026-11-21T09:59:30.000Z'),
    sequenceNumber: 1,
    ...over,
  });

describe('mapCallWebhook', () => {
  it('inbound parent: ringing → ringing; in-progress (Twilio picked up, IVR) → updated only', () => {
    expect(mapCallWebhook(payload(callback()))).toMatchObject([
      {
        kind: 'ringing',
        direction: 'inbound',
        from: CUSTOMER,
        to: COMPANY_NUMBER,
        at: new Date('2026-11-21T09:59:30.000Z'),
      },
    ]);
    expect(mapCallWebhook(payload(callback({ status: 'in-progress' })))).toMatchObject([{ kind: 'updated' }]);
  });

  it("a call the company's app placed through the API: the parent is the customer; in-progress → answered", () => {
    const evs = mapCallWebhook(
      payload(callback({ status: 'in-progress', direction: 'outbound-api', from: COMPANY_NUMBER, to: CUSTOMER })),
    );
    expect(evs).toMatchObject([{ kind: 'answered', direction: 'outbound', to: CUSTOMER }]);
  });

  it("an unmarked <Dial> child's terminal status adds nothing (an agent not answering does not end the call)", () => {
    for (const status of ['completed', 'no-answer', 'busy', 'canceled']) {
      const p = callback({
        status,
        callSid: CHILD,
        parentCallSid: PARENT,
        direction: 'outbound-dial',
        to: 'client:bob',
      });
      expect(mapCallWebhook(payload(p))).toEqual([]);
    }
  });

  it('maps end reasons of a parent: busy, no-answer → missed, canceled, failed', () => {
    const reasons = { busy: 'busy', 'no-answer': 'missed', canceled: 'canceled', failed: 'failed' } as const;
    for (const [status, endReason] of Object.entries(reasons)) {
      expect(mapCallWebhook(payload(callback({ status })))).toMatchObject([
        { kind: 'ended', endReason, hangupCause: status },
      ]);
    }
    const completed = mapCallWebhook(payload(callback({ status: 'completed', callDuration: 0 })));
    expect(completed).toHaveLength(1);
    expect(completed[0]!.endReason).toBeUndefined();
  });

  it('uses the time of arrival without a Timestamp, and the Timestamp in the event id without a SequenceNumber', () => {
    const p = callback({ sequenceNumber: undefined });
    expect(twilioEventId(payload(p)).eventId).toBe(`${PARENT}:ringing:${p['Timestamp']}`);
    delete p['Timestamp'];
    expect(twilioEventId(payload(p)).eventId).toBe(`${PARENT}:ringing`);
    expect(mapCallWebhook(payload(p))[0]!.at).toEqual(new Date('2026-11-21T10:00:00.000Z'));
  });

  it('drops what is not a phone number (client:, sip:, anonymous) from from/to', () => {
    const evs = mapCallWebhook(payload(callback({ from: 'client:bob', to: 'sip:desk@example.sip.twilio.com' })));
    expect(evs[0]!.from).toBeUndefined();
    expect(evs[0]!.to).toBeUndefined();
    expect(mapCallWebhook(payload(callback({ from: 'anonymous' })))[0]!.from).toBeUndefined();
  });

  it('an unknown CallStatus verifies but maps to nothing', () => {
    expect(parseTwilioPayload(payload(callback({ status: 'something-new' })))).toEqual({
      calls: [],
      voicemails: [],
      messages: [],
    });
  });

  it('rejects a stored payload of another shape', () => {
    expect(() => parseTwilioPayload({ route: 'status', params: {} })).toThrow(PbxError);
    expect(() => parseTwilioPayload(null)).toThrow(PbxError);
  });
});

describe('mapMessageWebhook', () => {
  it('an incoming SMS is an inbound message with its text', () => {
    const p = twilioIncomingMessage({
      accountSid: ACCOUNT,
      from: CUSTOMER,
      to: COMPANY_NUMBER,
      body: 'hello',
      messageSid: 'SM0123',
    });
    expect(mapMessageWebhook(payload(p, {}, 'sms'))).toMatchObject({
      providerMessageId: 'SM0123',
      direction: 'inbound',
      from: CUSTOMER,
      to: COMPANY_NUMBER,
      text: 'hello',
      status: 'received',
      at: new Date('2026-11-21T10:00:00.000Z'),
    });
  });

  it('a status callback is an outbound message with its status and no text; WhatsApp addresses keep their number', () => {
    const p = twilioMessageStatus({
      accountSid: ACCOUNT,
      messageSid: 'SM0456',
      from: `whatsapp:${COMPANY_NUMBER}`,
      to: `whatsapp:${CUSTOMER}`,
      status: 'undelivered',
      errorCode: '30003',
    });
    expect(mapMessageWebhook(payload(p, {}, 'sms'))).toMatchObject({
      providerMessageId: 'SM0456',
      direction: 'outbound',
      from: COMPANY_NUMBER,
      to: CUSTOMER,
      text: '',
      status: 'undelivered',
    });
    expect(twilioEventId(payload(p, {}, 'sms'))).toEqual({ eventId: 'SM0456:undelivered', kind: 'sms' });
  });
});

describe("the fake's delivery builders verify with the driver", () => {
  it('an incoming SMS delivery', async () => {
    const d = twilioDelivery(
      TOKEN,
      `${BASE}/sms`,
      twilioIncomingMessage({ accountSid: ACCOUNT, from: CUSTOMER, to: COMPANY_NUMBER, body: 'Ça va? 100% & more' }),
    );
    const verified = await provider.verifyWebhook(toInbound(d));
    expect(verified.kind).toBe('sms');
    expect(provider.parseWebhook(verified).messages).toMatchObject([
      { direction: 'inbound', text: 'Ça va? 100% & more' },
    ]);
  });

  it('a JSON delivery (bodySHA256)', async () => {
    const d = twilioJsonDelivery(TOKEN, `${BASE}/status?callId=${CALL_ID}&leg=customer`, {
      AccountSid: ACCOUNT,
      CallSid: CHILD,
      ParentCallSid: PARENT,
      CallStatus: 'in-progress',
      To: CUSTOMER,
    });
    const verified = await provider.verifyWebhook(toInbound(d));
    expect(provider.parseWebhook(verified).calls).toMatchObject([{ kind: 'answered', providerCallId: PARENT }]);
    await expect(async () =>
      provider.verifyWebhook({ ...toInbound(d), rawBody: Buffer.from(`${d.body} `) }),
    ).rejects.toMatchObject({
      code: 'AUTH',
    });
  });
});
