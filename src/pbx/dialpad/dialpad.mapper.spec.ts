import { buildDialpadCallEvent, buildDialpadSmsEvent, DIALPAD_FAKE_USER_ID } from '../../../test/fakes/dialpad-fake.js';
import { deriveCall, mergeFacts, type CallState, type DerivedCall } from '../../calls/call-state.js';
import { PbxError, type ProviderCallEvent } from '../pbx-provider.js';
import { dialpadEventId, dialpadEventKind, mapDialpadEvent } from './dialpad.mapper.js';

const t0 = Date.parse('2026-11-21T09:00:00.000Z');
const office = { id: '5400000000000001', type: 'office', name: 'Main line', phone: '+15555550199' };
const ada = { id: DIALPAD_FAKE_USER_ID, type: 'user', name: 'Ada Agent', phone: '+15555550100' };
const bob = { id: '5200000000000002', type: 'user', name: 'Bob Agent', phone: '+15555550101' };

/** Folds call events as the calls service does (agent id: the Dialpad user id). */
function fold(events: ProviderCallEvent[]): Map<string, DerivedCall> {
  const states = new Map<string, CallState>();
  for (const e of events) {
    states.set(
      e.providerCallId,
      mergeFacts(states.get(e.providerCallId) ?? {}, { ...e, agentId: e.agent?.externalId }),
    );
  }
  return new Map([...states].map(([id, s]) => [id, deriveCall(s, new Date(0))]));
}

const calls = (...events: Record<string, unknown>[]) => events.flatMap((e) => mapDialpadEvent(e).calls);

function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('mapDialpadEvent: calls', () => {
  it('inbound ringing: from the customer to the line, caller name, the agent from target', () => {
    const [e] = calls(buildDialpadCallEvent({ callId: '6100000000000001', state: 'ringing', at: t0 }));
    expect(e).toMatchObject({
      providerCallId: '6100000000000001',
      eventKey: `dialpad:6100000000000001:ringing:${t0}`,
      kind: 'ringing',
      at: new Date(t0),
      direction: 'inbound',
      from: '+15555550123',
      to: '+15555550100',
      callerName: 'Carla Customer',
      agent: { provider: 'dialpad', externalId: DIALPAD_FAKE_USER_ID },
    });
    expect(e!.endReason).toBeUndefined();
  });

  it('outbound calling: from the agent line to the customer, no caller name', () => {
    const [e] = calls(
      buildDialpadCallEvent({ state: 'calling', direction: 'outbound', external: '+15555550142', at: t0 }),
    );
    expect(e).toMatchObject({ kind: 'ringing', direction: 'outbound', from: '+15555550100', to: '+15555550142' });
    expect(e!.callerName).toBeUndefined();
  });

  it('internal when the contact is a Dialpad user', () => {
    const [e] = calls(
      buildDialpadCallEvent({ state: 'ringing', contactType: 'user', contactName: 'Bob Agent', at: t0 }),
    );
    expect(e!.direction).toBe('internal');
  });

  it('drops numbers that are not phone numbers, keeps extensions', () => {
    const [e] = calls(buildDialpadCallEvent({ state: 'ringing', external: 'anonymous', internal: '1001', at: t0 }));
    expect(e!.from).toBeUndefined();
    expect(e!.to).toBe('1001');
  });

  it('a group call and its operator legs are one call; only the entry point call ends it', () => {
    const entry = '6100000000000100';
    const group = { entryPointTarget: office, internal: '+15555550199' };
    const events = [
      buildDialpadCallEvent({ callId: entry, state: 'ringing', target: office, ...group, at: t0 }),
      buildDialpadCallEvent({
        callId: '6100000000000101',
        entryPointCallId: entry,
        state: 'ringing',
        target: ada,
        at: t0 + 1000,
      }),
      buildDialpadCallEvent({
        callId: '6100000000000102',
        entryPointCallId: entry,
        state: 'ringing',
        target: bob,
        at: t0 + 1000,
      }),
      buildDialpadCallEvent({
        callId: '6100000000000102',
        entryPointCallId: entry,
        state: 'missed',
        target: bob,
        at: t0 + 9000,
      }),
      buildDialpadCallEvent({
        callId: '6100000000000101',
        entryPointCallId: entry,
        state: 'connected',
        target: ada,
        at: t0 + 9000,
      }),
      buildDialpadCallEvent({
        callId: '6100000000000101',
        entryPointCallId: entry,
        state: 'hangup',
        target: ada,
        at: t0 + 60_000,
      }),
      buildDialpadCallEvent({
        callId: entry,
        state: 'hangup',
        target: office,
        ...group,
        dateConnected: t0 + 9000,
        at: t0 + 60_100,
      }),
    ];
    const mapped = calls(...events);
    expect(mapped.map((e) => [e.kind, e.providerCallId, e.agent?.externalId ?? null])).toEqual([
      ['ringing', entry, null],
      ['ringing', entry, DIALPAD_FAKE_USER_ID],
      ['ringing', entry, bob.id],
      ['answered', entry, DIALPAD_FAKE_USER_ID],
      ['ended', entry, null],
    ]);
    for (const seed of [1, 2, 3, 4, 5]) {
      const call = fold(shuffled(mapped, seed)).get(entry)!;
      expect(call).toMatchObject({
        status: 'completed',
        direction: 'inbound',
        fromNumber: '+15555550123',
        toNumber: '+15555550199',
        agentId: DIALPAD_FAKE_USER_ID,
        answeredAt: new Date(t0 + 9000),
        endedAt: new Date(t0 + 60_100),
      });
    }
  });

  it('missed and voicemail end the call with their reason; voicemail_uploaded adds a voicemail', () => {
    const missed = calls(
      buildDialpadCallEvent({ callId: '6100000000000200', state: 'ringing', at: t0 }),
      buildDialpadCallEvent({ callId: '6100000000000200', state: 'missed', at: t0 + 20_000 }),
      buildDialpadCallEvent({ callId: '6100000000000200', state: 'hangup', at: t0 + 20_100 }),
    );
    expect(fold(missed).get('6100000000000200')).toMatchObject({ status: 'missed', endReason: 'missed' });

    const link = 'https://dialpad.example.test/vm/1.mp3';
    const vmEvents = [
      buildDialpadCallEvent({ callId: '6100000000000300', state: 'ringing', at: t0 }),
      buildDialpadCallEvent({ callId: '6100000000000300', state: 'voicemail', at: t0 + 25_000 }),
      buildDialpadCallEvent({ callId: '6100000000000300', state: 'hangup', at: t0 + 45_000 }),
      buildDialpadCallEvent({
        callId: '6100000000000300',
        state: 'voicemail_uploaded',
        at: t0 + 60_000,
        voicemailLink: link,
        voicemailDurationMs: 19_600,
        transcription: 'Call me back',
      }),
    ];
    const mapped = vmEvents.map(mapDialpadEvent);
    expect(mapped[3]!.voicemails).toEqual([
      expect.objectContaining({
        providerVoicemailId: 'call:6100000000000300',
        providerCallId: '6100000000000300',
        recordingUrl: link,
        durationSeconds: 20,
        transcription: 'Call me back',
        from: '+15555550123',
        to: '+15555550100',
        agent: { provider: 'dialpad', externalId: DIALPAD_FAKE_USER_ID },
      }),
    ]);
    for (const seed of [1, 2, 3]) {
      expect(
        fold(
          shuffled(
            mapped.flatMap((m) => m.calls),
            seed,
          ),
        ).get('6100000000000300'),
      ).toMatchObject({
        status: 'voicemail',
        endedAt: new Date(t0 + 25_000),
      });
    }
  });

  it('an answered call ends completed, whatever the order', () => {
    const id = '6100000000000400';
    const mapped = calls(
      buildDialpadCallEvent({ callId: id, state: 'ringing', at: t0 }),
      buildDialpadCallEvent({ callId: id, state: 'connected', dateConnected: t0 + 3000, at: t0 + 3000 }),
      buildDialpadCallEvent({ callId: id, state: 'hangup', dateConnected: t0 + 3000, at: t0 + 63_000 }),
      buildDialpadCallEvent({
        callId: id,
        state: 'recording',
        recordingUrl: 'https://dialpad.example.test/r/1.mp3',
        at: t0 + 70_000,
      }),
    );
    expect(fold([...mapped].reverse()).get(id)).toMatchObject({
      status: 'completed',
      talkSeconds: 60,
      recordingUrl: 'https://dialpad.example.test/r/1.mp3',
    });
  });

  it('maps queued, ignores states it does not map, and recording without a URL', () => {
    expect(calls(buildDialpadCallEvent({ state: 'queued', at: t0 }))[0]!.kind).toBe('queued');
    for (const state of [
      'hold',
      'parked',
      'merged',
      'transcription',
      'recap_summary',
      'eavesdrop',
      'postcall',
      'preanswer',
    ]) {
      expect(mapDialpadEvent(buildDialpadCallEvent({ state, at: t0 }))).toEqual({
        calls: [],
        voicemails: [],
        messages: [],
      });
    }
    expect(calls(buildDialpadCallEvent({ state: 'recording', at: t0 }))).toEqual([]);
  });

  it('never takes a recording URL of another scheme', () => {
    const e = buildDialpadCallEvent({ state: 'recording', at: t0 });
    e.recording_url = ['javascript:alert(1)'];
    expect(calls(e)).toEqual([]);
  });

  it('reads ids and times given as strings (the API serialises int64 so)', () => {
    const [e] = calls({
      call_id: '6100000000000500',
      entry_point_call_id: '6100000000000499',
      state: 'connected',
      direction: 'inbound',
      event_timestamp: String(t0),
      target: { id: '5200000000000001', type: 'user' },
    });
    expect(e).toMatchObject({
      providerCallId: '6100000000000499',
      at: new Date(t0),
      agent: { externalId: '5200000000000001' },
    });
  });

  it('falls back to the date of the state when there is no event_timestamp', () => {
    const e = buildDialpadCallEvent({ state: 'hangup', dateEnded: t0 + 5000, at: t0 });
    delete e.event_timestamp;
    expect(calls(e)[0]!.at).toEqual(new Date(t0 + 5000));
  });

  it('REJECTED for a call event without state, id or any time', () => {
    const rejected = (e: Record<string, unknown>) => {
      expect(() => mapDialpadEvent(e)).toThrow(PbxError);
      try {
        mapDialpadEvent(e);
      } catch (error) {
        expect((error as PbxError).code).toBe('REJECTED');
      }
    };
    rejected({ call_id: 1 });
    rejected({ call_id: 'abc', state: 'ringing', event_timestamp: t0 });
    rejected({ call_id: 1, state: 'ringing' });
    rejected(42 as unknown as Record<string, unknown>);
  });
});

describe('mapDialpadEvent: SMS', () => {
  it('inbound SMS → message with the target user as agent', () => {
    const { messages } = mapDialpadEvent(buildDialpadSmsEvent({ at: t0 }));
    expect(messages).toEqual([
      expect.objectContaining({
        providerMessageId: '6200000000000001',
        direction: 'inbound',
        at: new Date(t0),
        from: '+15555550123',
        to: '+15555550100',
        text: 'Hello, can you call me back?',
        status: 'pending',
        agent: { provider: 'dialpad', externalId: DIALPAD_FAKE_USER_ID },
      }),
    ]);
  });

  it('outbound SMS without content (no export scope) → empty text', () => {
    const { messages } = mapDialpadEvent(buildDialpadSmsEvent({ direction: 'outbound', text: null, at: t0 }));
    expect(messages[0]).toMatchObject({
      direction: 'outbound',
      text: '',
      from: '+15555550100',
      to: '+15555550123',
      status: 'sent',
    });
  });
});

describe('event ids', () => {
  it('call: call id, state, event time; sms: id and status; else a digest', () => {
    const call = buildDialpadCallEvent({ callId: '6100000000000001', state: 'voicemail', at: t0 });
    expect(dialpadEventId(call, JSON.stringify(call))).toBe(`call:6100000000000001:voicemail:${t0}`);
    expect(dialpadEventKind(call)).toBe('voicemail');
    const sms = buildDialpadSmsEvent({ status: 'delivered' });
    expect(dialpadEventId(sms, JSON.stringify(sms))).toBe('sms:6200000000000001:delivered');
    expect(dialpadEventKind(sms)).toBe('sms');
    const other = { user_id: 1, availability: 'busy' };
    expect(dialpadEventId(other, '{"a":1}')).toMatch(/^event:[0-9a-f]{64}$/);
    expect(dialpadEventId(other, '{"a":1}')).not.toBe(dialpadEventId(other, '{"a":2}'));
    expect(dialpadEventKind(other)).toBe('event');
  });
});
