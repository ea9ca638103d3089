import { jest } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { Agent, request } from 'undici';
import {
  createDefaultDnsLookup,
  type DnsLookup,
  SsrfGuard,
  type SsrfGuardConfig,
  SsrfRefusedError,
} from './ssrf-guard.js';

const config = (over: Partial<SsrfGuardConfig> = {}): SsrfGuardConfig => ({
  WEBHOOK_ALLOWED_TARGETS: [],
  WEBHOOK_DNS_OVERRIDES: [],
  WEBHOOK_DNS_OFFLINE: true,
  ...over,
});

/** A lookup that answers fixed addresses for every name and counts its calls. */
function fixedLookup(...answers: string[][]): DnsLookup & { calls: string[] } {
  const calls: string[] = [];
  const fn = (async (hostname: string) => {
    calls.push(hostname);
    const list = answers[Math.min(calls.length - 1, answers.length - 1)] ?? [];
    return list.map((address) => ({ address, family: net.isIP(address) === 6 ? (6 as const) : (4 as const) }));
  }) as DnsLookup & { calls: string[] };
  fn.calls = calls;
  return fn;
}

async function refusal(promise: Promise<unknown>): Promise<SsrfRefusedError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SsrfRefusedError) return error;
    throw error;
  }
  throw new Error('expected an SsrfRefusedError, nothing was thrown');
}

describe('SsrfGuard.isAllowedAddress', () => {
  const guard = new SsrfGuard(config(), fixedLookup());

  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.5', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['100.64.0.1', 'CGNAT'],
    ['100.127.255.254', 'CGNAT'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'this network'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['::1', 'v6 loopback'],
    ['[::1]', 'v6 loopback in brackets'],
    ['::', 'v6 unspecified'],
    ['fe80::1', 'v6 link-local'],
    ['fe80::1%eth0', 'v6 link-local with zone'],
    ['fc00::1', 'unique local'],
    ['fd00::1', 'unique local fd00::/8'],
    ['fd00:ec2::254', 'AWS metadata v6'],
    ['ff02::1', 'v6 multicast'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:7f00:1', 'IPv4-mapped loopback (hex)'],
    ['::ffff:a9fe:a9fe', 'IPv4-mapped metadata'],
    ['::ffff:10.0.0.1', 'IPv4-mapped private'],
    ['::127.0.0.1', 'IPv4-compatible loopback'],
    ['64:ff9b::a00:1', 'NAT64 (rfc6052) of 10.0.0.1'],
    ['64:ff9b::7f00:1', 'NAT64 (rfc6052) of 127.0.0.1'],
    ['2002:7f00:1::1', '6to4 of 127.0.0.1'],
    ['2002:a00:1::1', '6to4 of 10.0.0.1'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'teredo'],
    ['2001:db8::1', 'documentation'],
    ['fec0::1', 'site-local'],
    ['127.1', 'short form (not a canonical literal)'],
    ['0x7f000001', 'hex form (not a canonical literal)'],
    ['2130706433', 'decimal form (not a canonical literal)'],
    ['localhost', 'a name'],
    ['', 'empty'],
    ['not an address', 'garbage'],
  ])('refuses %s (%s)', (address) => {
    expect(guard.isAllowedAddress(address)).toBe(false);
  });

  it.each([
    '93.184.216.34',
    '8.8.8.8',
    '1.1.1.1',
    '2606:4700:4700::1111',
    '2a00:1450:4001:80b::200e',
    '::ffff:93.184.216.34',
  ])('allows the public address %s', (address) => {
    expect(guard.isAllowedAddress(address)).toBe(true);
  });

  it('lets the allow-list override the blocked ranges, and nothing more', () => {
    const allowing = new SsrfGuard(
      config({ WEBHOOK_ALLOWED_TARGETS: ['127.0.0.1/32', '::1/128', '10.1.0.0/16', '::ffff:192.168.5.5/128'] }),
      fixedLookup(),
    );
    expect(allowing.isAllowedAddress('127.0.0.1')).toBe(true);
    expect(allowing.isAllowedAddress('::ffff:127.0.0.1')).toBe(true);
    expect(allowing.isAllowedAddress('::1')).toBe(true);
    expect(allowing.isAllowedAddress('10.1.200.3')).toBe(true);
    expect(allowing.isAllowedAddress('192.168.5.5')).toBe(true);
    expect(allowing.isAllowedAddress('127.0.0.2')).toBe(false);
    expect(allowing.isAllowedAddress('10.2.0.1')).toBe(false);
    expect(allowing.isAllowedAddress('192.168.5.6')).toBe(false);
    expect(allowing.isAllowedAddress('169.254.169.254')).toBe(false);
    expect(allowing.isAllowedAddress('93.184.216.34')).toBe(true);
  });

  it('refuses to start on an allow-list entry or DNS override that is not an address', () => {
    expect(() => new SsrfGuard(config({ WEBHOOK_ALLOWED_TARGETS: ['10.0.0.0/33'] }))).toThrow(
      /WEBHOOK_ALLOWED_TARGETS/,
    );
    expect(() => new SsrfGuard(config({ WEBHOOK_ALLOWED_TARGETS: ['example.com'] }))).toThrow(
      /WEBHOOK_ALLOWED_TARGETS/,
    );
    expect(() => new SsrfGuard(config({ WEBHOOK_DNS_OVERRIDES: ['host.test'] }))).toThrow(/WEBHOOK_DNS_OVERRIDES/);
    expect(() => new SsrfGuard(config({ WEBHOOK_DNS_OVERRIDES: ['host.test=nope'] }))).toThrow(/WEBHOOK_DNS_OVERRIDES/);
  });
});

describe('SsrfGuard.checkUrl', () => {
  const overrides = [
    'public.example.test=93.184.216.34',
    'evil.example.test=127.0.0.1',
    'mixed.example.test=93.184.216.34',
    'mixed.example.test=10.0.0.1',
    'v6.example.test=[fd00::1]',
  ];
  const guard = new SsrfGuard(config({ WEBHOOK_DNS_OVERRIDES: overrides }));

  it('accepts https to a public address or a name resolving only to public addresses', async () => {
    await expect(guard.checkUrl('https://93.184.216.34/hook')).resolves.toBeUndefined();
    await expect(guard.checkUrl('https://public.example.test/hook?x=1')).resolves.toBeUndefined();
    await expect(guard.checkUrl('https://[2606:4700:4700::1111]:8443/')).resolves.toBeUndefined();
  });

  it.each([
    ['https://127.0.0.1/', 'loopback'],
    ['https://10.0.0.5/', 'private'],
    ['https://[::1]/', 'v6 loopback'],
    ['https://[::ffff:127.0.0.1]/', 'IPv4-mapped loopback'],
    ['https://[::ffff:a9fe:a9fe]/', 'IPv4-mapped metadata'],
    ['https://[fd00::1]/', 'unique local'],
    ['https://100.64.0.1/', 'CGNAT'],
    ['https://224.0.0.1/', 'multicast'],
    ['https://0.0.0.0/', 'unspecified'],
    ['https://169.254.169.254/latest/meta-data/', 'metadata'],
    ['http://2130706433/', 'decimal IPv4 (WHATWG URL → 127.0.0.1)'],
    ['http://0x7f.1/', 'hex IPv4 (WHATWG URL → 127.0.0.1)'],
    ['https://0177.0.0.1/', 'octal IPv4 (WHATWG URL → 127.0.0.1)'],
    ['https://0xa9fea9fe/', 'hex metadata'],
    ['http://localhost:8080/', 'localhost'],
    ['https://app.localhost/', 'a .localhost name'],
    ['https://evil.example.test/', 'a name resolving to 127.0.0.1'],
    ['https://mixed.example.test/', 'a name with one private address among public ones'],
    ['https://v6.example.test/', 'a name resolving to fd00::1'],
  ])('refuses %s (%s) as blocked-address', async (url) => {
    const error = await refusal(guard.checkUrl(url));
    expect(error.reason).toBe('blocked-address');
  });

  it('refuses plain http, credentials, other schemes, garbage and unresolvable names', async () => {
    expect((await refusal(guard.checkUrl('http://93.184.216.34/'))).reason).toBe('scheme');
    expect((await refusal(guard.checkUrl('http://public.example.test/'))).reason).toBe('scheme');
    expect((await refusal(guard.checkUrl('ftp://public.example.test/'))).reason).toBe('scheme');
    expect((await refusal(guard.checkUrl('file:///etc/passwd'))).reason).toBe('scheme');
    expect((await refusal(guard.checkUrl('https://user:pw@public.example.test/'))).reason).toBe('credentials');
    expect((await refusal(guard.checkUrl('https://user@public.example.test/'))).reason).toBe('credentials');
    expect((await refusal(guard.checkUrl('not a url'))).reason).toBe('invalid-url');
    // WEBHOOK_DNS_OFFLINE: names without an override never reach DNS.
    expect((await refusal(guard.checkUrl('https://example.com/'))).reason).toBe('unresolvable');
  });

  it('allows allow-listed targets, over plain http too', async () => {
    const allowing = new SsrfGuard(
      config({ WEBHOOK_ALLOWED_TARGETS: ['127.0.0.1/32'], WEBHOOK_DNS_OVERRIDES: ['receiver.test=127.0.0.1'] }),
    );
    await expect(allowing.checkUrl('http://127.0.0.1:8080/hook')).resolves.toBeUndefined();
    await expect(allowing.checkUrl('http://receiver.test:8080/hook')).resolves.toBeUndefined();
    await expect(allowing.checkUrl('https://127.0.0.1/hook')).resolves.toBeUndefined();
    // localhost is 127.0.0.1 and ::1: ::1 is not allow-listed.
    expect((await refusal(allowing.checkUrl('http://localhost:8080/'))).reason).toBe('blocked-address');
    expect((await refusal(allowing.checkUrl('http://10.0.0.5/'))).reason).toBe('blocked-address');
    // Plain http only for allow-listed targets.
    expect((await refusal(allowing.checkUrl('http://93.184.216.34/'))).reason).toBe('scheme');
  });

  it('treats a lookup that fails or answers nothing as unresolvable', async () => {
    const failing = new SsrfGuard(config(), () => Promise.reject(new Error('ENOTFOUND')));
    expect((await refusal(failing.checkUrl('https://a.example.test/'))).reason).toBe('unresolvable');
    const empty = new SsrfGuard(config(), fixedLookup([]));
    expect((await refusal(empty.checkUrl('https://a.example.test/'))).reason).toBe('unresolvable');
  });

  it('gives up on a lookup that hangs (2 s)', async () => {
    const hanging = new SsrfGuard(config(), () => new Promise(() => undefined));
    const started = Date.now();
    expect((await refusal(hanging.checkUrl('https://slow.example.test/'))).reason).toBe('unresolvable');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
  });
});

describe('createDefaultDnsLookup', () => {
  it('answers overrides, then localhost, and never asks DNS when offline', async () => {
    const lookup = createDefaultDnsLookup(config({ WEBHOOK_DNS_OVERRIDES: ['Hook.Example.Test=93.184.216.34'] }));
    await expect(lookup('hook.example.test')).resolves.toEqual([{ address: '93.184.216.34', family: 4 }]);
    await expect(lookup('localhost')).resolves.toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    await expect(lookup('example.com')).rejects.toThrow(/WEBHOOK_DNS_OFFLINE/);
  });
});

describe('SsrfGuard.connector', () => {
  let server: Server;
  let port: number;
  let connections = 0;
  const hosts: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      hosts.push(req.headers.host ?? '');
      res.end('ok');
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    connections = 0;
    hosts.length = 0;
  });

  /** Sockets opened while `work` runs (net.connect and tls.connect are swapped for spies that refuse). */
  async function withoutSockets<T>(work: () => Promise<T>): Promise<{ result: T; opened: string[] }> {
    const opened: string[] = [];
    const netConnect = net.connect;
    const tlsConnect = tls.connect;
    const spy = (...args: unknown[]) => {
      opened.push(JSON.stringify(args[0]));
      throw new Error('a socket was opened');
    };
    net.connect = spy as typeof net.connect;
    tls.connect = spy as typeof tls.connect;
    try {
      return { result: await work(), opened };
    } finally {
      net.connect = netConnect;
      tls.connect = tlsConnect;
    }
  }

  async function send(guard: SsrfGuard, url: string): Promise<{ status: number; body: string }> {
    const agent = new Agent({ connect: guard.connector({ timeoutMs: 2_000 }) });
    try {
      const res = await request(url, { method: 'POST', body: '{}', dispatcher: agent });
      return { status: res.statusCode, body: await res.body.text() };
    } finally {
      await agent.close();
    }
  }

  it('connects to an allow-listed 127.0.0.1, pinned to the address it checked (the name is never resolved again)', async () => {
    const lookup = fixedLookup(['127.0.0.1']);
    const guard = new SsrfGuard(config({ WEBHOOK_ALLOWED_TARGETS: ['127.0.0.1/32'] }), lookup);
    const res = await send(guard, `http://receiver.test:${port}/hook`);
    expect(res).toEqual({ status: 200, body: 'ok' });
    expect(connections).toBe(1);
    // The request still names the host; only the guard's lookup resolved it, once.
    expect(hosts).toEqual([`receiver.test:${port}`]);
    expect(lookup.calls).toEqual(['receiver.test']);
  });

  it('refuses a rebinding answer (a public address first, 127.0.0.1 second) without connecting', async () => {
    const lookup = fixedLookup(['93.184.216.34', '127.0.0.1']);
    const guard = new SsrfGuard(config(), lookup);
    const { result, opened } = await withoutSockets(() => refusal(send(guard, `https://rebind.test:${port}/hook`)));
    expect(result.reason).toBe('blocked-address');
    expect(opened).toEqual([]);
    expect(connections).toBe(0);
    expect(lookup.calls).toEqual(['rebind.test']);
  });

  it('refuses a name that was public when checked and resolves to loopback at connect time', async () => {
    const lookup = fixedLookup(['93.184.216.34'], ['127.0.0.1']);
    const guard = new SsrfGuard(config(), lookup);
    await expect(guard.checkUrl(`https://rebind.test:${port}/`)).resolves.toBeUndefined();
    const { result, opened } = await withoutSockets(() => refusal(send(guard, `https://rebind.test:${port}/hook`)));
    expect(result.reason).toBe('blocked-address');
    expect(opened).toEqual([]);
    expect(connections).toBe(0);
  });

  it('checks IP-literal hosts too, IPv4-mapped ones included', async () => {
    const lookup = fixedLookup(['93.184.216.34']);
    const guard = new SsrfGuard(config(), lookup);
    for (const url of [`https://127.0.0.1:${port}/`, `http://[::ffff:127.0.0.1]:${port}/`, `http://[::1]:${port}/`]) {
      const { result, opened } = await withoutSockets(() => refusal(send(guard, url)));
      expect(result.reason).toBe('blocked-address');
      expect(opened).toEqual([]);
    }
    expect(connections).toBe(0);
    expect(lookup.calls).toEqual([]);
  });

  it('refuses plain http to a target that is not allow-listed, without connecting', async () => {
    const guard = new SsrfGuard(config({ WEBHOOK_ALLOWED_TARGETS: ['127.0.0.0/8'] }), fixedLookup(['127.0.0.1']));
    expect((await send(guard, `http://receiver.test:${port}/`)).status).toBe(200);
    const publicTarget = new SsrfGuard(
      config({ WEBHOOK_ALLOWED_TARGETS: ['127.0.0.0/8'] }),
      fixedLookup(['93.184.216.34']),
    );
    const { result, opened } = await withoutSockets(() => refusal(send(publicTarget, `http://receiver.test:${port}/`)));
    expect(result.reason).toBe('scheme');
    expect(opened).toEqual([]);
  });

  it('sees the sockets it opens (the spy of the tests above works)', async () => {
    const guard = new SsrfGuard(config({ WEBHOOK_ALLOWED_TARGETS: ['127.0.0.1/32'] }), fixedLookup(['127.0.0.1']));
    const { opened } = await withoutSockets(() => send(guard, `http://receiver.test:${port}/`).catch(() => undefined));
    expect(opened).toHaveLength(1);
    expect(JSON.parse(opened[0]!)).toMatchObject({ host: '127.0.0.1', port: String(port) });
  });

  it('connects TLS to the checked address with the host name as servername (SNI and certificate check)', async () => {
    const guard = new SsrfGuard(config({ WEBHOOK_ALLOWED_TARGETS: ['127.0.0.1/32'] }), fixedLookup(['127.0.0.1']));
    // The socket spy refuses to open anything: only the options reach it.
    const { opened } = await withoutSockets(() => send(guard, `https://receiver.test:${port}/`).catch(() => undefined));
    expect(opened).toHaveLength(1);
    expect(JSON.parse(opened[0]!)).toMatchObject({
      host: '127.0.0.1',
      port: String(port),
      servername: 'receiver.test',
    });
  });

  it('checks the address the socket really connected to, and closes it when refused', async () => {
    const guard = new SsrfGuard(config({ WEBHOOK_ALLOWED_TARGETS: ['127.0.0.1/32'] }), fixedLookup(['127.0.0.1']));
    // Allowed when resolved; refused once connected (as if the route had led somewhere else).
    const check = jest.spyOn(guard, 'isAllowedAddress').mockReturnValueOnce(true).mockReturnValueOnce(false);
    const error = await refusal(send(guard, `http://receiver.test:${port}/`));
    expect(error).toMatchObject({ reason: 'blocked-address', address: '127.0.0.1' });
    expect(check.mock.calls).toEqual([['127.0.0.1'], ['127.0.0.1']]);
    expect(hosts).toEqual([]);
  });

  it('reports an unresolvable name through the callback', async () => {
    const guard = new SsrfGuard(config());
    const { result, opened } = await withoutSockets(() => refusal(send(guard, 'https://nowhere.example.test/')));
    expect(result.reason).toBe('unresolvable');
    expect(opened).toEqual([]);
  });
});
