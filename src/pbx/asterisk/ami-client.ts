import { randomBytes } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import { AmiParser, amiHeader, type AmiFields } from './ami-parser.js';

/**
 * The AMI transport: one TCP connection to one Asterisk, logged in, kept alive and re-established
 * when it fails. Plain class: no Nest, no database; what the events mean is the caller's business
 * (see `ami-call-mapper.ts`).
 *
 * Protocol facts relied on (Asterisk documentation):
 * - Messages, the first line says what it is (`Action:` from us, `Response:` / `Event:` from
 *   Asterisk), a blank line ends each:
 *   https://docs.asterisk.org/Configuration/Interfaces/Asterisk-Manager-Interface-AMI/AMI-Command-Syntax/
 * - Login (`Username`, `Secret`, `Events: on | off | system,call,log,...`); a wrong secret gets
 *   `Response: Error` / `Message: Authentication failed` and Asterisk closes the socket:
 *   https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/AMI_Actions/Login/
 *   https://docs.asterisk.org/Asterisk_20_Documentation/API_Documentation/AMI_Actions/Events/
 * - Ping elicits a Pong response, "used to keep the manager connection open":
 *   https://docs.asterisk.org/Asterisk_20_Documentation/API_Documentation/AMI_Actions/Ping
 * - ActionID: "ActionID for this transaction. Will be returned" on the response and on every event
 *   of the action's list; a list action answers `Response: Success` + `EventList: start`, then its
 *   events, then one event with `EventList: Complete` (CoreShowChannel… CoreShowChannelsComplete):
 *   https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/AMI_Actions/CoreShowChannels
 *   https://docs.asterisk.org/Certified-Asterisk_22.8_Documentation/API_Documentation/AMI_Events/CoreShowChannelsComplete
 * - Async events may carry the ActionID of the action that caused them (OriginateResponse echoes
 *   the Originate's): they are events, not part of the action's answer:
 *   https://docs.asterisk.org/Asterisk_20_Documentation/API_Documentation/AMI_Events/OriginateResponse
 *
 * Decisions:
 * - Event mask: Login sends `Events: system,call,dialplan` (`AMI_EVENT_MASK`), not `on`. The
 *   events the call mapper reads are of class CALL (Newchannel, DialBegin, DialEnd, BridgeEnter,
 *   Hangup, OriginateResponse: `Privilege: call,all` in the recorded sessions) and DIALPLAN
 *   (VarSet, which carries our request id on a click-to-call); SYSTEM brings FullyBooted /
 *   Shutdown / Reload. Left out: REPORTING (RTCPSent/RTCPReceived, the bulk of a call's bytes),
 *   SECURITY (SuccessfulAuth… for every login), AGENT, USER, LOG, VERBOSE, CDR/CEL. The manager
 *   user's `read=` permissions still apply on top of the mask. Override with `eventMask`.
 * - onConnected: called after every successful login with the state already 'connected' (so it
 *   can send actions, e.g. a CoreShowChannels resync) and awaited; events that arrive meanwhile
 *   are BUFFERED (with their arrival time) and delivered in order once it settles, so a resync
 *   snapshot is always applied before the events that followed it. The list events of a
 *   `listAction` are never buffered: they go to its promise. If it throws or rejects: a warning
 *   (`on-connected-failed`), and the buffered events are delivered all the same. If the
 *   connection drops first, what was buffered is delivered at once. Past `maxBufferedEvents`
 *   (100 000 by default) buffered events: a warning, and the socket is no longer read until
 *   onConnected settles (memory bound, the order kept; see back-pressure below).
 * - Timeouts: `connectTimeoutMs` covers the whole handshake (TCP connect + Login response);
 *   `actionTimeoutMs` each action (a list action: until its Complete event).
 * - Backoff: `min(maxMs, initialMs · factor^n) · (1 ± jitter)`, clamped to [0, maxMs]; n resets to
 *   0 after a successful login. The delay is in the state's reason (`…; retrying in N ms`) and
 *   in `nextRetryMs`.
 * - Authentication failure: state 'failed', reason `authentication failed: <Message>`, one new
 *   attempt every `authRetryMs` (the state stays 'failed' during it unless another error occurs).
 * - Dead peer: when nothing was received for `pingIntervalMs`, a Ping; no answer within
 *   `pingTimeoutMs`: the socket is destroyed and we reconnect.
 * - Callbacks (onEvent, onState, onConnected, onWarning) never break the connection: what they
 *   throw is caught and reported as a warning (`handler-error`).
 * - Back-pressure: pause() stops reading the socket (TCP flow control then holds Asterisk's
 *   writes) until resume(); a connection made while paused is paused right after its Login is
 *   answered. The keepalive Ping is suspended meanwhile (the silence is ours, not the peer's), and
 *   actions get no answer (they time out). Asterisk drops a manager session it cannot write to for
 *   `writetimeout` (manager.conf, 100 ms by default): a long pause ends in a reconnect and a resync.
 */

export type AmiConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'failed' | 'stopped';

/** `Events:` sent at Login: the classes that carry the call events we use (see above). */
export const AMI_EVENT_MASK = 'system,call,dialplan';

export interface AmiBackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** ± fraction of the delay (0.3: between 70 % and 130 %). */
  jitter?: number;
}

export interface AmiClientWarning {
  code: string;
  message: string;
  sample?: string;
}

export interface AmiClientOptions {
  host: string;
  port: number;
  username: string;
  secret: string;
  /** Events the parser drops on the raw bytes (default: the parser's AMI_NOISE_EVENTS). */
  skipEvents?: readonly string[];
  /** VarSet events of these variables are kept although VarSet is noise (e.g. ['CTI_REQUEST_ID']). */
  keepVarSet?: readonly string[];
  /** `Events:` at Login (default AMI_EVENT_MASK). */
  eventMask?: string;
  /** Send a Ping when nothing was received for this long (default 10 000). */
  pingIntervalMs?: number;
  /** No answer to that Ping within this: the peer is dead, reconnect (default 5 000). */
  pingTimeoutMs?: number;
  /** TCP connect + Login response (default 5 000). */
  connectTimeoutMs?: number;
  /** Default timeout of an action (default 10 000). */
  actionTimeoutMs?: number;
  /** Reconnection delays (defaults 500, 30 000, 2, 0.3). */
  backoff?: AmiBackoffOptions;
  /** After an authentication failure, retry after this (default 60 000). */
  authRetryMs?: number;
  /** Events buffered while onConnected runs past which the socket is paused (default 100 000). */
  maxBufferedEvents?: number;
  /** Every event not consumed by a list action, with its arrival time. */
  onEvent: (fields: AmiFields, receivedAt: Date) => void;
  /** Every change of state or reason. */
  onState?: (state: AmiConnectionState, reason?: string) => void;
  /** After each successful login; events arriving until it settles are buffered (see above). */
  onConnected?: () => Promise<void> | void;
  /** Malformed input (skipped, connection kept), a callback that threw, a failed onConnected. */
  onWarning?: (warning: AmiClientWarning) => void;
  /** For tests: the random source of the backoff jitter (default Math.random). */
  random?: () => number;
}

/** Asterisk answered the action with `Response: Error` (or cancelled its list). */
export class AmiActionError extends Error {
  override readonly name = 'AmiActionError';
  /** The Response (or list event) received. */
  readonly fields: AmiFields;
  /** Asterisk's `Message`, if any. */
  readonly amiMessage: string | undefined;

  constructor(action: string, fields: AmiFields) {
    const message = amiHeader(fields, 'Message');
    super(`AMI ${action} failed: ${message ?? 'error'}`);
    this.fields = fields;
    this.amiMessage = message;
  }
}

export type AmiUnavailableCause = 'not-connected' | 'disconnected' | 'timeout';

/** No answer can come: not connected, the connection dropped while waiting, or a timeout. */
export class AmiUnavailableError extends Error {
  override readonly name = 'AmiUnavailableError';
  readonly kind: AmiUnavailableCause;

  constructor(message: string, kind: AmiUnavailableCause) {
    super(message);
    this.kind = kind;
  }
}

/** The n-th (from 0) reconnection delay: exponential, capped, with ± jitter, clamped to [0, maxMs]. */
export function backoffDelay(
  attempt: number,
  backoff: Required<AmiBackoffOptions>,
  random: () => number = Math.random,
): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * Math.pow(backoff.factor, attempt));
  const jittered = base * (1 + backoff.jitter * (2 * random() - 1));
  return Math.round(Math.min(backoff.maxMs, Math.max(0, jittered)));
}

interface Pending {
  action: string;
  timer?: NodeJS.Timeout;
  /** Set for a list action: what was collected so far. */
  list?: { response?: AmiFields; events: AmiFields[] };
  login?: boolean;
  resolve: (value: AmiFields | { response: AmiFields; events: AmiFields[] }) => void;
  reject: (error: Error) => void;
}

interface Session {
  socket: Socket;
  parser: AmiParser;
  banner?: string;
  loggedIn: boolean;
  closed: boolean;
  /** Why we closed it ourselves (takes precedence over the socket's error). */
  closeReason?: string;
  /** Asterisk's Message when the login was refused. */
  authFailed?: string;
  error?: NodeJS.ErrnoException;
  handshakeTimer?: NodeJS.Timeout;
  pingTimer?: NodeJS.Timeout;
  logoffTimer?: NodeJS.Timeout;
  lastReceived: number;
  pending: Map<string, Pending>;
  /** stop() calls waiting for this socket to close. */
  closeWaiters: Array<() => void>;
  /** Events held while onConnected runs. */
  buffer: Array<[AmiFields, Date]> | null;
  /** Reading paused because the buffer is full (until onConnected settles). */
  bufferFull: boolean;
}

const MAX_BUFFERED_EVENTS = 100_000;
/** How long stop() waits for Asterisk to close after Logoff before destroying the socket. */
const LOGOFF_GRACE_MS = 1_000;
const BAD_KEY = /[\r\n:]/;
const BAD_VALUE = /[\r\n]/;

export class AmiClient {
  private readonly options: AmiClientOptions;
  private readonly backoff: Required<AmiBackoffOptions>;
  private readonly pingIntervalMs: number;
  private readonly pingTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly actionTimeoutMs: number;
  private readonly authRetryMs: number;
  private readonly random: () => number;
  private readonly idPrefix = `sb-${randomBytes(4).toString('hex')}-`;
  private nextId = 0;

  private currentState: AmiConnectionState = 'stopped';
  private currentReason: string | undefined = 'not started';
  private retryDelay: number | undefined;
  private started = false;
  private stopping = false;
  private attempt = 0;
  private session: Session | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private paused = false;

  constructor(options: AmiClientOptions) {
    this.options = options;
    const b = options.backoff ?? {};
    this.backoff = {
      initialMs: b.initialMs ?? 500,
      maxMs: b.maxMs ?? 30_000,
      factor: b.factor ?? 2,
      jitter: b.jitter ?? 0.3,
    };
    this.pingIntervalMs = options.pingIntervalMs ?? 10_000;
    this.pingTimeoutMs = options.pingTimeoutMs ?? 5_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.actionTimeoutMs = options.actionTimeoutMs ?? 10_000;
    this.authRetryMs = options.authRetryMs ?? 60_000;
    this.random = options.random ?? Math.random;
    for (const [name, value] of [
      ['pingIntervalMs', this.pingIntervalMs],
      ['pingTimeoutMs', this.pingTimeoutMs],
      ['connectTimeoutMs', this.connectTimeoutMs],
      ['actionTimeoutMs', this.actionTimeoutMs],
      ['authRetryMs', this.authRetryMs],
      ['backoff.initialMs', this.backoff.initialMs],
      ['backoff.maxMs', this.backoff.maxMs],
    ] as const) {
      if (!(value > 0)) throw new RangeError(`AmiClient: ${name} must be positive`);
    }
    if (!(this.backoff.factor >= 1)) throw new RangeError('AmiClient: backoff.factor must be at least 1');
    if (!(this.backoff.jitter >= 0 && this.backoff.jitter < 1))
      throw new RangeError('AmiClient: backoff.jitter must be in [0, 1)');
    for (const [name, value] of [
      ['username', options.username],
      ['secret', options.secret],
      ['eventMask', options.eventMask ?? AMI_EVENT_MASK],
    ] as const) {
      if (BAD_VALUE.test(value)) throw new TypeError(`AmiClient: ${name} must be one line`);
    }
  }

  get state(): AmiConnectionState {
    return this.currentState;
  }

  get reason(): string | undefined {
    return this.currentReason;
  }

  /** The delay before the next connection attempt while 'reconnecting' or 'failed'. */
  get nextRetryMs(): number | undefined {
    return this.retryDelay;
  }

  /** Whether reading is paused (see pause()). */
  get isPaused(): boolean {
    return this.paused;
  }

  /** Stops reading the socket (back-pressure, see the decisions above) until resume(). */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    const session = this.session;
    if (session?.loggedIn && !session.closed) session.socket.pause();
  }

  /** Reads the socket again; the keepalive counts from now. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const session = this.session;
    if (!session || session.closed) return;
    session.lastReceived = Date.now();
    session.socket.resume();
    if (session.loggedIn) this.schedulePing(session);
  }

  /** Connects and keeps reconnecting until stop(). A no-op while already started. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    this.attempt = 0;
    this.setState('connecting', `connecting to ${this.where()}`);
    this.connect();
  }

  /** Logoff if logged in, close, no more reconnects; resolves once the socket is closed. */
  stop(): Promise<void> {
    this.started = false;
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryDelay = undefined;
    const session = this.session;
    if (!session) {
      this.setState('stopped', 'stopped');
      return Promise.resolve();
    }
    const closed = new Promise<void>((resolve) => session.closeWaiters.push(resolve));
    if (session.loggedIn && session.socket.writable && !session.logoffTimer) {
      session.closeReason ??= 'stopped';
      session.logoffTimer = setTimeout(() => session.socket.destroy(), LOGOFF_GRACE_MS);
      this.send(session, [['Action', 'Logoff']], LOGOFF_GRACE_MS).then(
        () => session.socket.end(),
        () => session.socket.destroy(),
      );
    } else if (!session.logoffTimer) {
      session.closeReason ??= 'stopped';
      session.socket.destroy();
    }
    return closed;
  }

  /**
   * Sends an action (`Action` first, our ActionID `sb-<random>-<n>` unless the fields carry one)
   * and resolves with its Response. Rejects with AmiActionError on `Response: Error`, with
   * AmiUnavailableError when not connected (at once), disconnected meanwhile, or on timeout.
   */
  action(fields: AmiFields, options: { timeoutMs?: number } = {}): Promise<AmiFields> {
    return this.request(fields, options.timeoutMs, false) as Promise<AmiFields>;
  }

  /**
   * A list action (CoreShowChannels…): resolves with its Response and the events carrying its
   * ActionID up to and including the one with `EventList: Complete`; those events are not passed
   * to onEvent. The timeout covers the whole list.
   */
  listAction(
    fields: AmiFields,
    options: { timeoutMs?: number } = {},
  ): Promise<{ response: AmiFields; events: AmiFields[] }> {
    return this.request(fields, options.timeoutMs, true) as Promise<{ response: AmiFields; events: AmiFields[] }>;
  }

  private request(fields: AmiFields, timeoutMs: number | undefined, list: boolean): Promise<unknown> {
    const session = this.session;
    if (this.currentState !== 'connected' || this.stopping || !session?.loggedIn || session.closed) {
      return Promise.reject(
        new AmiUnavailableError(
          `AMI not connected (${this.currentState}${this.currentReason ? `: ${this.currentReason}` : ''})`,
          'not-connected',
        ),
      );
    }
    return this.send(session, fields, timeoutMs ?? this.actionTimeoutMs, list);
  }

  // ---------------------------------------------------------------- connection

  private where(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  private connect(): void {
    const socket = createConnection({ host: this.options.host, port: this.options.port });
    const session: Session = {
      socket,
      parser: undefined as unknown as AmiParser,
      loggedIn: false,
      closed: false,
      lastReceived: Date.now(),
      pending: new Map(),
      closeWaiters: [],
      buffer: null,
      bufferFull: false,
    };
    session.parser = new AmiParser({
      skipEvents: this.options.skipEvents,
      keepVarSet: this.options.keepVarSet,
      onBanner: (banner) => (session.banner = banner),
      onWarning: (w) => this.warn(w.code, w.message, w.sample),
      onMessage: (fields) => this.onMessage(session, fields),
    });
    this.session = session;
    session.handshakeTimer = setTimeout(() => {
      session.handshakeTimer = undefined;
      this.abort(
        session,
        socket.connecting
          ? `no connection to ${this.where()} within ${this.connectTimeoutMs} ms`
          : `no answer to Login within ${this.connectTimeoutMs} ms`,
      );
    }, this.connectTimeoutMs);

    socket.setNoDelay(true);
    socket.on('connect', () => {
      try {
        socket.setKeepAlive(true, 30_000);
        this.login(session);
      } catch (error) {
        this.abort(session, `login failed: ${(error as Error).message}`);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      session.lastReceived = Date.now();
      try {
        session.parser.push(chunk);
      } catch (error) {
        this.warn('internal-error', `AMI input handling failed: ${(error as Error).message}`);
        this.abort(session, 'internal error while reading');
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      session.error ??= error;
    });
    socket.on('close', () => {
      try {
        this.onClose(session);
      } catch (error) {
        this.warn('internal-error', `AMI close handling failed: ${(error as Error).message}`);
      }
    });
  }

  private login(session: Session): void {
    const fields: AmiFields = [
      ['Action', 'Login'],
      ['Username', this.options.username],
      ['Secret', this.options.secret],
      ['Events', this.options.eventMask ?? AMI_EVENT_MASK],
    ];
    const id = this.newId();
    session.pending.set(id, {
      action: 'Login',
      login: true,
      resolve: () => undefined,
      reject: () => undefined,
    });
    session.socket.write(serialize(fields, id));
  }

  /** Closes the session's socket with a reason; 'close' does the rest. */
  private abort(session: Session, reason: string): void {
    if (session.closed) return;
    session.closeReason ??= reason;
    session.socket.destroy();
  }

  private onClose(session: Session): void {
    if (session.closed) return;
    session.closed = true;
    clearTimeout(session.handshakeTimer);
    clearTimeout(session.pingTimer);
    clearTimeout(session.logoffTimer);
    session.parser.end();
    const reason = session.authFailed
      ? `authentication failed: ${session.authFailed}`
      : (session.closeReason ?? describeError(session.error, this.where()) ?? this.closedBy(session));
    for (const [id, p] of session.pending) {
      session.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new AmiUnavailableError(`AMI connection lost while waiting for ${p.action}: ${reason}`, 'disconnected'));
    }
    this.flush(session);
    for (const resolve of session.closeWaiters.splice(0)) resolve();
    // A session stop() let go of while start() began a new one: nothing more to do.
    if (this.session !== session) return;
    this.session = undefined;
    if (this.stopping || !this.started) {
      this.setState('stopped', 'stopped');
      return;
    }
    if (session.authFailed) {
      this.retryDelay = this.authRetryMs;
      this.setState('failed', `${reason}; retrying in ${this.authRetryMs} ms`);
      this.scheduleConnect(this.authRetryMs);
      return;
    }
    const delay = backoffDelay(this.attempt, this.backoff, this.random);
    // Stop counting once the cap is reached: factor^attempt must not overflow.
    if (this.backoff.initialMs * Math.pow(this.backoff.factor, this.attempt) < this.backoff.maxMs) this.attempt++;
    this.retryDelay = delay;
    this.setState('reconnecting', `${reason}; retrying in ${delay} ms`);
    this.scheduleConnect(delay);
  }

  private closedBy(session: Session): string {
    if (session.loggedIn) return 'connection closed by Asterisk';
    if (session.banner !== undefined) return 'connection closed by Asterisk before the login was answered';
    return 'connection closed before the AMI banner';
  }

  private scheduleConnect(delay: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.retryDelay = undefined;
      if (this.started && !this.stopping) this.connect();
    }, delay);
  }

  private onLoggedIn(session: Session): void {
    clearTimeout(session.handshakeTimer);
    session.handshakeTimer = undefined;
    session.loggedIn = true;
    this.attempt = 0;
    this.retryDelay = undefined;
    this.schedulePing(session);
    if (this.paused) session.socket.pause();
    const onConnected = this.options.onConnected;
    if (onConnected) session.buffer = [];
    this.setState(
      'connected',
      `logged in to ${this.where()} as ${this.options.username}${session.banner ? ` (${session.banner})` : ''}`,
    );
    if (!onConnected || session.closed) return;
    new Promise<void>((resolve) => resolve(onConnected()))
      .catch((error: unknown) =>
        this.warn('on-connected-failed', `onConnected failed: ${error instanceof Error ? error.message : error}`),
      )
      .finally(() => this.flush(session));
  }

  // ---------------------------------------------------------------- keepalive

  private schedulePing(session: Session): void {
    clearTimeout(session.pingTimer);
    if (session.closed) return;
    const due = Math.max(0, session.lastReceived + this.pingIntervalMs - Date.now());
    session.pingTimer = setTimeout(() => this.pingDue(session), due);
  }

  private pingDue(session: Session): void {
    session.pingTimer = undefined;
    if (session.closed) return;
    if (this.paused) {
      // Not reading: no Pong could be seen. resume() schedules the next one.
      return;
    }
    if (session.bufferFull) {
      // Not reading until onConnected settles (then flush() reads again): look again later.
      session.pingTimer = setTimeout(() => this.pingDue(session), this.pingIntervalMs);
      return;
    }
    if (Date.now() - session.lastReceived < this.pingIntervalMs) {
      this.schedulePing(session);
      return;
    }
    this.send(session, [['Action', 'Ping']], this.pingTimeoutMs).then(
      () => this.schedulePing(session),
      (error: Error) => {
        // Paused meanwhile: the answer may sit unread in our own buffer; resume() pings again.
        if (error instanceof AmiUnavailableError && error.kind === 'timeout' && !this.paused && !session.bufferFull)
          this.abort(session, `no answer to Ping within ${this.pingTimeoutMs} ms`);
        else if (error instanceof AmiActionError) this.schedulePing(session); // it answered: alive
      },
    );
  }

  // ---------------------------------------------------------------- messages

  private send(session: Session, fields: AmiFields, timeoutMs: number, list = false): Promise<unknown> {
    const action = amiHeader(fields, 'Action');
    if (!action) return Promise.reject(new TypeError('an AMI action needs an Action field'));
    for (const [k, v] of fields) {
      if (k === '' || BAD_KEY.test(k) || BAD_VALUE.test(v))
        return Promise.reject(new TypeError(`AMI field ${JSON.stringify(k)} must be one line (key without ":")`));
    }
    const id = amiHeader(fields, 'ActionID') ?? this.newId();
    if (session.pending.has(id)) return Promise.reject(new Error(`ActionID ${id} is already waiting for an answer`));
    if (session.closed || !session.socket.writable)
      return Promise.reject(new AmiUnavailableError('AMI connection closed', 'not-connected'));
    return new Promise((resolve, reject) => {
      const pending: Pending = {
        action,
        list: list ? { events: [] } : undefined,
        resolve: resolve as Pending['resolve'],
        reject,
      };
      pending.timer = setTimeout(() => {
        if (session.pending.get(id) !== pending) return;
        session.pending.delete(id);
        reject(new AmiUnavailableError(`no answer to ${action} within ${timeoutMs} ms`, 'timeout'));
      }, timeoutMs);
      session.pending.set(id, pending);
      session.socket.write(serialize(fields, id));
    });
  }

  private onMessage(session: Session, fields: AmiFields): void {
    if (session.closed) return;
    const kind = fields[0]?.[0];
    if (kind === 'Response') this.onResponse(session, fields);
    else if (kind === 'Event') this.onAmiEvent(session, fields);
    else
      this.warn(
        'unexpected-message',
        `skipped an AMI message that is neither a Response nor an Event`,
        JSON.stringify(fields).slice(0, 120),
      );
  }

  private onResponse(session: Session, fields: AmiFields): void {
    const id = amiHeader(fields, 'ActionID');
    const pending = id === undefined ? undefined : session.pending.get(id);
    if (!pending || id === undefined) return; // late (timed out) or not ours
    const failed = amiHeader(fields, 'Response') === 'Error';
    if (pending.login) {
      session.pending.delete(id);
      if (failed) {
        session.authFailed = amiHeader(fields, 'Message') ?? 'error';
        session.socket.destroy();
      } else {
        this.onLoggedIn(session);
      }
      return;
    }
    if (failed) return this.settle(session, id, pending, new AmiActionError(pending.action, fields));
    if (pending.list) {
      pending.list.response = fields;
      // A response that announces no list (no `EventList: start`) is all there is.
      if ((amiHeader(fields, 'EventList') ?? '').toLowerCase() !== 'start')
        this.settle(session, id, pending, undefined, { response: fields, events: pending.list.events });
      return;
    }
    this.settle(session, id, pending, undefined, fields);
  }

  private onAmiEvent(session: Session, fields: AmiFields): void {
    const receivedAt = new Date();
    const id = amiHeader(fields, 'ActionID');
    if (id !== undefined) {
      const pending = session.pending.get(id);
      if (pending?.list) {
        pending.list.events.push(fields);
        const end = amiHeader(fields, 'EventList')?.toLowerCase();
        if (end === 'complete')
          this.settle(session, id, pending, undefined, {
            response: pending.list.response ?? [],
            events: pending.list.events,
          });
        else if (end !== undefined && end !== 'start')
          this.settle(session, id, pending, new AmiActionError(pending.action, fields));
        return;
      }
    }
    if (!session.loggedIn) return;
    if (session.buffer) {
      session.buffer.push([fields, receivedAt]);
      const max = this.options.maxBufferedEvents ?? MAX_BUFFERED_EVENTS;
      if (session.buffer.length >= max && !session.bufferFull) {
        // Delivering them now would put them before what onConnected is doing (a resync):
        // stop reading instead, until it settles.
        session.bufferFull = true;
        session.socket.pause();
        this.warn(
          'event-buffer-full',
          `${max} events arrived during onConnected: no longer reading the socket until it is done`,
        );
      }
      return;
    }
    this.deliver(fields, receivedAt);
  }

  private settle(
    session: Session,
    id: string,
    pending: Pending,
    error?: Error,
    value?: Pending['resolve'] extends (v: infer V) => void ? V : never,
  ): void {
    session.pending.delete(id);
    clearTimeout(pending.timer);
    if (error) pending.reject(error);
    else pending.resolve(value!);
  }

  private flush(session: Session): void {
    const buffer = session.buffer;
    if (!buffer) return;
    session.buffer = null;
    for (const [fields, receivedAt] of buffer) this.deliver(fields, receivedAt);
    if (session.bufferFull) {
      session.bufferFull = false;
      if (!session.closed && !this.paused) {
        session.lastReceived = Date.now();
        session.socket.resume();
      }
    }
  }

  // ---------------------------------------------------------------- callbacks

  private deliver(fields: AmiFields, receivedAt: Date): void {
    try {
      this.options.onEvent(fields, receivedAt);
    } catch (error) {
      this.warn('handler-error', `onEvent threw: ${(error as Error)?.message ?? error}`);
    }
  }

  private setState(state: AmiConnectionState, reason: string | undefined): void {
    if (state === this.currentState && reason === this.currentReason) return;
    this.currentState = state;
    this.currentReason = reason;
    try {
      this.options.onState?.(state, reason);
    } catch (error) {
      this.warn('handler-error', `onState threw: ${(error as Error)?.message ?? error}`);
    }
  }

  private warn(code: string, message: string, sample?: string): void {
    try {
      this.options.onWarning?.(sample === undefined ? { code, message } : { code, message, sample });
    } catch {
      // A warning handler that throws has nobody left to tell.
    }
  }

  private newId(): string {
    return `${this.idPrefix}${++this.nextId}`;
  }
}

/** `Action` first, then `ActionID`, then the other fields in order. */
function serialize(fields: AmiFields, actionId: string): string {
  let out = `Action: ${amiHeader(fields, 'Action')}\r\nActionID: ${actionId}\r\n`;
  for (const [k, v] of fields) if (k !== 'Action' && k !== 'ActionID') out += `${k}: ${v}\r\n`;
  return `${out}\r\n`;
}

function describeError(error: NodeJS.ErrnoException | undefined, where: string): string | undefined {
  if (!error) return undefined;
  switch (error.code) {
    case 'ECONNREFUSED':
      return `connection refused by ${where}`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where} unreachable (${error.code})`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host not found (${where})`;
    case 'ETIMEDOUT':
      return `connection to ${where} timed out`;
    case 'ECONNRESET':
      return 'connection reset by Asterisk';
    case 'EPIPE':
      return 'connection closed by Asterisk';
    default:
      return `connection error: ${error.message}`;
  }
}
