import { PbxError } from '../pbx-provider.js';
import { errorForStatus } from '../vendor-http.js';
import { isRecord, parseDialpadJson } from './dialpad.wire.js';

/**
 * Dialpad's error answers, turned into our codes.
 *
 * The OpenAPI document (https://github.com/dialpad/dialpad-python-sdk, `dialpad_api_spec.json`)
 * describes only success responses; it documents no error body. Seen in practice are the Google
 * Cloud Endpoints shape `{"error": {"code": 400, "message": "…", "errors": [{"reason": "…"}]}}`
 * and plain `{"message": "…"}`; the OAuth token endpoint answers as RFC 6749 §5.2
 * (`{"error": "invalid_grant", "error_description": "…"}`). So the message is read from any of
 * these, and the code comes from the HTTP status only (vendor-http's table), except for the OAuth
 * grant errors below.
 */

/** The human message of a Dialpad error body, if it has one (for logs only). */
export function dialpadErrorMessage(body: string): string | undefined {
  let json: unknown;
  try {
    json = parseDialpadJson(body);
  } catch {
    return undefined;
  }
  if (!isRecord(json)) return undefined;
  const { error } = json;
  if (isRecord(error) && typeof error.message === 'string') return error.message;
  if (typeof json.error_description === 'string') {
    return typeof error === 'string' ? `${error}: ${json.error_description}` : json.error_description;
  }
  if (typeof error === 'string') return error;
  if (typeof json.message === 'string') return json.message;
  return undefined;
}

/** A Dialpad API failure (status ≥ 400) as a PbxError; `what` names the request for the logs. */
export function dialpadApiError(status: number, headers: Headers, what: string, body: string): PbxError {
  const message = dialpadErrorMessage(body);
  return errorForStatus(status, headers, `Dialpad ${what}`, message ?? body);
}

/**
 * RFC 6749 §5.2 errors that mean our grant or client is no good: the user must authorise again
 * (or the deployment's client id/secret are wrong), so they are AUTH, not a bad request.
 */
const OAUTH_AUTH_ERRORS = new Set(['invalid_grant', 'invalid_client', 'unauthorized_client', 'access_denied']);

/** A failure of the OAuth token endpoint as a PbxError. */
export function dialpadOAuthError(status: number, headers: Headers, what: string, body: string): PbxError {
  let code: unknown;
  try {
    const json = parseDialpadJson(body);
    code = isRecord(json) ? json.error : undefined;
  } catch {
    code = undefined;
  }
  const base = dialpadApiError(status, headers, what, body);
  if (typeof code === 'string' && OAUTH_AUTH_ERRORS.has(code) && base.code === 'REJECTED') {
    return new PbxError('AUTH', base.message, base.options);
  }
  return base;
}
