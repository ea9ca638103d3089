import { constantTimeEqual, hashPassword, randomToken, sha256Hex, verifyPassword } from './crypto.js';

describe('crypto helpers', () => {
  it('hashes and verifies passwords with scrypt, salted', async () => {
    const a = await hashPassword('correct horse battery', 10);
    const b = await hashPassword('correct horse battery', 10);
    expect(a).toMatch(/^scrypt\$10\$[\w-]{22}\$[\w-]{43}$/);
    expect(a).not.toBe(b);
    await expect(verifyPassword('correct horse battery', a)).resolves.toBe(true);
    await expect(verifyPassword('correct horse batterz', a)).resolves.toBe(false);
    await expect(verifyPassword('x', 'bcrypt$whatever')).resolves.toBe(false);
  });

  it('compares secrets in constant time whatever their length', () => {
    expect(constantTimeEqual('a'.repeat(40), 'a'.repeat(40))).toBe(true);
    expect(constantTimeEqual('a'.repeat(40), 'a'.repeat(39))).toBe(false);
    expect(constantTimeEqual('', 'x')).toBe(false);
  });

  it('makes random url-safe tokens and sha-256 hex digests', () => {
    expect(randomToken(32)).toMatch(/^[\w-]{43}$/);
    expect(randomToken()).not.toBe(randomToken());
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
