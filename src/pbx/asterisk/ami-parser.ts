/**
 * A streaming parser for the Asterisk Manager Interface (AMI) wire format.
 *
 * Decision: we use our own parser rather than the one inside `asterisk-ami-client@1.1.5` (the
 * design card's choice; last release 2018), because of what `asterisk-ami-parser.compare.spec.ts`
 * establishes, executably, on the recorded fixtures and on synthetic messages:
 * - it returns each message as a plain object keyed by header name, so repeated headers (several
 *   `ChanVariable`, the `Variable` lines of a `VarSet`/`UserEvent`) collapse to the LAST value;
 * - it trims every value, so values with leading or trailing blanks come out changed: the
 *   recorded `VarSet` of `RTPAUDIOQOSLOSS`/`RTPAUDIOQOSRTT`/`RTPAUDIOQOSMES` (values starting with
 *   spaces) do not round-trip; values containing ": " survive (it re-joins on ":");
 * - the banner is not a message of its own: it is glued to, and stripped from, the first response;
 * - it allocates per message: a generator, a `Buffer.concat` of everything pending on every
 *   chunk (quadratic when a message arrives in many small chunks), a string, several regular
 *   expressions, an array per line; and it has no limit on line or message size and no way to
 *   skip noise before building the object. The benchmark (`bench/ami-parse.ts`) measures it
 *   side by side with this parser.
 * So: this parser keeps every header in order (repeated ones too), splits a line only at its
 * FIRST ": " and keeps the value byte for byte, reports the banner, skips noise events on the raw
 * bytes, and skips malformed or oversized messages with a warning and carries on.
 *
 * Wire format: an optional banner line (`Asterisk Call Manager/<version>\r\n`) sent on
 * connect, then messages made of `Key: Value\r\n` lines, each message ended by an empty line
 * (`\r\n\r\n`). Input arrives in arbitrary chunks (split anywhere, even inside a `\r\n`).
 */

/** One AMI message: its header lines in order, repeated keys kept. */
export type AmiFields = Array<[key: string, value: string]>;

export type AmiWarningCode = 'line-without-colon' | 'line-too-long' | 'message-too-long';

export interface AmiWarning {
  code: AmiWarningCode;
  message: string;
  /** The beginning of the offending message (up to 120 characters), for the log. */
  sample: string;
}

export interface AmiParserOptions {
  onMessage: (fields: AmiFields) => void;
  onBanner?: (banner: string) => void;
  onWarning?: (warning: AmiWarning) => void;
  /**
   * Events to drop before any object is built (decided on the raw bytes of the first line).
   * Defaults to `AMI_NOISE_EVENTS`; pass an empty list to keep everything.
   */
  skipEvents?: readonly string[];
  /**
   * Channel variables whose `VarSet` is kept even when `VarSet` is skipped (e.g. the variable
   * carrying our call id on a click-to-call). Decided on the raw bytes too.
   */
  keepVarSet?: readonly string[];
  /** Longest line accepted, in bytes (default 64 KiB). */
  maxLineBytes?: number;
  /** Largest message accepted, in bytes (default 1 MiB). */
  maxMessageBytes?: number;
}

/**
 * Events a CTI has no use for, as seen in the recorded sessions: dialplan and variable traces,
 * RTCP reports, device states, caller-id and connected-line updates (the events we use carry the
 * same numbers), dial progress (`DialBegin`/`DialEnd` suffice), hangup requests (`Hangup`
 * suffices), bridge lifecycle apart from `BridgeEnter`, channel states and security events.
 */
export const AMI_NOISE_EVENTS: readonly string[] = [
  'VarSet',
  'Newexten',
  'RTCPSent',
  'RTCPReceived',
  'DeviceStateChange',
  'NewConnectedLine',
  'NewCallerid',
  'DialState',
  'Newstate',
  'HangupRequest',
  'SoftHangupRequest',
  'BridgeCreate',
  'BridgeDestroy',
  'BridgeLeave',
  'SuccessfulAuth',
];

const CR = 13;
const LF = 10;
const TERMINATOR = Buffer.from('\r\n\r\n', 'latin1');
const EVENT_PREFIX = Buffer.from('Event: ', 'latin1');
const VARSET = Buffer.from('VarSet', 'latin1');
const BANNER_PREFIX = 'Asterisk Call Manager/';
const DEFAULT_MAX_LINE = 64 * 1024;
const DEFAULT_MAX_MESSAGE = 1024 * 1024;

export class AmiParser {
  /** Messages emitted, events skipped as noise, messages skipped as malformed. */
  readonly stats = { messages: 0, skipped: 0, malformed: 0 };

  private readonly onMessage: (fields: AmiFields) => void;
  private readonly onBanner?: (banner: string) => void;
  private readonly onWarning?: (warning: AmiWarning) => void;
  private readonly maxLine: number;
  private readonly maxMessage: number;
  /** Noise event names as bytes, bucketed by length, compared without allocating. */
  private readonly noise = new Map<number, Buffer[]>();
  private readonly keepVarSet: Buffer[];

  private awaitingBanner = true;
  /** Bytes of an incomplete message (or banner), in arrival order. */
  private parts: Buffer[] = [];
  private partsLength = 0;
  /** The last (up to 3) bytes received, to find a terminator split between chunks. */
  private tail: Buffer = Buffer.alloc(0);
  /** Bytes since the last LF of the incomplete message. */
  private lineLength = 0;
  /** Dropping an oversized message until its terminator. */
  private discarding = false;

  constructor(options: AmiParserOptions) {
    this.onMessage = options.onMessage;
    this.onBanner = options.onBanner;
    this.onWarning = options.onWarning;
    this.maxLine = options.maxLineBytes ?? DEFAULT_MAX_LINE;
    this.maxMessage = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE;
    for (const name of options.skipEvents ?? AMI_NOISE_EVENTS) {
      const bytes = Buffer.from(name, 'latin1');
      const bucket = this.noise.get(bytes.length);
      if (bucket) bucket.push(bytes);
      else this.noise.set(bytes.length, [bytes]);
    }
    this.keepVarSet = (options.keepVarSet ?? []).map((v) => Buffer.from(`\r\nVariable: ${v}\r\n`, 'latin1'));
  }

  /** Feeds the next bytes off the socket. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.awaitingBanner) {
      const rest = this.readBanner(chunk);
      if (rest === null) return;
      chunk = rest;
      if (chunk.length === 0) return;
    }
    let offset = 0;
    if (this.partsLength > 0 || this.discarding) {
      const end = this.findTerminator(chunk);
      if (end < 0) {
        this.append(chunk);
        return;
      }
      if (this.discarding) {
        this.discarding = false;
      } else {
        this.parts.push(chunk.subarray(0, end));
        const message = Buffer.concat(this.parts, this.partsLength + end);
        this.handle(message, 0, message.length - 4);
      }
      this.resetPending();
      offset = end;
    }
    for (;;) {
      const at = chunk.indexOf(TERMINATOR, offset);
      if (at < 0) break;
      this.handle(chunk, offset, at);
      offset = at + 4;
    }
    if (offset < chunk.length) this.append(chunk.subarray(offset));
  }

  /** The connection closed: anything incomplete is dropped (returns its size in bytes). */
  end(): number {
    const dropped = this.partsLength;
    this.resetPending();
    this.discarding = false;
    return dropped;
  }

  /** A new connection: expect a banner again and forget anything incomplete. */
  reset(): void {
    this.end();
    this.awaitingBanner = true;
  }

  /** Reads the banner line; returns the bytes after it, or null while it is incomplete. */
  private readBanner(chunk: Buffer): Buffer | null {
    const data = this.parts.length ? Buffer.concat([...this.parts, chunk]) : chunk;
    const eol = data.indexOf('\r\n');
    if (eol < 0) {
      if (data.length > this.maxLine) {
        // Not a banner: parse it as messages.
        this.parts = [];
        this.partsLength = 0;
        this.awaitingBanner = false;
        return data;
      }
      this.parts = [data];
      this.partsLength = data.length;
      return null;
    }
    this.parts = [];
    this.partsLength = 0;
    this.awaitingBanner = false;
    const line = data.toString('utf8', 0, eol);
    if (line.startsWith(BANNER_PREFIX)) {
      this.onBanner?.(line);
      return data.subarray(eol + 2);
    }
    return data;
  }

  /** Where the first terminator ends in `chunk` (counting one that began in earlier bytes), or -1. */
  private findTerminator(chunk: Buffer): number {
    const t = this.tail.length;
    if (t > 0) {
      const probe = Buffer.concat([this.tail, chunk.subarray(0, 3)]);
      const at = probe.indexOf(TERMINATOR);
      if (at >= 0) return at + 4 - t;
    }
    const at = chunk.indexOf(TERMINATOR);
    return at < 0 ? -1 : at + 4;
  }

  /** Keeps bytes of an incomplete message, enforcing the size limits. */
  private append(bytes: Buffer): void {
    this.updateTail(bytes);
    if (this.discarding) return;
    const lf = bytes.lastIndexOf(LF);
    this.lineLength = lf < 0 ? this.lineLength + bytes.length : bytes.length - lf - 1;
    this.partsLength += bytes.length;
    // Copied: the caller may reuse its buffer, and a slice would pin a whole socket chunk.
    this.parts.push(Buffer.from(bytes));
    // The line's \r may be the last byte so far: it does not count.
    const line = this.lineLength - (bytes[bytes.length - 1] === CR ? 1 : 0);
    if (line > this.maxLine) this.discard('line-too-long', `a line longer than ${this.maxLine} bytes`);
    else if (this.partsLength > this.maxMessage)
      this.discard('message-too-long', `a message larger than ${this.maxMessage} bytes`);
  }

  private updateTail(bytes: Buffer): void {
    if (bytes.length >= 3) this.tail = Buffer.from(bytes.subarray(bytes.length - 3));
    else this.tail = Buffer.concat([this.tail, bytes]).subarray(-3);
  }

  private discard(code: AmiWarningCode, what: string): void {
    const sample = Buffer.concat(this.parts).toString('utf8', 0, 120);
    this.warn(code, `skipped ${what}`, sample);
    const tail = this.tail;
    this.resetPending();
    this.tail = tail;
    this.discarding = true;
  }

  private resetPending(): void {
    this.parts = [];
    this.partsLength = 0;
    this.lineLength = 0;
    this.tail = Buffer.alloc(0);
  }

  private warn(code: AmiWarningCode, message: string, sample: string): void {
    this.stats.malformed++;
    this.onWarning?.({ code, message, sample });
  }

  /** One complete message: bytes [start, end) of `buf`, without its terminator. */
  private handle(buf: Buffer, start: number, end: number): void {
    // Stray empty lines between messages.
    while (start + 1 < end && buf[start] === CR && buf[start + 1] === LF) start += 2;
    if (start >= end) return;
    if (end - start > this.maxMessage) {
      this.warn(
        'message-too-long',
        `skipped a message larger than ${this.maxMessage} bytes`,
        buf.toString('utf8', start, start + 120),
      );
      return;
    }
    if (this.isNoise(buf, start, end)) {
      this.stats.skipped++;
      return;
    }
    if (end - start > this.maxLine && this.hasLongLine(buf, start, end)) {
      this.warn(
        'line-too-long',
        `skipped a message with a line longer than ${this.maxLine} bytes`,
        buf.toString('utf8', start, start + 120),
      );
      return;
    }
    const text = buf.toString('utf8', start, end);
    const fields: AmiFields = [];
    let pos = 0;
    const length = text.length;
    while (pos <= length) {
      let eol = text.indexOf('\r\n', pos);
      if (eol < 0) eol = length;
      const colon = text.indexOf(': ', pos);
      if (colon >= 0 && colon < eol) {
        fields.push([text.slice(pos, colon), text.slice(colon + 2, eol)]);
      } else if (eol > pos && text.charCodeAt(eol - 1) === 58 /* ':' */ && eol - 1 > pos) {
        // `Key:` at the end of a line: an empty value.
        fields.push([text.slice(pos, eol - 1), '']);
      } else {
        this.warn(
          'line-without-colon',
          `skipped a message with a line without ": " (${JSON.stringify(text.slice(pos, Math.min(eol, pos + 60)))})`,
          text.slice(0, 120),
        );
        return;
      }
      pos = eol + 2;
    }
    this.stats.messages++;
    this.onMessage(fields);
  }

  private isNoise(buf: Buffer, start: number, end: number): boolean {
    if (this.noise.size === 0 || end - start <= 7 || buf.compare(EVENT_PREFIX, 0, 7, start, start + 7) !== 0)
      return false;
    const nameStart = start + 7;
    let nameEnd = buf.indexOf(CR, nameStart);
    if (nameEnd < 0 || nameEnd > end) nameEnd = end;
    const bucket = this.noise.get(nameEnd - nameStart);
    if (!bucket) return false;
    for (const name of bucket) {
      if (buf.compare(name, 0, name.length, nameStart, nameEnd) === 0) {
        if (this.keepVarSet.length > 0 && name.equals(VARSET)) {
          for (const needle of this.keepVarSet) {
            const at = buf.indexOf(needle, nameEnd);
            // The needle ends with \r\n, so the variable line must not be the message's last.
            if (at >= 0 && at + needle.length <= end + 2) return false;
          }
        }
        return true;
      }
    }
    return false;
  }

  private hasLongLine(buf: Buffer, start: number, end: number): boolean {
    let pos = start;
    while (pos < end) {
      let eol = buf.indexOf(LF, pos);
      if (eol < 0 || eol > end) eol = end;
      if (eol - pos > this.maxLine + 1) return true;
      pos = eol + 1;
    }
    return false;
  }
}

/** The first value of a header, or undefined. */
export function amiHeader(fields: AmiFields, key: string): string | undefined {
  for (let i = 0; i < fields.length; i++) if (fields[i]![0] === key) return fields[i]![1];
  return undefined;
}

/** Every value of a (repeated) header, in order. */
export function amiHeaders(fields: AmiFields, key: string): string[] {
  const out: string[] = [];
  for (const [k, v] of fields) if (k === key) out.push(v);
  return out;
}
