import { createRequire } from 'node:module';
import { loadAmiFixture } from '../../../test/support/ami-simulator.js';

/**
 * Executable findings on the parser inside `asterisk-ami-client@1.1.5` (the design card's
 * choice): the client pipes the socket into `asterisk-ami-events-stream` (via
 * `asterisk-ami-connector`), which cuts messages at `\r\n\r\n` and parses each with
 * `asterisk-ami-event-utils` `toObject`. Both are reached here through the client's own
 * dependency chain, fed the recorded bytes.
 */
const requireFromClient = createRequire(createRequire(import.meta.url).resolve('asterisk-ami-client'));
const requireFromConnector = createRequire(requireFromClient.resolve('asterisk-ami-connector'));
const AmiEventsStream = requireFromConnector('asterisk-ami-events-stream') as new () => NodeJS.EventEmitter & {
  write(chunk: Buffer): boolean;
  on(event: string, listener: (...args: never[]) => void): unknown;
};
const eventUtils = requireFromConnector('asterisk-ami-event-utils') as {
  toObject: (raw: Buffer | string) => Record<string, string | null>;
};

type Parsed = Record<string, string | null>;

function feed(bytes: Buffer, chunk: number): Parsed[] {
  const out: Parsed[] = [];
  const stream = new AmiEventsStream();
  for (const name of ['amiEvent', 'amiResponse', 'amiAction']) stream.on(name, (m: Parsed) => out.push(m));
  // A Transform: its readable side must be drained or it stops parsing at the high-water mark.
  stream.on('data', () => undefined);
  for (let i = 0; i < bytes.length; i += chunk) stream.write(bytes.subarray(i, i + chunk));
  return out;
}

describe('asterisk-ami-client@1.1.5 parser on the recorded sessions (findings)', () => {
  const fixture = loadAmiFixture('click-to-call');

  it('cuts the messages right (one object per recorded message), the banner folded into the first response', () => {
    for (const chunk of [1, 7, 4096]) {
      const out = feed(fixture.ami, chunk);
      expect(out).toHaveLength(fixture.received.length);
      expect(out[0]).toEqual({ Response: 'Success', ActionID: 'login-1', Message: 'Authentication accepted' });
    }
  });

  it('BREAKS values with leading blanks: it trims them (recorded VarSet RTPAUDIOQOSLOSS)', () => {
    const out = feed(fixture.ami, 4096);
    const recorded = fixture.received.find((r) =>
      r.fields.some(([k, v]) => k === 'Variable' && v === 'RTPAUDIOQOSLOSS'),
    )!;
    const value = recorded.fields.find(([k]) => k === 'Value')![1];
    expect(value.startsWith('  minrxlost=')).toBe(true);
    const theirs = out.find((m) => m.Variable === 'RTPAUDIOQOSLOSS')!;
    expect(theirs.Value).not.toBe(value);
    expect(theirs.Value).toBe(value.trim());
  });

  it('BREAKS repeated headers: only the last ChanVariable survives', () => {
    const raw = 'Event: Newchannel\r\nChanVariable: CTI_REQUEST_ID=req-1\r\nChanVariable: FOO=bar\r\n\r\n';
    expect(eventUtils.toObject(raw)).toEqual({ Event: 'Newchannel', ChanVariable: 'FOO=bar' });
  });

  it('keeps values containing ": " (it re-joins on ":"), but trims them', () => {
    const raw = 'Event: UserEvent\r\nMessage: Error: a: b \r\n\r\n';
    expect(eventUtils.toObject(raw)).toEqual({ Event: 'UserEvent', Message: 'Error: a: b' });
  });

  it('keeps no header order guarantee beyond object keys and reports no banner', () => {
    const out = feed(fixture.ami, 4096);
    expect(
      out.some((m) => Object.values(m).some((v) => typeof v === 'string' && v.startsWith('Asterisk Call Manager'))),
    ).toBe(false);
  });
});
