import { createHmac } from 'node:crypto';
import { signDialpadJwt, signedDialpadWebhook } from '../../../test/fakes/dialpad-fake.js';
import { PbxError, type InboundWebhook } from '../pbx-provider.js';
import { dialpadWebhookToken, verifyDialpadJwt } from './dialpad.jwt.js';

const SECRET = 'test-webhook-secret-0123456789';
const NOW = Date.parse('2026-11-21T10:00:00.000Z');
const claims = { call_id: 6100000000000011, state: 'ringing', event_timestamp: NOW - 1000 };

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PbxError);
    return (error as PbxError).code;
  }
  return undefined;
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function request(body: unknown, raw: string, contentType = 'application/jwt'): InboundWebhook {
  return {
    route: '',
    url: 'https://x.test/webhooks/dialpad/c',
    headers: {},
    contentType,
    rawBody: Buffer.from(raw),
    body,
  };
}

describe('verifyDialpadJwt', () => {
  it('accepts an HS256 token signed with the secret and returns its claims', () => {
    const out = verifyDialpadJwt(signDialpadJwt(SECRET, claims), SECRET, NOW);
    expect(out.claims).toEqual(claims);
    expect(out.header).toEqual({ alg: 'HS256', typ: 'JWT' });
  });

  it('refuses another secret, a changed payload, a changed signature', () => {
    const token = signDialpadJwt(SECRET, claims);
    expect(code(() => verifyDialpadJwt(token, 'another-secret-0123456789', NOW))).toBe('AUTH');
    const [h, , s] = token.split('.');
    expect(code(() => verifyDialpadJwt(`${h}.${b64({ ...claims, state: 'hangup' })}.${s}`, SECRET, NOW))).toBe('AUTH');
    const flipped = s!.slice(0, -2) + (s!.endsWith('AA') ? 'BA' : 'AA');
    expect(code(() => verifyDialpadJwt(`${h}.${token.split('.')[1]}.${flipped}`, SECRET, NOW))).toBe('AUTH');
  });

  it('refuses alg none (with or without a signature) and every algorithm but HS256', () => {
    const p = b64(claims);
    expect(code(() => verifyDialpadJwt(`${b64({ alg: 'none' })}.${p}.`, SECRET, NOW))).toBe('AUTH');
    // A "none" token carrying the HS256 MAC of its own content is still refused: alg decides nothing.
    const h = b64({ alg: 'none', typ: 'JWT' });
    const mac = createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url');
    expect(code(() => verifyDialpadJwt(`${h}.${p}.${mac}`, SECRET, NOW))).toBe('AUTH');
    for (const alg of ['HS384', 'HS512', 'RS256', 'hs256']) {
      expect(code(() => verifyDialpadJwt(signDialpadJwt(SECRET, claims, { alg }), SECRET, NOW))).toBe('AUTH');
    }
  });

  it('refuses malformed tokens', () => {
    for (const bad of [
      '',
      'abc',
      'a.b',
      'a.b.c.d',
      'a b.c.d',
      `${b64({ alg: 'HS256' })}.${b64(claims)}.x=`,
      'bm90IGpzb24.e30.sig',
    ]) {
      expect(code(() => verifyDialpadJwt(bad, SECRET, NOW))).toBe('AUTH');
    }
  });

  it('refuses an empty secret', () => {
    expect(code(() => verifyDialpadJwt(signDialpadJwt('', claims), '', NOW))).toBe('AUTH');
  });

  it('enforces exp with 60 s of skew, and nbf', () => {
    const now = NOW / 1000;
    expect(
      code(() => verifyDialpadJwt(signDialpadJwt(SECRET, { ...claims, exp: now - 59 }), SECRET, NOW)),
    ).toBeUndefined();
    expect(code(() => verifyDialpadJwt(signDialpadJwt(SECRET, { ...claims, exp: now - 61 }), SECRET, NOW))).toBe(
      'AUTH',
    );
    expect(code(() => verifyDialpadJwt(signDialpadJwt(SECRET, { ...claims, exp: 'soon' }), SECRET, NOW))).toBe('AUTH');
    expect(code(() => verifyDialpadJwt(signDialpadJwt(SECRET, { ...claims, nbf: now + 120 }), SECRET, NOW))).toBe(
      'AUTH',
    );
    expect(
      code(() => verifyDialpadJwt(signDialpadJwt(SECRET, { ...claims, nbf: now + 30 }), SECRET, NOW)),
    ).toBeUndefined();
  });

  it('is REJECTED when it verifies but the payload is not a JSON object', () => {
    const h = b64({ alg: 'HS256', typ: 'JWT' });
    for (const payload of ['[1,2]', 'not json', '"text"']) {
      const p = Buffer.from(payload).toString('base64url');
      const s = createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url');
      expect(code(() => verifyDialpadJwt(`${h}.${p}.${s}`, SECRET, NOW))).toBe('REJECTED');
    }
  });

  it('keeps int64 ids past 2^53 whole', () => {
    const h = b64({ alg: 'HS256' });
    const p = Buffer.from('{"call_id":9223372036854775807,"state":"ringing","n":12.5}').toString('base64url');
    const s = createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url');
    expect(verifyDialpadJwt(`${h}.${p}.${s}`, SECRET, NOW).claims).toEqual({
      call_id: '9223372036854775807',
      state: 'ringing',
      n: 12.5,
    });
  });
});

describe('dialpadWebhookToken', () => {
  it('reads the JWT from an application/jwt body, a JSON string body, or the raw bytes', () => {
    const { body } = signedDialpadWebhook(SECRET, claims);
    expect(dialpadWebhookToken(request(body, body))).toBe(body);
    expect(dialpadWebhookToken(request(body, JSON.stringify(body), 'application/json'))).toBe(body);
    expect(dialpadWebhookToken(request(undefined, `${JSON.stringify(body)}\n`, 'application/octet-stream'))).toBe(body);
    expect(dialpadWebhookToken(request(Buffer.from(body), ` ${body} `, 'application/octet-stream'))).toBe(body);
  });

  it('refuses an unsigned JSON event (AUTH)', () => {
    const json = JSON.stringify(claims);
    expect(code(() => dialpadWebhookToken(request(claims, json, 'application/json')))).toBe('AUTH');
  });

  it('adds exp when asked (fake helper) and the verifier honours it', () => {
    const { headers, body } = signedDialpadWebhook(SECRET, claims, { expSeconds: 30, nowMs: NOW - 200_000 });
    expect(headers['content-type']).toBe('application/jwt');
    expect(code(() => verifyDialpadJwt(body, SECRET, NOW))).toBe('AUTH');
    expect(code(() => verifyDialpadJwt(body, SECRET, NOW - 200_000))).toBeUndefined();
  });
});
