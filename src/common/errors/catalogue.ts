import { AppException } from './app-exception.js';

/** One error code of a catalogue: the one HTTP status it answers with, and what it means. */
export interface ErrorSpec {
  readonly status: number;
  /** When the code is raised, for the README and Swagger (the wire `title` follows the status). */
  readonly description: string;
}

export type ErrorCatalogue = Readonly<Record<string, ErrorSpec>>;

/** Builds the error of one code: the detail names the case, extensions and headers are optional. */
export interface ErrorFactory<C extends ErrorCatalogue> {
  (
    code: keyof C & string,
    detail: string,
    extensions?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): AppException;
  /** Every code this factory builds (its own and the shared ones), with status and meaning. */
  readonly catalogue: C;
}

/**
 * A module's error catalogue. `own` lists the codes only this module raises; `shared` (usually
 * COMMON_ERRORS) lends the generic ones (`not-found`, `forbidden` …) with their fixed status. The
 * factory's code argument is typed to the catalogue's keys, so a call site cannot invent a code or
 * pick a status: a code has exactly one status. `own` may not redefine a shared code, and
 * catalogues.spec.ts checks that no two catalogues give one code two statuses.
 */
export function defineErrors<const O extends ErrorCatalogue>(own: O): ErrorFactory<O>;
export function defineErrors<const O extends ErrorCatalogue, const S extends ErrorCatalogue>(
  own: O & { readonly [K in keyof S]?: never },
  shared: S,
): ErrorFactory<O & S>;
export function defineErrors(own: ErrorCatalogue, shared: ErrorCatalogue = {}): ErrorFactory<ErrorCatalogue> {
  const catalogue: ErrorCatalogue = Object.freeze({ ...shared, ...own });
  const factory = (
    code: string,
    detail: string,
    extensions: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ): AppException => {
    const spec = catalogue[code];
    // The type forbids unknown codes; this guards callers that cast their way around it.
    if (!spec) throw new Error(`Error code "${code}" is in no catalogue.`);
    return new AppException(code, spec.status, detail, extensions, headers);
  };
  return Object.assign(factory, { catalogue });
}
