import { AMI_FIXTURE_NAMES, loadAmiFixture, type AmiFixture } from '../../../test/support/ami-simulator.js';
import { AMI_NOISE_EVENTS, AmiParser, amiHeaders, type AmiFields, type AmiWarning } from './ami-parser.js';

/** A small seeded PRNG (mulberry32): the same seed, the same chunks. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits bytes into chunks of 1 byte to `max` bytes. */
function chunks(bytes: Buffer, seed: number, max = 4096): Buffer[] {
  const rnd = prng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length;) {
    // The first cut and a quarter of the others right after a \r (inside a \r\n), the others random: half tiny
    // (1–16 bytes), half up to `max`.
    const r = rnd();
    const cr = bytes.indexOf(13, i);
    const size =
      (out.length === 0 || r < 0.25) && cr >= 0
        ? cr - i + 1
        : r < 0.6
          ? 1 + Math.floor(rnd() * 16)
          : 1 + Math.floor(rnd() * max);
    out.push(bytes.subarray(i, i + size));
    i += size;
  }
  return out;
}

function parseAll(input: Buffer[], options: Partial<ConstructorParameters<typeof AmiParser>[0]> = {}) {
  const messages: AmiFields[] = [];
  const banners: string[] = [];
  const warnings: AmiWarning[] = [];
  const parser = new AmiParser({
    onMessage: (m) => messages.push(m),
    onBanner: (b) => banners.push(b),
    onWarning: (w) => warnings.push(w),
    ...options,
  });
  for (const c of input) parser.push(c);
  return { messages, banners, warnings, parser };
}

const SEEDS = [1, 7, 42, 1234, 99_999];
const fixtures: AmiFixture[] = AMI_FIXTURE_NAMES.map(loadAmiFixture);
const eventName = (f: AmiFields) => (f[0]?.[0] === 'Event' ? f[0][1] : undefined);

describe('AmiParser on the recorded sessions', () => {
  describe.each(fixtures.map((f) => [f.name, f] as const))('%s', (_name, fixture) => {
    it.each(SEEDS)('gives exactly the .jsonl messages, in random chunks (seed %i), nothing skipped', (seed) => {
      const pieces = chunks(fixture.ami, seed);
      // Some chunk ends between a \r and its \n.
      expect(pieces.some((p) => p[p.length - 1] === 13)).toBe(true);
      const { messages, banners, warnings } = parseAll(pieces, { skipEvents: [] });
      expect(banners).toEqual([fixture.banner]);
      expect(messages).toEqual(fixture.received.map((r) => r.fields));
      expect(warnings).toEqual([]);
    });

    it('gives the same messages when fed in one piece and byte by byte', () => {
      const expected = fixture.received.map((r) => r.fields);
      expect(parseAll([fixture.ami], { skipEvents: [] }).messages).toEqual(expected);
      const bytes = [...fixture.ami].map((b) => Buffer.from([b]));
      expect(parseAll(bytes, { skipEvents: [] }).messages).toEqual(expected);
    });

    it.each(SEEDS)('skips exactly the noise events with the pre-filter (seed %i)', (seed) => {
      const noise = new Set(AMI_NOISE_EVENTS);
      const expected = fixture.received.map((r) => r.fields).filter((f) => !noise.has(eventName(f) ?? ''));
      const { messages, parser, warnings } = parseAll(chunks(fixture.ami, seed));
      expect(messages).toEqual(expected);
      expect(parser.stats.skipped).toBe(fixture.received.length - expected.length);
      expect(parser.stats.skipped).toBeGreaterThan(0);
      expect(warnings).toEqual([]);
    });
  });

  it('keeps the VarSet of our request-id variable when VarSet is skipped', () => {
    const c2c = fixtures.find((f) => f.name === 'click-to-call')!;
    const { messages } = parseAll(chunks(c2c.ami, 3), { keepVarSet: ['CTI_REQUEST_ID'] });
    const varSets = messages.filter((m) => eventName(m) === 'VarSet');
    expect(varSets).toEqual(
      c2c.received
        .map((r) => r.fields)
        .filter((f) => eventName(f) === 'VarSet' && f.some(([k, v]) => k === 'Variable' && v === 'CTI_REQUEST_ID')),
    );
    expect(varSets).toHaveLength(1);
  });

  it('keeps values byte for byte: leading blanks, empty values, parentheses', () => {
    const c2c = fixtures.find((f) => f.name === 'click-to-call')!;
    const { messages } = parseAll([c2c.ami], { skipEvents: [] });
    const values = messages.flatMap((m) => m.map(([, v]) => v));
    expect(values).toContain(
      '  minrxlost=000.000000;  maxrxlost=000.000000;  avgrxlost=000.000000;  stdevrxlost=000.000000;  mintxlost=000.000000;  maxtxlost=000.000000;  avgtxlost=000.000000;  stdevtxlost=000.000000;',
    );
    expect(values).toContain('0 (Presentation Allowed, Not Screened)');
    const newchannel = messages.find((m) => eventName(m) === 'Newchannel')!;
    expect(newchannel.find(([k]) => k === 'AccountCode')).toEqual(['AccountCode', '']);
  });
});

describe('AmiParser on synthetic input', () => {
  const ami = (s: string) => Buffer.from(s.replace(/\n/g, '\r\n'), 'utf8');

  it('keeps repeated headers in order and splits only at the first ": "', () => {
    const input = ami(
      'Event: Newchannel\nChannel: PJSIP/1001-00000001\nChanVariable: CTI_REQUEST_ID=req-1\nChanVariable: FOO=a: b: c\nMessage: Error: something: bad\nChanVariable: BAR=\n\n',
    );
    for (const seed of SEEDS) {
      const { messages } = parseAll(chunks(input, seed, 8));
      expect(messages).toEqual([
        [
          ['Event', 'Newchannel'],
          ['Channel', 'PJSIP/1001-00000001'],
          ['ChanVariable', 'CTI_REQUEST_ID=req-1'],
          ['ChanVariable', 'FOO=a: b: c'],
          ['Message', 'Error: something: bad'],
          ['ChanVariable', 'BAR='],
        ],
      ]);
      expect(amiHeaders(messages[0]!, 'ChanVariable')).toEqual(['CTI_REQUEST_ID=req-1', 'FOO=a: b: c', 'BAR=']);
    }
  });

  it('decodes UTF-8 split across chunks', () => {
    const input = ami('Event: Newchannel\nCallerIDName: Zoë Ünal 日本\n\n');
    const { messages } = parseAll([...input].map((b) => Buffer.from([b])));
    expect(messages).toEqual([
      [
        ['Event', 'Newchannel'],
        ['CallerIDName', 'Zoë Ünal 日本'],
      ],
    ]);
  });

  it('reports no banner when the stream does not start with one', () => {
    const { messages, banners } = parseAll([ami('Response: Success\nPing: Pong\n\n')]);
    expect(banners).toEqual([]);
    expect(messages).toEqual([
      [
        ['Response', 'Success'],
        ['Ping', 'Pong'],
      ],
    ]);
  });

  it('reports the banner as soon as its line is complete, before any message', () => {
    const banners: string[] = [];
    const parser = new AmiParser({ onMessage: () => undefined, onBanner: (b) => banners.push(b) });
    parser.push(Buffer.from('Asterisk Call Manager/11.0.0\r'));
    expect(banners).toEqual([]);
    parser.push(Buffer.from('\n'));
    expect(banners).toEqual(['Asterisk Call Manager/11.0.0']);
  });

  it('skips a message with a line without ": ", warns, and parses the next one', () => {
    const input = ami('Event: Hangup\nthis line has no colon\nCause: 16\n\nEvent: Hangup\nUniqueid: 1.2\n\n');
    for (const seed of SEEDS) {
      const { messages, warnings, parser } = parseAll(chunks(input, seed, 16));
      expect(messages).toEqual([
        [
          ['Event', 'Hangup'],
          ['Uniqueid', '1.2'],
        ],
      ]);
      expect(warnings.map((w) => w.code)).toEqual(['line-without-colon']);
      expect(warnings[0]!.sample).toContain('this line has no colon');
      expect(parser.stats.malformed).toBe(1);
    }
  });

  it('skips a line over 64 KiB, warns, and parses the next message', () => {
    const long = 'x'.repeat(64 * 1024 + 1);
    const input = ami(`Event: UserEvent\nData: ${long}\n\nEvent: Hangup\nUniqueid: 1.2\n\n`);
    for (const seed of SEEDS) {
      const { messages, warnings } = parseAll(chunks(input, seed));
      expect(messages).toEqual([
        [
          ['Event', 'Hangup'],
          ['Uniqueid', '1.2'],
        ],
      ]);
      expect(warnings.map((w) => w.code)).toEqual(['line-too-long']);
    }
    // In one piece too (the complete message is checked, not only the buffered one).
    expect(parseAll([input]).warnings.map((w) => w.code)).toEqual(['line-too-long']);
  });

  it('accepts a line of exactly 64 KiB', () => {
    const value = 'y'.repeat(64 * 1024 - 'Data: '.length);
    const { messages, warnings } = parseAll(chunks(ami(`Event: UserEvent\nData: ${value}\n\n`), 5));
    expect(warnings).toEqual([]);
    expect(messages).toEqual([
      [
        ['Event', 'UserEvent'],
        ['Data', value],
      ],
    ]);
  });

  it('skips a message over 1 MiB (short lines), warns, and parses the next message', () => {
    const lines = Array.from({ length: 40_000 }, (_, i) => `Variable${i}: ${'v'.repeat(20)}`).join('\n');
    const input = ami(`Event: UserEvent\n${lines}\n\nEvent: Hangup\nUniqueid: 1.2\n\n`);
    expect(input.length).toBeGreaterThan(1024 * 1024);
    for (const seed of [1, 2]) {
      const { messages, warnings } = parseAll(chunks(input, seed));
      expect(messages).toEqual([
        [
          ['Event', 'Hangup'],
          ['Uniqueid', '1.2'],
        ],
      ]);
      expect(warnings.map((w) => w.code)).toEqual(['message-too-long']);
    }
    expect(parseAll([input]).warnings.map((w) => w.code)).toEqual(['message-too-long']);
  });

  it('ignores stray empty lines between messages', () => {
    const { messages, warnings } = parseAll([ami('Event: A\nK: v\n\n\n\nEvent: B\nK: w\n\n')]);
    expect(messages).toEqual([
      [
        ['Event', 'A'],
        ['K', 'v'],
      ],
      [
        ['Event', 'B'],
        ['K', 'w'],
      ],
    ]);
    expect(warnings).toEqual([]);
  });

  it('skips noise on the event name only (an event whose name merely starts like a noise one is kept)', () => {
    const { messages } = parseAll([ami('Event: VarSetX\nK: v\n\nEvent: VarSet\nK: v\n\nEvent: Newexten\nK: v\n\n')]);
    expect(messages).toEqual([
      [
        ['Event', 'VarSetX'],
        ['K', 'v'],
      ],
    ]);
  });
});
