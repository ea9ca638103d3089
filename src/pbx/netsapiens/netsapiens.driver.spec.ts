import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deriveCall, mergeFacts, type CallState } from '../../calls/call-state.js';
import { startNetsapiensFake, type NetsapiensFake } from '../../../test/fakes/netsapiens-fake.js';
import type { InboundWebhook, PbxConnectionConfig, PbxEnvironment, ProviderCallEvent } from '../pbx-provider.js';
import {
  netsapiensDialString,
  NetsapiensDriver,
  netsapiensSecretsSchema,
  netsapiensSettingsSchema,
  subscribeNetsapiens,
  type NetsapiensProvider,
  type NetsapiensSecrets,
  type NetsapiensSettings,
} from './netsapiens.driver.js';

const SECRET = 'test-webhook-secret-0123456789';
const CALL_ID = '5b0c6a52-7f0e-4c1a-9f33-0d6c2d7e8a91';
const HEX = '5b0c6a527f0e4c1a9f330d6c2d7e8a91';
const agent = { id: 'a1', extension: '1001', externalId: '1001' };

let fake: NetsapiensFake;
let env: PbxEnvironment;
const driver = new NetsapiensDriver();

function connection(
  over: { settings?: Partial<NetsapiensSettings>; secrets?: Partial<NetsapiensSecrets> } = {},
): PbxConnectionConfig<NetsapiensSettings, NetsapiensSecrets> {
  return {
    id: '11111111-1111-4111-8111-111111111111',
    companyId: '22222222-2222-4222-8222-222222222222',
    provider: 'netsapiens',
    settings: { baseUrl: fake.baseUrl, domain: fake.domain, ...over.settings },
    secrets: { apiKey: fake.apiKey, webhookSecret: SECRET, ...over.secrets },
  };
}
const provider = (over?: Parameters<typeof connection>[0]) => driver.connect(connection(over), env);

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

beforeAll(async () => {
  fake = await startNetsapiensFake();
  env = {
    publicBaseUrl: 'https://switchboard.example.test',
    baseUrls: { dialpadProduction: 'x', dialpadSandbox: 'x', twilio: 'x' },
    httpTimeoutMs: 2000,
    allowHttp: true,
  };
});
afterEach(() => fake.reset());
afterAll(() => fake.close());

describe('NetSapiens settings and secrets', () => {
  it('takes a base URL, a domain and an optional subscription id', () => {
    expect(
      netsapiensSettingsSchema.safeParse({ baseUrl: 'https://pbx.example.com', domain: 'acme.1.service' }).success,
    ).toBe(true);
    expect(netsapiensSettingsSchema.safeParse({ baseUrl: 'ftp://pbx', domain: 'acme' }).success).toBe(false);
    expect(netsapiensSettingsSchema.safeParse({ baseUrl: 'https://pbx.example.com', domain: 'a/b' }).success).toBe(
      false,
    );
    expect(netsapiensSettingsSchema.safeParse({ baseUrl: 'https://pbx.example.com' }).success).toBe(false);
  });

  it('wants an API key of 10+ characters and a webhook secret of 16+ when given', () => {
    expect(netsapiensSecretsSchema.safeParse({ apiKey: 'nsd_0123456789' }).success).toBe(true);
    expect(netsapiensSecretsSchema.safeParse({ apiKey: 'short' }).success).toBe(false);
    expect(netsapiensSecretsSchema.safeParse({ apiKey: 'nsd_0123456789', webhookSecret: 'short' }).success).toBe(false);
  });

  it('has one webhook route and says what it can do', () => {
    expect(driver.webhookRoutes).toEqual(['']);
    expect(driver.webhookUrls('c1', env)).toEqual({
      events: 'https://switchboard.example.test/webhooks/netsapiens/c1',
    });
    expect(driver.capabilities).toMatchObject({ originate: true, hangup: true, dtmf: false, status: true });
  });
});

describe('NetSapiens commands against the fake API v2', () => {
  it('checks credentials with an authenticated read of the domain', async () => {
    await expect(provider().testCredentials()).resolves.toEqual({
      detail: `NetSapiens domain ${fake.domain} (Acme (fake))`,
    });
    const [req] = fake.requests;
    expect(req).toMatchObject({ method: 'GET', path: `/ns-api/v2/domains/${fake.domain}` });
    expect(req!.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
  });

  it('maps a refused key and a domain out of its scope to AUTH', async () => {
    expect(await codeOf(provider({ secrets: { apiKey: 'nsd_wrong_key_000' } }).testCredentials())).toBe('AUTH');
    expect(await codeOf(provider({ settings: { domain: 'other.service' } }).testCredentials())).toBe('AUTH');
  });

  it('refuses a plain-http base URL unless the deployment allows it, and appends /ns-api/v2 once', async () => {
    const strict = driver.connect(connection(), { ...env, allowHttp: false });
    expect(await codeOf(strict.testCredentials())).toBe('REJECTED');
    await provider({ settings: { baseUrl: `${fake.baseUrl}/ns-api/v2/` } }).testCredentials();
    expect(fake.requests[0]!.path).toBe(`/ns-api/v2/domains/${fake.domain}`);
  });

  it('originates a click-to-call under the agent user with our call id as call-id', async () => {
    const result = await provider().originate({ callId: CALL_ID, to: '+15555550199', callerId: '+15555550100', agent });
    expect(result.providerCallId).toBe(HEX);
    const [req] = fake.requests;
    expect(req).toMatchObject({
      method: 'POST',
      path: `/ns-api/v2/domains/${fake.domain}/users/1001/calls`,
      body: {
        synchronous: 'no',
        'call-id': HEX,
        'call-term-user': '15555550199',
        'caller-id-number': '15555550100',
        'auto-answer-enabled': 'no',
      },
    });
    expect(req!.headers['content-type']).toBe('application/json');
    expect(fake.calls.get(HEX)).toMatchObject({ user: '1001', termUser: '15555550199' });
  });

  it('uses the extension when the agent has no user mapping, and refuses an agent with neither', async () => {
    await provider().originate({
      callId: CALL_ID,
      to: '+15555550199',
      agent: { id: 'a', extension: '1002', externalId: null },
    });
    expect(fake.requests[0]!.path).toBe(`/ns-api/v2/domains/${fake.domain}/users/1002/calls`);
    expect(fake.requests[0]!.body).not.toHaveProperty('caller-id-number');
    const none = provider().originate({
      callId: CALL_ID,
      to: '+15555550199',
      agent: { id: 'a', extension: null, externalId: null },
    });
    expect(await codeOf(none)).toBe('REJECTED');
  });

  it('maps the vendor answers to our codes: 404 user, 400, 409, 429, 5xx, unreachable', async () => {
    const p = provider();
    const req = (user = '1001') => ({ callId: CALL_ID, to: '+15555550199', agent: { ...agent, externalId: user } });
    expect(await codeOf(p.originate(req('9999')))).toBe('NOT_FOUND');
    fake.failNext(400, { code: 400, message: 'Invalid call-term-user' });
    expect(await codeOf(p.originate(req()))).toBe('REJECTED');
    await p.originate(req());
    expect(await codeOf(p.originate(req()))).toBe('REJECTED'); // 409: that call-id exists
    fake.failNext(429, { code: 429, message: 'Too Many Requests' }, { 'retry-after': '7' });
    await expect(p.testCredentials()).rejects.toMatchObject({
      code: 'RATE_LIMITED',
      options: { retryAfterSeconds: 7 },
    });
    fake.failNext(503);
    expect(await codeOf(p.testCredentials())).toBe('TRANSIENT');
    fake.setDown(true);
    expect(await codeOf(p.testCredentials())).toBe('TRANSIENT');
  });

  it('reads the status of a call among the domain active calls, and NOT_FOUND once it is gone', async () => {
    const p = provider();
    const { providerCallId } = await p.originate({ callId: CALL_ID, to: '+15555550199', agent });
    await expect(p.status(providerCallId)).resolves.toEqual({ state: 'progressing', ended: false });
    await fake.answer(providerCallId);
    await expect(p.status(providerCallId)).resolves.toEqual({ state: 'active', ended: false });
    expect(fake.requests.at(-1)).toMatchObject({ method: 'GET', path: `/ns-api/v2/domains/${fake.domain}/calls` });
    await fake.end(providerCallId);
    expect(await codeOf(p.status(providerCallId))).toBe('NOT_FOUND');
  });

  it('hangs up a call it placed under the user that placed it', async () => {
    const p = provider();
    const { providerCallId } = await p.originate({ callId: CALL_ID, to: '+15555550199', agent });
    await p.hangup(providerCallId);
    expect(fake.requests.at(-1)).toMatchObject({
      method: 'DELETE',
      path: `/ns-api/v2/domains/${fake.domain}/users/1001/calls/${HEX}`,
    });
    expect(fake.calls.get(HEX)!.ended).toBe(true);
  });

  it('hangs up a call it did not place by finding its user among the active calls', async () => {
    fake.addActiveCall({
      'call-orig-call-id': 'inbound-1@192.0.2.10',
      'call-orig-user': '',
      'call-orig-domain': '*',
      'call-term-user': '1003',
      'call-term-domain': fake.domain,
      'call-answer-datetime': '2026-11-21 09:59:56',
    });
    const p = provider();
    await expect(p.status('inbound-1@192.0.2.10')).resolves.toEqual({ state: 'active', ended: false });
    await p.hangup('inbound-1@192.0.2.10');
    expect(fake.requests.map((r) => `${r.method} ${r.path}`).slice(-2)).toEqual([
      `GET /ns-api/v2/domains/${fake.domain}/calls`,
      `DELETE /ns-api/v2/domains/${fake.domain}/users/1003/calls/${encodeURIComponent('inbound-1@192.0.2.10')}`,
    ]);
    expect(await codeOf(p.hangup('unknown-call'))).toBe('NOT_FOUND');
  });

  it('has no DTMF (API v2 documents no DTMF action)', async () => {
    expect(await codeOf(provider().sendDtmf(HEX, '123#'))).toBe('UNSUPPORTED');
    expect(fake.requests).toHaveLength(0);
  });

  it('writes NANP numbers as 1NXXNXXXXXX and keeps other E.164 numbers', () => {
    expect(netsapiensDialString('+15555550199')).toBe('15555550199');
    expect(netsapiensDialString('+442079460000')).toBe('+442079460000');
  });
});

describe('subscribeNetsapiens', () => {
  it('creates the domain call subscription to our webhook URL with the token, idempotently', async () => {
    const id = await subscribeNetsapiens(env, connection());
    const [req] = fake.requests;
    expect(req).toMatchObject({
      method: 'POST',
      path: `/ns-api/v2/domains/${fake.domain}/subscriptions`,
      body: {
        model: 'call',
        'post-url': `https://switchboard.example.test/webhooks/netsapiens/11111111-1111-4111-8111-111111111111?token=${SECRET}`,
        domain: fake.domain,
        user: '*',
        'subscription-geo-support': 'yes',
      },
    });
    expect(fake.subscriptions.get(id)).toBeDefined();
    // Again: NetSapiens answers 409 and we find the same subscription.
    await expect(subscribeNetsapiens(env, connection())).resolves.toBe(id);
    expect(fake.subscriptions.size).toBe(1);
  });

  it('needs a webhook secret, and maps vendor failures', async () => {
    expect(await codeOf(subscribeNetsapiens(env, connection({ secrets: { webhookSecret: undefined } })))).toBe(
      'REJECTED',
    );
    expect(await codeOf(subscribeNetsapiens(env, connection({ secrets: { apiKey: 'nsd_wrong_key_000' } })))).toBe(
      'AUTH',
    );
  });
});

describe('NetSapiens click-to-call end to end: originate, subscription deliveries, verify, parse', () => {
  let receiver: Server;
  let received: ProviderCallEvent[];
  let statuses: number[];
  let p: NetsapiensProvider;

  beforeAll(async () => {
    // Stands for our webhook endpoint: builds the InboundWebhook and runs verify + parse.
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rawBody = Buffer.concat(chunks);
        const hook: InboundWebhook = {
          route: '',
          url: `https://switchboard.example.test${req.url}`,
          headers: req.headers as Record<string, string>,
          contentType: req.headers['content-type'] ?? '',
          rawBody,
          body: JSON.parse(rawBody.toString('utf8')) as unknown,
        };
        try {
          received.push(...p.parseWebhook(p.verifyWebhook(hook)).calls);
          res.writeHead(200).end();
        } catch (error) {
          res.writeHead((error as { code?: string }).code === 'AUTH' ? 401 : 400).end();
        }
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

  it('turns the deliveries of a placed call into one completed outbound call with the originate id', async () => {
    const auto = await startNetsapiensFake({ autoDeliver: true });
    try {
      received = [];
      statuses = [];
      const conn = { ...connection(), settings: { baseUrl: auto.baseUrl, domain: auto.domain } };
      const hookBase = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/netsapiens/${conn.id}`;
      const subscriptionId = await subscribeNetsapiens(env, conn, { postUrl: hookBase });
      p = driver.connect({ ...conn, settings: { ...conn.settings, subscriptionId } }, env);

      const { providerCallId } = await p.originate({
        callId: CALL_ID,
        to: '+15555550199',
        callerId: '+15555550100',
        agent,
      });
      await auto.answer(providerCallId);
      await p.hangup(providerCallId);
      statuses = auto.deliveries.map((d) => d.status);
      expect(statuses).toEqual([200, 200, 200]);
      expect(auto.deliveries[0]!.url).toContain(`token=${SECRET}`);

      const state = received.reduce<CallState>((s, e) => mergeFacts(s, { ...e, agentId: e.agent?.externalId }), {});
      expect(new Set(received.map((e) => e.providerCallId))).toEqual(new Set([providerCallId]));
      expect(deriveCall(state, new Date(0))).toMatchObject({
        status: 'completed',
        direction: 'outbound',
        fromNumber: '+15555550100',
        toNumber: '+15555550199',
        agentId: '1001',
        endReason: 'completed',
      });

      // A delivery with another token is refused by the endpoint.
      const forged = await fetch(`${hookBase}?token=not-the-secret-000000`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: auto.deliveries[0]!.body,
      });
      expect(forged.status).toBe(401);
    } finally {
      await auto.close();
    }
  });
});
