import { PbxError } from './pbx-provider.js';

export interface VendorResponse<T = unknown> {
  status: number;
  headers: Headers;
  /** The JSON body, or undefined when the body is empty or not JSON. */
  json: T;
  text: string;
}

export interface VendorRequest {
  method?: string;
  headers?: Record<string, string>;
  /** An object is sent as JSON; a URLSearchParams as a form; a string as is. */
  body?: unknown;
  timeoutMs: number;
  /** Statuses that are not errors for this call (e.g. 404 when probing). */
  accept?: number[];
}

/**
 * One HTTP request to a vendor API, with a timeout, and every failure turned into a PbxError:
 * unreachable / timeout / 5xx → TRANSIENT, 401 / 403 → AUTH, 429 → RATE_LIMITED (with
 * Retry-After), 404 → NOT_FOUND, other 4xx → REJECTED. The vendor's text goes only into the
 * message (for logs), never into decisions.
 */
export async function vendorFetch<T = unknown>(url: string, req: VendorRequest): Promise<VendorResponse<T>> {
  const headers: Record<string, string> = { accept: 'application/json', ...req.headers };
  let body: string | undefined;
  if (req.body instanceof URLSearchParams) {
    body = req.body.toString();
    headers['content-type'] ??= 'application/x-www-form-urlencoded';
  } else if (typeof req.body === 'string') {
    body = req.body;
  } else if (req.body !== undefined) {
    body = JSON.stringify(req.body);
    headers['content-type'] ??= 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(url, {
      method: req.method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      body,
      signal: AbortSignal.timeout(req.timeoutMs),
      redirect: 'manual',
    });
  } catch (error) {
    const reason = (error as Error).name === 'TimeoutError' ? 'timed out' : 'unreachable';
    throw new PbxError('TRANSIENT', `${new URL(url).host} ${reason}: ${(error as Error).message}`);
  }
  const text = await res.text().catch(() => '');
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  const out = { status: res.status, headers: res.headers, json: json as T, text };
  if ((res.status >= 200 && res.status < 300) || req.accept?.includes(res.status)) return out;
  throw errorForStatus(res.status, res.headers, `${req.method ?? 'request'} ${new URL(url).pathname}`, text);
}

export function errorForStatus(status: number, headers: Headers, what: string, text = ''): PbxError {
  const excerpt = text.slice(0, 200);
  const message = `${what} answered ${status}${excerpt ? `: ${excerpt}` : ''}`;
  if (status === 401 || status === 403) return new PbxError('AUTH', message, { vendorStatus: status });
  if (status === 429) {
    const after = Number(headers.get('retry-after'));
    return new PbxError('RATE_LIMITED', message, {
      vendorStatus: status,
      ...(Number.isFinite(after) && after > 0 ? { retryAfterSeconds: after } : {}),
    });
  }
  if (status === 404) return new PbxError('NOT_FOUND', message, { vendorStatus: status });
  if (status >= 500 || status < 200 || (status >= 300 && status < 400)) {
    return new PbxError('TRANSIENT', message, { vendorStatus: status });
  }
  return new PbxError('REJECTED', message, { vendorStatus: status });
}

/**
 * A vendor base URL from a connection's settings: https, or http only when the deployment allows
 * it (tests). Throws REJECTED otherwise, so a tenant cannot point us at an internal plain-http
 * service.
 */
export function vendorBaseUrl(value: string, allowHttp: boolean): string {
  const url = new URL(value);
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) {
    throw new PbxError('REJECTED', 'The vendor URL must use https.');
  }
  return value.replace(/\/+$/, '');
}
