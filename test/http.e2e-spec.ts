import { expectProblem, json, PROBLEM } from './support/http.js';
import { ProbeModule } from './support/probe.module.js';
import { startTestApp, type TestApp } from './support/test-app.js';

describe('HTTP pipeline: problem+json, request ids, headers, logging', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({
      imports: [ProbeModule],
      env: { BODY_LIMIT_BYTES: '2048', CORS_ORIGINS: 'https://crm.example.com' },
    });
  });
  afterAll(() => t.close());

  const post = (body: string, contentType = 'application/json') =>
    t.fetch('/__probe/echo', { method: 'POST', headers: { 'content-type': contentType }, body });

  it('accepts a valid body', async () => {
    const res = await post(JSON.stringify({ name: 'a', count: 2, address: { country: 'US' } }));
    expect(res.status).toBe(201);
    expect(await json(res)).toEqual({ received: { name: 'a', count: 2, address: { country: 'US' } } });
  });

  it('answers an unknown route 404 problem+json', async () => {
    const res = await t.fetch('/nope/here?x=1');
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    const body = await json(res);
    expect(body).toEqual({
      type: 'urn:switchboard:problem:not-found',
      title: 'Not found',
      status: 404,
      detail: 'No route GET /nope/here.',
      instance: '/nope/here',
      requestId: res.headers.get('x-request-id'),
    });
  });

  it('answers malformed JSON 400', async () => {
    const res = await post('{"name": "a",');
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    const body = await json(res);
    expect(body.type).toBe('urn:switchboard:problem:malformed-json');
    expect(body.detail).toBe('The body is not valid JSON.');
  });

  it('answers a body over the limit 413', async () => {
    const res = await post(JSON.stringify({ name: 'x'.repeat(4096), count: 1, address: { country: 'US' } }));
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    expect((await json(res)).type).toBe('urn:switchboard:problem:payload-too-large');
  });

  it('answers a wrong content type 415', async () => {
    const res = await post('<xml/>', 'application/xml');
    expect(res.status).toBe(415);
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    expect((await json(res)).type).toBe('urn:switchboard:problem:unsupported-media-type');
  });

  it('answers validation errors 400 with every field error, unknown properties refused', async () => {
    const res = await post(JSON.stringify({ name: '', count: 11, address: { country: 'USA' }, admin: true }));
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    const body = await json(res);
    expect(body.type).toBe('urn:switchboard:problem:validation-failed');
    expect(body.title).toBe('Bad request');
    expect(body.status).toBe(400);
    const fields = Object.fromEntries(
      body.errors.map((e: { field: string; messages: string[] }) => [e.field, e.messages]),
    );
    expect(Object.keys(fields).sort()).toEqual(['address.country', 'admin', 'count', 'name']);
    expect(fields.admin).toEqual(['property admin should not exist']);
    expect(fields.count).toEqual(['count must not be greater than 10']);
    expect(body.detail).toMatch(/^\w[\w.]*: .+ \(and 3 more\)$/);
  });

  it('answers an unexpected error 500 with the request id and no internals', async () => {
    const res = await t.fetch('/__probe/boom', { headers: { 'x-request-id': 'trace-500-abc' } });
    expect(res.status).toBe(500);
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    expect(res.headers.get('x-request-id')).toBe('trace-500-abc');
    const text = await res.text();
    expect(text).not.toMatch(/secret_table|SELECT|at .*\.ts|stack/i);
    expect(JSON.parse(text)).toEqual({
      type: 'urn:switchboard:problem:internal-error',
      title: 'Internal server error',
      status: 500,
      detail: 'An unexpected error occurred. Quote the requestId when reporting it.',
      instance: '/__probe/boom',
      requestId: 'trace-500-abc',
    });
    // The error itself is in the log, under the same request id, with the phone number masked.
    const logged = t.logs.lines.find((l) => l.msg === 'request failed' && l.requestId === 'trace-500-abc');
    expect(logged).toBeDefined();
    expect(JSON.stringify(logged)).toContain('secret_table');
    expect(JSON.stringify(logged)).toContain('+*******0001');
    expect(t.logs.text()).not.toContain('5551230001');
  });

  it('answers a path segment over 1024 characters 414 problem+json, from the router itself', async () => {
    const res = await t.fetch(`/api/v1/users/${'x'.repeat(1100)}`, { headers: { 'x-request-id': 'long-param-1' } });
    expect(res.status).toBe(414);
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    expect(res.headers.get('x-request-id')).toBe('long-param-1');
    expect(await json(res)).toMatchObject({
      type: 'urn:switchboard:problem:uri-too-long',
      status: 414,
      requestId: 'long-param-1',
    });
  });

  it('generates a request id when none (or a malformed one) is given', async () => {
    const a = await t.fetch('/health');
    const b = await t.fetch('/health', { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(a.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.headers.get('x-request-id')).not.toBe(b.headers.get('x-request-id'));
  });

  it('logs each request once, with its request id, masked numbers and no credentials', async () => {
    await t.fetch('/health?caller=%2B15551230001', {
      headers: { 'x-request-id': 'log-check-1', authorization: 'Bearer very-secret-token', cookie: 'sid=abc' },
    });
    const line = t.logs.lines.find((l) => l.requestId === 'log-check-1' && l.msg === 'request completed');
    expect(line).toMatchObject({
      level: 30,
      requestId: 'log-check-1',
      req: { method: 'GET', url: '/health?caller=%2B*******0001' },
      res: { statusCode: 200 },
    });
    expect(t.logs.text()).not.toContain('very-secret-token');
    expect(t.logs.text()).not.toContain('5551230001');
  });

  it('sets helmet headers and CORS only for configured origins', async () => {
    const allowed = await t.fetch('/health', { headers: { origin: 'https://crm.example.com' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://crm.example.com');
    expect(allowed.headers.get('x-content-type-options')).toBe('nosniff');
    expect(allowed.headers.get('strict-transport-security')).toMatch(/max-age=/);
    const other = await t.fetch('/health', { headers: { origin: 'https://evil.example.net' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('HTTP edge guards: nesting depth and NUL characters', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ imports: [ProbeModule], env: { JSON_MAX_DEPTH: '8' } });
  });
  afterAll(() => t.close());

  const post = (path: string, body: string, contentType = 'application/json') =>
    t.fetch(path, { method: 'POST', headers: { 'content-type': contentType }, body });
  const nested = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);

  it('refuses a body nested deeper than JSON_MAX_DEPTH with 400 invalid-body, before validation', async () => {
    const res = await post('/api/v1/auth/login', `{"email":${nested(8)}}`);
    const body = await expectProblem(res, 400, 'invalid-body');
    expect(body.detail).toBe('The body is nested deeper than 8 levels of arrays and objects.');
    // 2,000 levels (class-transformer overflowed its stack on this): the same answer, at once.
    await expectProblem(await post('/api/v1/auth/register', `{"a":${nested(2_000)}}`), 400, 'invalid-body');
    // Brackets inside strings are text, not nesting.
    const ok = await post(
      '/__probe/echo',
      JSON.stringify({ name: '[[[[[[[[[[', count: 1, address: { country: 'US' } }),
    );
    expect(ok.status).toBe(201);
    // At the limit it is read (and validated as usual).
    await expectProblem(await post('/__probe/echo', `{"name":${nested(7)}}`), 400, 'validation-failed');
  });

  it('refuses NUL in any string or key of a JSON body', async () => {
    const login = await post('/api/v1/auth/login', JSON.stringify({ email: 'a\u0000@example.com', password: 'x' }));
    expect((await expectProblem(login, 400, 'invalid-body')).field).toBe('email');
    const deep = await post(
      '/__probe/echo',
      JSON.stringify({ name: 'a', count: 1, address: { country: ['U\u0000'] } }),
    );
    expect((await expectProblem(deep, 400, 'invalid-body')).field).toBe('address.country[0]');
    const key = await post('/__probe/echo', JSON.stringify({ name: 'a', count: 1, ['x\u0000y']: 1 }));
    await expectProblem(key, 400, 'invalid-body');
    // An escaped backslash followed by "u0000" is no NUL.
    const text = await post('/__probe/echo', JSON.stringify({ name: '\\u0000', count: 1, address: { country: 'US' } }));
    expect(text.status).toBe(201);
  });

  it('refuses NUL in a form body, and keeps form bodies working', async () => {
    await expectProblem(
      await post('/__probe/echo', 'name=a%00b&count=1', 'application/x-www-form-urlencoded'),
      400,
      'invalid-body',
    );
    const form = await post('/__probe/echo', 'name=a&count=1', 'application/x-www-form-urlencoded');
    expect(form.status).toBe(400); // validated as usual: count is text and address is missing
    expect((await json(form)).type).toBe('urn:switchboard:problem:validation-failed');
  });

  it('refuses NUL in the query and in path parameters (%00), before authentication', async () => {
    await expectProblem(await t.fetch('/health?x=%00'), 400, 'invalid-url');
    await expectProblem(await t.fetch('/api/v1/agents/%00abc'), 400, 'invalid-url');
    await expectProblem(await t.fetch('/api/v1/calls?agentId=a%00'), 400, 'invalid-url');
    // %2500 is the text "%00", not a NUL.
    expect((await t.fetch('/health?x=%2500')).status).toBe(200);
  });
});
