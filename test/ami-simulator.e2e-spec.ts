import { connect, type Socket } from 'node:net';
import { AmiParser, amiHeader, type AmiFields, type AmiWarning } from '../src/pbx/asterisk/ami-parser.js';
import { AmiSimulator, loadAmiFixture, replayableEvents, serializeAmi } from './support/ami-simulator.js';

/** A plain AMI client: a socket and our parser (nothing skipped), collecting what arrives. */
class Client {
  readonly messages: AmiFields[] = [];
  readonly banners: string[] = [];
  readonly warnings: AmiWarning[] = [];
  closed = false;
  private readonly socket: Socket;
  private readonly parser = new AmiParser({
    skipEvents: [],
    onMessage: (m) => this.messages.push(m),
    onBanner: (b) => this.banners.push(b),
    onWarning: (w) => this.warnings.push(w),
  });

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('data', (c) => this.parser.push(c));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  send(fields: AmiFields): void {
    this.socket.write(serializeAmi(fields));
  }

  async waitFor(check: () => boolean, what: string, ms = 5000): Promise<void> {
    const until = Date.now() + ms;
    while (!check()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  response(actionId: string): AmiFields | undefined {
    return this.messages.find((m) => m[0]?.[0] === 'Response' && amiHeader(m, 'ActionID') === actionId);
  }

  async login(username = 'cti', secret = 'ctisecret', id = 'login-1'): Promise<AmiFields> {
    await this.waitFor(() => this.banners.length > 0, 'the banner');
    this.send([
      ['Action', 'Login'],
      ['Username', username],
      ['Secret', secret],
      ['ActionID', id],
    ]);
    await this.waitFor(() => !!this.response(id), 'the login response');
    return this.response(id)!;
  }

  close(): void {
    this.socket.destroy();
  }
}

describe('AMI simulator (e2e: TCP on 127.0.0.1, our parser as the client)', () => {
  let sim: AmiSimulator;
  const clients: Client[] = [];
  const client = () => {
    const c = new Client(sim.port);
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    sim = new AmiSimulator();
    await sim.start();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await sim.stop();
  });

  it('sends the banner and accepts the right credentials', async () => {
    const c = client();
    const res = await c.login();
    expect(c.banners).toEqual(['Asterisk Call Manager/11.0.0']);
    expect(res).toEqual([
      ['Response', 'Success'],
      ['ActionID', 'login-1'],
      ['Message', 'Authentication accepted'],
    ]);
    await c.waitFor(() => c.messages.some((m) => amiHeader(m, 'Event') === 'FullyBooted'), 'FullyBooted');
    expect(sim.logins).toBe(1);
  });

  it('refuses wrong credentials and closes the connection', async () => {
    const c = client();
    const res = await c.login('cti', 'wrong', 'login-x');
    expect(res).toEqual([
      ['Response', 'Error'],
      ['ActionID', 'login-x'],
      ['Message', 'Authentication failed'],
    ]);
    await c.waitFor(() => c.closed, 'the close');
    expect(sim.logins).toBe(0);
  });

  it('answers Ping, CoreShowChannels, Originate, PlayDTMF and Hangup, echoing the ActionID', async () => {
    const c = client();
    await c.login();
    c.send([
      ['Action', 'Ping'],
      ['ActionID', 'p-1'],
    ]);
    await c.waitFor(() => !!c.response('p-1'), 'pong');
    expect(amiHeader(c.response('p-1')!, 'Ping')).toBe('Pong');
    expect(amiHeader(c.response('p-1')!, 'Response')).toBe('Success');

    c.send([
      ['Action', 'CoreShowChannels'],
      ['ActionID', 'show-9'],
    ]);
    await c.waitFor(() => c.messages.some((m) => amiHeader(m, 'Event') === 'CoreShowChannelsComplete'), 'the list');
    const list = c.messages.filter((m) => amiHeader(m, 'ActionID') === 'show-9');
    expect(list.map((m) => m[0]![1])).toEqual([
      'Success',
      'CoreShowChannel',
      'CoreShowChannel',
      'CoreShowChannelsComplete',
    ]);
    expect(list.slice(1, 3).map((m) => amiHeader(m, 'Channel'))).toEqual([
      'PJSIP/carrier-00000009',
      'PJSIP/1001-00000008',
    ]);

    for (const [action, id, message] of [
      ['Originate', 'o-7', 'Originate successfully queued'],
      ['PlayDTMF', 'd-7', 'DTMF successfully queued'],
      ['Hangup', 'h-7', 'Channel Hungup'],
    ] as const) {
      c.send([
        ['Action', action],
        ['ActionID', id],
      ]);
      await c.waitFor(() => !!c.response(id), action);
      expect(c.response(id)).toEqual([
        ['Response', 'Success'],
        ['ActionID', id],
        ['Message', message],
      ]);
    }
  });

  it('replays a recorded stream complete and in order (timing compressed 100×)', async () => {
    const fixture = loadAmiFixture('inbound-answered');
    const c = client();
    await c.login();
    const before = c.messages.length;
    const started = Date.now();
    const written = await sim.replay(fixture, { speedup: 100 });
    const expected = replayableEvents(fixture).map((e) => e.fields);
    expect(written).toBe(expected.length);
    await c.waitFor(() => c.messages.length - before >= expected.length, 'the replay');
    expect(c.messages.slice(before)).toEqual(expected);
    // About 6 s of recorded time at 100×: some tens of milliseconds, not seconds.
    expect(Date.now() - started).toBeLessThan(2000);
    expect(c.warnings).toEqual([]);
  });

  it('drops the connection mid-stream and accepts a reconnection', async () => {
    const fixture = loadAmiFixture('click-to-call');
    const c1 = client();
    await c1.login();
    const before = c1.messages.length;
    const written = await sim.replay(fixture, { speedup: 100, dropAfter: 20 });
    expect(written).toBe(20);
    await c1.waitFor(() => c1.closed, 'the drop');
    expect(c1.messages.slice(before)).toEqual(
      replayableEvents(fixture)
        .slice(0, 20)
        .map((e) => e.fields),
    );

    const c2 = client();
    await c2.login('cti', 'ctisecret', 'login-2');
    expect(sim.connections).toBe(2);
    expect(sim.logins).toBe(2);
    c2.send([
      ['Action', 'CoreShowChannels'],
      ['ActionID', 'resync-1'],
    ]);
    await c2.waitFor(() => c2.messages.some((m) => amiHeader(m, 'Event') === 'CoreShowChannelsComplete'), 'the resync');
    expect(c2.messages.filter((m) => amiHeader(m, 'Event') === 'CoreShowChannel')).toHaveLength(2);
  });

  it('skips malformed input with a warning and keeps the connection', async () => {
    const c = client();
    await c.login();
    sim.sendRaw('Event: Hangup\r\nthis is not a header\r\n\r\n');
    sim.sendRaw(`Event: UserEvent\r\nData: ${'z'.repeat(70_000)}\r\n\r\n`);
    c.send([
      ['Action', 'Ping'],
      ['ActionID', 'after'],
    ]);
    await c.waitFor(() => !!c.response('after'), 'the ping after the garbage');
    expect(c.warnings.map((w) => w.code)).toEqual(['line-without-colon', 'line-too-long']);
    expect(c.closed).toBe(false);
    expect(c.messages.some((m) => amiHeader(m, 'Event') === 'Hangup' || amiHeader(m, 'Event') === 'UserEvent')).toBe(
      false,
    );
  });
});
