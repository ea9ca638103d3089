import { matchesEventType, unknownEventTypes } from './event-type-filter.js';

describe('event type filter', () => {
  it('matches exact types, prefix.* wildcards and *', () => {
    expect(matchesEventType(['call.ended'], 'call.ended')).toBe(true);
    expect(matchesEventType(['call.ended'], 'call.answered')).toBe(false);
    expect(matchesEventType(['call.*'], 'call.ringing')).toBe(true);
    expect(matchesEventType(['call.*'], 'queue.updated')).toBe(false);
    expect(matchesEventType(['webhook.*'], 'webhook.endpoint.disabled')).toBe(true);
    expect(matchesEventType(['webhook.endpoint.*'], 'webhook.endpoint.disabled')).toBe(true);
    expect(matchesEventType(['webhook.endpoint.*'], 'webhook.test')).toBe(false);
    expect(matchesEventType(['*'], 'kpi.updated')).toBe(true);
    expect(matchesEventType(['voicemail.received', 'call.*'], 'call.analysis')).toBe(true);
    expect(matchesEventType([], 'call.ringing')).toBe(false);
    // A wildcard stands for whole segments: `call.*` is not `callback.x`.
    expect(matchesEventType(['call.*'], 'callback.x')).toBe(false);
  });

  it('lists the patterns that name no catalogue type', () => {
    expect(unknownEventTypes(['call.ringing', 'call.*', '*', 'webhook.endpoint.*', 'queue.offer'])).toEqual([]);
    expect(
      unknownEventTypes(['call.rang', 'calls.*', 'ca*', 'call*.*', '.*', '', 'call.', 'CALL.RINGING', 'call.ringing']),
    ).toEqual(['call.rang', 'calls.*', 'ca*', 'call*.*', '.*', '', 'call.', 'CALL.RINGING']);
    expect(unknownEventTypes(['call.ringing.*'])).toEqual(['call.ringing.*']);
  });
});
