import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * Slow clients (slowloris) are closed by the server: headers sent a byte at a time, headers that
 * never end, a body that never arrives, a socket that sends nothing. Small timeouts are configured
 * so that the test is quick; the defaults (headers within 10 s) work the same way.
 */

const HEADERS_TIMEOUT_MS = 1_000;
const REQUEST_TIMEOUT_MS = 2_000;
const CONNECTION_TIMEOUT_MS = 3_000;
/** Each slow socket must be closed within its timeout plus this (Node checks on an interval). */
const SLACK_MS = 1_500;

interface Probe {
  socket: Socket;
  openedAt: number;
  closed: Promise<number>;
  /** Bytes the server answered before closing. */
  received: () => string;
}

function open(url: string): Promise<Probe> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port) });
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    socket.on('error', () => undefined); // a reset counts as closed
    socket.once('connect', () => {
      const openedAt = Date.now();
      const closed = new Promise<number>((done) => socket.once('close', () => done(Date.now() - openedAt)));
      resolve({ socket, openedAt, closed, received: () => data });
    });
    socket.once('error', reject);
  });
}

/** A GET on its own connection, closed after the answer (no client pool keeps it open). */
function get(base: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(base + path, { agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Writes `text` one byte every `everyMs` until the socket closes. */
function trickle(socket: Socket, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]!);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

describe('slow clients are closed', () => {
  let t: TestApp;
  const probes: Probe[] = [];

  beforeAll(async () => {
    t = await startTestApp({
      env: {
        HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        HTTP_CONNECTION_TIMEOUT_MS: String(CONNECTION_TIMEOUT_MS),
        HTTP_KEEP_ALIVE_TIMEOUT_MS: '1000',
        // The idle timeout must stay above the socket.io ping interval (long polls wait that long).
        SOCKET_IO_PING_INTERVAL_MS: '2000',
        SOCKET_IO_PING_TIMEOUT_MS: '500',
      },
    });
  });
  afterAll(async () => {
    for (const p of probes) p.socket.destroy();
    await t?.close();
  });

  it('closes sockets whose headers trickle or never end, while normal requests are served', async () => {
    const slowHeaders = await Promise.all(Array.from({ length: 5 }, () => open(t.url)));
    const unfinished = await Promise.all(Array.from({ length: 5 }, () => open(t.url)));
    probes.push(...slowHeaders, ...unfinished);
    // A byte every 100 ms: the socket is never idle, but the headers take far longer than 1 s.
    for (const p of slowHeaders)
      trickle(p.socket, `GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(200)}\r\n\r\n`, 100);
    // Part of the headers at once, then nothing more.
    for (const p of unfinished) p.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n');

    // Meanwhile the service answers as usual.
    const ok = await t.fetch('/health');
    expect(ok.status).toBe(200);

    const times = await Promise.all([...slowHeaders, ...unfinished].map((p) => p.closed));
    for (const ms of times) expect(ms).toBeLessThan(HEADERS_TIMEOUT_MS + SLACK_MS);
    for (const ms of times) expect(ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
    // Node answers 408 before it closes a connection whose headers timed out.
    expect(slowHeaders.every((p) => p.received().startsWith('HTTP/1.1 408'))).toBe(true);
    expect((await t.fetch('/health')).status).toBe(200);
  });

  it('closes a socket whose body never arrives (request timeout)', async () => {
    const p = await open(t.url);
    probes.push(p);
    p.socket.write(
      'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email":',
    );
    // The socket is kept busy (no idle timeout), but the body never completes.
    trickle(p.socket, ' '.repeat(900), 100);
    const ms = await p.closed;
    expect(ms).toBeLessThan(REQUEST_TIMEOUT_MS + SLACK_MS);
    expect(ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
  });

  it('closes a socket that never sends a byte', async () => {
    const p = await open(t.url);
    probes.push(p);
    const ms = await p.closed;
    // Whichever comes first closes it: the headers timeout (1 s) or the idle timeout (3 s).
    expect(ms).toBeLessThan(CONNECTION_TIMEOUT_MS + SLACK_MS);
  });

  it('closes an idle keep-alive socket after its request', async () => {
    const p = await open(t.url);
    probes.push(p);
    p.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    const ms = await p.closed;
    expect(p.received()).toMatch(/^HTTP\/1\.1 200/);
    expect(ms).toBeLessThan(1_000 + SLACK_MS);
  });

  it('refuses headers larger than HTTP_MAX_HEADER_BYTES with 431', async () => {
    const p = await open(t.url);
    probes.push(p);
    p.socket.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
    await p.closed;
    expect(p.received()).toMatch(/^HTTP\/1\.1 431/);
  });

  it('drops a socket.io client that stops answering pings after the configured interval + timeout', async () => {
    // engine.io's open packet (long polling) carries the heartbeat the server applies.
    const opened = Date.now();
    const open = await get(t.url, '/socket.io/?EIO=4&transport=polling');
    expect(open.status).toBe(200);
    const handshake = JSON.parse(open.body.slice(1)) as { sid: string; pingInterval: number; pingTimeout: number };
    expect(handshake).toMatchObject({ pingInterval: 2000, pingTimeout: 500 });
    const poll = `/socket.io/?EIO=4&transport=polling&sid=${handshake.sid}`;
    // The server pings after the interval ("2")...
    expect((await get(t.url, poll)).body).toBe('2');
    // ... the client never answers (no "3"), and keeps polling: the server closes the session ("1")
    // once the ping timeout has passed.
    expect((await get(t.url, poll)).body).toBe('1');
    const ms = Date.now() - opened;
    expect(ms).toBeGreaterThanOrEqual(2_500 - 100);
    expect(ms).toBeLessThan(2_500 + SLACK_MS);
    const late = await get(t.url, poll);
    expect(late.status).toBe(400);
    expect(JSON.parse(late.body)).toMatchObject({ message: 'Session ID unknown' });
  });
});
