import {
  AMI_EVENT_MASK,
  AmiActionError,
  AmiClient,
  type AmiClientOptions,
  type AmiClientWarning,
  type AmiConnectionState,
  AmiUnavailableError,
} from '../src/pbx/asterisk/ami-client.js';
import { AmiParser, amiHeader, type AmiFields } from '../src/pbx/asterisk/ami-parser.js';
import { AmiSimulator, loadAmiFixture, replayableEvents, serializeAmi } from './support/ami-simulator.js';

/** The AMI client against the simulator over TCP on 127.0.0.1, with short intervals. */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** What the client should deliver of a replay: the parser's view with the same options. */
function expectedEvents(events: AmiFields[], keepVarSet: readonly string[] = []): AmiFields[] {
  const out: AmiFields[] = [];
  const parser = new AmiParser({ keepVarSet, onMessage: (m) => out.push(m) });
  parser.push(Buffer.from('Asterisk Call Manager/11.0.0\r\n'));
  for (const e of events) parser.push(Buffer.from(serializeAmi(e)));
  return out;
}

const eventName = (f: AmiFields) => amiHeader(f, 'Event');

interface Harness {
  client: AmiClient;
  events: Array<{ fields: AmiFields; receivedAt: Date }>;
  states: Array<{ state: AmiConnectionState; reason?: string; at: number }>;
  warnings: AmiClientWarning[];
  connectedCalls: number;
  /** Events delivered since the last (re)connection counted from `from`. */
  names(from?: number): Array<string | undefined>;
  waitState(state: AmiConnectionState, what?: string, ms?: number, after?: number): Promise<void>;
}

describe('AmiClient (e2e: TCP against the AMI simulator on 127.0.0.1)', () => {
  let sim: AmiSimulator;
  const clients: AmiClient[] = [];

  function harness(overrides: Partial<AmiClientOptions> = {}, port = sim.port): Harness {
    const h: Harness = {
      client: undefined as unknown as AmiClient,
      events: [],
      states: [],
      warnings: [],
      connectedCalls: 0,
      names: (from = 0) => h.events.slice(from).map((e) => eventName(e.fields)),
      waitState: (state, what = state, ms = 3000, after = 0) =>
        waitFor(() => h.states.slice(after).some((s) => s.state === state), what, ms),
    };
    h.client = new AmiClient({
      host: '127.0.0.1',
      port,
      username: 'cti',
      secret: 'ctisecret',
      pingIntervalMs: 200,
      pingTimeoutMs: 200,
      connectTimeoutMs: 500,
      actionTimeoutMs: 1000,
      backoff: { initialMs: 50, maxMs: 400 },
      authRetryMs: 300,
      onEvent: (fields, receivedAt) => h.events.push({ fields, receivedAt }),
      onState: (state, reason) => h.states.push({ state, reason, at: Date.now() }),
      onWarning: (w) => h.warnings.push(w),
      onConnected: () => {
        h.connectedCalls++;
      },
      ...overrides,
    });
    clients.push(h.client);
    return h;
  }

  async function connected(overrides: Partial<AmiClientOptions> = {}): Promise<Harness> {
    const h = harness(overrides);
    h.client.start();
    await h.waitState('connected');
    // FullyBooted follows the login response.
    await waitFor(() => h.names().includes('FullyBooted'), 'FullyBooted');
    return h;
  }

  beforeEach(async () => {
    sim = new AmiSimulator();
    await sim.start();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop();
    await sim.stop();
  });

  it('logs in with its own ActionID and the event mask, and delivers the replayed events in order', async () => {
    const fixture = loadAmiFixture('click-to-call');
    const h = await connected({ keepVarSet: ['CTI_REQUEST_ID'] });
    expect(h.states.map((s) => s.state)).toEqual(['connecting', 'connected']);
    expect(h.client.reason).toMatch(/^logged in to 127\.0\.0\.1:\d+ as cti \(Asterisk Call Manager\/11\.0\.0\)$/);
    const login = sim.actions.find((a) => amiHeader(a, 'Action') === 'Login')!;
    expect(login.slice(0, 2).map(([k]) => k)).toEqual(['Action', 'ActionID']);
    expect(amiHeader(login, 'ActionID')).toMatch(/^sb-[0-9a-f]{8}-\d+$/);
    expect(amiHeader(login, 'Events')).toBe(AMI_EVENT_MASK);
    expect(AMI_EVENT_MASK).toBe('system,call,dialplan');
    expect(h.connectedCalls).toBe(1);

    const before = h.events.length;
    const written = await sim.replay(fixture, { speedup: 100 });
    const expected = expectedEvents(
      replayableEvents(fixture).map((e) => e.fields),
      ['CTI_REQUEST_ID'],
    );
    expect(written).toBeGreaterThan(expected.length); // noise was skipped
    await waitFor(() => h.events.length - before >= expected.length, 'the replay');
    await sleep(30);
    const got = h.events.slice(before);
    expect(got.map((e) => e.fields)).toEqual(expected);
    // The CTI_REQUEST_ID VarSet is kept, the other VarSets are not.
    const varsets = got.filter((e) => eventName(e.fields) === 'VarSet');
    expect(varsets.length).toBeGreaterThan(0);
    expect(varsets.every((e) => amiHeader(e.fields, 'Variable') === 'CTI_REQUEST_ID')).toBe(true);
    const first = got.find((e) => eventName(e.fields) === 'Newchannel')!;
    expect(amiHeader(first.fields, 'Channel')).toBe('PJSIP/1001-00000008');
    expect(first.receivedAt).toBeInstanceOf(Date);
    expect(Math.abs(first.receivedAt.getTime() - Date.now())).toBeLessThan(2000);
    expect(h.warnings).toEqual([]);
  });

  it('correlates concurrent actions by ActionID, answers out of order included; OriginateResponse goes to onEvent', async () => {
    const h = await connected();
    sim.setResponseDelay('Originate', 80);
    const order: string[] = [];
    const track = <T>(name: string, p: Promise<T>) =>
      p.then((v) => {
        order.push(name);
        return v;
      });
    const [originate, ping, dtmf, hangup, list] = await Promise.all([
      track(
        'Originate',
        h.client.action([
          ['Action', 'Originate'],
          ['ActionID', 'c2c-1'],
          ['Channel', 'PJSIP/1001'],
          ['Variable', 'CTI_REQUEST_ID=r-1'],
        ]),
      ),
      track('Ping', h.client.action([['Action', 'Ping']])),
      track('PlayDTMF', h.client.action([['Action', 'PlayDTMF']])),
      track('Hangup', h.client.action([['Action', 'Hangup']])),
      track('CoreShowChannels', h.client.listAction([['Action', 'CoreShowChannels']])),
    ]);
    expect(order[order.length - 1]).toBe('Originate');
    expect(amiHeader(originate, 'ActionID')).toBe('c2c-1');
    expect(amiHeader(originate, 'Message')).toBe('Originate successfully queued');
    expect(amiHeader(ping, 'Ping')).toBe('Pong');
    expect(amiHeader(dtmf, 'Message')).toBe('DTMF successfully queued');
    expect(amiHeader(hangup, 'Message')).toBe('Channel Hungup');
    expect(list.events).toHaveLength(3);
    const ids = [ping, dtmf, hangup, list.response].map((r) => amiHeader(r, 'ActionID')!);
    for (const id of ids) expect(id).toMatch(/^sb-[0-9a-f]{8}-\d+$/);
    expect(new Set(ids).size).toBe(4);
    // The action went out with Action first, the caller's ActionID, the rest in order.
    const sent = sim.actions.find((a) => amiHeader(a, 'ActionID') === 'c2c-1')!;
    expect(sent).toEqual([
      ['Action', 'Originate'],
      ['ActionID', 'c2c-1'],
      ['Channel', 'PJSIP/1001'],
      ['Variable', 'CTI_REQUEST_ID=r-1'],
    ]);

    // The async OriginateResponse carries the Originate's ActionID: an event, not an answer.
    const before = h.events.length;
    await sim.replay(loadAmiFixture('click-to-call'), { speedup: 100 });
    await waitFor(() => h.names(before).includes('OriginateResponse'), 'OriginateResponse');
    const response = h.events.slice(before).find((e) => eventName(e.fields) === 'OriginateResponse')!;
    expect(amiHeader(response.fields, 'ActionID')).toBe('c2c-1');
  });

  it('listAction CoreShowChannels resolves with the recorded list; its events do not reach onEvent', async () => {
    const h = await connected();
    const before = h.events.length;
    const { response, events } = await h.client.listAction([['Action', 'CoreShowChannels']]);
    expect(amiHeader(response, 'Response')).toBe('Success');
    expect(amiHeader(response, 'EventList')).toBe('start');
    expect(events.map(eventName)).toEqual(['CoreShowChannel', 'CoreShowChannel', 'CoreShowChannelsComplete']);
    expect(events.slice(0, 2).map((e) => amiHeader(e, 'Channel'))).toEqual([
      'PJSIP/carrier-00000009',
      'PJSIP/1001-00000008',
    ]);
    expect(amiHeader(events[2]!, 'ListItems')).toBe('2');
    for (const e of events) expect(amiHeader(e, 'ActionID')).toBe(amiHeader(response, 'ActionID'));
    await sleep(30);
    expect(h.events.length).toBe(before);
  });

  it('Response: Error rejects with AmiActionError carrying the fields; bad fields are refused before sending', async () => {
    const h = await connected();
    const error = await h.client.action([['Action', 'NoSuchThing']]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AmiActionError);
    expect((error as AmiActionError).amiMessage).toBe('Invalid/unknown command');
    expect(amiHeader((error as AmiActionError).fields, 'Response')).toBe('Error');
    expect((error as Error).message).toBe('AMI NoSuchThing failed: Invalid/unknown command');
    await expect(h.client.listAction([['Action', 'NoSuchList']])).rejects.toBeInstanceOf(AmiActionError);

    const sentBefore = sim.actions.length;
    await expect(h.client.action([['Channel', 'x']])).rejects.toThrow('needs an Action');
    await expect(
      h.client.action([
        ['Action', 'Originate'],
        ['Channel', 'PJSIP/1001\r\nAction: Hangup'],
      ]),
    ).rejects.toThrow('must be one line');
    await sleep(20);
    expect(sim.actions.length).toBe(sentBefore);
    expect(h.client.state).toBe('connected');
  });

  it('an action without an answer times out with AmiUnavailableError, the connection stays', async () => {
    const h = await connected();
    sim.setResponseDelay('Originate', 2000);
    const started = Date.now();
    const error = await h.client.action([['Action', 'Originate']], { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AmiUnavailableError);
    expect((error as AmiUnavailableError).kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(400);
    expect(h.client.state).toBe('connected');
    expect(amiHeader(await h.client.action([['Action', 'Ping']]), 'Ping')).toBe('Pong');
  });

  it('wrong secret: failed with the reason, one login attempt per authRetryMs, recovers when the secret is fixed', async () => {
    sim.setSecret('rotated');
    const h = harness({ authRetryMs: 300 });
    h.client.start();
    await h.waitState('failed');
    const firstFailure = Date.now();
    expect(h.client.state).toBe('failed');
    expect(h.client.reason).toBe('authentication failed: Authentication failed; retrying in 300 ms');
    expect(h.client.nextRetryMs).toBe(300);
    await expect(h.client.action([['Action', 'Ping']])).rejects.toBeInstanceOf(AmiUnavailableError);

    await sleep(1000);
    const elapsed = Date.now() - firstFailure;
    expect(sim.connections).toBeGreaterThanOrEqual(3);
    expect(sim.connections).toBeLessThanOrEqual(1 + Math.ceil(elapsed / 300));
    expect(sim.logins).toBe(0);
    // Never 'reconnecting' on an authentication failure: failed until it works.
    expect(new Set(h.states.map((s) => s.state))).toEqual(new Set(['connecting', 'failed']));

    sim.setSecret('ctisecret');
    await h.waitState('connected', 'recovery', 1000);
    expect(sim.logins).toBe(1);
    expect(h.connectedCalls).toBe(1);
  });

  it('dropConnections mid-stream: reconnecting, then connected again; onConnected twice; pending actions rejected; events after it delivered', async () => {
    const h = await connected();
    sim.setResponseDelay('Originate', 5000);
    const pending = h.client.action([['Action', 'Originate']]).catch((e: unknown) => e);

    const first = loadAmiFixture('click-to-call');
    const before = h.events.length;
    const statesBefore = h.states.length;
    expect(await sim.replay(first, { speedup: 100, dropAfter: 20 })).toBe(20);
    await h.waitState('reconnecting', 'reconnecting', 3000, statesBefore);
    const reconnecting = h.states.slice(statesBefore).find((s) => s.state === 'reconnecting')!;
    expect(reconnecting.reason).toMatch(/^connection (closed|reset) by Asterisk; retrying in \d+ ms$/);

    const error = await pending;
    expect(error).toBeInstanceOf(AmiUnavailableError);
    expect((error as AmiUnavailableError).kind).toBe('disconnected');
    // The 20 written before the cut arrived.
    const expectedFirst = expectedEvents(
      replayableEvents(first)
        .slice(0, 20)
        .map((e) => e.fields),
    );
    expect(
      h.events
        .slice(before)
        .map((e) => e.fields)
        .slice(0, expectedFirst.length),
    ).toEqual(expectedFirst);

    await h.waitState('connected', 'the reconnection', 3000, statesBefore);
    expect(h.states.slice(statesBefore).map((s) => s.state)).toEqual(['reconnecting', 'connected']);
    expect(h.connectedCalls).toBe(2);
    expect(sim.connections).toBe(2);
    expect(sim.logins).toBe(2);

    await waitFor(() => h.names().filter((n) => n === 'FullyBooted').length === 2, 'the second FullyBooted');
    const second = loadAmiFixture('inbound-answered');
    const after = h.events.length;
    await sim.replay(second, { speedup: 100 });
    const expectedSecond = expectedEvents(replayableEvents(second).map((e) => e.fields));
    await waitFor(() => h.events.length - after >= expectedSecond.length, 'the events after the reconnection');
    expect(h.events.slice(after).map((e) => e.fields)).toEqual(expectedSecond);
  });

  it('onConnected is awaited: it can run a resync, and events arriving meanwhile are delivered after it, in order', async () => {
    const log: string[] = [];
    const newchannel = loadAmiFixture('inbound-answered').received.find(
      (r) => eventName(r.fields) === 'Newchannel',
    )!.fields;
    const h = harness({
      onEvent: (fields) => log.push(`event:${eventName(fields)}`),
      onConnected: async () => {
        log.push('resync-start');
        sim.sendRaw(serializeAmi(newchannel));
        const { events } = await h.client.listAction([['Action', 'CoreShowChannels']]);
        await sleep(50);
        log.push(`resync-done:${events.length}`);
      },
    });
    h.client.start();
    await waitFor(() => log.length >= 4, 'the resync and the events');
    expect(log).toEqual(['resync-start', 'resync-done:3', 'event:FullyBooted', 'event:Newchannel']);
  });

  it('onConnected failing or onEvent throwing: a warning, the events still delivered, the connection kept', async () => {
    let calls = 0;
    const h = harness({
      onConnected: () => {
        throw new Error('resync broke');
      },
      onEvent: () => {
        calls++;
        throw new Error('handler broke');
      },
    });
    h.client.start();
    await waitFor(() => calls >= 1, 'FullyBooted');
    expect(h.warnings.map((w) => w.code)).toEqual(['on-connected-failed', 'handler-error']);
    expect(h.warnings[0]!.message).toBe('onConnected failed: resync broke');
    expect(h.client.state).toBe('connected');
    expect(amiHeader(await h.client.action([['Action', 'Ping']]), 'Ping')).toBe('Pong');
  });

  it('Pings when idle; a silent peer is detected within pingInterval + pingTimeout and the client reconnects', async () => {
    const h = await connected({ pingIntervalMs: 150, pingTimeoutMs: 150, connectTimeoutMs: 300 });
    const pings = () => sim.actions.filter((a) => amiHeader(a, 'Action') === 'Ping').length;
    await sleep(400);
    expect(pings()).toBeGreaterThanOrEqual(2);
    expect(h.client.state).toBe('connected');

    const statesBefore = h.states.length;
    sim.freeze();
    const frozenAt = Date.now();
    await h.waitState('reconnecting', 'the dead peer detection', 2000, statesBefore);
    const detected = h.states.slice(statesBefore).find((s) => s.state === 'reconnecting')!;
    expect(detected.reason).toMatch(/^no answer to Ping within 150 ms; retrying in \d+ ms$/);
    // The last byte came at most 150 ms before the freeze (the last Pong or less).
    expect(detected.at - frozenAt).toBeLessThanOrEqual(150 + 150 + 250);
    await waitFor(() => sim.authenticatedClients === 0, 'the dead connection closed');

    // Still frozen: the next connection gets no banner and no login answer.
    await waitFor(
      () => h.states.slice(statesBefore).some((s) => /no answer to Login within 300 ms/.test(s.reason ?? '')),
      'the login timeout',
      2000,
    );
    sim.unfreeze();
    await h.waitState('connected', 'the reconnection', 3000, statesBefore);
    expect(h.connectedCalls).toBe(2);
  });

  it('refused: reconnecting with the reason, the delay growing with jitter within bounds, up to the cap; reset after a login', async () => {
    const port = sim.port;
    await sim.stop();
    const backoff = { initialMs: 40, maxMs: 320, factor: 2, jitter: 0.3 };
    const h = harness({ backoff }, port);
    h.client.start();
    await waitFor(() => h.states.filter((s) => s.state === 'reconnecting').length >= 6, 'six refused attempts', 5000);
    const refused = h.states.filter((s) => s.state === 'reconnecting').slice(0, 6);
    const delays = refused.map((s) => {
      expect(s.reason).toMatch(new RegExp(`^connection refused by 127\\.0\\.0\\.1:${port}; retrying in \\d+ ms$`));
      return Number(/retrying in (\d+) ms/.exec(s.reason!)![1]);
    });
    delays.forEach((d, i) => {
      const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** i);
      expect(d).toBeGreaterThanOrEqual(Math.floor(base * 0.7));
      expect(d).toBeLessThanOrEqual(Math.min(backoff.maxMs, Math.ceil(base * 1.3)));
    });
    // The attempts really were that far apart.
    for (let i = 1; i < refused.length; i++)
      expect(refused[i]!.at - refused[i - 1]!.at).toBeGreaterThanOrEqual(delays[i - 1]! - 5);

    await sim.start(port);
    await h.waitState('connected', 'the server back', 2000);
    // A successful login resets the backoff: the next drop waits about initialMs again.
    const statesBefore = h.states.length;
    sim.dropConnections();
    await h.waitState('reconnecting', 'the drop', 2000, statesBefore);
    const next = Number(/retrying in (\d+) ms/.exec(h.client.reason!)![1]);
    expect(next).toBeGreaterThanOrEqual(28);
    expect(next).toBeLessThanOrEqual(52);
  });

  it('the jitter source is injectable: exact delays', async () => {
    const port = sim.port;
    await sim.stop();
    const h = harness({ backoff: { initialMs: 40, maxMs: 300, factor: 2, jitter: 0.3 }, random: () => 0 }, port);
    h.client.start();
    await waitFor(() => h.states.filter((s) => s.state === 'reconnecting').length >= 4, 'four refused attempts', 5000);
    const delays = h.states
      .filter((s) => s.state === 'reconnecting')
      .slice(0, 4)
      .map((s) => Number(/retrying in (\d+) ms/.exec(s.reason!)![1]));
    // 70 % of 40, 80, 160, then of the cap (300).
    expect(delays).toEqual([28, 56, 112, 210]);
  });

  it('malformed bytes: warnings, the connection kept, the next events delivered', async () => {
    const h = await connected();
    const before = h.events.length;
    sim.sendRaw('Event: Hangup\r\nthis is not a header\r\n\r\n');
    sim.sendRaw(`Event: UserEvent\r\nData: ${'z'.repeat(70_000)}\r\n\r\n`);
    sim.sendRaw('Event: Hangup\r\nChannel: PJSIP/1001-00000001\r\nCause: 16\r\n\r\n');
    await waitFor(() => h.events.length > before, 'the event after the garbage');
    expect(h.warnings.map((w) => w.code)).toEqual(['line-without-colon', 'line-too-long']);
    expect(h.warnings[0]!.sample).toContain('Event: Hangup');
    expect(h.events.slice(before).map((e) => e.fields)).toEqual([
      [
        ['Event', 'Hangup'],
        ['Channel', 'PJSIP/1001-00000001'],
        ['Cause', '16'],
      ],
    ]);
    expect(h.client.state).toBe('connected');
    expect(sim.connections).toBe(1);
    expect(amiHeader(await h.client.action([['Action', 'Ping']]), 'Ping')).toBe('Pong');
  });

  it('actions while not connected fail at once with AmiUnavailableError', async () => {
    const h = harness();
    const started = Date.now();
    const before = await h.client.action([['Action', 'Ping']]).catch((e: unknown) => e);
    expect(before).toBeInstanceOf(AmiUnavailableError);
    expect((before as AmiUnavailableError).kind).toBe('not-connected');
    expect((before as Error).message).toBe('AMI not connected (stopped: not started)');

    const port = sim.port;
    await sim.stop();
    const down = harness({}, port);
    down.client.start();
    await down.waitState('reconnecting');
    const during = await down.client.listAction([['Action', 'CoreShowChannels']]).catch((e: unknown) => e);
    expect(during).toBeInstanceOf(AmiUnavailableError);
    expect((during as AmiUnavailableError).kind).toBe('not-connected');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('stop() while connected: Logoff, socket closed, state stopped, no reconnection', async () => {
    const h = await connected();
    await h.client.stop();
    expect(h.client.state).toBe('stopped');
    expect(sim.actions.some((a) => amiHeader(a, 'Action') === 'Logoff')).toBe(true);
    await waitFor(() => sim.authenticatedClients === 0, 'the server side close');
    await sleep(150);
    expect(sim.connections).toBe(1);
    expect(h.states[h.states.length - 1]).toMatchObject({ state: 'stopped', reason: 'stopped' });
    await expect(h.client.action([['Action', 'Ping']])).rejects.toBeInstanceOf(AmiUnavailableError);
  });

  it('stop() during reconnection: no further attempts', async () => {
    const port = sim.port;
    await sim.stop();
    const h = harness({ backoff: { initialMs: 50, maxMs: 50 } }, port);
    h.client.start();
    await h.waitState('reconnecting');
    await h.client.stop();
    expect(h.client.state).toBe('stopped');
    const statesAtStop = h.states.length;
    await sim.start(port);
    await sleep(300);
    expect(sim.connections).toBe(0);
    expect(h.states.length).toBe(statesAtStop);
  });
});
