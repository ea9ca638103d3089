import { headerProblems, MAX_HEADERS } from './endpoint-headers.js';

describe('endpoint custom headers', () => {
  it('accepts ordinary headers', () => {
    expect(headerProblems({})).toEqual([]);
    expect(headerProblems({ Authorization: 'Bearer abc', 'X-Tenant': 'acme', 'x-empty': '' })).toEqual([]);
  });

  it.each([
    ['webhook-id', 'signature header'],
    ['Webhook-Signature', 'signature header (case)'],
    ['connection', 'hop-by-hop'],
    ['Keep-Alive', 'hop-by-hop'],
    ['proxy-authorization', 'proxy-*'],
    ['TE', 'hop-by-hop'],
    ['trailer', 'hop-by-hop'],
    ['transfer-encoding', 'framing'],
    ['upgrade', 'hop-by-hop'],
    ['Host', 'framing'],
    ['content-length', 'framing'],
    ['Content-Type', 'framing'],
    ['expect', 'refused by undici'],
  ])('refuses the header %s (%s)', (name) => {
    expect(headerProblems({ [name]: 'x' })).toEqual([expect.stringContaining('may not be set')]);
  });

  it('refuses names that are not HTTP tokens and values with CR, LF, NUL or non-ASCII', () => {
    expect(headerProblems({ 'x bad': 'v' })[0]).toMatch(/HTTP token/);
    expect(headerProblems({ 'x:y': 'v' })[0]).toMatch(/HTTP token/);
    expect(headerProblems({ '': 'v' })[0]).toMatch(/HTTP token/);
    expect(headerProblems({ ['x'.repeat(129)]: 'v' })[0]).toMatch(/HTTP token/);
    expect(headerProblems({ x: 'a\r\nInjected: 1' })[0]).toMatch(/no CR, LF or NUL/);
    expect(headerProblems({ x: 'a\nb' })[0]).toMatch(/no CR, LF or NUL/);
    expect(headerProblems({ x: 'a\u0000b' })[0]).toMatch(/no CR, LF or NUL/);
    expect(headerProblems({ x: 'café ☕' })[0]).toMatch(/visible ASCII/);
    expect(headerProblems({ x: 5 })[0]).toMatch(/string value/);
    expect(headerProblems({ x: { deep: 'x' } })[0]).toMatch(/string value/);
    expect(headerProblems({ x: null })[0]).toMatch(/string value/);
  });

  it('refuses too many, too long, duplicated (by case) or too large in all', () => {
    const many = Object.fromEntries(Array.from({ length: MAX_HEADERS + 1 }, (_, i) => [`x-h${i}`, 'v']));
    expect(headerProblems(many)).toContain(`headers must hold at most ${MAX_HEADERS} headers`);
    expect(headerProblems({ x: 'v'.repeat(1025) })[0]).toMatch(/at most 1024/);
    expect(headerProblems({ x: 'v'.repeat(1024) })).toEqual([]);
    expect(headerProblems({ 'X-A': '1', 'x-a': '2' })[0]).toMatch(/given twice/);
    const big = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`x-h${i}`, 'v'.repeat(1000)]));
    expect(headerProblems(big)).toEqual(['headers must total at most 8192 bytes']);
  });

  it('refuses what is not an object', () => {
    for (const value of [null, [], 'x', 3, true]) {
      expect(headerProblems(value)).toEqual(['headers must be an object of header name → value']);
    }
  });
});
