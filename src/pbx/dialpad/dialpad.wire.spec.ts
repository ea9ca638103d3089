import { PbxError } from '../pbx-provider.js';
import { dialpadApiError, dialpadErrorMessage, dialpadOAuthError } from './dialpad.errors.js';
import { dialpadId, dialpadJsonBody, dialpadTime, httpUrl, parseDialpadJson } from './dialpad.wire.js';

describe('parseDialpadJson', () => {
  it('keeps integers past 2^53 as digit strings and leaves everything else to JSON.parse', () => {
    expect(
      parseDialpadJson(
        '{"a":9223372036854775807,"b":6421977457180672,"c":"12345678901234567890","d":1.1234567890123456789,"e":-9223372036854775807,"f":[18446744073709551615]}',
      ),
    ).toEqual({
      a: '9223372036854775807',
      b: 6421977457180672,
      c: '12345678901234567890',
      d: Number('1.1234567890123456789'),
      e: '-9223372036854775807',
      f: ['18446744073709551615'],
    });
    expect(parseDialpadJson('{"s":"quote \\" 99999999999999999999"}')).toEqual({ s: 'quote " 99999999999999999999' });
    expect(() => parseDialpadJson('{')).toThrow();
  });
});

describe('wire helpers', () => {
  it('dialpadId takes numbers and digit strings only', () => {
    expect(dialpadId(6421977457180672)).toBe('6421977457180672');
    expect(dialpadId(' 123 ')).toBe('123');
    expect(dialpadId(-1)).toBeUndefined();
    expect(dialpadId(1.5)).toBeUndefined();
    expect(dialpadId('12a')).toBeUndefined();
    expect(dialpadId(null)).toBeUndefined();
  });

  it('dialpadTime reads ms timestamps as numbers or strings', () => {
    expect(dialpadTime(1731624049994)).toEqual(new Date(1731624049994));
    expect(dialpadTime('1731624049994')).toEqual(new Date(1731624049994));
    expect(dialpadTime(0)).toBeUndefined();
    expect(dialpadTime('soon')).toBeUndefined();
  });

  it('httpUrl keeps http(s) URLs only', () => {
    expect(httpUrl('https://dialpad.com/r/1')).toBe('https://dialpad.com/r/1');
    expect(httpUrl('javascript:alert(1)')).toBeUndefined();
    expect(httpUrl('not a url')).toBeUndefined();
  });

  it('dialpadJsonBody writes int64 fields as exact JSON numbers', () => {
    expect(dialpadJsonBody({ phone_number: '+15555550142' }, { user_id: '9223372036854775807' })).toBe(
      '{"phone_number":"+15555550142","user_id":9223372036854775807}',
    );
    expect(() => dialpadJsonBody({}, { user_id: '1e3' })).toThrow();
  });
});

describe('Dialpad errors', () => {
  const h = new Headers({ 'retry-after': '7' });

  it('reads the message of the shapes Dialpad answers with', () => {
    expect(dialpadErrorMessage('{"error":{"code":400,"message":"bad phone","errors":[]}}')).toBe('bad phone');
    expect(dialpadErrorMessage('{"message":"nope"}')).toBe('nope');
    expect(dialpadErrorMessage('{"error":"invalid_grant","error_description":"expired"}')).toBe(
      'invalid_grant: expired',
    );
    expect(dialpadErrorMessage('<html>')).toBeUndefined();
  });

  it('maps statuses to our codes', () => {
    const code = (s: number) => dialpadApiError(s, h, 'GET /x', '{"error":{"message":"m"}}').code;
    expect([401, 403, 404, 400, 422, 429, 500, 503].map(code)).toEqual([
      'AUTH',
      'AUTH',
      'NOT_FOUND',
      'REJECTED',
      'REJECTED',
      'RATE_LIMITED',
      'TRANSIENT',
      'TRANSIENT',
    ]);
    expect(dialpadApiError(429, h, 'GET /x', '').options.retryAfterSeconds).toBe(7);
    expect(dialpadApiError(400, h, 'POST /api/v2/call', '{"error":{"message":"bad phone"}}').message).toBe(
      'Dialpad POST /api/v2/call answered 400: bad phone',
    );
  });

  it('OAuth grant errors are AUTH, other OAuth 400s REJECTED', () => {
    expect(dialpadOAuthError(400, h, 'POST /oauth2/token', '{"error":"invalid_grant"}')).toBeInstanceOf(PbxError);
    expect(dialpadOAuthError(400, h, 'POST /oauth2/token', '{"error":"invalid_grant"}').code).toBe('AUTH');
    expect(dialpadOAuthError(400, h, 'POST /oauth2/token', '{"error":"invalid_client"}').code).toBe('AUTH');
    expect(dialpadOAuthError(400, h, 'POST /oauth2/token', '{"error":"unsupported_grant_type"}').code).toBe('REJECTED');
    expect(dialpadOAuthError(503, h, 'POST /oauth2/token', '').code).toBe('TRANSIENT');
  });
});
