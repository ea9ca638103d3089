/**
 * Masking of phone numbers in anything that is logged (HIPAA-minded: a log line never carries a
 * full phone number). Every digit but the last four of a phone-like run is replaced by `*`;
 * separators are kept, so `+1 (555) 123-0001` becomes `+* (***) ***-0001`.
 *
 * A phone-like run is 7 to 15 digits, optionally led by `+`, possibly split by spaces, dots,
 * dashes or parentheses, and not glued to letters or other digits (so UUIDs, hex ids and ISO
 * timestamps are left alone). Calendar dates (`2026-11-21`) and decimals are not touched.
 */
const PHONE_RUN = /(?<![\w+\-.%])(?:\+|%2[bB])?\(?\d(?:[\s().-]{0,2}\d){6,14}(?![\w-]|\.\d)/g;
const ENCODED_PLUS = /^%2[bB]/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const DIGIT = /\d/;
const LONG_GROUP = /\d{5,}/;

function maskRun(run: string): string {
  if (ISO_DATE.test(run)) return run;
  // Dotted phone numbers come in short groups (555.123.0001); a long group with a dot is a
  // decimal or an Asterisk Uniqueid (1732166400.42).
  if (run.includes('.') && LONG_GROUP.test(run)) return run;
  if (ENCODED_PLUS.test(run)) return run.slice(0, 3) + maskRun(run.slice(3));
  let digits = 0;
  for (const ch of run) if (DIGIT.test(ch)) digits++;
  let seen = 0;
  let out = '';
  for (const ch of run) {
    if (DIGIT.test(ch)) {
      seen++;
      out += seen <= digits - 4 ? '*' : ch;
    } else {
      out += ch;
    }
  }
  return out;
}

/** Masks the phone numbers in a free text. */
export function maskPhoneText(text: string): string {
  if (text.length < 7) return text;
  return text.replace(PHONE_RUN, maskRun);
}

/**
 * Returns a copy of a value in which every string (at any depth, in objects, arrays, Maps and
 * Error messages) has its phone numbers masked. Cycles are cut, not followed.
 */
export function maskDeep<T>(value: T, seen = new WeakSet<object>()): T {
  if (typeof value === 'string') return maskPhoneText(value) as T;
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[Circular]' as T;
  seen.add(value);
  if (Array.isArray(value)) return value.map((v: unknown) => maskDeep(v, seen)) as T;
  if (value instanceof Date) return value;
  if (value instanceof Map) {
    return new Map([...value].map(([k, v]) => [k, maskDeep(v, seen)])) as T;
  }
  const out: Record<string, unknown> = {};
  if (value instanceof Error) {
    out.type = value.name;
    out.message = maskPhoneText(value.message);
    if (value.stack) out.stack = maskPhoneText(value.stack);
  }
  for (const [k, v] of Object.entries(value)) out[k] = maskDeep(v, seen);
  return out as T;
}

const JSON_STRING = /"(?:[^"\\]|\\.)*"/g;

/**
 * Masks phone numbers inside the string literals of one serialised JSON log line. Numbers,
 * keys' structure and JSON validity are kept; this is the last step before a line is written,
 * so whatever a caller logged (message, nested object, error stack, request URL) is covered.
 */
export function maskJsonLine(line: string): string {
  return line.replace(JSON_STRING, (literal) => {
    if (literal.length < 9) return literal;
    // Work on the decoded text, so an escape such as `\n` before a number does not hide it.
    const text = JSON.parse(literal) as string;
    const masked = maskPhoneText(text);
    return masked === text ? literal : JSON.stringify(masked);
  });
}
