import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AmiParser, amiHeader, type AmiFields } from '../../src/pbx/asterisk/ami-parser.js';

/**
 * The recorded AMI sessions (test/fixtures/ami, copied from ../shared/fixtures/ami) and an AMI simulator built on them: a TCP
 * server on 127.0.0.1 that sends the banner, answers Login / Ping / CoreShowChannels / Originate /
 * Hangup / PlayDTMF with the recorded responses (echoing the ActionID it receives), replays a
 * recorded event stream with its timing compressed, and can drop connections or send malformed
 * bytes on demand. Opt-in, for the application's tests: what CoreShowChannels lists
 * (setChannels, liveChannels) and a recorded session played as a script, each action the
 * application sends answered with what followed it in the recording (script).
 */

const FIXTURES_BESIDE = new URL('../fixtures/ami/', import.meta.url);
/** Compiled (dist/test/support/, for the benchmarks), the fixtures are still those of the sources. */
export const AMI_FIXTURES_DIR = fileURLToPath(
  existsSync(FIXTURES_BESIDE) ? FIXTURES_BESIDE : new URL('../../../test/fixtures/ami/', import.meta.url),
);
export const AMI_FIXTURE_NAMES = [
  'inbound-answered',
  'inbound-unanswered',
  'inbound-abandoned',
  'click-to-call',
  'originate-failures',
] as const;
export type AmiFixtureName = (typeof AMI_FIXTURE_NAMES)[number];

export interface AmiRecord {
  t: number;
  sent?: AmiFields;
  fields?: AmiFields;
  banner?: string;
}

export interface AmiFixture {
  name: AmiFixtureName;
  /** The raw bytes received, as recorded. */
  ami: Buffer;
  records: AmiRecord[];
  banner: string;
  /** Every message received, in order, with its time. */
  received: Array<{ t: number; fields: AmiFields }>;
  /** Every action sent, in order, with its time. */
  sent: Array<{ t: number; fields: AmiFields }>;
}

export function loadAmiFixture(name: AmiFixtureName): AmiFixture {
  const ami = readFileSync(`${AMI_FIXTURES_DIR}${name}.ami`);
  const records = readFileSync(`${AMI_FIXTURES_DIR}${name}.jsonl`, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AmiRecord);
  const banner = records.find((r) => r.banner !== undefined)?.banner;
  if (!banner) throw new Error(`${name}: no banner record`);
  return {
    name,
    ami,
    records,
    banner,
    received: records.filter((r) => r.fields).map((r) => ({ t: r.t, fields: r.fields! })),
    sent: records.filter((r) => r.sent).map((r) => ({ t: r.t, fields: r.sent! })),
  };
}

/** Every received record and sent action of a fixture, in time order (sent first on a tie). */
export function timeline(f: AmiFixture): Array<{ t: number; sent?: AmiFields; fields?: AmiFields }> {
  const items: Array<{ t: number; order: number; i: number; sent?: AmiFields; fields?: AmiFields }> = [
    ...f.sent.map((s, i) => ({ t: s.t, order: 0, i, sent: s.fields })),
    ...f.received.map((r, i) => ({ t: r.t, order: 1, i, fields: r.fields })),
  ];
  items.sort((a, b) => a.t - b.t || a.order - b.order || a.i - b.i);
  return items.map(({ t, sent, fields }) => (sent ? { t, sent } : { t, fields }));
}

export function serializeAmi(fields: AmiFields): string {
  let out = '';
  for (const [k, v] of fields) out += `${k}: ${v}\r\n`;
  return `${out}\r\n`;
}

const isEvent = (fields: AmiFields) => fields[0]?.[0] === 'Event';

/** The events of a fixture's stream worth replaying: not the login's, not an action's list. */
export function replayableEvents(f: AmiFixture): Array<{ t: number; fields: AmiFields }> {
  return f.received.filter(
    (r) => isEvent(r.fields) && r.t > 0 && !String(amiHeader(r.fields, 'Event')).startsWith('CoreShowChannel'),
  );
}

const RECORDED_ID = /^\d{10}\.\d+$/;
const RECORDED_UUID = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)[0-9a-f]{12}$/;

/**
 * An event of a recorded call made into the event of another call `k` (for many distinct calls
 * from one recording): every Uniqueid-like value (`1795235277.3`) gets the epoch part `epoch`,
 * every UUID (bridge ids) ends with `k`. The rest (channels, numbers) is kept.
 */
export function renumberEvent(fields: AmiFields, epoch: number, k: number): AmiFields {
  return fields.map(([key, value]): [string, string] => {
    if (RECORDED_ID.test(value)) return [key, `${epoch}${value.slice(value.indexOf('.'))}`];
    const uuid = RECORDED_UUID.exec(value);
    if (uuid) return [key, `${uuid[1]}${k.toString(16).padStart(12, '0')}`];
    return [key, value];
  });
}

export interface AmiSimulatorOptions {
  username?: string;
  secret?: string;
  /** Where the recorded responses come from (default: all fixtures). */
  fixtures?: AmiFixture[];
}

interface Client {
  socket: Socket;
  parser: AmiParser;
  authenticated: boolean;
}

export class AmiSimulator {
  readonly username: string;
  /** The secret Login accepts (change it with setSecret). */
  secret: string;
  /** Actions received from clients, in order. */
  readonly actions: AmiFields[] = [];
  /** Connections accepted so far, and successful logins. */
  connections = 0;
  logins = 0;
  private server?: Server;
  private readonly clients = new Set<Client>();
  private readonly fixtures: AmiFixture[];
  private banner: string;
  private frozen = false;
  private readonly responseDelays = new Map<string, number>();
  private readonly delayed = new Set<NodeJS.Timeout>();
  /** What CoreShowChannels lists (setChannels); undefined: the recorded answer. */
  private channels: AmiFields[] | undefined;
  /** Scripted answers per action (lower case), consumed in order (script()). */
  private readonly scripts = new Map<string, ScriptStep[]>();
  private speedupOfScripts = 100;
  /** Bumped by stop(): scripted replays still running give up. */
  private generation = 0;

  constructor(options: AmiSimulatorOptions = {}) {
    this.username = options.username ?? 'cti';
    this.secret = options.secret ?? 'ctisecret';
    this.fixtures = options.fixtures ?? AMI_FIXTURE_NAMES.map(loadAmiFixture);
    this.banner = this.fixtures[0]!.banner;
  }

  get port(): number {
    const address = this.server?.address();
    if (!address || typeof address === 'string') throw new Error('the simulator is not listening');
    return address.port;
  }

  /** Logged-in clients right now. */
  get authenticatedClients(): number {
    return [...this.clients].filter((c) => c.authenticated).length;
  }

  /** Listens on 127.0.0.1, on a free port unless `port` is given (e.g. to come back after stop()). */
  async start(port = 0): Promise<number> {
    this.server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    return this.port;
  }

  async stop(): Promise<void> {
    this.generation++;
    for (const t of this.delayed) clearTimeout(t);
    this.delayed.clear();
    for (const c of this.clients) c.socket.destroy();
    this.clients.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Closes every connection at once (a crash, a network cut); the server keeps listening. */
  dropConnections(): void {
    for (const c of this.clients) c.socket.destroy();
    this.clients.clear();
  }

  /** Writes raw bytes to every logged-in client (nothing while frozen). */
  sendRaw(bytes: Buffer | string): void {
    if (this.frozen) return;
    for (const c of this.clients) if (c.authenticated) c.socket.write(bytes);
  }

  /**
   * Writes the chunks to every logged-in client as fast as each reads them (waits for 'drain'
   * when its socket buffer is full, as Asterisk's writes block): a full-speed feed. Resolves once
   * everything was handed to the kernel.
   */
  async stream(chunks: Iterable<Buffer | string>): Promise<void> {
    for (const chunk of chunks) {
      for (const c of this.clients) {
        if (!c.authenticated || c.socket.destroyed) continue;
        if (!c.socket.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              c.socket.off('drain', done);
              c.socket.off('close', done);
              resolve();
            };
            c.socket.on('drain', done);
            c.socket.on('close', done);
          });
        }
      }
    }
  }

  /** Changes the secret Login accepts from now on (connections already logged in stay). */
  setSecret(secret: string): void {
    this.secret = secret;
  }

  /**
   * A hung Asterisk: connections stay open (and new ones are accepted by the kernel) but nothing
   * is answered or sent, not even the banner, until unfreeze(). Actions are still recorded.
   */
  freeze(): void {
    this.frozen = true;
  }

  unfreeze(): void {
    this.frozen = false;
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  /** Answers the named action (case-insensitive) only after `ms` (0: at once again). */
  setResponseDelay(action: string, ms: number): void {
    if (ms > 0) this.responseDelays.set(action.toLowerCase(), ms);
    else this.responseDelays.delete(action.toLowerCase());
  }

  /**
   * What CoreShowChannels answers from now on: `Response: Success` (EventList start), one
   * `CoreShowChannel` per entry (fields without ActionID: it is added, after `Event`), then
   * `CoreShowChannelsComplete` with `ListItems`. `[]`: nothing is live. `undefined` (the
   * default): the recorded answer (the click-to-call's two channels). See liveChannels().
   */
  setChannels(channels: AmiFields[] | undefined): void {
    this.channels = channels?.map((c) => c.filter(([k]) => k !== 'ActionID'));
  }

  /**
   * Plays a fixture's recorded actions as a script: from now on, each action the fixture sent
   * (but Login, Logoff, Ping and CoreShowChannels) is answered, in the recorded order per action
   * name, with its recorded response and then the events that followed it in the recording until
   * the next action (timing divided by `speedup`), the recorded ActionID replaced by the one
   * received, and so the values of the variables the recorded action set (`Variable: NAME=value`,
   * e.g. CTI_REQUEST_ID) by the received action's values for the same names. Events go to every
   * logged-in client, as Asterisk sends them. Once a script is used up, the action gets the plain
   * recorded response again. Without a script nothing of this happens (the default).
   */
  script(fixture: AmiFixture, options: { speedup?: number } = {}): void {
    this.speedupOfScripts = options.speedup ?? 100;
    const items = timeline(fixture);
    const sentAt = items.map((item, i) => (item.sent ? i : -1)).filter((i) => i >= 0);
    for (const [n, index] of sentAt.entries()) {
      const sent = items[index]!.sent!;
      const action = (amiHeader(sent, 'Action') ?? '').toLowerCase();
      if (UNSCRIPTED.has(action)) continue;
      const actionId = amiHeader(sent, 'ActionID');
      const end = sentAt[n + 1] ?? items.length;
      const messages = items
        .slice(index + 1, end)
        .filter((item): item is { t: number; fields: AmiFields } => item.fields !== undefined)
        .filter((item) => {
          const id = amiHeader(item.fields, 'ActionID');
          return id === undefined ? isEvent(item.fields) : id === actionId;
        });
      const steps = this.scripts.get(action) ?? [];
      steps.push({ t: items[index]!.t, sent, messages });
      this.scripts.set(action, steps);
    }
  }

  /** Drops the scripts left (the actions get the plain recorded responses again). */
  clearScripts(): void {
    this.scripts.clear();
  }

  /**
   * Replays the event stream of a fixture to every logged-in client, its `t` offsets divided by
   * `speedup`; events of the same `t` go in one write. With `dropAfter`, the connections are
   * dropped once that many events have been written. With `from`, the replay starts at that
   * event (the rest of a replay cut by `dropAfter`); with `to`, it stops before that one (the
   * connection kept). Resolves with the number of events written.
   */
  async replay(
    fixture: AmiFixture,
    options: { speedup?: number; dropAfter?: number; from?: number; to?: number } = {},
  ): Promise<number> {
    const speedup = options.speedup ?? 100;
    // `from`: skip the first events (to finish a replay cut by `dropAfter`).
    const events = replayableEvents(fixture).slice(options.from ?? 0, options.to);
    let written = 0;
    let i = 0;
    let lastT = events[0]?.t ?? 0;
    while (i < events.length) {
      const t = events[i]!.t;
      const wait = (t - lastT) / speedup;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      lastT = t;
      let batch = '';
      while (i < events.length && events[i]!.t === t) {
        if (options.dropAfter !== undefined && written === options.dropAfter) break;
        batch += serializeAmi(events[i]!.fields);
        written++;
        i++;
      }
      if (batch) this.sendRaw(batch);
      if (options.dropAfter !== undefined && written === options.dropAfter) {
        // Let the bytes leave before the cut.
        await new Promise((r) => setImmediate(r));
        this.dropConnections();
        return written;
      }
    }
    return written;
  }

  private accept(socket: Socket): void {
    this.connections++;
    socket.setNoDelay(true);
    const client: Client = {
      socket,
      authenticated: false,
      parser: new AmiParser({
        skipEvents: [],
        onMessage: (fields) => this.onAction(client, fields),
      }),
    };
    this.clients.add(client);
    socket.on('data', (chunk) => client.parser.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.clients.delete(client));
    if (!this.frozen) socket.write(`${this.banner}\r\n`);
  }

  private respond(client: Client, fields: AmiFields): void {
    if (!client.socket.destroyed) client.socket.write(serializeAmi(fields));
  }

  private onAction(client: Client, fields: AmiFields): void {
    this.actions.push(fields);
    if (this.frozen) return;
    const delay = this.responseDelays.get((amiHeader(fields, 'Action') ?? '').toLowerCase());
    if (delay) {
      const timer = setTimeout(() => {
        this.delayed.delete(timer);
        if (!this.frozen) this.answer(client, fields);
      }, delay);
      this.delayed.add(timer);
      return;
    }
    this.answer(client, fields);
  }

  private answer(client: Client, fields: AmiFields): void {
    const action = (amiHeader(fields, 'Action') ?? '').toLowerCase();
    const actionId = amiHeader(fields, 'ActionID');
    const withId = (rest: AmiFields): AmiFields =>
      actionId === undefined ? rest : [rest[0]!, ['ActionID', actionId], ...rest.slice(1)];
    if (action === 'login') {
      if (amiHeader(fields, 'Username') === this.username && amiHeader(fields, 'Secret') === this.secret) {
        client.authenticated = true;
        this.logins++;
        this.respond(
          client,
          withId([
            ['Response', 'Success'],
            ['Message', 'Authentication accepted'],
          ]),
        );
        this.respond(client, [
          ['Event', 'FullyBooted'],
          ['Privilege', 'system,all'],
          ['Uptime', '54'],
          ['LastReload', '54'],
          ['Status', 'Fully Booted'],
        ]);
      } else {
        this.respond(
          client,
          withId([
            ['Response', 'Error'],
            ['Message', 'Authentication failed'],
          ]),
        );
        client.socket.end();
      }
      return;
    }
    if (!client.authenticated) {
      this.respond(
        client,
        withId([
          ['Response', 'Error'],
          ['Message', 'Permission denied'],
        ]),
      );
      return;
    }
    if (action === 'ping') {
      this.respond(
        client,
        withId([
          ['Response', 'Success'],
          ['Ping', 'Pong'],
          ['Timestamp', (Date.now() / 1000).toFixed(6)],
        ]),
      );
      return;
    }
    if (action === 'logoff') {
      this.respond(
        client,
        withId([
          ['Response', 'Goodbye'],
          ['Message', 'Thanks for all the fish.'],
        ]),
      );
      client.socket.end();
      return;
    }
    if (action === 'coreshowchannels' && this.channels !== undefined) {
      this.respondChannels(client, actionId, this.channels);
      return;
    }
    const step = this.scripts.get(action)?.shift();
    if (step) {
      void this.playStep(client, fields, step);
      return;
    }
    const recorded = this.recordedResponse(action);
    if (!recorded) {
      this.respond(
        client,
        withId([
          ['Response', 'Error'],
          ['Message', 'Invalid/unknown command'],
        ]),
      );
      return;
    }
    for (const message of recorded) {
      this.respond(
        client,
        message.map(([k, v]): [string, string] => [k, k === 'ActionID' && actionId !== undefined ? actionId : v]),
      );
    }
  }

  private respondChannels(client: Client, actionId: string | undefined, channels: AmiFields[]): void {
    const id: AmiFields = actionId === undefined ? [] : [['ActionID', actionId]];
    this.respond(client, [['Response', 'Success'], ...id, ['EventList', 'start'], ['Message', 'Channels will follow']]);
    for (const channel of channels) this.respond(client, [channel[0]!, ...id, ...channel.slice(1)]);
    this.respond(client, [
      ['Event', 'CoreShowChannelsComplete'],
      ...id,
      ['EventList', 'Complete'],
      ['ListItems', String(channels.length)],
    ]);
  }

  /** One scripted answer: the response to the client at once, then the events, in time. */
  private async playStep(client: Client, received: AmiFields, step: ScriptStep): Promise<void> {
    const generation = this.generation;
    const replace = new Map<string, string>();
    const recordedId = amiHeader(step.sent, 'ActionID');
    const receivedId = amiHeader(received, 'ActionID');
    if (recordedId !== undefined && receivedId !== undefined) replace.set(recordedId, receivedId);
    const now = variables(received);
    for (const [name, value] of variables(step.sent)) {
      const value2 = now.get(name);
      if (value2 !== undefined) replace.set(value, value2);
    }
    const rewrite = (fields: AmiFields): AmiFields =>
      fields.map(([k, v]): [string, string] => [k, replace.get(v) ?? v]);
    let lastT = step.t;
    let batch = '';
    const flush = () => {
      if (batch) this.sendRaw(batch);
      batch = '';
    };
    for (const message of step.messages) {
      if (message.t > lastT) {
        flush();
        await new Promise((r) => setTimeout(r, (message.t - lastT) / this.speedupOfScripts));
        lastT = message.t;
      }
      if (generation !== this.generation || this.frozen) return;
      if (message.fields[0]?.[0] === 'Response') {
        flush();
        this.respond(client, rewrite(message.fields));
      } else batch += serializeAmi(rewrite(message.fields));
    }
    flush();
  }

  /** The recorded answer to an action: its response and, for a list, the list's events. */
  private recordedResponse(action: string): AmiFields[] | undefined {
    for (const f of this.fixtures) {
      const sent = f.sent.find((s) => (amiHeader(s.fields, 'Action') ?? '').toLowerCase() === action);
      const id = sent && amiHeader(sent.fields, 'ActionID');
      if (!id) continue;
      const messages = f.received
        .filter(
          (r) => amiHeader(r.fields, 'ActionID') === id && (r.fields[0]![0] === 'Response' || isListEvent(r.fields)),
        )
        .map((r) => r.fields);
      if (messages.length) return messages;
    }
    return undefined;
  }
}

/** An event of an action's list (CoreShowChannel…, …Complete), not an async event like OriginateResponse. */
function isListEvent(fields: AmiFields): boolean {
  return isEvent(fields) && fields[0]![1] !== 'OriginateResponse';
}

/** Actions never scripted: the connection's own (login, keepalive) and the resync's list. */
const UNSCRIPTED = new Set(['login', 'logoff', 'ping', 'coreshowchannels']);

interface ScriptStep {
  /** When the action was sent in the recording. */
  t: number;
  sent: AmiFields;
  /** Its response and the events up to the next action, with their times. */
  messages: Array<{ t: number; fields: AmiFields }>;
}

/** The `Variable: NAME=value[,NAME2=value2]` pairs of an action. */
function variables(fields: AmiFields): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of fields) {
    if (k !== 'Variable') continue;
    for (const pair of v.split(',')) {
      const eq = pair.indexOf('=');
      if (eq > 0) out.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  }
  return out;
}

/** The channel fields a CoreShowChannel entry carries, in Asterisk's order. */
const CHANNEL_KEYS = [
  'Channel',
  'ChannelState',
  'ChannelStateDesc',
  'CallerIDNum',
  'CallerIDName',
  'ConnectedLineNum',
  'ConnectedLineName',
  'Language',
  'AccountCode',
  'Context',
  'Exten',
  'Priority',
  'Uniqueid',
  'Linkedid',
] as const;

/**
 * The channels live after the first `count` replayable events of a fixture (all of them when
 * omitted), as CoreShowChannel entries (for setChannels): a channel is live from its Newchannel
 * to its Hangup, with the latest snapshot of it an event carried (state, caller, connected line),
 * and the bridge it is in. What a reconnecting client should find after replay({ dropAfter }).
 */
export function liveChannels(fixture: AmiFixture, count?: number): AmiFields[] {
  const live = new Map<string, { fields: Map<string, string>; bridge: string }>();
  for (const { fields } of replayableEvents(fixture).slice(0, count)) {
    const name = amiHeader(fields, 'Event');
    const uniqueid = amiHeader(fields, 'Uniqueid');
    if (!uniqueid) continue;
    if (name === 'Newchannel') live.set(uniqueid, { fields: new Map(), bridge: '' });
    const channel = live.get(uniqueid);
    if (!channel) continue;
    if (name === 'Hangup') {
      live.delete(uniqueid);
      continue;
    }
    for (const key of CHANNEL_KEYS) {
      const value = amiHeader(fields, key);
      if (value !== undefined) channel.fields.set(key, value);
    }
    if (name === 'BridgeEnter') channel.bridge = amiHeader(fields, 'BridgeUniqueid') ?? '';
    if (name === 'BridgeLeave') channel.bridge = '';
  }
  return [...live.values()].map(({ fields, bridge }) => [
    ['Event', 'CoreShowChannel'],
    ...CHANNEL_KEYS.map((k): [string, string] => [k, fields.get(k) ?? '']),
    ['Application', ''],
    ['ApplicationData', ''],
    ['Duration', '00:00:01'],
    ['BridgeId', bridge],
  ]);
}
