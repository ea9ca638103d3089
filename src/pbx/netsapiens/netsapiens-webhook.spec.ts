import { jest } from '@jest/globals';
import type { InboundWebhook } from '../pbx-provider.js';
import {
  canonicalJson,
  netsapiensEventId,
  netsapiensPostUrl,
  rowPhase,
  verifyNetsapiensWebhook,
  type NetsapiensWebhookPayload,
} from './netsapiens-webhook.js';

const SECRET = 'test-webhook-secret-0123456789';
const HOOK = 'https://switchboard.example.test/webhooks/netsapiens/11111111-1111-4111-8111-111111111111';

const row = (over: Record<string, unknown> = {}) => ({
  orig_callid: '0_123@192.0.2.1',
  term_callid: 'term-1',
  orig_from_user: '15555550142',
  term_user: '1001',
  term_domain: 'acme.15550.service',
  time_start: '2026-11-21 09:59:50',
  time_answer: '',
  ...over,
});

function request(
  body: string,
  url = netsapiensPostUrl(HOOK, SECRET),
  headers: Record<string, string> = {},
): InboundWebhook {
  return {
    route: '',
    url,
    headers: { 'content-type': 'application/json', ...headers },
    contentType: 'application/json',
    rawBody: Buffer.from(body),
    body: JSON.parse(body) as unknown,
  };
}

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
};

describe('NetSapiens webhook verification', () => {
  afterEach(() => jest.useRealTimers());

  it('puts the token in the post-url query string, keeping the path', () => {
    const url = new URL(netsapiensPostUrl(`${HOOK}?x=1`, 'a b+c&d'));
    expect(url.pathname).toBe('/webhooks/netsapiens/11111111-1111-4111-8111-111111111111');
    expect(url.searchParams.get('token')).toBe('a b+c&d');
    expect(url.searchParams.get('x')).toBe('1');
  });

  it('accepts a delivery with the right token and keeps the objects, the arrival time and the subscription id', () => {
    jest.useFakeTimers({ now: new Date('2026-11-21T10:00:00.000Z'), doNotFake: ['nextTick', 'setImmediate'] });
    const body = JSON.stringify([row()]);
    const v = verifyNetsapiensWebhook(
      request(body, undefined, { 'x-correlation-id': 'sub-1' }),
      { webhookSecret: SECRET },
      {},
    );
    expect(v.kind).toBe('call');
    expect(v.payload as NetsapiensWebhookPayload).toEqual({
      events: [row()],
      receivedAt: '2026-11-21T10:00:00.000Z',
      subscriptionId: 'sub-1',
    });
  });

  it('refuses (AUTH) a missing token, a wrong token, a token of another length and a connection without secret', () => {
    const body = JSON.stringify([row()]);
    expect(codeOf(() => verifyNetsapiensWebhook(request(body, HOOK), { webhookSecret: SECRET }, {}))).toBe('AUTH');
    expect(codeOf(() => verifyNetsapiensWebhook(request(body, `${HOOK}?token=`), { webhookSecret: SECRET }, {}))).toBe(
      'AUTH',
    );
    expect(
      codeOf(() =>
        verifyNetsapiensWebhook(request(body, netsapiensPostUrl(HOOK, `${SECRET}x`)), { webhookSecret: SECRET }, {}),
      ),
    ).toBe('AUTH');
    expect(
      codeOf(() =>
        verifyNetsapiensWebhook(request(body, netsapiensPostUrl(HOOK, 'short')), { webhookSecret: SECRET }, {}),
      ),
    ).toBe('AUTH');
    expect(codeOf(() => verifyNetsapiensWebhook(request(body), {}, {}))).toBe('AUTH');
  });

  it('checks X-Correlation-ID against the subscription id when both are known, and only then', () => {
    const body = JSON.stringify([row()]);
    const secrets = { webhookSecret: SECRET };
    const other = request(body, undefined, { 'x-correlation-id': 'sub-2' });
    expect(codeOf(() => verifyNetsapiensWebhook(other, secrets, { subscriptionId: 'sub-1' }))).toBe('AUTH');
    const same = request(body, undefined, { 'x-correlation-id': 'sub-1' });
    expect(codeOf(() => verifyNetsapiensWebhook(same, secrets, { subscriptionId: 'sub-1' }))).toBeUndefined();
    // No header (older cores) or no known subscription id: the token alone decides.
    expect(codeOf(() => verifyNetsapiensWebhook(request(body), secrets, { subscriptionId: 'sub-1' }))).toBeUndefined();
    expect(codeOf(() => verifyNetsapiensWebhook(other, secrets, {}))).toBeUndefined();
  });

  it('checks the token before reading the body (a bad token on garbage is AUTH, a good one REJECTED)', () => {
    const garbage: InboundWebhook = { ...request('[]'), rawBody: Buffer.from('{not json') };
    expect(codeOf(() => verifyNetsapiensWebhook({ ...garbage, url: HOOK }, { webhookSecret: SECRET }, {}))).toBe(
      'AUTH',
    );
    expect(codeOf(() => verifyNetsapiensWebhook(garbage, { webhookSecret: SECRET }, {}))).toBe('REJECTED');
  });

  it.each([
    ['an object', JSON.stringify(row())],
    ['an empty array', '[]'],
    ['an array of strings', '["a"]'],
    ['an object without orig call id', JSON.stringify([{ term_callid: 'x' }])],
    ['null', 'null'],
  ])('rejects (REJECTED) %s', (_what, body) => {
    const r: InboundWebhook = { ...request('[]'), rawBody: Buffer.from(body) };
    expect(codeOf(() => verifyNetsapiensWebhook(r, { webhookSecret: SECRET }, {}))).toBe('REJECTED');
  });
});

describe('NetSapiens event ids', () => {
  it('are the same for the same content, whatever the key order and spacing', () => {
    const a = [row()];
    const b = [Object.fromEntries(Object.entries(row()).reverse())];
    expect(netsapiensEventId(a)).toBe(netsapiensEventId(b));
    expect(canonicalJson(b)).toBe(canonicalJson(JSON.parse(JSON.stringify(a, null, 2)) as unknown));
  });

  it('name the phase and the call for one object, and differ for any other snapshot', () => {
    const ringing = netsapiensEventId([row()]);
    expect(ringing).toMatch(/^ringing:0_123@192\.0\.2\.1:[0-9a-f]{32}$/);
    const answered = netsapiensEventId([row({ time_answer: '2026-11-21 09:59:56' })]);
    expect(answered).toMatch(/^answered:/);
    const removed = netsapiensEventId([row({ time_answer: '2026-11-21 09:59:56', remove: 'yes' })]);
    expect(removed).toMatch(/^removed:/);
    // Same phase, another change (a transfer's by-side): another event.
    expect(netsapiensEventId([row({ by_user: '5000' })])).not.toBe(ringing);
    expect(new Set([ringing, answered, removed]).size).toBe(3);
  });

  it('are a SHA-256 of the whole delivery when it holds several objects, and fit the inbox column', () => {
    const id = netsapiensEventId([row(), row({ term_callid: 'term-2' })]);
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const long = netsapiensEventId([row({ orig_callid: 'x'.repeat(400) })]);
    expect(long).toMatch(/^sha256:/);
    expect(long.length).toBeLessThanOrEqual(200);
  });

  it('reads the phase from legacy and v2 names; a zero time is no answer', () => {
    expect(rowPhase({ time_answer: '0000-00-00 00:00:00' })).toBe('ringing');
    expect(rowPhase({ 'call-answer-datetime': '2026-11-21 09:59:56' })).toBe('answered');
    expect(rowPhase({ remove: 'yes', time_answer: '' })).toBe('removed');
  });
});
