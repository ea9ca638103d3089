import fc from 'fast-check';
import { startTwilioFake, type TwilioFake } from './fakes/twilio-fake.js';
import { expectProblem, json, PROBLEM } from './support/http.js';
import {
  call,
  createAgent,
  createApiKey,
  createCompany,
  createUser,
  login,
  type TestCompany,
  unique,
} from './support/tenant.js';
import { startTestApp, TEST_INTERNAL_SECRET, type TestApp } from './support/test-app.js';

/**
 * Every operation of the OpenAPI document, attacked with generated bad input (fast-check, seeded):
 * deep nesting, NUL in strings, keys, path and query, nulls for every field, wrong types, huge
 * numbers, odd unicode (lone surrogates, RTL, emoji), empty strings, oversized arrays. Whatever
 * comes in, the answer is below 500 and a 4xx is application/problem+json.
 *
 * FUZZ_SEED replays a run (the seed is printed at the start and in every failure);
 * FUZZ_RUNS sets the inputs per operation.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20261204);
const RUNS = Number(process.env.FUZZ_RUNS ?? 12);
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Schema = Record<string, any>;

interface Operation {
  method: string;
  path: string;
  pathParams: string[];
  query: { name: string; schema: Schema }[];
  body?: { contentType: string; schema: Schema };
}

interface FuzzRequest {
  method: string;
  url: string;
  contentType?: string;
  body?: string;
}

/** 2,000 levels of arrays and objects: class-transformer overflowed its stack on this. */
const DEEP = '{"a":'.repeat(1000) + '['.repeat(1000) + ']'.repeat(1000) + '}'.repeat(1000);

const HUGE_NUMBERS = [1e308, -1e308, 2 ** 63, -(2 ** 63), 2 ** 53 + 1, -0, 0.1, -1, 4294967296];
const ODD_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\u202eevil\u202c',
  'שלום',
  '👩‍👩‍👧‍👦🏳️‍🌈',
  '\uFEFF',
  'NaN',
  'Infinity',
  '-0',
  '1e308',
  '9223372036854775808',
  '-9223372036854775809',
  '0x10',
  'null',
  'true',
  '../../etc/passwd',
  "' OR 1=1 --",
  '%00',
  '2026-13-45T25:61:61Z',
  '00000000-0000-0000-0000-000000000000',
  'x'.repeat(5_000),
];

/** A value that is wrong in some way for any field. */
const badValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<unknown>(null, ...ODD_STRINGS, ...HUGE_NUMBERS, true, false, {}, []) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constant(Array.from({ length: 10_000 }, (_, i) => i)) },
  { weight: 1, arbitrary: fc.constant(Array.from({ length: 2_000 }, () => 'x')) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constant({ ['k\u0000ey']: 'v' }) },
);

/** Body fields that name a resource, and which of the test's resources (`ids` keys) they may name. */
const REAL_IDS: Record<string, string[]> = {
  connectionId: ['pbx-connections', 'dialpad'],
  agentId: ['agents'],
  userId: ['users'],
};

describe('OpenAPI fuzz: no 5xx for any input', () => {
  let t: TestApp;
  let fake: TwilioFake;
  let co: TestCompany;
  /** Real ids to put in paths, by the path segment before the parameter. */
  const ids: Record<string, string> = {};
  let operations: Operation[] = [];
  let components: Record<string, Schema> = {};

  beforeAll(async () => {
    // eslint-disable-next-line no-console
    console.log(`fuzz-openapi: FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}`);
    fake = await startTwilioFake();
    t = await startTestApp({ env: { TWILIO_BASE_URL: fake.baseUrl } });
    co = await createCompany(t, 'fuzz');
    // Resources the fuzzed paths may name. Destructive operations get ones of their own, never
    // the owner's session or the company the test signs in with.
    const victim = await createCompany(t, 'fuzz-victim');
    ids['apps'] = victim.id;
    ids['agents'] = (await createAgent(t, co)).id;
    ids['users'] = (await createUser(t, co, 'agent')).id;
    ids['api-keys'] = (await createApiKey(t, co, ['calls:read'])).id;
    const twilio = await call(
      t,
      'POST',
      '/api/v1/pbx-connections',
      { token: co.owner.accessToken },
      {
        provider: 'twilio',
        name: unique('Twilio'),
        settings: { accountSid: fake.accountSid },
        secrets: { authToken: fake.authToken },
      },
    );
    const dialpad = await call(
      t,
      'POST',
      '/api/v1/pbx-connections',
      { token: co.owner.accessToken },
      { provider: 'dialpad', name: unique('Dialpad') },
    );
    expect([twilio.status, dialpad.status]).toEqual([201, 201]);
    ids['pbx-connections'] = (await json(twilio)).id;
    ids['dialpad'] = (await json(dialpad)).id;
    ids['twilio'] = ids['pbx-connections'];

    const doc = await json(await t.fetch('/docs-json'));
    components = doc.components?.schemas ?? {};
    for (const [path, item] of Object.entries(doc.paths as Record<string, Schema>)) {
      for (const method of METHODS) {
        const op = item[method] as Schema | undefined;
        if (!op) continue;
        const params = [...(item.parameters ?? []), ...(op.parameters ?? [])] as Schema[];
        const content = (op.requestBody?.content ?? {}) as Record<string, { schema?: Schema }>;
        const contentType = Object.keys(content)[0];
        operations.push({
          method: method.toUpperCase(),
          path,
          pathParams: params.filter((p) => p.in === 'path').map((p) => p.name as string),
          query: params.filter((p) => p.in === 'query').map((p) => ({ name: p.name, schema: p.schema ?? {} })),
          ...(contentType ? { body: { contentType, schema: content[contentType]!.schema ?? {} } } : {}),
        });
      }
    }
    operations = operations.sort((a, b) => `${a.path} ${a.method}`.localeCompare(`${b.path} ${b.method}`));
    expect(operations.length).toBeGreaterThan(30);
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  const resolve = (schema: Schema | undefined): Schema => {
    let s = schema ?? {};
    for (let i = 0; s.$ref && i < 10; i++) s = components[String(s.$ref).split('/').pop()!] ?? {};
    if (s.allOf) return Object.assign({}, ...(s.allOf as Schema[]).map(resolve));
    return s;
  };

  /** A plausible value for a schema (so that one bad field is judged among good ones). */
  const plausible = (schema: Schema, depth = 0): unknown => {
    const s = resolve(schema);
    if (s.example !== undefined) return s.example;
    if (s.enum) return s.enum[0];
    switch (s.type) {
      case 'string':
        return s.format === 'uuid'
          ? '00000000-0000-4000-8000-000000000000'
          : s.format === 'date-time'
            ? new Date().toISOString()
            : 'fuzz';
      case 'integer':
      case 'number':
        return s.minimum ?? 1;
      case 'boolean':
        return true;
      case 'array':
        return depth > 3 ? [] : [plausible(s.items ?? {}, depth + 1)];
      default:
        if (depth > 3 || !s.properties) return {};
        return Object.fromEntries(
          Object.entries(s.properties as Record<string, Schema>).map(([k, v]) => [k, plausible(v, depth + 1)]),
        );
    }
  };

  const bodyArb = (schema: Schema): fc.Arbitrary<unknown> => {
    const s = resolve(schema);
    const props = Object.keys((s.properties ?? {}) as Record<string, Schema>);
    const good = plausible(s) as Record<string, unknown>;
    const variants: fc.Arbitrary<unknown>[] = [
      fc.constant(DEEP),
      fc.constant(Object.fromEntries(props.map((p) => [p, null]))),
      fc.constant({ ...good, ['n\u0000']: 'x' }),
      fc.jsonValue({ maxDepth: 4 }),
      badValue,
    ];
    // The good body naming real resources (so that the handler goes past its lookups).
    const real = props.filter((p) => REAL_IDS[p]?.some((k) => ids[k]));
    if (real.length > 0) {
      variants.push(
        fc
          .record(Object.fromEntries(real.map((p) => [p, fc.constantFrom(...REAL_IDS[p]!.map((k) => ids[k]!))])))
          .map((chosen) => ({ ...good, ...chosen })),
      );
    }
    if (props.length > 0) {
      // Each field good or bad, some left out; and the good body with exactly one field spoiled.
      variants.push(
        fc.record(Object.fromEntries(props.map((p) => [p, fc.oneof(fc.constant(good[p]), badValue)])), {
          requiredKeys: [],
        }),
        fc.tuple(fc.constantFrom(...props), badValue).map(([p, v]) => ({ ...good, [p]: v })),
        fc
          .tuple(fc.constantFrom(...props), fc.constantFrom<unknown>(...ODD_STRINGS.filter((x) => x !== '')))
          .map(([p, v]) => ({ ...good, [p]: typeof good[p] === 'object' && good[p] ? { ['a']: v } : v })),
      );
    }
    return fc.oneof(...variants);
  };

  /** A path or query value: a real id, a plausible one, or a bad one, as URL text. */
  const textArb = (segment: string | undefined): fc.Arbitrary<string> =>
    fc.oneof(
      ...(segment && ids[segment] ? [fc.constant(ids[segment])] : []),
      fc.constantFrom(...ODD_STRINGS.filter((x) => x !== '')),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }),
      fc.double().map(String),
      fc.constant('%00'),
      fc.uuid(),
    );

  /** Percent-encoding that keeps lone surrogates (encodeURIComponent throws on them) as bad UTF-8. */
  const enc = (value: string): string =>
    value === '%00'
      ? '%00'
      : Array.from(value)
          .map((ch) => {
            try {
              return encodeURIComponent(ch);
            } catch {
              return '%ED%A0%80';
            }
          })
          .join('');

  const requestArb = (op: Operation): fc.Arbitrary<FuzzRequest> => {
    const segments = op.path.split('/');
    const pathArbs = op.pathParams.map((name) => {
      const at = segments.indexOf(`{${name}}`);
      return textArb(segments[at - 1]);
    });
    const queryArb = fc.array(
      fc.tuple(fc.constantFrom(...(op.query.length ? op.query.map((q) => q.name) : ['q'])), textArb(undefined)),
      { maxLength: 4 },
    );
    const body = op.body;
    return fc
      .record({
        path: fc.tuple(...pathArbs),
        query: queryArb,
        body: body ? fc.option(bodyArb(body.schema), { freq: 8, nil: undefined }) : fc.constant(undefined),
      })
      .map(({ path, query, body: value }) => {
        let url = op.path;
        op.pathParams.forEach((name, i) => (url = url.replace(`{${name}}`, enc(path[i] as string))));
        if (query.length) url += '?' + query.map(([k, v]) => `${k}=${enc(v)}`).join('&');
        if (value === undefined) return { method: op.method, url };
        if (
          body!.contentType.includes('x-www-form-urlencoded') &&
          value &&
          typeof value === 'object' &&
          !Array.isArray(value)
        ) {
          const form = Object.entries(value as Record<string, unknown>)
            .map(([k, v]) => `${enc(k)}=${enc(typeof v === 'string' ? v : (JSON.stringify(v) ?? ''))}`)
            .join('&');
          return { method: op.method, url, contentType: body!.contentType, body: form };
        }
        const text = value === DEEP ? DEEP : JSON.stringify(value);
        return { method: op.method, url, contentType: 'application/json', body: text };
      });
  };

  // Found by this fuzz before they were fixed: each one, pinned.
  it('PATCH: null for a field that cannot be null is a 400 field error, not a 500', async () => {
    const owner = { token: (await login(t, co.owner.email)).accessToken };
    const path = `/api/v1/pbx-connections/${ids['pbx-connections']}`;
    for (const field of ['name', 'settings', 'secrets']) {
      const body = await expectProblem(
        await call(t, 'PATCH', path, owner, { [field]: null }),
        400,
        'validation-failed',
      );
      expect(body.errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    const agent = `/api/v1/agents/${ids['agents']}`;
    await expectProblem(await call(t, 'PATCH', agent, owner, { displayName: null }), 400, 'validation-failed');
    // Fields that may be cleared stay clearable.
    expect((await call(t, 'PATCH', agent, owner, { extension: null })).status).toBe(200);
  });

  it('Dialpad subscribe without an API key: 409 saying what to do, not a 502', async () => {
    const owner = { token: (await login(t, co.owner.email)).accessToken };
    const res = await call(t, 'POST', `/api/v1/pbx-connections/${ids['dialpad']}/dialpad/subscribe`, owner);
    const body = await expectProblem(res, 409, 'connection-incomplete');
    expect(body.detail).toMatch(/secrets\.apiKey/);
  });

  it('answers every operation below 500, with problem+json for a 4xx', async () => {
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let requests = 0;
    for (const op of operations) {
      // A fresh session for each operation: the fuzz may sign the last one out.
      const session = await login(t, co.owner.email);
      const auth = op.path.startsWith('/internal/')
        ? `Bearer ${TEST_INTERNAL_SECRET}`
        : `Bearer ${session.accessToken}`;
      const details = await fc.check(
        fc.asyncProperty(requestArb(op), async (req) => {
          requests++;
          const headers: Record<string, string> = { authorization: auth };
          if (req.contentType) headers['content-type'] = req.contentType;
          const res = await t.fetch(req.url, { method: req.method, headers, body: req.body, redirect: 'manual' });
          const text = await res.text();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const type = res.headers.get('content-type');
          if (res.status >= 500 || (res.status >= 400 && type !== PROBLEM)) {
            const shown =
              req.body && req.body.length > 300 ? `${req.body.slice(0, 300)}… (${req.body.length} chars)` : req.body;
            throw new Error(
              `${op.method} ${op.path}: ${res.status} ${type}\n  request: ${req.method} ${req.url.slice(0, 500)}` +
                `\n  body: ${shown}\n  answer: ${text.slice(0, 300)}`,
            );
          }
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
      if (details.failed) {
        const message =
          details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
        failures.push(`${message}\n  replay: FUZZ_SEED=${SEED} (fast-check path ${details.counterexamplePath})`);
      }
    }
    // eslint-disable-next-line no-console
    console.log(
      `fuzz-openapi: ${operations.length} operations, ${requests} requests, seed ${SEED}, statuses ` +
        JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b))),
    );
    expect(failures).toEqual([]);
    // The fuzz reaches the handlers: signed in (few 401), and some inputs pass validation.
    const count = (from: number, to: number) =>
      [...statuses].filter(([s]) => s >= from && s < to).reduce((n, [, c]) => n + c, 0);
    expect(count(200, 300)).toBeGreaterThan(0);
    expect(statuses.get(401) ?? 0).toBeLessThan(requests / 4);
  }, 300_000);
});
