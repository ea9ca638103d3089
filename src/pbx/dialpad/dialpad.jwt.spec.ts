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

/** The default window (5 min, leeway 30 s) judged at `nowMs`. */
const at = (nowMs: number) => ({ nowMs, maxAgeMs: 300_000, leewayMs: 30_000 });

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
    const out = verifyDialpadJwt(signDialpadJwt(SECRET, claims), SECRET, at(NOW));
    expect(out.claims).toEqual(claims);
    expect(out.header).toEqual({ alg: 'HS256', typ: 'JWT' });
  });

  it('refuses another secret, a changed payload, a changed signature', () => {
    const token = signDialpadJwt(SECRET, claims);
    expect(code(() => verifyDialpadJwt(token, 'another-secret-0123456789', at(NOW)))).toBe('AUTH');
    const [h, , s] = token.split('.');
    expect(code(() => verifyDialpadJwt(`${h}.${b64({ ...claims, state: 'hangup' })}.${s}`, SECRET, at(NOW)))).toBe(
      'AUTH',
    );
    const flipped = s!.slice(0, -2) + (s!.endsWith('AA') ? 'BA' : 'AA');
    expect(code(() => verifyDialpadJwt(`${h}.${token.split('.')[1]}.${flipped}`, SECRET, at(NOW)))).toBe('AUTH');
  });

  it('refuses alg none (with or without a signature) and every algorithm but HS256', () => {
    const p = b64(claims);
    expect(code(() => verifyDialpadJwt(`${b64({ alg: 'none' })}.${p}.`, SECRET, at(NOW)))).toBe('AUTH');
    // A "none" token carrying the HS256 MAC of its own content is still refused: alg decides nothing.
    const h = b64({ alg: 'none', typ: 'JWT' });
    const mac = createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url');
    expect(code(() => verifyDialpadJwt(`${h}.${p}.${mac}`, SECRET, at(NOW)))).toBe('AUTH');
    for (const alg of ['HS384', 'HS512', 'RS256', 'hs256']) {
      expect(code(() => verifyDialpadJwt(signDialpadJwt(SECRET, claims, { alg }), SECRET, at(NOW)))).toBe('AUTH');
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
      expect(code(() => verifyDialpadJwt(bad, SECRET, at(NOW)))).toBe('AUTH');
    }
  });

  it('refuses an empty secret', () => {
    expect(code(() => verifyDialpadJwt(signDialpadJwt('', claims), '', at(NOW)))).toBe('AUTH');
  });

  it('enforces exp and nbf with the leeway (STALE)', () => {
    const now = NOW / 1000;
    const verdict = (extra: Record<string, unknown>) =>
      code(() => verifyDialpadJwt(signDialpadJwt(SECRET, { ...claims, ...extra }), SECRET, at(NOW)));
    expect(verdict({ exp: now - 29 })).toBeUndefined();
    expect(verdict({ exp: now - 31 })).toBe('STALE');
    expect(verdict({ exp: 'soon' })).toBe('STALE');
    expect(verdict({ nbf: now + 120 })).toBe('STALE');
    expect(verdict({ nbf: now + 29 })).toBeUndefined();
  });

  it('judges iat when present, else event_timestamp (epoch ms), and refuses an event with no time', () => {
    const now = NOW / 1000;
    const { event_timestamp: _t, ...timeless } = claims;
    const verdict = (c: Record<string, unknown>) =>
      code(() => verifyDialpadJwt(signDialpadJwt(SECRET, c), SECRET, at(NOW)));
    expect(verdict({ ...timeless, iat: now - 60 })).toBeUndefined();
    expect(verdict({ ...timeless, iat: now - 331 })).toBe('STALE');
    expect(verdict({ ...timeless, iat: now + 31 })).toBe('STALE');
    // iat rules over an old event_timestamp (the JWT says when it was made).
    expect(verdict({ ...claims, event_timestamp: NOW - 3_600_000, iat: now - 1 })).toBeUndefined();
    expect(verdict({ ...timeless, event_timestamp: NOW - 329_000 })).toBeUndefined();
    expect(verdict({ ...timeless, event_timestamp: String(NOW - 1000) })).toBeUndefined();
    expect(verdict({ ...timeless, event_timestamp: NOW - 331_000 })).toBe('STALE');
    expect(verdict({ ...timeless, event_timestamp: Date.parse('2020-01-01T00:00:00Z') })).toBe('STALE');
    expect(verdict({ ...timeless, event_timestamp: NOW + 31_000 })).toBe('STALE');
    expect(verdict(timeless)).toBe('STALE');
    expect(verdict({ ...timeless, event_timestamp: 'yesterday' })).toBe('STALE');
    // SMS events: Dialpad retries them for about 4 hours with the original payload; such a retry
    // is accepted (the inbox dedupes it), one older than that is not.
    const sms = { id: 4600000000000001, text: 'hi', direction: 'inbound', message_status: 'pending' };
    expect(verdict({ ...sms, event_timestamp: NOW - 3 * 3_600_000 })).toBeUndefined();
    expect(verdict({ ...sms, event_timestamp: NOW - 5 * 3_600_000 })).toBe('STALE');
    expect(verdict({ ...sms })).toBe('STALE');
    // …but a call event of the same age is stale (Dialpad retries those within ~14 s).
    expect(verdict({ ...timeless, event_timestamp: NOW - 3 * 3_600_000 })).toBe('STALE');
    // A custom window (WEBHOOK_MAX_AGE_MS) is honoured.
    const wide = { nowMs: NOW, maxAgeMs: 3_600_000, leewayMs: 30_000 };
    expect(
      code(() =>
        verifyDialpadJwt(signDialpadJwt(SECRET, { ...timeless, event_timestamp: NOW - 600_000 }), SECRET, wide),
      ),
    ).toBeUndefined();
  });

  it('is REJECTED when it verifies but the payload is not a JSON object', () => {
    const h = b64({ alg: 'HS256', typ: 'JWT' });
    for (const payload of ['[1,2]', 'not json', '"text"']) {
      const p = Buffer.from(payload).toString('base64url');
      const s = createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url');
      expect(code(() => verifyDialpadJwt(`${h}.${p}.${s}`, SECRET, at(NOW)))).toBe('REJECTED');
    }
  });

  it('keeps int64 ids past 2^53 whole', () => {
    const h = b64({ alg: 'HS256' });
    const p = Buffer.from(
      `{"call_id":9223372036854775807,"state":"ringing","n":12.5,"event_timestamp":${NOW}}`,
    ).toString('base64url');
    const s = createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url');
    expect(verifyDialpadJwt(`${h}.${p}.${s}`, SECRET, at(NOW)).claims).toEqual({
      call_id: '9223372036854775807',
      state: 'ringing',
      n: 12.5,
      event_timestamp: NOW,
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
    expect(code(() => verifyDialpadJwt(body, SECRET, at(NOW)))).toBe('STALE');
    expect(code(() => verifyDialpadJwt(body, SECRET, at(NOW - 200_000)))).toBeUndefined();
  });
});
