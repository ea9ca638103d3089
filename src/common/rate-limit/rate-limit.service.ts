import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { RedisService } from '../redis/redis.module.js';

export interface RateLimitResult {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Milliseconds until the window resets. */
  resetMs: number;
}

const INCR_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
return {count, ttl}`;

/**
 * Fixed-window request counters. With REDIS_URL they live in Redis, so a limit holds across
 * instances; otherwise in this process. If Redis fails, requests are let through (logged): an
 * outage of the limiter must not take the API down.
 */
@Injectable()
export class RateLimitService implements OnModuleDestroy {
  private readonly logger = new Logger(RateLimitService.name);
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly redis: RedisService) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  async hit(bucket: string, limit: number, windowMs = 60_000): Promise<RateLimitResult> {
    const client = this.redis.client;
    if (client) {
      try {
        const [count, ttl] = (await client.eval(INCR_SCRIPT, 1, `rl:${bucket}`, windowMs)) as [number, number];
        return {
          allowed: count <= limit,
          limit,
          remaining: Math.max(0, limit - count),
          resetMs: ttl > 0 ? ttl : windowMs,
        };
      } catch (error) {
        this.logger.warn({ err: error }, 'rate limiter unavailable (Redis); request allowed');
        return { allowed: true, limit, remaining: limit, resetMs: windowMs };
      }
    }
    const now = Date.now();
    let window = this.windows.get(bucket);
    if (!window || window.resetAt <= now) {
      window = { count: 0, resetAt: now + windowMs };
      this.windows.set(bucket, window);
    }
    window.count++;
    return {
      allowed: window.count <= limit,
      limit,
      remaining: Math.max(0, limit - window.count),
      resetMs: window.resetAt - now,
    };
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, window] of this.windows) if (window.resetAt <= now) this.windows.delete(key);
  }

  onModuleDestroy(): void {
    clearInterval(this.sweeper);
  }
}
