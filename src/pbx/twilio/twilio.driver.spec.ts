import { deriveCall, mergeFacts, type CallState } from '../../calls/call-state.js';
import { startTwilioFake, type TwilioFake } from '../../../test/fakes/twilio-fake.js';
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

  it('originate calls the agent and the customer into one conference, both legs reporting to our status webhook', async () => {
    const result = await connect().originate(request());
    expect(result.providerCallId).toMatch(/^CA[0-9a-f]{32}$/);
    expect(fake.calls.get(result.providerCallId)?.call).toMatchObject({
      to: AGENT,
      from: COMPANY_NUMBER,
      direction: 'outbound-api',
    });
    const room = `switchboard-${CALL_ID}`;
    const [agentReq, customerReq] = fake.requests;
    expect(fake.requests).toHaveLength(2);
    for (const req of [agentReq!, customerReq!]) {
      expect(req.method).toBe('POST');
      expect(req.path).toBe(`/2010-04-01/Accounts/${fake.accountSid}/Calls.json`);
      expect(req.headers['content-type']).toBe('application/x-www-form-urlencoded');
    }
    const base = `https://switchboard.example.test/webhooks/twilio/${CONN}/status?callId=${CALL_ID}`;
    expect(agentReq!.params).toEqual({
      To: AGENT,
      From: COMPANY_NUMBER,
      Twiml: `<Response><Dial><Conference startConferenceOnEnter="true" endConferenceOnExit="true" beep="false">${room}</Conference></Dial></Response>`,
      StatusCallback: `${base}&leg=agent`,
      StatusCallbackEvent: ['initiated', 'ringing', 'answered', 'completed'],
      StatusCallbackMethod: 'POST',
    });
    expect(customerReq!.params).toEqual({
      To: CUSTOMER,
      From: COMPANY_NUMBER,
      Twiml: `<Response><Dial><Conference startConferenceOnEnter="false" endConferenceOnExit="false" beep="false">${room}</Conference></Dial></Response>`,
      StatusCallback: `${base}&leg=customer&parentCallSid=${result.providerCallId}`,
      StatusCallbackEvent: ['initiated', 'ringing', 'answered', 'completed'],
      StatusCallbackMethod: 'POST',
    });
  });

  it("originate: when the customer's leg cannot be created, the agent's is hung up and the error stands", async () => {
    // The agent's leg is created; the customer's create is refused (21211: invalid To).
    fake.failNext(400, { code: 21211, message: "The 'To' number is not a valid phone number.", status: 400 }, {}, 1);
    expect((await rejection(connect().originate(request()))).code).toBe('REJECTED');
    const [agentLeg] = [...fake.calls.values()];
    expect(fake.calls.size).toBe(1);
    expect(agentLeg!.call.status).toBe('canceled');
    expect(fake.requests.map((r) => `${r.method} ${r.path.split('/').pop()}`)).toEqual([
      'POST Calls.json',
      'POST Calls.json',
      `POST ${agentLeg!.call.sid}.json`,
    ]);
  });

  it('originate: the caller id of the request wins over the connection default; client: and sip: agents', async () => {
    await connect().originate(
      request({ callerId: '+15550100001', agent: { id: 'a', extension: null, externalId: 'client:alice' } }),
    );
    expect(fake.requests[0]!.params).toMatchObject({ To: 'client:alice', From: '+15550100001' });
    expect(fake.requests[1]!.params).toMatchObject({ To: CUSTOMER, From: '+15550100001' });
    await connect().originate(
      request({ agent: { id: 'a', extension: null, externalId: 'sip:alice@acme.sip.twilio.com' } }),
    );
    expect(fake.requests[2]!.params['To']).toBe('sip:alice@acme.sip.twilio.com');
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

  it("sendDtmf plays the digits on the customer's leg, which then rejoins the conference: the call stays up", async () => {
    const p = connect();
    const ref = { id: CALL_ID };
    const room = `switchboard-${CALL_ID}`;
    const { providerCallId } = await p.originate(request());
    const customer = fake.customerLegOf(providerCallId)!;
    fake.answer(providerCallId);
    // The agent is in the conference; the customer has not answered: no leg to send digits to.
    expect((await rejection(p.sendDtmf(providerCallId, '1', ref))).code).toBe('REJECTED');
    fake.answer(customer.call.sid);
    expect(fake.conferences.get(room)).toMatchObject({ status: 'in-progress' });
    expect([...fake.conferences.get(room)!.participants.keys()].sort()).toEqual(
      [providerCallId, customer.call.sid].sort(),
    );

    const before = fake.requests.length;
    await p.sendDtmf(providerCallId, '12#*', ref);
    const sent = fake.requests.slice(before);
    const conf = fake.conferences.get(room)!;
    expect(sent.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /2010-04-01/Accounts/${fake.accountSid}/Calls/${providerCallId}.json`,
      `GET /2010-04-01/Accounts/${fake.accountSid}/Conferences.json`,
      `GET /2010-04-01/Accounts/${fake.accountSid}/Conferences/${conf.sid}/Participants.json`,
      `POST /2010-04-01/Accounts/${fake.accountSid}/Calls/${customer.call.sid}.json`,
    ]);
    expect(sent[1]!.query).toMatchObject({ FriendlyName: room, Status: 'in-progress' });
    expect(sent[3]!.params).toEqual({
      Twiml:
        '<Response><Play digits="12#*"/><Dial><Conference startConferenceOnEnter="false" endConferenceOnExit="false" beep="false">' +
        `${room}</Conference></Dial></Response>`,
    });
    // The tones were played to the customer, and both legs are still up, together.
    expect(customer.played).toEqual(['12#*']);
    expect(fake.calls.get(customer.call.sid)!.call.status).toBe('in-progress');
    expect(fake.calls.get(providerCallId)!.call.status).toBe('in-progress');
    expect(customer.conference).toBe(room);
    expect(conf.status).toBe('in-progress');
    expect(conf.participants.size).toBe(2);
    expect(fake.calls.get(providerCallId)!.twimlUpdates).toEqual([]);
    // Twice works the same.
    await p.sendDtmf(providerCallId, '9', ref);
    expect(customer.played).toEqual(['12#*', '9']);
    expect(conf.participants.size).toBe(2);

    // Hangup ends the agent's leg; the agent ends the conference, so the customer's leg ends too.
    await p.hangup(providerCallId, ref);
    expect(fake.calls.get(providerCallId)!.call.status).toBe('completed');
    expect(fake.calls.get(customer.call.sid)!.call.status).toBe('completed');
    expect(conf.status).toBe('completed');
  });

  it('hangup before the agent answers also hangs up a customer waiting in the conference', async () => {
    const p = connect();
    const { providerCallId } = await p.originate(request());
    const customer = fake.customerLegOf(providerCallId)!;
    fake.answer(customer.call.sid);
    expect(fake.conferences.get(`switchboard-${CALL_ID}`)).toMatchObject({ status: 'init' });
    await p.hangup(providerCallId, { id: CALL_ID });
    expect(fake.calls.get(providerCallId)!.call.status).toBe('canceled');
    expect(fake.calls.get(customer.call.sid)!.call.status).toBe('completed');
  });

  it('sendDtmf refuses A-D and calls that are over', async () => {
    const p = connect();
    const { providerCallId } = await p.originate(request());
    expect((await rejection(p.sendDtmf(providerCallId, '1A', { id: CALL_ID }))).code).toBe('REJECTED');
    fake.setCallStatus(providerCallId, 'completed');
    expect((await rejection(p.sendDtmf(providerCallId, '1', { id: CALL_ID }))).code).toBe('REJECTED');
  });

  it('a click-to-call through the fake: the callbacks Twilio would send map onto the call originate returned', async () => {
    const p = connect();
    const { providerCallId } = await p.originate(request());
    fake.answer(providerCallId);
    fake.answer(fake.customerLegOf(providerCallId)!.call.sid);
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
