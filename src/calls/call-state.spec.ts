import fc from 'fast-check';
import { type CallFacts, deriveCall, mergeFacts, type CallState } from './call-state.js';

const T0 = Date.parse('2026-11-21T10:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000);
const fold = (events: CallFacts[]) => events.reduce<CallState>(mergeFacts, {});
const derive = (events: CallFacts[]) => deriveCall(fold(events), new Date(0));

describe('call state', () => {
  it('derives an answered call', () => {
    const call = derive([
      {
        eventKey: 'e1',
        kind: 'ringing',
        at: at(0),
        direction: 'inbound',
        from: '+15551230001',
        to: '+15550001234',
        callerName: 'Pat',
      },
      { eventKey: 'e2', kind: 'ringing', at: at(1), agentId: 'agent-1' },
      { eventKey: 'e3', kind: 'answered', at: at(4) },
      { eventKey: 'e4', kind: 'ended', at: at(10), endReason: 'completed', hangupCause: '16 Normal Clearing' },
    ]);
    expect(call).toMatchObject({
      status: 'completed',
      direction: 'inbound',
      fromNumber: '+15551230001',
      toNumber: '+15550001234',
      callerName: 'Pat',
      agentId: 'agent-1',
      startedAt: at(0),
      ringSeconds: 4,
      talkSeconds: 6,
      durationSeconds: 10,
      hangupCause: '16 Normal Clearing',
    });
  });

  it('gives ended-before-answered the same final record', () => {
    const events: CallFacts[] = [
      { eventKey: 'a', kind: 'ringing', at: at(0), from: '+15551230001' },
      { eventKey: 'b', kind: 'answered', at: at(3) },
      { eventKey: 'c', kind: 'ended', at: at(9), endReason: 'completed' },
    ];
    const reordered = [events[0]!, events[2]!, events[1]!];
    expect(derive(reordered)).toEqual(derive(events));
    expect(derive([events[0]!, events[2]!]).status).toBe('missed'); // before the late answer
  });

  it.each([
    ['missed', 'missed'],
    ['abandoned', 'abandoned'],
    ['busy', 'busy'],
    ['failed', 'failed'],
    ['canceled', 'canceled'],
    ['voicemail', 'voicemail'],
    [undefined, 'missed'],
  ] as const)('an unanswered call that ends with %s is %s', (reason, status) => {
    expect(
      derive([
        { eventKey: 'r', kind: 'ringing', at: at(0) },
        { eventKey: 'x', kind: 'ended', at: at(5), endReason: reason },
      ]).status,
    ).toBe(status);
  });

  it('keeps statuses of live calls', () => {
    expect(derive([{ eventKey: 'q', kind: 'queued', at: at(0) }]).status).toBe('queued');
    expect(derive([{ eventKey: 'r', kind: 'ringing', at: at(0) }]).status).toBe('ringing');
    expect(derive([{ eventKey: 'a', kind: 'answered', at: at(0) }]).status).toBe('in_progress');
  });

  const kind = fc.constantFrom('queued', 'ringing', 'answered', 'ended', 'updated' as const);
  const event = fc.record({
    eventKey: fc.string({ minLength: 1, maxLength: 6 }),
    kind,
    at: fc.integer({ min: 0, max: 600 }).map(at),
    from: fc.option(fc.constantFrom('+15551230001', '+15551230002'), { nil: undefined }),
    agentId: fc.option(fc.constantFrom('agent-1', 'agent-2'), { nil: undefined }),
    endReason: fc.option(fc.constantFrom('completed', 'missed', 'abandoned', 'busy' as const), { nil: undefined }),
    hangupCause: fc.option(fc.constantFrom('16', '17', '19'), { nil: undefined }),
  }) as fc.Arbitrary<CallFacts>;

  it('ends in the same record under any duplication and reordering of the events (property)', () => {
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 12 }).chain((events) =>
          fc.tuple(
            fc.constant(events),
            // a shuffled copy, with some events repeated
            fc.shuffledSubarray([...events, ...events], { minLength: events.length * 2, maxLength: events.length * 2 }),
            fc.array(fc.integer({ min: 0, max: events.length - 1 }), { maxLength: 6 }),
          ),
        ),
        ([events, shuffled, repeats]) => {
          // Events with the same key are the same event: the generator may give one key two bodies.
          const byKey = new Map(events.map((e) => [e.eventKey, e]));
          const canonical = [...byKey.values()];
          const delivered = [...shuffled, ...repeats.map((i) => events[i]!)].map((e) => byKey.get(e.eventKey)!);
          expect(derive(delivered)).toEqual(derive(canonical));
          expect(fold(delivered)).toEqual(fold(canonical));
        },
      ),
      { numRuns: 500 },
    );
  });
});
