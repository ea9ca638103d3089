import type { FieldError } from './app-exception.js';

export type { FieldError } from './app-exception.js';

/** RFC 9457 problem details, as every error of this service is answered. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  requestId?: string;
  /** Field errors of a validation problem. */
  errors?: FieldError[];
  [extension: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

/** Stable problem type URI for a code: `urn:switchboard:problem:<code>`. */
export function problemType(code: string): string {
  return `urn:switchboard:problem:${code}`;
}

/** Titles and codes of the statuses we answer without a more specific code. */
export const STATUS_CODES: Record<number, { code: string; title: string }> = {
  400: { code: 'bad-request', title: 'Bad request' },
  401: { code: 'unauthorized', title: 'Unauthorized' },
  403: { code: 'forbidden', title: 'Forbidden' },
  404: { code: 'not-found', title: 'Not found' },
  405: { code: 'method-not-allowed', title: 'Method not allowed' },
  406: { code: 'not-acceptable', title: 'Not acceptable' },
  409: { code: 'conflict', title: 'Conflict' },
  410: { code: 'gone', title: 'Gone' },
  413: { code: 'payload-too-large', title: 'Payload too large' },
  414: { code: 'uri-too-long', title: 'URI too long' },
  415: { code: 'unsupported-media-type', title: 'Unsupported media type' },
  422: { code: 'unprocessable', title: 'Unprocessable content' },
  429: { code: 'too-many-requests', title: 'Too many requests' },
  500: { code: 'internal-error', title: 'Internal server error' },
  501: { code: 'not-implemented', title: 'Not implemented' },
  502: { code: 'bad-gateway', title: 'Bad gateway' },
  503: { code: 'service-unavailable', title: 'Service unavailable' },
  504: { code: 'gateway-timeout', title: 'Gateway timeout' },
};

export function titleFor(status: number): string {
  return STATUS_CODES[status]?.title ?? (status >= 500 ? 'Server error' : 'Client error');
}

export function codeFor(status: number): string {
  return STATUS_CODES[status]?.code ?? (status >= 500 ? 'server-error' : 'client-error');
}
