import { randomBytes } from 'node:crypto';
import { SecretBox, SecretBoxError } from './secret-box.js';

const key = () => randomBytes(32).toString('base64');

describe('SecretBox (AES-256-GCM at rest)', () => {
  it('seals and opens a value bound to its row, never in clear', () => {
    const box = new SecretBox(key());
    const sealed = box.seal({ authToken: 'tok-123456789' }, 'row-1');
    expect(sealed).toMatch(/^v1\.[0-9a-f]{8}\.[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(sealed).not.toContain('tok-123456789');
    expect(box.open(sealed, 'row-1')).toEqual({ authToken: 'tok-123456789' });
    expect(box.seal({ a: 1 }, 'r')).not.toBe(box.seal({ a: 1 }, 'r'));
  });

  it('refuses a value moved to another row, altered, or sealed with an unknown key', () => {
    const box = new SecretBox(key());
    const sealed = box.seal({ s: 'x' }, 'row-1');
    expect(() => box.open(sealed, 'row-2')).toThrow(SecretBoxError);
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[4]!, 'base64url');
    ct[0] = ct[0]! ^ 1;
    parts[4] = ct.toString('base64url');
    expect(() => box.open(parts.join('.'), 'row-1')).toThrow(SecretBoxError);
    expect(() => new SecretBox(key()).open(sealed, 'row-1')).toThrow(/unknown key/);
    expect(() => box.open('plain', 'row-1')).toThrow(/not a sealed value/);
  });

  it('rotates: a new box reads values of the previous key and tells they are stale', () => {
    const oldKey = key();
    const sealed = new SecretBox(oldKey).seal({ s: 'x' }, 'row-1');
    const rotated = new SecretBox(key(), [oldKey]);
    expect(rotated.open(sealed, 'row-1')).toEqual({ s: 'x' });
    expect(rotated.isStale(sealed)).toBe(true);
    expect(rotated.isStale(rotated.seal({ s: 'x' }, 'row-1'))).toBe(false);
  });

  it('rejects keys that are not 32 bytes', () => {
    expect(() => new SecretBox(randomBytes(16).toString('base64'))).toThrow(SecretBoxError);
  });
});
