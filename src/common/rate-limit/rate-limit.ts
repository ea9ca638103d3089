import { commonError } from '../errors/common.errors.js';
import { requestContext } from '../request-context.js';
import type { RateLimitResult } from './rate-limit.service.js';

/**
 * Throws 429 `too-many-requests` (with Retry-After) when the limit is exceeded, and sets the
 * RateLimit-* headers of the answer. Services call it without a reply: the headers go to the
 * request context, and the app's onSend hook writes them (services know nothing of Fastify).
 */
export function enforce(result: RateLimitResult, what: string): void {
  const resetSeconds = Math.max(1, Math.ceil(result.resetMs / 1000));
  const headers = {
    'ratelimit-limit': String(result.limit),
    'ratelimit-remaining': String(result.remaining),
    'ratelimit-reset': String(resetSeconds),
  };
  const store = requestContext.getStore();
  if (store) store.responseHeaders = { ...store.responseHeaders, ...headers };
  if (!result.allowed) {
    throw commonError(
      'too-many-requests',
      `Rate limit of ${result.limit} requests per minute exceeded for ${what}; retry in ${resetSeconds} s.`,
      {},
      { 'retry-after': String(resetSeconds) },
    );
  }
}
