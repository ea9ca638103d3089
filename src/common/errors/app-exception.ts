/** A field and what is wrong with it, as a validation problem lists them. */
export interface FieldError {
  field: string;
  messages: string[];
}

/**
 * An error our code raises on purpose: a stable code (the problem type), an HTTP status, a
 * human-readable detail and optional extension members and headers.
 *
 * Only error catalogues construct it (`src/**\/*.errors.ts` through `defineErrors`, and this
 * folder): `npm run deps:check` refuses an import of this file anywhere else, so that a code
 * always answers with the one status its catalogue gives it. Code that needs `instanceof` uses
 * `isAppException` from common.errors.ts.
 */
export class AppException extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    readonly detail: string,
    readonly extensions: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'AppException';
  }
}

/** 400 `validation-failed` with the field errors as the `errors` member. */
export class ValidationFailedException extends AppException {
  constructor(readonly errors: FieldError[]) {
    super('validation-failed', 400, summarise(errors), { errors });
  }
}

function summarise(errors: FieldError[]): string {
  const first = errors[0];
  if (!first) return 'The request is not valid.';
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return `${first.field}: ${first.messages[0]}${more}`;
}
