import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { AmiCallMapper } from '../src/pbx/asterisk/ami-call-mapper.js';
import { AMI_NOISE_EVENTS, type AmiFields, AmiParser } from '../src/pbx/asterisk/ami-parser.js';
import { loadNote } from './support/harness.js';

/**
 * AMI parsing + normalisation throughput on one core: the recorded sessions' bytes (banner
 * removed) concatenated to about 50 MB, fed in 64 KiB chunks to AmiParser (noise pre-filter on,
 * our VarSet kept) and every message kept to AmiCallMapper; and the parser alone on the same
 * chunks (parse only). The headline counts the messages REALLY parsed and mapped (those the
 * pre-filter keeps): the ~81 % it skips on the raw bytes are not parsed, and are reported apart
 * (issue 11 §10). Baseline in the same run, filtered the same way: the parser inside
 * asterisk-ami-client@1.1.5 (asterisk-ami-events-stream) on the same bytes and chunks, each
 * event it emits dropped when its name is on the same noise list (our VarSet kept), the others
 * given to the same AmiCallMapper — what a user of that library would run for the same result.
 * Writes its section of BENCHMARKS.md (or, with `--out FILE`, that file only).   npm run bench:ami
 */

const TARGET = 50_000;
const TARGET_BYTES = 50 * 1024 * 1024;
const CHUNK = 64 * 1024;
const ROUNDS = 5;
const FIXTURES = ['inbound-answered', 'inbound-unanswered', 'inbound-abandoned', 'click-to-call', 'originate-failures'];
const DIR = fileURLToPath(new URL('../../test/fixtures/ami/', import.meta.url));
const OUTPUT = fileURLToPath(new URL('../../BENCHMARKS.md', import.meta.url));
const MARK_START = '<!-- bench:ami-parse:start -->';
const MARK_END = '<!-- bench:ami-parse:end -->';

function corpus(): { bytes: Buffer; events: number } {
  const parts = FIXTURES.map((name) => {
    const raw = readFileSync(`${DIR}${name}.ami`);
    return raw.subarray(raw.indexOf('\r\n') + 2);
  });
  const one = Buffer.concat(parts);
  const times = Math.ceil(TARGET_BYTES / one.length);
  let events = 0;
  new AmiParser({ skipEvents: [], onMessage: () => events++ }).push(one);
  return { bytes: Buffer.concat(Array.from({ length: times }, () => one)), events: events * times };
}

function chunks(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += CHUNK) out.push(bytes.subarray(i, i + CHUNK));
  return out;
}

/** AmiParser alone (same options, noise pre-filter on): the messages it keeps are only counted. */
function parseOnly(input: Buffer[]): { ms: number; kept: number } {
  let kept = 0;
  const parser = new AmiParser({ keepVarSet: ['CTI_REQUEST_ID'], onMessage: () => kept++ });
  const t0 = performance.now();
  for (const c of input) parser.push(c);
  return { ms: performance.now() - t0, kept };
}

function ours(input: Buffer[]): { ms: number; kept: number; callEvents: number } {
  const mapper = new AmiCallMapper();
  const now = new Date();
  let kept = 0;
  let callEvents = 0;
  const parser = new AmiParser({
    keepVarSet: ['CTI_REQUEST_ID'],
    onMessage: (m) => {
      kept++;
      callEvents += mapper.map(m, now).length;
    },
  });
  const t0 = performance.now();
  for (const c of input) parser.push(c);
  return { ms: performance.now() - t0, kept, callEvents };
}

const NOISE = new Set(AMI_NOISE_EVENTS);

/**
 * asterisk-ami-client's parser, then the same filter (by event name, after parsing: it cannot
 * skip on the bytes) and the same mapper on what is kept.
 */
function theirs(input: Buffer[]): { ms: number; parsed: number; kept: number; callEvents: number } | null {
  let Stream: new () => NodeJS.EventEmitter & { write(c: Buffer): boolean };
  try {
    const req = createRequire(createRequire(import.meta.url).resolve('asterisk-ami-client'));
    Stream = createRequire(req.resolve('asterisk-ami-connector'))('asterisk-ami-events-stream');
  } catch {
    return null;
  }
  const mapper = new AmiCallMapper();
  const now = new Date();
  let parsed = 0;
  let kept = 0;
  let callEvents = 0;
  const s = new Stream();
  // Responses, as our parser keeps them (and hands them to the mapper, which ignores them).
  s.on('amiResponse', (response: Record<string, string>) => {
    parsed++;
    kept++;
    callEvents += mapper.map(Object.entries(response), now).length;
  });
  s.on('amiEvent', (event: Record<string, string>) => {
    parsed++;
    const name = event.Event ?? '';
    if (NOISE.has(name) && !(name === 'VarSet' && event.Variable === 'CTI_REQUEST_ID')) return;
    kept++;
    const fields: AmiFields = Object.entries(event);
    callEvents += mapper.map(fields, now).length;
  });
  s.on('data', () => undefined);
  const t0 = performance.now();
  for (const c of input) s.write(c);
  return { ms: performance.now() - t0, parsed, kept, callEvents };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function main(): void {
  const { bytes, events } = corpus();
  const input = chunks(bytes);
  ours(input.slice(0, 50));
  parseOnly(input.slice(0, 50));
  // Alternating, so that both see the same machine.
  const runs: ReturnType<typeof ours>[] = [];
  const parsed: ReturnType<typeof parseOnly>[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    parsed.push(parseOnly(input));
    runs.push(ours(input));
  }
  const load = loadNote();
  const kept = runs[0]!.kept;
  const oursMs = median(runs.map((r) => r.ms));
  const parseMs = median(parsed.map((r) => r.ms));
  // Messages really parsed (and mapped) per second: those the pre-filter keeps.
  const parseRate = kept / (parseMs / 1000);
  const oursRate = kept / (oursMs / 1000);
  const wireRate = events / (oursMs / 1000);
  const mapShare = 1 - parseMs / oursMs;
  const base = theirs(input.slice(0, 50)) ? Array.from({ length: 3 }, () => theirs(input)) : [];
  const baseMs = base.length && base.every((b) => b) ? median(base.map((b) => b!.ms)) : null;
  const baseKept = base[0]?.kept ?? 0;
  const baseRate = baseMs ? baseKept / (baseMs / 1000) : null;
  const sameResult = base[0] ? base[0].callEvents === runs[0]!.callEvents : false;
  const met = oursRate >= TARGET;
  const parseMet = parseRate >= TARGET;
  const section = [
    MARK_START,
    '## AMI parsing and normalisation throughput',
    '',
    `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} by \`npm run bench:ami\` (\`bench/ami-parse.ts\`); re-running replaces this section.`,
    '',
    `${load.loaded ? '**Loaded machine**: ' : ''}${load.text} at the start.`,
    '',
    `**Target** (from the issue): at least ${fmt(TARGET)} events/s parsed on one core — counted here as messages REALLY parsed and mapped (issue 11 §10: the ones skipped on the raw bytes are not parsed and are not counted).`,
    '',
    `- **Parsing and normalisation** (AmiParser + noise pre-filter + AmiCallMapper): **${fmt(oursRate)} messages parsed and mapped per second** (median of ${ROUNDS} runs): target **${met ? 'met' : 'NOT met'}**. On the wire that is ${fmt(wireRate)} events/s (${(bytes.length / 1e6 / (oursMs / 1000)).toFixed(0)} MB/s), the ${Math.round(((events - kept) / events) * 100)} % of them that are noise skipped on the raw bytes without being parsed.`,
    `- **Parsing alone** (AmiParser + noise pre-filter, the messages kept only counted): **${fmt(parseRate)} messages parsed per second** (median of ${ROUNDS} runs, ${(bytes.length / 1e6 / (parseMs / 1000)).toFixed(0)} MB/s of input): target **${parseMet ? 'met' : 'NOT met'}**. The mapper takes ${Math.round(Math.max(0, mapShare) * 100)} % of the time of the two together.`,
    baseRate
      ? `- **Baseline, same run: asterisk-ami-client@1.1.5's parser, filtered the same way** (asterisk-ami-events-stream parses every message; the same noise list is then applied by event name, our VarSet kept, and the same AmiCallMapper maps what is kept): **${fmt(baseRate)} messages kept and mapped per second** (median of 3; it parsed ${fmt(base[0]!.parsed)} messages to keep ${fmt(baseKept)}): ours is ${(oursRate / baseRate).toFixed(1)}× faster for the same result (${sameResult ? 'the same' : 'NOT the same'} ${fmt(runs[0]!.callEvents)} call events).`
      : '- asterisk-ami-client@1.1.5 could not be loaded: no baseline.',
    `- Per run: ${fmt(events)} events (${(bytes.length / 1e6).toFixed(1)} MB); ${fmt(kept)} kept after the pre-filter (parsed), ${fmt(events - kept)} skipped as noise on the raw bytes (not parsed); ${fmt(runs[0]!.callEvents)} call events produced. Parse-only runs: ${parsed.map((r) => r.ms.toFixed(0)).join(', ')} ms; parse + map runs: ${runs.map((r) => r.ms.toFixed(0)).join(', ')} ms${base.length && base[0] ? `; baseline runs: ${base.map((b) => b!.ms.toFixed(0)).join(', ')} ms` : ''}.`,
    '',
    '### Method',
    '',
    `- The five recorded sessions in \`test/fixtures/ami/*.ami\` (copied from ../shared/fixtures/ami) (Asterisk 22.5, real phones), banner line removed, concatenated and repeated to about 50 MB; cut into ${CHUNK / 1024} KiB chunks (what a socket read gives) prepared before timing.`,
    '- Ours: one `AmiParser` (default noise list, `keepVarSet: [CTI_REQUEST_ID]`) fed every chunk; each message it keeps goes to one `AmiCallMapper.map` (parse + map), or is only counted (parse only). Messages/s = messages kept (parsed) / wall time, in one thread (one core). One warm-up pass over 50 chunks of each first; then the two alternate, a fresh parser (and mapper) per run.',
    '- Baseline: `asterisk-ami-events-stream` (the stream `asterisk-ami-client` pipes the socket into), its readable side drained, its `amiEvent` listener applying the same filter by name and giving the kept events (as `[key, value]` pairs) to a fresh `AmiCallMapper`; the same chunks. Messages/s = messages kept / wall time.',
    '- Left out: the socket itself, the session, the database (see the AMI throughput section for those).',
    '',
    '### Machine',
    '',
    `- CPU: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores; memory ${(totalmem() / 2 ** 30).toFixed(1)} GiB; Node.js ${process.version}`,
    MARK_END,
  ].join('\n');
  const out = process.argv.indexOf('--out');
  if (out >= 0 && process.argv[out + 1]) {
    // Only this section, to the file named (BENCHMARKS.md untouched).
    writeFileSync(process.argv[out + 1]!, `${section}\n`);
    process.stdout.write(`${section}\n`);
    return;
  }
  const doc = readFileSync(OUTPUT, 'utf8');
  const start = doc.indexOf(MARK_START);
  const end = doc.indexOf(MARK_END);
  const next =
    start >= 0 && end > start
      ? doc.slice(0, start) + section + doc.slice(end + MARK_END.length)
      : `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(OUTPUT, next);
  process.stdout.write(`${section}\n`);
}

main();
