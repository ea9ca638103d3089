import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { AmiCallMapper } from '../src/pbx/asterisk/ami-call-mapper.js';
import { AmiParser } from '../src/pbx/asterisk/ami-parser.js';

/**
 * AMI parsing + normalisation throughput on one core: the recorded sessions' bytes (banner
 * removed) concatenated to about 50 MB, fed in 64 KiB chunks to AmiParser (noise pre-filter on,
 * our VarSet kept) and every message kept to AmiCallMapper; and the parser alone on the same
 * chunks (parse only). Baseline in the same run: the parser inside asterisk-ami-client@1.1.5
 * (asterisk-ami-events-stream) on the same bytes and chunks. Writes its section of
 * BENCHMARKS.md (or, with `--out FILE`, that file only).   npm run bench:ami
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

function theirs(input: Buffer[]): { ms: number; parsed: number } | null {
  let Stream: new () => NodeJS.EventEmitter & { write(c: Buffer): boolean };
  try {
    const req = createRequire(createRequire(import.meta.url).resolve('asterisk-ami-client'));
    Stream = createRequire(req.resolve('asterisk-ami-connector'))('asterisk-ami-events-stream');
  } catch {
    return null;
  }
  let parsed = 0;
  const s = new Stream();
  for (const n of ['amiEvent', 'amiResponse']) s.on(n, () => parsed++);
  s.on('data', () => undefined);
  const t0 = performance.now();
  for (const c of input) s.write(c);
  return { ms: performance.now() - t0, parsed };
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
  const parseRate = events / (median(parsed.map((r) => r.ms)) / 1000);
  const mapShare = 1 - median(parsed.map((r) => r.ms)) / median(runs.map((r) => r.ms));
  const base = theirs(input.slice(0, 50)) ? Array.from({ length: 3 }, () => theirs(input)) : [];
  const oursRate = events / (median(runs.map((r) => r.ms)) / 1000);
  const baseMs = base.every((b) => b) ? median(base.map((b) => b!.ms)) : null;
  const baseRate = baseMs ? events / (baseMs / 1000) : null;
  const met = oursRate >= TARGET;
  const parseMet = parseRate >= TARGET;
  const section = [
    MARK_START,
    '## AMI parsing and normalisation throughput',
    '',
    `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} by \`npm run bench:ami\` (\`bench/ami-parse.ts\`); re-running replaces this section.`,
    '',
    `**Target** (from the issue): at least ${fmt(TARGET)} events/s parsed on one core.`,
    '',
    `- **Parsing and normalisation** (AmiParser + noise pre-filter + AmiCallMapper): **${fmt(oursRate)} events/s** (median of ${ROUNDS} runs, ${(bytes.length / 1e6 / (median(runs.map((r) => r.ms)) / 1000)).toFixed(0)} MB/s): target **${met ? 'met' : 'NOT met'}**.`,
    `- **Parsing alone** (AmiParser + noise pre-filter, the messages kept only counted): **${fmt(parseRate)} events/s** (median of ${ROUNDS} runs, ${(bytes.length / 1e6 / (median(parsed.map((r) => r.ms)) / 1000)).toFixed(0)} MB/s): target **${parseMet ? 'met' : 'NOT met'}**. The mapper takes ${Math.round(Math.max(0, mapShare) * 100)} % of the time of the two together.`,
    baseRate
      ? `- **asterisk-ami-client@1.1.5's parser** (asterisk-ami-events-stream, parse only, no filter, no mapping), same bytes, same chunks, same run: **${fmt(baseRate)} events/s** (median of 3): ours is ${(oursRate / baseRate).toFixed(1)}× faster.`
      : '- asterisk-ami-client@1.1.5 could not be loaded: no baseline.',
    `- Per run: ${fmt(events)} events (${(bytes.length / 1e6).toFixed(1)} MB); ${fmt(runs[0]!.kept)} kept after the pre-filter, ${fmt(events - runs[0]!.kept)} skipped as noise; ${fmt(runs[0]!.callEvents)} call events produced. Parse-only runs: ${parsed.map((r) => r.ms.toFixed(0)).join(', ')} ms; parse + map runs: ${runs.map((r) => r.ms.toFixed(0)).join(', ')} ms${base.length && base[0] ? `; baseline runs: ${base.map((b) => b!.ms.toFixed(0)).join(', ')} ms` : ''}.`,
    '',
    '### Method',
    '',
    `- The five recorded sessions in \`test/fixtures/ami/*.ami\` (copied from ../shared/fixtures/ami) (Asterisk 22.5, real phones), banner line removed, concatenated and repeated to about 50 MB; cut into ${CHUNK / 1024} KiB chunks (what a socket read gives) prepared before timing.`,
    '- Ours: one `AmiParser` (default noise list, `keepVarSet: [CTI_REQUEST_ID]`) fed every chunk; each message it keeps goes to one `AmiCallMapper.map` (parse + map), or is only counted (parse only). Events/s = events on the wire (kept or skipped) / wall time, in one thread (one core). One warm-up pass over 50 chunks of each first; then the two alternate, a fresh parser (and mapper) per run.',
    '- Baseline: `asterisk-ami-events-stream` (the stream `asterisk-ami-client` pipes the socket into) with its `amiEvent`/`amiResponse` listeners counting and its readable side drained; the same chunks.',
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
