import { jest } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DRIVERS } from './pbx.module.js';
import { type InboundWebhook, type PbxDriver, type PbxEnvironment, PbxError } from './pbx-provider.js';

/**
 * The one contract suite every PBX driver runs (STYLE.md "Tests"): each recorded or documented
 * delivery in `src/pbx/<vendor>/fixtures/ok/` must verify and mean exactly the records it names;
 * each one in `not-ok/` must be refused with its error code (AUTH: not from the vendor; REJECTED:
 * from the vendor but unreadable), so nothing is stored. Plus what every driver declares.
 */

interface Fixture {
  description: string;
  connection: { id: string; companyId: string; settings: Record<string, unknown>; secrets: Record<string, unknown> };
  request: { route: string; url: string; headers: Record<string, string>; body: string };
  now: string;
  expect?: { eventId?: string; kind?: string; calls?: unknown[]; voicemails?: unknown[]; messages?: unknown[] };
  error?: 'AUTH' | 'REJECTED' | 'STALE';
}

const env: PbxEnvironment = {
  publicBaseUrl: 'https://switchboard.example.test',
  baseUrls: {
    dialpadProduction: 'https://dialpad.example.test',
    dialpadSandbox: 'https://sandbox.dialpad.example.test',
    twilio: 'https://api.twilio.example.test',
  },
  httpTimeoutMs: 2000,
  allowHttp: false,
};

const root = fileURLToPath(new URL('./', import.meta.url));
function fixtures(provider: string, kind: 'ok' | 'not-ok'): [string, Fixture][] {
  const dir = `${root}${provider}/fixtures/${kind}`;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => [f, JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')) as Fixture]);
}

/** The body as our HTTP layer parses it: a form → strings (repeated keys → arrays), JSON → value, else text. */
function parsedBody(contentType: string, body: string): unknown {
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of new URLSearchParams(body)) {
      const cur = out[k];
      out[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
    }
    return out;
  }
  if (contentType.startsWith('application/json')) return JSON.parse(body) as unknown;
  return body;
}

function inbound(f: Fixture): InboundWebhook {
  const headers = Object.fromEntries(Object.entries(f.request.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const contentType = headers['content-type'] ?? '';
  return {
    route: f.request.route,
    url: f.request.url,
    headers,
    contentType,
    rawBody: Buffer.from(f.request.body),
    body: parsedBody(contentType, f.request.body),
  };
}

const roundTrip = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;
const withWebhooks = DRIVERS.filter((d) => d.webhookRoutes.length > 0);

describe.each(withWebhooks.map((d) => [d.provider, d] as [string, PbxDriver]))(
  'PBX contract: %s',
  (provider, driver) => {
    afterEach(() => jest.useRealTimers());
    const connect = (f: Fixture) => driver.connect({ ...f.connection, provider: driver.provider }, env);
    const at = (f: Fixture) => jest.useFakeTimers({ now: new Date(f.now), doNotFake: ['nextTick', 'setImmediate'] });

    it('has recorded deliveries: at least 6 that verify and 4 that must not', () => {
      expect(fixtures(provider, 'ok').length).toBeGreaterThanOrEqual(6);
      expect(fixtures(provider, 'not-ok').length).toBeGreaterThanOrEqual(4);
    });

    it.each(fixtures(provider, 'ok'))('ok/%s: verifies and means exactly its records', async (_name, f) => {
      at(f);
      const client = connect(f);
      const verified = await client.verifyWebhook(inbound(f));
      expect(verified.eventId.length).toBeGreaterThan(0);
      expect(verified.eventId.length).toBeLessThanOrEqual(200);
      const again = await client.verifyWebhook(inbound(f));
      expect(again.eventId).toBe(verified.eventId);
      // What the inbox stores is JSON; processing reads it back from there.
      const stored = { ...verified, payload: roundTrip(verified.payload) };
      const records = client.parseWebhook(stored);
      const e = f.expect ?? {};
      if (e.eventId) expect(verified.eventId).toBe(e.eventId);
      if (e.kind) expect(verified.kind).toBe(e.kind);
      const got = roundTrip(records) as { calls: unknown[]; voicemails: unknown[]; messages: unknown[] };
      expect(got.calls).toHaveLength(e.calls?.length ?? 0);
      expect(got.voicemails).toHaveLength(e.voicemails?.length ?? 0);
      expect(got.messages).toHaveLength(e.messages?.length ?? 0);
      expect(got).toMatchObject({ calls: e.calls ?? [], voicemails: e.voicemails ?? [], messages: e.messages ?? [] });
      // Parsing is pure: the same stored webhook means the same records, keys included.
      expect(roundTrip(client.parseWebhook(stored))).toEqual(got);
    });

    it.each(fixtures(provider, 'not-ok'))('not-ok/%s: refused with its code', async (_name, f) => {
      at(f);
      const error = await Promise.resolve()
        .then(() => connect(f).verifyWebhook(inbound(f)))
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(PbxError);
      expect((error as PbxError).code).toBe(f.error);
    });

    it('declares its settings, secrets, routes and capabilities', () => {
      expect(driver.webhookRoutes.length).toBeGreaterThan(0);
      expect(driver.capabilities.originate).toBe(true);
      const urls = driver.webhookUrls('11111111-1111-4111-8111-111111111111', env);
      for (const url of Object.values(urls)) {
        expect(
          url.startsWith(`https://switchboard.example.test/webhooks/${provider}/11111111-1111-4111-8111-111111111111`),
        ).toBe(true);
      }
    });
  },
);

describe('PBX drivers', () => {
  it('are one per provider', () => {
    expect(DRIVERS.map((d) => d.provider).sort()).toEqual(['asterisk', 'dialpad', 'netsapiens', 'twilio']);
  });
});
