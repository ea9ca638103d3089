import { findNul, jsonDepthExceeds, urlHasNul } from './body-guards.js';

describe('jsonDepthExceeds', () => {
  it('counts arrays and objects, not brackets inside strings', () => {
    expect(jsonDepthExceeds('{"a":[{"b":[]}]}', 4)).toBe(false);
    expect(jsonDepthExceeds('{"a":[{"b":[]}]}', 3)).toBe(true);
    expect(jsonDepthExceeds('{"a":"[[[[[[{{{{"}', 1)).toBe(false);
    // An escaped quote does not end the string; an escaped backslash does not escape the quote.
    expect(jsonDepthExceeds('{"a":"\\"[[[["}', 1)).toBe(false);
    expect(jsonDepthExceeds('{"a":"\\\\","b":[[]]}', 2)).toBe(true);
    expect(jsonDepthExceeds('1', 0)).toBe(false);
  });

  it('stops early on very deep input', () => {
    expect(jsonDepthExceeds('['.repeat(100_000), 32)).toBe(true);
  });
});

describe('findNul', () => {
  it('names the first string or key holding NUL', () => {
    expect(findNul({ a: 'x', b: [1, 'y', { c: 'z\u0000' }] })).toBe('b[2].c');
    expect(findNul({ ['k\u0000']: 1 })).toBe('k\\u0000');
    expect(findNul('a\u0000')).toBe('(body)');
    expect(findNul({ a: '\\u0000', b: null, c: 1 })).toBeUndefined();
    expect(findNul(undefined)).toBeUndefined();
  });
});

describe('urlHasNul', () => {
  it('finds %00 in any case, not %2500', () => {
    expect(urlHasNul('/a/%00')).toBe(true);
    expect(urlHasNul('/a?x=1%00')).toBe(true);
    expect(urlHasNul('/a?x=%2500')).toBe(false);
    expect(urlHasNul('/a/b?c=d')).toBe(false);
  });
});
