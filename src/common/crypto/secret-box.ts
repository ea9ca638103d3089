import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM for secrets at rest (PBX credentials, OAuth tokens). A sealed value is
 * `v1.<key id>.<iv>.<tag>.<ciphertext>` (base64url parts); the key id is the first 8 hex digits
 * of the key's SHA-256, so a value names the key that sealed it and rotation can keep old keys
 * for reading. The associated data (e.g. the row id) binds a value to its row: a ciphertext
 * copied to another row does not open.
 */
export class SecretBox {
  private readonly current: { id: string; key: Buffer };
  private readonly keys = new Map<string, Buffer>();

  /** `current` and `previous` are 32-byte keys in base64. */
  constructor(current: string, previous: readonly string[] = []) {
    this.current = toKey(current);
    for (const k of [current, ...previous]) {
      const key = toKey(k);
      this.keys.set(key.id, key.key);
    }
  }

  get keyId(): string {
    return this.current.id;
  }

  seal(value: unknown, associatedData: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    cipher.setAAD(Buffer.from(associatedData));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    const parts = [iv, cipher.getAuthTag(), ciphertext].map((b) => b.toString('base64url'));
    return ['v1', this.current.id, ...parts].join('.');
  }

  /** Throws SecretBoxError when the value is not ours, its key is unknown, or it was altered. */
  open<T = unknown>(sealed: string, associatedData: string): T {
    const [version, keyId, iv, tag, ciphertext] = sealed.split('.');
    if (version !== 'v1' || !keyId || iv === undefined || tag === undefined || ciphertext === undefined) {
      throw new SecretBoxError('not a sealed value');
    }
    const key = this.keys.get(keyId);
    if (!key) throw new SecretBoxError(`sealed with unknown key ${keyId}`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(associatedData));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      const plain = Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]);
      return JSON.parse(plain.toString('utf8')) as T;
    } catch {
      throw new SecretBoxError('does not open (altered, or bound to another row)');
    }
  }

  /** Whether a sealed value was sealed with an older key (re-seal it to finish a rotation). */
  isStale(sealed: string): boolean {
    return sealed.split('.')[1] !== this.current.id;
  }
}

export class SecretBoxError extends Error {
  override readonly name = 'SecretBoxError';
}

function toKey(base64: string): { id: string; key: Buffer } {
  const key = Buffer.from(base64, 'base64');
  if (key.length !== 32) throw new SecretBoxError('a key must be 32 bytes');
  return { id: createHash('sha256').update(key).digest('hex').slice(0, 8), key };
}
