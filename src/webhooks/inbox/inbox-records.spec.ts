import type { WebhookRecords } from '../../pbx/pbx-provider.js';
import { INBOX_PARTITIONS, inboxCallKey, inboxPartition, recordsFromJson, recordsToJson } from './inbox-records.js';

const CONN = '9d46dfe0-849f-4fe6-ab3a-6093ca2a8eb1';
const records = (o: Partial<WebhookRecords>): WebhookRecords => ({ calls: [], voicemails: [], messages: [], ...o });

describe('inbox records', () => {
  it('keys a row by its call (as calls.call_key), else its voicemail’s call, its message, its event', () => {
    const at = new Date('2026-03-02T09:00:00Z');
    expect(
      inboxCallKey(CONN, 'e1', records({ calls: [{ providerCallId: 'CA1', eventKey: 'k', kind: 'ringing', at }] })),
    ).toBe(`${CONN}:CA1`);
    expect(
      inboxCallKey(CONN, 'e2', records({ voicemails: [{ providerVoicemailId: 'v', providerCallId: 'CA1', at }] })),
    ).toBe(`${CONN}:CA1`);
    expect(
      inboxCallKey(
        CONN,
        'e3',
        records({ messages: [{ providerMessageId: 'SM1', direction: 'inbound', at, text: 'hi' }] }),
      ),
    ).toBe(`${CONN}:message:SM1`);
    expect(inboxCallKey(CONN, 'e4', records({}))).toBe(`${CONN}:event:e4`);
    expect(inboxCallKey(CONN, 'e5', null)).toBe(`${CONN}:event:e5`);
  });

  it('gives a key one partition, always the same, spread over all of them', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 2_000; i++) {
      const p = inboxPartition(`${CONN}:CA${i}`);
      expect(p).toBe(inboxPartition(`${CONN}:CA${i}`));
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(INBOX_PARTITIONS);
      seen.add(p);
    }
    expect(seen.size).toBe(INBOX_PARTITIONS);
  });

  it('stores records as JSON and reads them back with their times as Dates', () => {
    const at = new Date('2026-03-02T09:00:00.123Z');
    const r = records({
      calls: [{ providerCallId: 'CA1', eventKey: 'k', kind: 'ended', at, endReason: 'busy', raw: { a: 1 } }],
      messages: [{ providerMessageId: 'SM1', direction: 'inbound', at, text: 'hi' }],
    });
    const back = recordsFromJson(JSON.parse(recordsToJson(r)));
    expect(back).toEqual(r);
    expect(back.calls[0]!.at).toBeInstanceOf(Date);
  });
});
