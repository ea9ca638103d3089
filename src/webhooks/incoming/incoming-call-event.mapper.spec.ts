import { plainToInstance } from 'class-transformer';
import { IncomingCallEventDto } from './incoming-webhooks.dto.js';
import { genericInboxCallKey, toCallRecords } from './incoming-call-event.mapper.js';

const dto = (o: Record<string, unknown>) => plainToInstance(IncomingCallEventDto, o);

describe('generic incoming call events → canonical records', () => {
  it('maps every field, phone numbers to E.164, and keys the event by eventId or <event>@<at>', () => {
    const records = toCallRecords([
      dto({
        callId: 'c-1',
        event: 'ringing',
        at: '2026-12-04T18:00:00+01:00',
        direction: 'inbound',
        from: '(555) 123-0001',
        to: '+44 20 7946 0018',
        callerName: 'Pat',
        agent: { extension: '1001' },
      }),
      dto({
        callId: 'c-1',
        eventId: 'end-1',
        event: 'ended',
        at: '2026-12-04T17:05:00Z',
        endReason: 'busy',
        hangupCause: 'USER_BUSY',
        recordingUrl: 'https://pbx.example.com/r/1.wav',
        agent: { id: '6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b' },
      }),
    ]);
    expect(records.voicemails).toEqual([]);
    expect(records.messages).toEqual([]);
    expect(records.calls).toEqual([
      {
        providerCallId: 'c-1',
        eventKey: 'ringing@2026-12-04T17:00:00.000Z',
        kind: 'ringing',
        at: new Date('2026-12-04T17:00:00Z'),
        direction: 'inbound',
        from: '+15551230001',
        to: '+442079460018',
        callerName: 'Pat',
        agent: { extension: '1001' },
        raw: { generic: expect.objectContaining({ callId: 'c-1', from: '(555) 123-0001' }) },
      },
      {
        providerCallId: 'c-1',
        eventKey: 'end-1',
        kind: 'ended',
        at: new Date('2026-12-04T17:05:00Z'),
        endReason: 'busy',
        hangupCause: 'USER_BUSY',
        recordingUrl: 'https://pbx.example.com/r/1.wav',
        agent: { agentId: '6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b' },
        raw: { generic: expect.objectContaining({ eventId: 'end-1' }) },
      },
    ]);
  });

  it('gives the same event, sent twice, the same key (the second is not applied again)', () => {
    const e = { callId: 'c-2', event: 'answered', at: '2026-12-04T17:00:00.5Z' };
    const [first] = toCallRecords([dto(e)]).calls;
    const [second] = toCallRecords([dto({ ...e, at: '2026-12-04T18:00:00.500+01:00' })]).calls;
    expect(first!.eventKey).toBe(second!.eventKey);
  });

  it("keys inbox rows by company and call, so another company's call id is another call", () => {
    expect(genericInboxCallKey('a', 'c-1')).toBe('generic:a:c-1');
    expect(genericInboxCallKey('a', 'c-1')).not.toBe(genericInboxCallKey('b', 'c-1'));
  });
});
