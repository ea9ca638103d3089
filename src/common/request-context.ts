import { AsyncLocalStorage } from 'node:async_hooks';

/** What is known of the request being served, wherever the code runs within it. */
export interface RequestContext {
  requestId: string;
  ip?: string;
  /** Set once the credential is resolved. */
  companyId?: string;
  /**
   * Headers the answer must carry, set by code that has no reply (rate limits: RateLimit-*);
   * the app's onSend hook writes them.
   */
  responseHeaders?: Record<string, string>;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

export function currentRequestId(): string | undefined {
  return requestContext.getStore()?.requestId;
}
