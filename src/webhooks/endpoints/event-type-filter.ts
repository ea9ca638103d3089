import { EVENT_TYPES } from '../../events/event-envelope.js';

/** One pattern against one type: an exact type, `prefix.*` (any type under `prefix.`), or `*`. */
function matchesOne(pattern: string, type: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return type.startsWith(pattern.slice(0, -1));
  return pattern === type;
}

/** Patterns: exact catalogue types, `prefix.*` wildcards, `*`. */
export function matchesEventType(patterns: readonly string[], type: string): boolean {
  return patterns.some((pattern) => matchesOne(pattern, type));
}

/** Validation: the unknown patterns (not a catalogue type, nor a wildcard matching at least one). */
export function unknownEventTypes(patterns: readonly string[]): string[] {
  return patterns.filter((pattern) => {
    if (pattern === '*') return false;
    if (pattern.endsWith('.*')) {
      const prefix = pattern.slice(0, -2);
      // `call.*` yes; `ca*`, `call*.*`, `.*` no: the wildcard stands for whole trailing segments.
      if (prefix === '' || prefix.includes('*')) return true;
      return !EVENT_TYPES.some((type) => matchesOne(pattern, type));
    }
    return !(EVENT_TYPES as readonly string[]).includes(pattern);
  });
}
