/**
 * The delay before attempt `attempt + 1` once `attempt` attempts have failed (WEBHOOK_RETRY_SCHEDULE[i]
 * is the delay before attempt i+1, the first usually 0), with ± `jitterPct` % of jitter; null when
 * the schedule is exhausted (the delivery is then failed).
 */
export function retryDelayMs(
  schedule: readonly number[],
  attemptsMade: number,
  jitterPct: number,
  random: () => number = Math.random,
): number | null {
  if (attemptsMade < 1 || attemptsMade >= schedule.length) return null;
  const base = schedule[attemptsMade]!;
  if (base <= 0 || jitterPct <= 0) return Math.max(0, base);
  const spread = (base * jitterPct) / 100;
  return Math.max(0, Math.round(base - spread + random() * 2 * spread));
}
