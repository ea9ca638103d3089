import { AmiClient, backoffDelay } from './ami-client.js';

describe('backoffDelay', () => {
  const backoff = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.3 };

  it('grows exponentially up to the cap without jitter (random 0.5)', () => {
    const delays = Array.from({ length: 10 }, (_, n) => backoffDelay(n, backoff, () => 0.5));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000]);
  });

  it('jitters by ± jitter, never above maxMs', () => {
    expect(backoffDelay(0, backoff, () => 0)).toBe(350);
    expect(backoffDelay(0, backoff, () => 0.999999)).toBe(650);
    expect(backoffDelay(3, backoff, () => 0)).toBe(2800);
    expect(backoffDelay(3, backoff, () => 0.999999)).toBe(5200);
    expect(backoffDelay(10, backoff, () => 0)).toBe(21_000);
    expect(backoffDelay(10, backoff, () => 0.999999)).toBe(30_000);
    expect(backoffDelay(1e6, backoff, () => 0.5)).toBe(30_000);
  });

  it('stays within bounds for any random value', () => {
    for (let n = 0; n < 12; n++) {
      const base = Math.min(30_000, 500 * 2 ** n);
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(n, backoff);
        expect(d).toBeGreaterThanOrEqual(Math.floor(base * 0.7));
        expect(d).toBeLessThanOrEqual(Math.min(30_000, Math.ceil(base * 1.3)));
      }
    }
  });
});

describe('AmiClient options', () => {
  const base = { host: '127.0.0.1', port: 5038, username: 'cti', secret: 's', onEvent: () => undefined };

  it('rejects a secret or username with a line break (it would inject an action)', () => {
    expect(() => new AmiClient({ ...base, secret: 'a\r\nAction: Originate' })).toThrow('secret must be one line');
    expect(() => new AmiClient({ ...base, username: 'a\n' })).toThrow('username must be one line');
  });

  it('rejects non-positive intervals and a jitter outside [0, 1)', () => {
    expect(() => new AmiClient({ ...base, pingIntervalMs: 0 })).toThrow('pingIntervalMs must be positive');
    expect(() => new AmiClient({ ...base, backoff: { jitter: 1 } })).toThrow('jitter');
    expect(() => new AmiClient({ ...base, backoff: { factor: 0.5 } })).toThrow('factor');
  });

  it('starts stopped, and stop() before start() resolves at once', async () => {
    const client = new AmiClient(base);
    expect(client.state).toBe('stopped');
    expect(client.reason).toBe('not started');
    await client.stop();
    expect(client.state).toBe('stopped');
  });
});
