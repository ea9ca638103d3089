import { PbxError } from '../pbx-provider.js';
import { errorForStatus } from '../vendor-http.js';

/**
 * Twilio REST error bodies → our codes. Twilio answers errors with
 * `{ code, message, more_info, status }` (https://www.twilio.com/docs/usage/twilios-response,
 * codes at https://www.twilio.com/docs/api/errors). The Twilio code decides where it is known;
 * otherwise the HTTP status does (vendor-http `errorForStatus`).
 */

export interface TwilioErrorBody {
  code?: number;
  message?: string;
  more_info?: string;
  status?: number;
}

/** Twilio error codes we map explicitly. */
export const TWILIO_ERROR_CODES = {
  /** Authenticate: bad AccountSid / AuthToken. */
  AUTHENTICATE: 20003,
  /** Account is not active. */
  ACCOUNT_NOT_ACTIVE: 20005,
  /** Test credentials cannot reach this resource. */
  TEST_CREDENTIALS: 20008,
  NOT_FOUND: 20404,
  TOO_MANY_REQUESTS: 20429,
  INTERNAL: 20500,
  SERVICE_UNAVAILABLE: 20503,
  /** Realtime operation on a call that is not in progress (already over). */
  INVALID_CALL_STATE: 21220,
} as const;

const AUTH_CODES = new Set<number>([
  TWILIO_ERROR_CODES.AUTHENTICATE,
  TWILIO_ERROR_CODES.ACCOUNT_NOT_ACTIVE,
  TWILIO_ERROR_CODES.TEST_CREDENTIALS,
]);
const TRANSIENT_CODES = new Set<number>([TWILIO_ERROR_CODES.INTERNAL, TWILIO_ERROR_CODES.SERVICE_UNAVAILABLE]);

/** Phone numbers in vendor text are masked to their last 4 digits before going into a message (logs). */
export function maskNumbers(text: string): string {
  return text.replace(/\+?\d[\d\s().-]{5,}\d/g, (m) => {
    const digits = m.replace(/\D/g, '');
    return digits.length >= 7 ? `…${digits.slice(-4)}` : m;
  });
}

/** The Twilio error code of a PbxError made by `twilioError`, when it had one. */
export function twilioCodeOf(error: unknown): number | undefined {
  return error instanceof TwilioPbxError ? error.twilioCode : undefined;
}

export class TwilioPbxError extends PbxError {
  constructor(
    code: PbxError['code'],
    message: string,
    options: PbxError['options'],
    readonly twilioCode?: number,
  ) {
    super(code, message, options);
  }
}

/** Our error for a Twilio answer with a non-2xx status. */
export function twilioError(status: number, headers: Headers, body: unknown, what: string): PbxError {
  const b = (body && typeof body === 'object' ? body : {}) as TwilioErrorBody;
  const code = typeof b.code === 'number' ? b.code : undefined;
  const text = maskNumbers(typeof b.message === 'string' ? b.message : '');
  const message = `Twilio ${what} answered ${status}${code !== undefined ? ` (error ${code})` : ''}${text ? `: ${text}` : ''}`;
  const base = errorForStatus(status, headers, `Twilio ${what}`);
  let ourCode: PbxError['code'] = base.code;
  if (code !== undefined) {
    if (AUTH_CODES.has(code)) ourCode = 'AUTH';
    else if (code === TWILIO_ERROR_CODES.NOT_FOUND) ourCode = 'NOT_FOUND';
    else if (code === TWILIO_ERROR_CODES.TOO_MANY_REQUESTS) ourCode = 'RATE_LIMITED';
    else if (TRANSIENT_CODES.has(code)) ourCode = 'TRANSIENT';
    else if (code >= 21000 && code < 22000 && status >= 400 && status < 500) ourCode = 'REJECTED';
  }
  const options: PbxError['options'] = { vendorStatus: status };
  if (ourCode === 'RATE_LIMITED' && base.options.retryAfterSeconds !== undefined) {
    options.retryAfterSeconds = base.options.retryAfterSeconds;
  }
  return new TwilioPbxError(ourCode, message, options, code);
}
