import type { AppException } from '../common/errors/common.errors.js';
import { pbxError } from './pbx.errors.js';
import { PbxError } from './pbx-provider.js';

/**
 * The one map from our PBX error codes to HTTP problems (never from vendor text):
 * - AUTH → 502 `pbx-auth-failed`: the phone system refused the connection's credentials;
 * - RATE_LIMITED → 503 `pbx-rate-limited` with Retry-After;
 * - TRANSIENT → 503 `pbx-unavailable` (unreachable, timed out) or 502 `pbx-bad-gateway` (it answered 5xx);
 * - REJECTED → 422 `pbx-rejected`: it understood and refused (an invalid number, …);
 * - NOT_FOUND → 404 `pbx-call-not-found`: it does not know the call;
 * - UNSUPPORTED → 422 `pbx-unsupported`: this provider has no such command (click-to-call answers
 *   a capability the vendor's API lacks, such as DTMF, with 501 `unsupported-by-provider` first);
 * - NOT_CONFIGURED → 409 `connection-incomplete`: a local credential is missing (never a vendor error);
 * - STALE → 403 `stale-webhook`: a signed webhook outside the freshness window (ingest maps it).
 */
export function pbxProblem(error: PbxError, provider: string): AppException {
  const who = `The phone system (${provider})`;
  switch (error.code) {
    case 'AUTH':
      return pbxError('pbx-auth-failed', `${who} refused this connection's credentials.`, {
        pbxError: error.code,
      });
    case 'RATE_LIMITED': {
      const after = String(error.options.retryAfterSeconds ?? 5);
      return pbxError(
        'pbx-rate-limited',
        `${who} asks us to slow down; retry in ${after} s.`,
        { pbxError: error.code },
        { 'retry-after': after },
      );
    }
    case 'TRANSIENT':
      return error.options.vendorStatus
        ? pbxError('pbx-bad-gateway', `${who} failed to handle the request; retry later.`, {
            pbxError: error.code,
          })
        : pbxError(
            'pbx-unavailable',
            `${who} cannot be reached; retry later.`,
            { pbxError: error.code },
            { 'retry-after': '5' },
          );
    case 'REJECTED':
      return pbxError('pbx-rejected', `${who} refused the request: ${error.message}`, {
        pbxError: error.code,
      });
    case 'NOT_FOUND':
      return pbxError('pbx-call-not-found', `${who} does not know this call.`, { pbxError: error.code });
    case 'UNSUPPORTED':
      return pbxError('pbx-unsupported', `${who} cannot do this: ${error.message}`, {
        pbxError: error.code,
      });
    case 'NOT_CONFIGURED':
      return pbxError('connection-incomplete', `${error.message} Set it with PATCH /api/v1/pbx-connections/:id.`, {
        pbxError: error.code,
      });
    case 'STALE':
      return pbxError('stale-webhook', `${who} sent a webhook outside the accepted time window.`, {
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
