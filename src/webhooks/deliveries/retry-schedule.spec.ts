import { retryDelayMs } from './retry-schedule.js';

describe('retryDelayMs', () => {
  const schedule = [0, 5_000, 300_000, 1_800_000];

  it('gives the delay before the next attempt, then null after the last', () => {
    const none = () => 0.5; // the middle of the jitter range: no jitter
    expect(retryDelayMs(schedule, 1, 20, none)).toBe(5_000);
    expect(retryDelayMs(schedule, 2, 20, none)).toBe(300_000);
    expect(retryDelayMs(schedule, 3, 20, none)).toBe(1_800_000);
    expect(retryDelayMs(schedule, 4, 20, none)).toBeNull();
    expect(retryDelayMs(schedule, 0, 20, none)).toBeNull();
  });

  it('keeps the jitter within ± the percentage', () => {
    expect(retryDelayMs(schedule, 1, 20, () => 0)).toBe(4_000);
    expect(retryDelayMs(schedule, 1, 20, () => 0.999999)).toBe(6_000);
    for (let i = 0; i < 200; i++) {
      const d = retryDelayMs(schedule, 2, 10)!;
      expect(d).toBeGreaterThanOrEqual(270_000);
      expect(d).toBeLessThanOrEqual(330_000);
    }
  });

  it('has no jitter when the percentage is 0', () => {
    expect(retryDelayMs(schedule, 1, 0, () => 0)).toBe(5_000);
  });

  it('a one-entry schedule makes one attempt only', () => {
    expect(retryDelayMs([0], 1, 20)).toBeNull();
  });
});
