import type { FastifyReply } from 'fastify';
import { AppException } from '../errors/problem.js';
import type { RateLimitResult } from './rate-limit.service.js';

/** Sets the RateLimit-* headers; throws 429 (with Retry-After) when the limit is exceeded. */
export function enforce(result: RateLimitResult, reply: FastifyReply | undefined, what: string): void {
  const resetSeconds = Math.max(1, Math.ceil(result.resetMs / 1000));
  reply?.header('ratelimit-limit', String(result.limit));
  reply?.header('ratelimit-remaining', String(result.remaining));
  reply?.header('ratelimit-reset', String(resetSeconds));
  if (!result.allowed) {
    throw new AppException(
      'too-many-requests',
      429,
      `Rate limit of ${result.limit} requests per minute exceeded for ${what}; retry in ${resetSeconds} s.`,
      {},
      { 'retry-after': String(resetSeconds) },
    );
  }
}
