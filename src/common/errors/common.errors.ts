import { AppException, type FieldError, ValidationFailedException } from './app-exception.js';
import { defineErrors, type ErrorCatalogue } from './catalogue.js';

export type { AppException, FieldError } from './app-exception.js';

/**
 * Codes any module may raise (module catalogues take them as `shared`), and those raised by
 * src/common itself: access decorators, pagination, rate limits, validation.
 */
export const COMMON_ERRORS = {
  'validation-failed': {
    status: 400,
    description: 'The request is not valid; `errors` lists each field and what is wrong with it.',
  },
  'invalid-body': { status: 400, description: 'The body cannot be read (for example nested too deeply).' },
  'invalid-url': { status: 400, description: 'The path or query cannot be read (for example it holds %00).' },
  'invalid-cursor': { status: 400, description: 'The paging cursor is not one this API gave out.' },
  unauthorized: { status: 401, description: 'No credential, or one that is unknown, revoked or expired.' },
  forbidden: { status: 403, description: 'The credential is valid but not allowed to do this.' },
  'insufficient-scope': { status: 403, description: 'The API key lacks the scope the route needs.' },
  'no-company': { status: 403, description: 'The route acts on a company; the credential has none.' },
  'company-suspended': { status: 403, description: 'The company is suspended.' },
  'not-found': { status: 404, description: 'No such resource in your company.' },
  conflict: { status: 409, description: 'The change conflicts with the current state.' },
  'too-many-requests': { status: 429, description: 'A rate limit was exceeded; `Retry-After` says when to retry.' },
} as const satisfies ErrorCatalogue;

export const commonError = defineErrors(COMMON_ERRORS);

/** 400 `validation-failed` listing each field and what is wrong with it. */
export function validationFailed(errors: FieldError[]): AppException {
  return new ValidationFailedException(errors);
}

/** `instanceof` for code that may not import the constructor (see app-exception.ts). */
export function isAppException(error: unknown): error is AppException {
  return error instanceof AppException;
}

/**
 * The field errors of a 400 `validation-failed` problem (empty when it names no field), or
 * undefined for any other error: for code that merges validation problems from several checks.
 */
export function fieldErrorsOf(error: unknown): FieldError[] | undefined {
  if (!(error instanceof AppException) || error.code !== 'validation-failed') return undefined;
  const errors = error.extensions.errors;
  return Array.isArray(errors) ? (errors as FieldError[]) : [];
}
