import { promises as dns } from 'node:dns';
import { isIP, type Socket } from 'node:net';
import { Inject, Injectable, Optional } from '@nestjs/common';
import ipaddr from 'ipaddr.js';
import { buildConnector } from 'undici';
import { APP_CONFIG } from '../../config/config.module.js';
import type { AppConfig } from '../../config/config.schema.js';

/** Resolves a host name to every address it has (like `dns.promises.lookup(host, { all: true })`). */
export type DnsLookup = (hostname: string) => Promise<{ address: string; family: 4 | 6 }[]>;

/**
 * Nest provider token: the lookup SsrfGuard uses. Default (WebhookEndpointsModule):
 * WEBHOOK_DNS_OVERRIDES → `localhost` → `dns.promises.lookup(host, { all: true })` with a 2 s
 * timeout (never DNS when WEBHOOK_DNS_OFFLINE).
 */
export const WEBHOOK_DNS_LOOKUP: unique symbol = Symbol('WEBHOOK_DNS_LOOKUP');

export type SsrfReason = 'scheme' | 'credentials' | 'invalid-url' | 'unresolvable' | 'blocked-address';

/** A webhook target the SSRF guard refuses. `address` is the refused address (never shown to clients). */
export class SsrfRefusedError extends Error {
  override readonly name = 'SsrfRefusedError';
  constructor(
    readonly reason: SsrfReason,
    message: string,
    readonly address?: string,
  ) {
    super(message);
  }
}

/** The configuration the guard reads. */
export type SsrfGuardConfig = Pick<
  AppConfig,
  'WEBHOOK_ALLOWED_TARGETS' | 'WEBHOOK_DNS_OVERRIDES' | 'WEBHOOK_DNS_OFFLINE'
>;

/** How long one DNS resolution may take. */
export const DNS_TIMEOUT_MS = 2_000;

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** `[::1]` → `::1`; other host names as they are. */
function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function familyOf(address: string): 4 | 6 {
  return isIP(address) === 6 ? 6 : 4;
}

/** Parses `host=address` pairs; throws on a malformed one (the app refuses to start). */
export function parseDnsOverrides(entries: readonly string[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const host = entry.slice(0, eq).trim().toLowerCase();
    const address = unbracket(entry.slice(eq + 1).trim());
    if (eq <= 0 || !host || isIP(address) === 0) {
      throw new Error(`WEBHOOK_DNS_OVERRIDES: "${entry}" is not host=address`);
    }
    map.set(host, [...(map.get(host) ?? []), address]);
  }
  return map;
}

/**
 * The default lookup: WEBHOOK_DNS_OVERRIDES first, `localhost` → 127.0.0.1 and ::1 (no DNS), then
 * the system resolver (the guard bounds every lookup to DNS_TIMEOUT_MS) — unless
 * WEBHOOK_DNS_OFFLINE, where anything else is unresolvable.
 */
export function createDefaultDnsLookup(config: SsrfGuardConfig): DnsLookup {
  const overrides = parseDnsOverrides(config.WEBHOOK_DNS_OVERRIDES);
  return async (hostname) => {
    const host = hostname.toLowerCase().replace(/\.$/, '');
    const fixed = overrides.get(host);
    if (fixed) return fixed.map((address) => ({ address, family: familyOf(address) }));
    if (host === 'localhost' || host.endsWith('.localhost')) {
      return [
        { address: '127.0.0.1', family: 4 },
        { address: '::1', family: 6 },
      ];
    }
    if (config.WEBHOOK_DNS_OFFLINE) throw new Error('DNS is off (WEBHOOK_DNS_OFFLINE)');
    const answers = await dns.lookup(host, { all: true, verbatim: true });
    return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
  };
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Ranges refused on top of everything ipaddr.js does not call 'unicast': the cloud metadata
 * address (link-local already; named for the reader) and ::/8 (IPv4-compatible ::a.b.c.d and the
 * other IETF-reserved low v6 addresses; IPv4-mapped ones are turned into v4 before this).
 */
const EXTRA_BLOCKED: [Address, number][] = [ipaddr.parseCIDR('169.254.169.254/32'), ipaddr.parseCIDR('::/8')];

/** Parses an allow-list CIDR (`127.0.0.1/32`, `::1/128`, a bare address); mapped v6 ranges become v4. */
function parseAllowed(entry: string): [Address, number] {
  const text = entry.includes('/') ? entry : `${entry}/${isIP(entry) === 6 ? 128 : 32}`;
  if (!ipaddr.isValidCIDR(text)) throw new Error(`WEBHOOK_ALLOWED_TARGETS: "${entry}" is not a CIDR`);
  const [address, bits] = ipaddr.parseCIDR(text);
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return [(address as ipaddr.IPv6).toIPv4Address(), bits - 96];
  }
  return [address, bits];
}

/**
 * The SSRF guard of outbound webhooks. Only public unicast addresses may be targets, unless the
 * allow-list WEBHOOK_ALLOWED_TARGETS names them; only allow-listed targets may be plain http.
 * Checked at creation/update (`checkUrl`) and again at every connection (`connector`), which
 * resolves the host itself, connects to the address it checked (no second resolution: no DNS
 * rebinding) and checks the address the socket really connected to.
 */
@Injectable()
export class SsrfGuard {
  private readonly allowed: [Address, number][];
  private readonly lookup: DnsLookup;

  constructor(@Inject(APP_CONFIG) config: SsrfGuardConfig, @Optional() @Inject(WEBHOOK_DNS_LOOKUP) lookup?: DnsLookup) {
    this.allowed = config.WEBHOOK_ALLOWED_TARGETS.map(parseAllowed);
    this.lookup = lookup ?? createDefaultDnsLookup(config);
  }

  /** True when the address (v4, v6, IPv4-mapped v6) may be connected to. */
  isAllowedAddress(address: string): boolean {
    const parsed = this.parse(address);
    if (!parsed) return false;
    if (this.isAllowListed(parsed)) return true;
    if (EXTRA_BLOCKED.some(([range, bits]) => range.kind() === parsed.kind() && parsed.match(range, bits)))
      return false;
    return parsed.range() === 'unicast';
  }

  /**
   * Creation/update-time check: URL shape, https unless the target is allow-listed, no user:pass,
   * resolves the host and refuses if ANY resolved address is blocked (not allow-listed).
   */
  async checkUrl(url: string): Promise<void> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new SsrfRefusedError('invalid-url', 'the URL is not valid');
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new SsrfRefusedError('scheme', 'the URL must start with https://');
    }
    if (parsed.username !== '' || parsed.password !== '') {
      throw new SsrfRefusedError('credentials', 'the URL must not carry a user name or password');
    }
    if (parsed.hostname === '') throw new SsrfRefusedError('invalid-url', 'the URL has no host');
    const addresses = await this.resolve(parsed.hostname);
    if (parsed.protocol === 'http:' && !addresses.every((a) => this.isAllowListedText(a))) {
      throw new SsrfRefusedError(
        'scheme',
        'the URL must start with https:// (plain http only for allow-listed targets)',
      );
    }
  }

  /**
   * An undici connector (`new Agent({ connect: guard.connector({ timeoutMs }) })`): resolves the
   * host itself, refuses blocked addresses (SsrfRefusedError through the callback), connects to the
   * checked address (pinned: no second resolution, TLS servername = the host name), and checks
   * socket.remoteAddress again once connected. IP-literal hosts are checked too.
   */
  connector(options: { timeoutMs?: number } = {}): buildConnector.connector {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const connect = buildConnector({ timeout: timeoutMs });
    return (opts, callback) => {
      const hostname = unbracket(opts.hostname);
      const literal = isIP(hostname) !== 0;
      let done = false;
      const finish = (...args: [null, Socket] | [Error, null]) => {
        if (done) return;
        done = true;
        callback(...args);
      };
      const run = async () => {
        const addresses = await this.resolve(hostname);
        const address = addresses[0]!;
        if (opts.protocol === 'http:' && !addresses.every((a) => this.isAllowListedText(a))) {
          throw new SsrfRefusedError('scheme', 'plain http only for allow-listed targets', address);
        }
        // Pinned: the socket goes to the address just checked; TLS still verifies the host name.
        connect(
          { ...opts, hostname: address, servername: literal ? undefined : (opts.servername ?? hostname) },
          (err, socket) => {
            if (err || !socket) {
              finish(err ?? new Error('connection failed'), null);
              return;
            }
            const remote = socket.remoteAddress;
            if (!remote || !this.isAllowedAddress(remote) || !this.sameAddress(remote, address)) {
              socket.destroy();
              finish(
                new SsrfRefusedError('blocked-address', 'the webhook target address is not allowed', remote),
                null,
              );
              return;
            }
            finish(null, socket);
          },
        );
      };
      run().catch((err: unknown) => finish(err instanceof Error ? err : new Error(String(err)), null));
    };
  }

  /** Every address of the host (IP literals as they are); throws if one is blocked or none resolves. */
  private async resolve(host: string): Promise<string[]> {
    const hostname = unbracket(host);
    let addresses: string[];
    if (isIP(hostname) !== 0) {
      addresses = [hostname];
    } else {
      try {
        addresses = (await withTimeout(this.lookup(hostname), DNS_TIMEOUT_MS)).map((a) => a.address);
      } catch {
        throw new SsrfRefusedError('unresolvable', 'the host name of the URL does not resolve');
      }
      if (addresses.length === 0)
        throw new SsrfRefusedError('unresolvable', 'the host name of the URL does not resolve');
    }
    const blocked = addresses.find((a) => !this.isAllowedAddress(a));
    if (blocked !== undefined) {
      throw new SsrfRefusedError(
        'blocked-address',
        'the URL resolves to an address webhooks may not target (loopback, private, link-local or another reserved range)',
        blocked,
      );
    }
    return addresses;
  }

  private parse(address: string): Address | undefined {
    const text = unbracket(address.trim());
    // Only canonical literals (what sockets and resolvers return): ipaddr.js alone would also
    // accept `127.1` or `0x7f000001` forms.
    if (isIP(text.split('%')[0] ?? '') === 0) return undefined;
    try {
      return ipaddr.process(text);
    } catch {
      return undefined;
    }
  }

  private isAllowListed(address: Address): boolean {
    return this.allowed.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits));
  }

  private isAllowListedText(address: string): boolean {
    const parsed = this.parse(address);
    return parsed !== undefined && this.isAllowListed(parsed);
  }

  private sameAddress(a: string, b: string): boolean {
    const pa = this.parse(a);
    const pb = this.parse(b);
    return (
      pa !== undefined &&
      pb !== undefined &&
      pa.kind() === pb.kind() &&
      pa.toNormalizedString() === pb.toNormalizedString()
    );
  }
}
