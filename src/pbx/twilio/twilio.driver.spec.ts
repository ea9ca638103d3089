import { deriveCall, mergeFacts, type CallState } from '../../calls/call-state.js';
import { parseDialTwiml, startTwilioFake, type TwilioFake } from '../../../test/fakes/twilio-fake.js';
import { PbxError, type OriginateRequest, type PbxEnvironment, type PbxProvider } from '../pbx-provider.js';
import { TwilioDriver, type TwilioSettings } from './twilio.driver.js';

const CONN = '11111111-1111-4111-8111-111111111111';
const COMPANY_NUMBER = '+15550100000';
const AGENT = '+15550100010';
const CUSTOMER = '+15550100099';
const CALL_ID = '33333333-3333-4333-8333-333333333333';

let fake: TwilioFake;
const driver = new TwilioDriver();

beforeAll(async () => {
  fake = await startTwilioFake();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => fake.reset());

function env(): PbxEnvironment {
  return {
    publicBaseUrl: 'https://switchboard.example.test',
    baseUrls: { dialpadProduction: 'https://d.test', dialpadSandbox: 'https://s.d.test', twilio: fake.baseUrl },
    httpTimeoutMs: 2000,
    allowHttp: true,
  };
}

function connect(settings: Partial<TwilioSettings> = {}, authToken = fake.authToken): PbxProvider {
  return driver.connect(
    {
      id: CONN,
      companyId: '22222222-2222-4222-8222-222222222222',
      provider: 'twilio',
      settings: { accountSid: fake.accountSid, callerId: COMPANY_NUMBER, ...settings },
      secrets: { authToken },
    },
    env(),
  );
}

const request = (over: Partial<OriginateRequest> = {}): OriginateRequest => ({
  callId: CALL_ID,
  to: CUSTOMER,
  agent: { id: 'agent-1', extension: null, externalId: AGENT },
  ...over,
});

async function rejection(promise: Promise<unknown>): Promise<PbxError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(PbxError);
    return e as PbxError;
  }
  throw new Error('expected a rejection');
}

describe('TwilioDriver', () => {
  it('declares its routes, capabilities and webhook URLs', () => {
    expect(driver.provider).toBe('twilio');
    expect(driver.webhookRoutes).toEqual(['status', 'sms']);
    expect(driver.capabilities).toEqual({
      originate: true,
      hangup: true,
      dtmf: true,
      status: true,
      webhooks: { calls: true, sms: true, voicemail: false },
    });
    expect(driver.webhookUrls(CONN, env())).toEqual({
      status: `https://switchboard.example.test/webhooks/twilio/${CONN}/status`,
      sms: `https://switchboard.example.test/webhooks/twilio/${CONN}/sms`,
    });
  });

  it('validates settings and secrets', () => {
    const sid = `AC${'0123456789abcdef'.repeat(2)}`;
    expect(driver.settingsSchema.safeParse({ accountSid: sid }).success).toBe(true);
    expect(driver.settingsSchema.safeParse({ accountSid: sid, callerId: '+15550100000' }).success).toBe(true);
    expect(driver.settingsSchema.safeParse({ accountSid: `AC${'0123456789ABCDEF'.repeat(2)}` }).success).toBe(false);
    expect(driver.settingsSchema.safeParse({ accountSid: 'AC123' }).success).toBe(false);
    expect(driver.settingsSchema.safeParse({ accountSid: sid, callerId: '5550100000' }).success).toBe(false);
    expect(driver.secretsSchema.safeParse({ authToken: 'short' }).success).toBe(false);
    expect(driver.secretsSchema.safeParse({ authToken: '0123456789abcdef0123456789abcdef' }).success).toBe(true);
    expect(() => connect({ accountSid: 'nope' })).toThrow(PbxError);
  });
});

describe('TwilioProvider commands against the fake', () => {
  it('testCredentials fetches the account with Basic auth', async () => {
    await expect(connect().testCredentials()).resolves.toEqual({
      detail: `Twilio account ${fake.accountSid} is active (Full).`,
    });
    const req = fake.requests[0]!;
    expect(req.method).toBe('GET');
    expect(req.path).toBe(`/2010-04-01/Accounts/${fake.accountSid}.json`);
    expect(req.headers.authorization).toBe(
      `Basic ${Buffer.from(`${fake.accountSid}:${fake.authToken}`).toString('base64')}`,
    );
  });

  it('testCredentials: wrong token → AUTH, suspended account → AUTH', async () => {
    expect((await rejection(connect({}, 'wrong-token-0123456789').testCredentials())).code).toBe('AUTH');
    fake.setAccountStatus('suspended');
    expect((await rejection(connect().testCredentials())).code).toBe('AUTH');
  });

  it('maps failures: unreachable / 5xx → TRANSIENT, 429 → RATE_LIMITED with Retry-After, 404 → NOT_FOUND', async () => {
    fake.setDown(true);
    expect((await rejection(connect().testCredentials())).code).toBe('TRANSIENT');
    fake.setDown(false);
    fake.failNext(503);
    expect((await rejection(connect().testCredentials())).code).toBe('TRANSIENT');
    fake.failNext(429, undefined, { 'retry-after': '7' });
    const limited = await rejection(connect().testCredentials());
    expect(limited.code).toBe('RATE_LIMITED');
    expect(limited.options.retryAfterSeconds).toBe(7);
    expect((await rejection(connect().status('CA00000000000000000000000000000000'))).code).toBe('NOT_FOUND');
  });

  it('originate calls the agent with TwiML that dials the customer, both legs reporting to our status webhook', async () => {
    const result = await connect().originate(request());
    expect(result.providerCallId).toMatch(/^CA[0-9a-f]{32}$/);
    expect(fake.calls.get(result.providerCallId)?.call).toMatchObject({
      to: AGENT,
      from: COMPANY_NUMBER,
      direction: 'outbound-api',
    });

    const req = fake.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe(`/2010-04-01/Accounts/${fake.accountSid}/Calls.json`);
    expect(req.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const base = `https://switchboard.example.test/webhooks/twilio/${CONN}/status?callId=${CALL_ID}`;
    expect(req.params).toMatchObject({
      To: AGENT,
      From: COMPANY_NUMBER,
      StatusCallback: `${base}&leg=agent`,
      StatusCallbackEvent: ['initiated', 'ringing', 'answered', 'completed'],
      StatusCallbackMethod: 'POST',
    });
    const twiml = req.params['Twiml'] as string;
    expect(twiml).toBe(
      `<Response><Dial callerId="${COMPANY_NUMBER}"><Number statusCallback="${base}&amp;leg=customer" ` +
        `statusCallbackEvent="initiated ringing answered completed" statusCallbackMethod="POST">${CUSTOMER}</Number></Dial></Response>`,
    );
    expect(parseDialTwiml(twiml)).toEqual({
      number: CUSTOMER,
      callerId: COMPANY_NUMBER,
      statusCallback: `${base}&leg=customer`,
    });
  });

  it('originate: the caller id of the request wins over the connection default; client: and sip: agents', async () => {
    await connect().originate(
      request({ callerId: '+15550100001', agent: { id: 'a', extension: null, externalId: 'client:alice' } }),
    );
    expect(fake.requests[0]!.params).toMatchObject({ To: 'client:alice', From: '+15550100001' });
    await connect().originate(
      request({ agent: { id: 'a', extension: null, externalId: 'sip:alice@acme.sip.twilio.com' } }),
    );
    expect(fake.requests[1]!.params['To']).toBe('sip:alice@acme.sip.twilio.com');
  });

  it('originate refuses (REJECTED, nothing sent) without an agent identity, with a bad one, or without a caller id', async () => {
    for (const externalId of [null, '', '1001', 'client:', 'tel:+15550100010']) {
      const e = await rejection(connect().originate(request({ agent: { id: 'a', extension: '1001', externalId } })));
      expect(e.code).toBe('REJECTED');
    }
    const e = await rejection(connect({ callerId: undefined }).originate(request()));
    expect(e.code).toBe('REJECTED');
    expect(e.message).toMatch(/caller id/);
    expect(fake.requests).toHaveLength(0);
  });

  it("originate maps Twilio's errors: 21211 → REJECTED (number masked in the message), 20003 → AUTH", async () => {
    fake.failNext(400, {
      code: 21211,
      message: "The 'To' number +15550100010 is not a valid phone number.",
      more_info: 'https://www.twilio.com/docs/errors/21211',
      status: 400,
    });
    const e = await rejection(connect().originate(request()));
    expect(e.code).toBe('REJECTED');
    expect(e.message).toContain('21211');
    expect(e.message).not.toContain('+15550100010');
    expect((await rejection(connect({}, 'wrong-token-0123456789').originate(request()))).code).toBe('AUTH');
  });

  it('hangup completes the call; a call already over is not an error; an unknown one is NOT_FOUND', async () => {
    const p = connect();
    const { providerCallId } = await p.originate(request());
    fake.setCallStatus(providerCallId, 'in-progress');
    await p.hangup(providerCallId);
    expect(fake.requests.at(-1)).toMatchObject({
      method: 'POST',
      path: `/2010-04-01/Accounts/${fake.accountSid}/Calls/${providerCallId}.json`,
      params: { Status: 'completed' },
    });
    expect(fake.calls.get(providerCallId)!.call.status).toBe('completed');
    fake.failNext(400, { code: 21220, message: 'Call is not in-progress.', status: 400 });
    await expect(p.hangup(providerCallId)).resolves.toBeUndefined();
    expect((await rejection(p.hangup('CA00000000000000000000000000000000'))).code).toBe('NOT_FOUND');
    const before = fake.requests.length;
    expect((await rejection(p.hangup('../Accounts'))).code).toBe('NOT_FOUND');
    expect(fake.requests).toHaveLength(before);
  });

  it('status reports the state and whether it is over', async () => {
    const p = connect();
    const { providerCallId } = await p.originate(request());
    await expect(p.status(providerCallId)).resolves.toEqual({ state: 'queued', ended: false });
    fake.setCallStatus(providerCallId, 'in-progress');
    await expect(p.status(providerCallId)).resolves.toEqual({ state: 'in-progress', ended: false });
    fake.setCallStatus(providerCallId, 'no-answer');
    await expect(p.status(providerCallId)).resolves.toEqual({ state: 'no-answer', ended: true });
  });

  it("sendDtmf plays the digits on the customer's leg (the connected <Dial> child of a click-to-call)", async () => {
    const p = connect();
    const { providerCallId } = await p.originate(request());
    fake.setCallStatus(providerCallId, 'in-progress');
    expect((await rejection(p.sendDtmf(providerCallId, '1'))).code).toBe('REJECTED');
    const child = fake.connectCustomer(providerCallId);
    await p.sendDtmf(providerCallId, '12#*');
    const list = fake.requests.find((r) => r.method === 'GET' && r.path.endsWith('/Calls.json'))!;
    expect(list.query).toMatchObject({ ParentCallSid: providerCallId, Status: 'in-progress' });
    expect(fake.requests.at(-1)).toMatchObject({
      method: 'POST',
      path: `/2010-04-01/Accounts/${fake.accountSid}/Calls/${child.sid}.json`,
      params: { Twiml: '<Response><Play digits="12#*"/></Response>' },
    });
    expect(fake.calls.get(child.sid)!.twimlUpdates).toEqual(['<Response><Play digits="12#*"/></Response>']);
    expect(fake.calls.get(providerCallId)!.twimlUpdates).toEqual([]);
  });

  it('sendDtmf refuses A-D and calls that are over', async () => {
    const p = connect();
    const { providerCallId } = await p.originate(request());
    expect((await rejection(p.sendDtmf(providerCallId, '1A'))).code).toBe('REJECTED');
    fake.setCallStatus(providerCallId, 'completed');
    expect((await rejection(p.sendDtmf(providerCallId, '1'))).code).toBe('REJECTED');
  });

  it('a click-to-call through the fake: the callbacks Twilio would send map onto the call originate returned', async () => {
    const p = connect();
    const { providerCallId } = await p.originate(request());
    fake.connectCustomer(providerCallId);
    const deliveries = fake.clickToCallDeliveries(providerCallId, { outcome: 'answered', talkSeconds: 20 });
    let state: CallState = {};
    for (const d of deliveries) {
      const verified = await p.verifyWebhook({
        route: d.route,
        url: d.url,
        headers: d.headers,
        contentType: d.headers['content-type']!,
        rawBody: Buffer.from(d.body),
        body: d.params,
      });
      expect(verified.kind).toBe('call');
      for (const e of p.parseWebhook(verified).calls) {
        expect(e.providerCallId).toBe(providerCallId);
        state = mergeFacts(state, { ...e, agentId: e.agent?.externalId });
      }
    }
    expect(deriveCall(state, new Date())).toMatchObject({
      status: 'completed',
      direction: 'outbound',
      toNumber: CUSTOMER,
      fromNumber: COMPANY_NUMBER,
      agentId: AGENT,
      talkSeconds: 21,
    });
    await expect(p.status(providerCallId)).resolves.toEqual({ state: 'completed', ended: true });
  });
});
