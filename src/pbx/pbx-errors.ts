import { AppException } from '../common/errors/problem.js';
import { PbxError } from './pbx-provider.js';

/**
 * The one map from our PBX error codes to HTTP problems (never from vendor text):
 * - AUTH → 502 `pbx-auth-failed`: the phone system refused the connection's credentials;
 * - RATE_LIMITED → 503 `pbx-rate-limited` with Retry-After;
 * - TRANSIENT → 503 `pbx-unavailable` (unreachable, timed out) or 502 `pbx-bad-gateway` (it answered 5xx);
 * - REJECTED → 422 `pbx-rejected`: it understood and refused (an invalid number, …);
 * - NOT_FOUND → 404 `pbx-call-not-found`: it does not know the call;
 * - UNSUPPORTED → 422 `pbx-unsupported`: this provider has no such command.
 */
export function pbxProblem(error: PbxError, provider: string): AppException {
  const who = `The phone system (${provider})`;
  switch (error.code) {
    case 'AUTH':
      return new AppException('pbx-auth-failed', 502, `${who} refused this connection's credentials.`, {
        pbxError: error.code,
      });
    case 'RATE_LIMITED': {
      const after = String(error.options.retryAfterSeconds ?? 5);
      return new AppException(
        'pbx-rate-limited',
        503,
        `${who} asks us to slow down; retry in ${after} s.`,
        { pbxError: error.code },
        { 'retry-after': after },
      );
    }
    case 'TRANSIENT':
      return error.options.vendorStatus
        ? new AppException('pbx-bad-gateway', 502, `${who} failed to handle the request; retry later.`, {
            pbxError: error.code,
          })
        : new AppException(
            'pbx-unavailable',
            503,
            `${who} cannot be reached; retry later.`,
            { pbxError: error.code },
            { 'retry-after': '5' },
          );
    case 'REJECTED':
      return new AppException('pbx-rejected', 422, `${who} refused the request: ${error.message}`, {
        pbxError: error.code,
      });
    case 'NOT_FOUND':
      return new AppException('pbx-call-not-found', 404, `${who} does not know this call.`, { pbxError: error.code });
    case 'UNSUPPORTED':
      return new AppException('pbx-unsupported', 422, `${who} cannot do this: ${error.message}`, {
        pbxError: error.code,
      });
  }
}

/** Runs a vendor command and answers its PbxError as our problem. */
export async function viaPbx<T>(provider: string, command: () => Promise<T>): Promise<T> {
  try {
    return await command();
  } catch (error) {
    if (error instanceof PbxError) throw pbxProblem(error, provider);
    throw error;
  }
}
