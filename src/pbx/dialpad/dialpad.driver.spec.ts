import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  DIALPAD_FAKE_API_KEY,
  DIALPAD_FAKE_COMPANY,
  DIALPAD_FAKE_USER_ID,
  startDialpadFake,
  type DialpadFake,
} from '../../../test/fakes/dialpad-fake.js';
import { PbxError, type InboundWebhook, type PbxEnvironment } from '../pbx-provider.js';
import { DialpadDriver, type DialpadProvider } from './dialpad.driver.js';
import type { DialpadConnection } from './dialpad.settings.js';
import { subscribeDialpad, unsubscribeDialpad } from './dialpad.subscriptions.js';
import { DIALPAD_MAPPED_CALL_STATES } from './dialpad.wire.js';

const SECRET = 'test-webhook-secret-0123456789';
const driver = new DialpadDriver();
let fake: DialpadFake;
let env: PbxEnvironment;

beforeAll(async () => {
  fake = await startDialpadFake();
  env = {
    publicBaseUrl: 'https://switchboard.example.test',
    baseUrls: { dialpadProduction: fake.baseUrl, dialpadSandbox: `${fake.baseUrl}/`, twilio: 'http://127.0.0.1:9' },
    httpTimeoutMs: 2000,
    allowHttp: true,
  };
});
afterAll(() => fake.close());
beforeEach(() => fake.reset());

function connection(over: Partial<DialpadConnection> = {}): DialpadConnection {
  return {
    id: '11111111-1111-4111-8111-111111111111',
    companyId: '22222222-2222-4222-8222-222222222222',
    provider: 'dialpad',
    settings: { environment: 'production', auth: 'api_key' },
    secrets: { apiKey: DIALPAD_FAKE_API_KEY, webhookSecret: SECRET },
    ...over,
  };
}
const provider = (over: Partial<DialpadConnection> = {}) => driver.connect(connection(over), env) as DialpadProvider;
const agent = (externalId: string | null = DIALPAD_FAKE_USER_ID) => ({ id: 'agent-1', extension: null, externalId });

async function failure(p: Promise<unknown>): Promise<PbxError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PbxError);
  return error as PbxError;
}

describe('DialpadDriver', () => {
  it('declares its schemas, one webhook route, no DTMF', () => {
    expect(driver.provider).toBe('dialpad');
    expect(driver.webhookRoutes).toEqual(['']);
    expect(driver.webhookUrls('c1', env)).toEqual({ events: 'https://switchboard.example.test/webhooks/dialpad/c1' });
    expect(driver.capabilities).toMatchObject({ originate: true, hangup: true, status: true, dtmf: false });
    expect(driver.settingsSchema.parse({})).toEqual({ environment: 'production', auth: 'api_key' });
    expect(driver.settingsSchema.safeParse({ environment: 'staging' }).success).toBe(false);
    expect(driver.settingsSchema.safeParse({ webhookId: '../x' }).success).toBe(false);
    expect(driver.secretsSchema.parse({ apiKey: 'k'.repeat(10), webhookSecret: 's'.repeat(16) })).toBeTruthy();
    expect(driver.secretsSchema.safeParse({ apiKey: 'short' }).success).toBe(false);
    expect(driver.secretsSchema.safeParse({ webhookSecret: 'too-short' }).success).toBe(false);
    expect(driver.secretsSchema.safeParse({ apiKey: 'k'.repeat(10), other: 'x' }).success).toBe(false);
    // OAuth tokens come from the OAuth flow only, never from a user.
    expect(driver.secretsSchema.safeParse({ accessToken: 'x'.repeat(20) }).success).toBe(false);
    expect(driver.secretsSchema.safeParse({ webhookSecret: `${'s'.repeat(16)}\n` }).success).toBe(false);
  });
});

describe('DialpadProvider commands against the fake', () => {
  it('testCredentials reads the company with the bearer API key', async () => {
    await expect(provider().testCredentials()).resolves.toEqual({
      detail: `Dialpad company "${DIALPAD_FAKE_COMPANY.name}" (id ${DIALPAD_FAKE_COMPANY.id})`,
    });
    expect(fake.requests[0]).toMatchObject({ method: 'GET', path: '/api/v2/company' });
    expect(fake.requests[0]!.headers.authorization).toBe(`Bearer ${DIALPAD_FAKE_API_KEY}`);
  });

  it('a wrong key is AUTH; oauth without a token is NOT_CONFIGURED, before any request', async () => {
    expect((await failure(provider({ secrets: { apiKey: 'wrong-key-0123456789' } }).testCredentials())).code).toBe(
      'AUTH',
    );
    const oauth = provider({ settings: { environment: 'production', auth: 'oauth' } });
    const before = fake.requests.length;
    const error = await failure(oauth.testCredentials());
    expect(error.code).toBe('NOT_CONFIGURED');
    expect(error.message).toMatch(/not authorized yet/);
    expect(fake.requests.length).toBe(before);
  });

  it('uses the sandbox base URL when the connection says so', async () => {
    const sandboxEnv = { ...env, baseUrls: { ...env.baseUrls, dialpadProduction: 'http://127.0.0.1:9' } };
    const p = driver.connect(connection({ settings: { environment: 'sandbox', auth: 'api_key' } }), sandboxEnv);
    await expect(p.testCredentials()).resolves.toHaveProperty('detail');
  });

  it('originate rings the agent (user_id as int64) with our call id in custom_data', async () => {
    const result = await provider().originate({
      callId: '33333333-3333-4333-8333-333333333333',
      to: '+15555550142',
      callerId: '+15555550100',
      agent: agent(),
    });
    const call = fake.calls.get(result.providerCallId)!;
    expect(call).toMatchObject({
      userId: DIALPAD_FAKE_USER_ID,
      phoneNumber: '+15555550142',
      outboundCallerId: '+15555550100',
    });
    expect(JSON.parse(call.customData!)).toEqual({ switchboard_call_id: '33333333-3333-4333-8333-333333333333' });
    const sent = fake.requests.find((r) => r.path === '/api/v2/call')!;
    expect(sent.method).toBe('POST');
    expect(sent.body).toMatchObject({ user_id: Number(DIALPAD_FAKE_USER_ID) });
  });

  it('originate: a big user id keeps its digits on the wire', async () => {
    fake.users.set('9223372036854775001', {
      id: '9223372036854775001',
      name: 'Big',
      email: 'b@x.test',
      phone: '+15555550109',
    });
    await provider().originate({ callId: 'c', to: '+15555550142', agent: agent('9223372036854775001') });
    expect(fake.calls.size).toBe(1);
    expect([...fake.calls.values()][0]!.userId).toBe('9223372036854775001');
    expect(fake.requests.at(-1)!.text).toContain('"user_id":9223372036854775001');
  });

  it('originate without a Dialpad user id is REJECTED with a clear message, before any request', async () => {
    const error = await failure(provider().originate({ callId: 'c', to: '+15555550142', agent: agent(null) }));
    expect(error.code).toBe('REJECTED');
    expect(error.message).toMatch(/no Dialpad user id/);
    expect((await failure(provider().originate({ callId: 'c', to: '+15555550142', agent: agent('ada@x') }))).code).toBe(
      'REJECTED',
    );
    expect(fake.requests).toHaveLength(0);
  });

  it('originate errors: unknown user NOT_FOUND, bad number REJECTED, 429 RATE_LIMITED, 503 TRANSIENT', async () => {
    expect(
      (await failure(provider().originate({ callId: 'c', to: '+15555550142', agent: agent('5299999999999999') }))).code,
    ).toBe('NOT_FOUND');
    const bad = await failure(provider().originate({ callId: 'c', to: '555', agent: agent() }));
    expect(bad.code).toBe('REJECTED');
    expect(bad.message).toMatch(/e164/);
    fake.failNext(429, { error: { code: 429, message: 'Rate limit exceeded' } });
    const limited = await failure(provider().originate({ callId: 'c', to: '+15555550142', agent: agent() }));
    expect(limited.code).toBe('RATE_LIMITED');
    fake.failNext(503);
    expect((await failure(provider().originate({ callId: 'c', to: '+15555550142', agent: agent() }))).code).toBe(
      'TRANSIENT',
    );
  });

  it('originate: a 200 without call_id is REJECTED (never retried: the phone is ringing)', async () => {
    fake.failNext(200, {});
    expect((await failure(provider().originate({ callId: 'c', to: '+15555550142', agent: agent() }))).code).toBe(
      'REJECTED',
    );
  });

  it('an unreachable Dialpad is TRANSIENT', async () => {
    fake.setDown(true);
    try {
      expect((await failure(provider().testCredentials())).code).toBe('TRANSIENT');
    } finally {
      fake.setDown(false);
    }
    await expect(provider().testCredentials()).resolves.toHaveProperty('detail');
  });

  it('status follows the call; hangup ends it', async () => {
    const { providerCallId } = await provider().originate({ callId: 'c', to: '+15555550142', agent: agent() });
    await expect(provider().status(providerCallId)).resolves.toEqual({ state: 'calling', ended: false });
    fake.setCallState(providerCallId, 'connected');
    await expect(provider().status(providerCallId)).resolves.toEqual({ state: 'connected', ended: false });
    await provider().hangup(providerCallId);
    expect(fake.requests.at(-1)).toMatchObject({
      method: 'PUT',
      path: `/api/v2/call/${providerCallId}/actions/hangup`,
    });
    await expect(provider().status(providerCallId)).resolves.toEqual({ state: 'hangup', ended: true });
  });

  it('hangup / status of an unknown call are NOT_FOUND (also for ids that are not Dialpad ids)', async () => {
    expect((await failure(provider().hangup('6199999999999999'))).code).toBe('NOT_FOUND');
    expect((await failure(provider().status('6199999999999999'))).code).toBe('NOT_FOUND');
    const before = fake.requests.length;
    expect((await failure(provider().hangup('../company'))).code).toBe('NOT_FOUND');
    expect(fake.requests.length).toBe(before);
  });

  it('sendDtmf is UNSUPPORTED', async () => {
    expect((await failure(provider().sendDtmf('6100000000000001', '123'))).code).toBe('UNSUPPORTED');
  });
});

describe('subscriptions and webhook deliveries', () => {
  let receiver: Server;
  let received: InboundWebhook[];
  let hookUrl: string;

  beforeAll(async () => {
    received = [];
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const contentType = req.headers['content-type'] ?? '';
        received.push({
          route: '',
          url: `${hookUrl}`,
          headers: req.headers,
          contentType,
          rawBody: raw,
          body: contentType.includes('json') ? JSON.parse(raw.toString('utf8')) : raw.toString('utf8'),
        });
        res.statusCode = 200;
        res.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/dialpad/c1`;
  });
  afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
  beforeEach(() => {
    received.length = 0;
  });

  it('creates the webhook and both subscriptions; events reach the hook signed and map', async () => {
    const ids = await subscribeDialpad(env, connection(), { hookUrl, secret: SECRET });
    expect(ids).toEqual({
      webhookId: expect.stringMatching(/^\d+$/),
      callSubscriptionId: expect.stringMatching(/^\d+$/),
      smsSubscriptionId: expect.stringMatching(/^\d+$/),
    });
    expect(fake.webhooks.get(ids.webhookId)).toMatchObject({ hookUrl, secret: SECRET });
    expect(fake.subscriptions.get(ids.callSubscriptionId)).toMatchObject({
      kind: 'call',
      endpointId: ids.webhookId,
      enabled: true,
      callStates: [...DIALPAD_MAPPED_CALL_STATES],
    });
    expect(fake.subscriptions.get(ids.smsSubscriptionId)).toMatchObject({
      kind: 'sms',
      endpointId: ids.webhookId,
      direction: 'all',
    });
    const callSub = fake.requests.find((r) => r.path === '/api/v2/subscriptions/call')!;
    expect(callSub.body).toMatchObject({ endpoint_id: Number(ids.webhookId), webhook_id: Number(ids.webhookId) });

    // Click-to-call end to end: originate, then the events the fake sends for that call.
    const p = provider({ settings: { environment: 'production', auth: 'api_key', ...ids } });
    const { providerCallId } = await p.originate({ callId: 'c-1', to: '+15555550142', agent: agent() });
    expect(await fake.emit(fake.callEvent(providerCallId, 'calling'))).toEqual([200]);
    fake.setCallState(providerCallId, 'connected');
    expect(await fake.emit(fake.callEvent(providerCallId, 'connected'))).toEqual([200]);
    expect(await fake.emit(fake.callEvent(providerCallId, 'hold'))).toEqual([]); // not subscribed
    expect(received).toHaveLength(2);
    const events = received.flatMap((w) => {
      expect(w.contentType).toBe('application/jwt');
      return p.parseWebhook(p.verifyWebhook(w)).calls;
    });
    expect(events.map((e) => [e.kind, e.providerCallId, e.direction, e.to])).toEqual([
      ['ringing', providerCallId, 'outbound', '+15555550142'],
      ['answered', providerCallId, 'outbound', '+15555550142'],
    ]);

    await unsubscribeDialpad(env, connection({ settings: { environment: 'production', auth: 'api_key', ...ids } }));
    expect(fake.webhooks.size).toBe(0);
    expect(fake.subscriptions.size).toBe(0);
    // Already gone: still fine.
    await expect(unsubscribeDialpad(env, connection(), ids)).resolves.toBeUndefined();
  });

  it('when a subscription fails, what was created is removed again and the error is ours', async () => {
    fake.failNext(400, undefined, { path: '/api/v2/subscriptions/sms' });
    const error = await failure(subscribeDialpad(env, connection(), { hookUrl, secret: SECRET }));
    expect(error.code).toBe('REJECTED');
    expect(fake.webhooks.size).toBe(0);
    expect(fake.subscriptions.size).toBe(0);
    expect(fake.requests.filter((r) => r.method === 'DELETE').map((r) => r.path.replace(/\d+$/, ':id'))).toEqual([
      '/api/v2/subscriptions/call/:id',
      '/api/v2/webhooks/:id',
    ]);
  });

  it('refuses a short webhook secret', async () => {
    expect((await failure(subscribeDialpad(env, connection(), { hookUrl, secret: 'short' }))).code).toBe('REJECTED');
  });
});
