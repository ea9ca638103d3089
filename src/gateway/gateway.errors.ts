import { defineErrors } from '../common/errors/catalogue.js';
import { COMMON_ERRORS, isAppException } from '../common/errors/common.errors.js';
import { codeFor, problemType, titleFor } from '../common/errors/problem.js';

/** Errors of the socket.io handshake (and the shared codes). */
export const gatewayError = defineErrors(
  {
    'no-agent': { status: 403, description: 'The user has no agent profile, so it has no event stream.' },
  },
  COMMON_ERRORS,
);

/** The problem body a socket receives (an `error` event, or `connect_error`'s `data`). */
export function socketProblem(status: number, code: string, detail: string) {
  return { type: problemType(code), title: titleFor(status), status, detail };
}

/** A refused handshake: the client's `connect_error` has `message` = the code, `data` = the problem. */
export function handshakeError(error: unknown): Error {
  const known = isAppException(error) ? error : null;
  const status = known?.status ?? 500;
  const code = known?.code ?? codeFor(500);
  const err = new Error(code) as Error & { data: unknown };
  err.data = socketProblem(status, code, known?.detail ?? 'The connection could not be set up.');
  return err;
}
