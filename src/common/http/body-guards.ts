import { type AppException, commonError } from '../errors/common.errors.js';

/**
 * Guards on request input that run at the edge, before validation: a body nested deeper than
 * JSON_MAX_DEPTH would overflow the stack in class-transformer (one request takes the process
 * down), and a NUL character is refused by PostgreSQL in text and jsonb (a 500 after the fact).
 */

/** The deepest nesting of arrays/objects in JSON text, scanned without parsing (stops past `max`). */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** The path of the first string or key holding a NUL character, or undefined (depth is bounded before). */
export function findNul(value: unknown, path = ''): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path || '(body)' : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findNul(value[i], `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const at = path ? `${path}.${key}` : key;
      if (key.includes('\u0000')) return at.replaceAll('\u0000', '\\u0000');
      const found = findNul(item, at);
      if (found) return found;
    }
  }
  return undefined;
}

export function tooDeep(max: number): AppException {
  return commonError('invalid-body', `The body is nested deeper than ${max} levels of arrays and objects.`);
}

export function nulInBody(path: string): AppException {
  return commonError('invalid-body', `The body holds a NUL character (\\u0000) at ${path}; text may not contain it.`, {
    field: path,
  });
}

export function nulInUrl(): AppException {
  return commonError(
    'invalid-url',
    'The URL holds a NUL character (%00) in its path or query; text may not contain it.',
  );
}

/** Whether a request URL (raw, percent-encoded) holds a NUL, literally or as `%00`. */
export function urlHasNul(url: string): boolean {
  return url.includes('\u0000') || /%00/i.test(url);
}
