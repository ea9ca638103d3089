import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppException } from './app-exception.js';
import { defineErrors, type ErrorCatalogue } from './catalogue.js';
import { COMMON_ERRORS, commonError, isAppException, fieldErrorsOf, validationFailed } from './common.errors.js';
import { STATUS_CODES } from './problem.js';

const SRC = fileURLToPath(new URL('../../', import.meta.url));

function catalogueFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return catalogueFiles(path);
    return entry.name.endsWith('.errors.ts') ? [path] : [];
  });
}

/** Every catalogue of the code base: the exports of `*.errors.ts` built by defineErrors. */
async function allCatalogues(): Promise<{ where: string; catalogue: ErrorCatalogue }[]> {
  const found: { where: string; catalogue: ErrorCatalogue }[] = [];
  for (const file of catalogueFiles(SRC)) {
    const exports = (await import(file)) as Record<string, unknown>;
    for (const [name, value] of Object.entries(exports)) {
      const catalogue = (value as { catalogue?: ErrorCatalogue } | null)?.catalogue;
      if (typeof value === 'function' && catalogue) found.push({ where: `${relative(SRC, file)}#${name}`, catalogue });
    }
  }
  return found;
}

describe('error catalogues', () => {
  it('build an AppException with the status of the code', () => {
    const error = commonError('not-found', 'No such thing.', { id: 'x' }, { 'x-test': '1' });
    expect(error).toBeInstanceOf(AppException);
    expect(error).toMatchObject({
      code: 'not-found',
      status: 404,
      detail: 'No such thing.',
      extensions: { id: 'x' },
      headers: { 'x-test': '1' },
    });
    expect(isAppException(error)).toBe(true);
    expect(isAppException(new Error('plain'))).toBe(false);
  });

  it('lend the shared codes to a module and keep its own', () => {
    const moduleError = defineErrors({ 'thing-taken': { status: 409, description: 'Taken.' } }, COMMON_ERRORS);
    expect(moduleError('thing-taken', 'Taken.').status).toBe(409);
    expect(moduleError('forbidden', 'No.').status).toBe(403);
    expect(Object.keys(moduleError.catalogue)).toEqual(expect.arrayContaining(['thing-taken', 'not-found']));
  });

  it('refuse, in the types, a code outside the catalogue and a shared code redefined', () => {
    // @ts-expect-error: not a code of the common catalogue
    expect(() => commonError('no-such-code', 'x')).toThrow('Error code "no-such-code" is in no catalogue.');
    // @ts-expect-error: `not-found` is shared (404) and may not be given another status
    defineErrors({ 'not-found': { status: 400, description: 'x' } }, COMMON_ERRORS);
  });

  it('answer validation problems with the field errors', () => {
    const error = validationFailed([{ field: 'to', messages: ['to must be E.164'] }]);
    expect(error).toMatchObject({ code: 'validation-failed', status: 400, detail: 'to: to must be E.164' });
    expect(fieldErrorsOf(error)).toEqual([{ field: 'to', messages: ['to must be E.164'] }]);
    const built = commonError('validation-failed', 'x', { errors: [{ field: 'a', messages: ['b'] }] });
    expect(fieldErrorsOf(built)).toEqual([{ field: 'a', messages: ['b'] }]);
    expect(fieldErrorsOf(commonError('validation-failed', 'x'))).toEqual([]);
    expect(fieldErrorsOf(commonError('not-found', 'x'))).toBeUndefined();
    expect(fieldErrorsOf(new Error('plain'))).toBeUndefined();
  });

  it('give every code exactly one status across all modules', async () => {
    const catalogues = await allCatalogues();
    // One per module at least: auth, users, tenants, agents, gateway, messages, health, calls, pbx.
    expect(catalogues.length).toBeGreaterThanOrEqual(9);
    const statusOf = new Map<string, { status: number; where: string }>();
    const clashes: string[] = [];
    for (const { where, catalogue } of catalogues) {
      for (const [code, spec] of Object.entries(catalogue)) {
        expect(code).toMatch(/^[a-z]+(-[a-z]+)*$/);
        expect(spec.status).toBeGreaterThanOrEqual(400);
        expect(spec.status).toBeLessThan(600);
        expect(spec.description.length).toBeGreaterThan(0);
        const seen = statusOf.get(code);
        if (seen && seen.status !== spec.status) {
          clashes.push(`${code}: ${seen.status} in ${seen.where}, ${spec.status} in ${where}`);
        }
        if (!seen) statusOf.set(code, { status: spec.status, where });
      }
    }
    // The filter names errors without a catalogue by their status (a Nest 404 is `not-found`):
    // those names keep the status the catalogues give them.
    for (const [status, { code }] of Object.entries(STATUS_CODES)) {
      const seen = statusOf.get(code);
      if (seen && seen.status !== Number(status))
        clashes.push(`${code}: ${seen.status} in ${seen.where}, ${status} in the filter`);
    }
    expect(clashes).toEqual([]);
    expect(statusOf.get('invalid-credentials')?.status).toBe(401);
  });
});
