/** Custom request headers of an outbound webhook endpoint: limits and the names that are refused. */
export const MAX_HEADERS = 20;
export const MAX_HEADER_NAME = 128;
export const MAX_HEADER_VALUE = 1024;
/** Names and values together (each counted as `name: value\r\n`). */
export const MAX_HEADERS_BYTES = 8 * 1024;

/** RFC 9110 `token`. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII, space and tab: no CR, LF, NUL or other control characters, no non-ASCII. */
const VALUE = /^[\t\x20-\x7e]*$/;

/**
 * Names a company may not set: the signature headers (`webhook-*`, ours), hop-by-hop and framing
 * headers (the HTTP client owns them; undici refuses several outright), `expect` (undici refuses
 * it) and `content-encoding` (it would misdescribe the JSON body).
 */
const FORBIDDEN = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'content-type',
  'content-encoding',
  'expect',
]);
const FORBIDDEN_PREFIXES = ['webhook-', 'proxy-'];

/** What is wrong with a headers object (empty when it may be stored). */
export function headerProblems(headers: unknown): string[] {
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    return ['headers must be an object of header name → value'];
  }
  const entries = Object.entries(headers as Record<string, unknown>);
  const problems: string[] = [];
  if (entries.length > MAX_HEADERS) problems.push(`headers must hold at most ${MAX_HEADERS} headers`);
  const seen = new Set<string>();
  let bytes = 0;
  for (const [name, value] of entries.slice(0, MAX_HEADERS + 1)) {
    const lower = name.toLowerCase();
    const shown = JSON.stringify(name.slice(0, 40));
    if (name.length === 0 || name.length > MAX_HEADER_NAME || !TOKEN.test(name)) {
      problems.push(`header name ${shown} must be an HTTP token of at most ${MAX_HEADER_NAME} characters`);
      continue;
    }
    if (FORBIDDEN.has(lower) || FORBIDDEN_PREFIXES.some((p) => lower.startsWith(p))) {
      problems.push(`header ${shown} may not be set (webhook-*, hop-by-hop and framing headers are refused)`);
    }
    if (seen.has(lower)) problems.push(`header ${shown} is given twice`);
    seen.add(lower);
    if (typeof value !== 'string') {
      problems.push(`header ${shown} must have a string value`);
      continue;
    }
    if (value.length > MAX_HEADER_VALUE) {
      problems.push(`header ${shown} must have a value of at most ${MAX_HEADER_VALUE} characters`);
    } else if (!VALUE.test(value)) {
      problems.push(`header ${shown} must have a value of visible ASCII characters (no CR, LF or NUL)`);
    }
    bytes += name.length + value.length + 4;
  }
  if (bytes > MAX_HEADERS_BYTES) problems.push(`headers must total at most ${MAX_HEADERS_BYTES} bytes`);
  return problems;
}
