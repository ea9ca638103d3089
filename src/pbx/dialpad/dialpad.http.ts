import { PbxError, type PbxEnvironment } from '../pbx-provider.js';
import { vendorFetch } from '../vendor-http.js';
import { dialpadApiError, dialpadOAuthError } from './dialpad.errors.js';
import { parseDialpadJson } from './dialpad.wire.js';

/**
 * One HTTP request to Dialpad (API v2 or OAuth), through vendorFetch: the timeout, and every
 * failure as a PbxError (unreachable / 5xx → TRANSIENT there; 4xx → ours, with Dialpad's message).
 * Authentication is `Authorization: Bearer <API key or OAuth access token>` (the OpenAPI
 * document's `bearer_token` scheme; the `apikey` query parameter is never used: it would put the
 * key in URLs and logs).
 */

export type DialpadEnvironmentName = 'production' | 'sandbox';

/** The base URL of Dialpad for a connection: production or sandbox, from the deployment. */
export function dialpadBaseUrl(env: PbxEnvironment, environment: DialpadEnvironmentName | undefined): string {
  const url = environment === 'sandbox' ? env.baseUrls.dialpadSandbox : env.baseUrls.dialpadProduction;
  return url.replace(/\/+$/, '');
}

const CLIENT_ERRORS = Array.from({ length: 100 }, (_, i) => 400 + i);

export interface DialpadRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Bearer token (API key or OAuth access token). */
  token?: string;
  /** A JSON text (see dialpadJsonBody), an object (sent as JSON), or a form. */
  body?: string | Record<string, unknown> | URLSearchParams;
  /** Statuses that are not errors here (e.g. 404 when deleting what may be gone). */
  accept?: number[];
  /** Which error reading applies: the API's, or the OAuth token endpoint's (RFC 6749). */
  errors?: 'api' | 'oauth';
  /** Names the request in error messages (never holds secrets). */
  what: string;
}

export interface DialpadResponse {
  status: number;
  /** The body parsed with int64 ids kept whole, or undefined when empty / not JSON. */
  json: unknown;
}

export async function dialpadRequest(env: PbxEnvironment, url: string, req: DialpadRequest): Promise<DialpadResponse> {
  const headers: Record<string, string> = {};
  if (req.token !== undefined) headers.authorization = `Bearer ${req.token}`;
  if (typeof req.body === 'string') headers['content-type'] = 'application/json';
  const res = await vendorFetch(url, {
    method: req.method,
    headers,
    body: req.body,
    timeoutMs: env.httpTimeoutMs,
    accept: CLIENT_ERRORS,
  });
  if (res.status >= 400 && !req.accept?.includes(res.status)) {
    throw req.errors === 'oauth'
      ? dialpadOAuthError(res.status, res.headers, req.what, res.text)
      : dialpadApiError(res.status, res.headers, req.what, res.text);
  }
  let json: unknown;
  try {
    json = res.text ? parseDialpadJson(res.text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json };
}

/** What a connection authenticates with; settings.auth says which. */
export interface DialpadCredentials {
  apiKey?: string;
  accessToken?: string;
}

/** The bearer token of a connection: the OAuth access token or the API key (AUTH when missing). */
export function dialpadToken(auth: 'api_key' | 'oauth' | undefined, secrets: DialpadCredentials): string {
  if (auth === 'oauth') {
    if (!secrets.accessToken)
      throw new PbxError('NOT_CONFIGURED', 'Dialpad is not authorized yet: connect the account (OAuth).');
    return secrets.accessToken;
  }
  if (!secrets.apiKey) throw new PbxError('NOT_CONFIGURED', 'The Dialpad connection has no API key.');
  return secrets.apiKey;
}
