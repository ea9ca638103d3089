import { json } from './support/http.js';
import { startTestApp, type TestApp } from './support/test-app.js';

describe('operations: health, metrics, OpenAPI', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('GET /health is live', async () => {
    const res = await t.fetch('/health');
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.status).toBe('ok');
    expect(typeof body.uptimeSeconds).toBe('number');
  });

  it('GET /health/ready reports the database up', async () => {
    const res = await t.fetch('/health/ready');
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.status).toBe('ok');
    // The AMI connections this instance holds are listed, for information (none here).
    expect(body.details).toEqual({
      database: expect.objectContaining({ status: 'up' }),
      asterisk: { status: 'up', held: 0, connections: [] },
      // The inbox backlog, informational: past the threshold it says degraded and stays up.
      webhookBacklog: { status: 'up', pending: 0, oldestAgeSeconds: 0, threshold: 10000, degraded: false },
    });
  });

  it('GET /metrics exposes HTTP durations by route template, process and pool metrics', async () => {
    await t.fetch('/health');
    await t.fetch('/no/such/route');
    const res = await t.fetch('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0.0.4/);
    const text = await res.text();
    expect(text).toMatch(
      /http_request_duration_seconds_count\{method="GET",route="\/health",status_code="200"\} [1-9]/,
    );
    expect(text).toMatch(/http_request_duration_seconds_count\{method="GET",route="unmatched",status_code="404"\} 1/);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^db_pool_connections_total [1-9]/m);
    expect(text).toMatch(/^db_pool_requests_waiting 0/m);
  });

  it('serves the Swagger UI and an OpenAPI document that declares both auth schemes and documents every route', async () => {
    const ui = await t.fetch('/docs');
    expect(ui.status).toBe(200);
    expect(ui.headers.get('content-type')).toMatch(/text\/html/);
    expect(await ui.text()).toContain('swagger-ui');

    const res = await t.fetch('/docs-json');
    expect(res.status).toBe(200);
    const doc = await json(res);
    expect(doc.components.securitySchemes).toEqual({
      jwt: expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }),
      'api-key': expect.objectContaining({ type: 'apiKey', in: 'header', name: 'x-api-key' }),
    });
    expect(doc.components.schemas.ProblemDto).toBeDefined();
    const operations = Object.entries(doc.paths as Record<string, Record<string, Record<string, unknown>>>).flatMap(
      ([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })),
    );
    expect(operations.map((o) => `${o.method} ${o.path}`)).toEqual(
      expect.arrayContaining(['get /health', 'get /health/ready', 'get /metrics']),
    );
    for (const { path, method, op } of operations) {
      const where = `${method.toUpperCase()} ${path}`;
      expect([where, typeof op.summary]).toEqual([where, 'string']);
      expect([where, (op.tags as string[] | undefined)?.length ?? 0]).not.toEqual([where, 0]);
      const responses = Object.keys(op.responses as object);
      expect([where, responses.some((s) => s.startsWith('2'))]).toEqual([where, true]);
      expect([where, responses.includes('500')]).toEqual([where, true]);
      // Every route declares who may call it; the guard refuses routes that do not.
      const access = op['x-access'] as { kind: string } | undefined;
      expect([where, ['public', 'session', 'tenant', 'operator'].includes(access?.kind ?? '')]).toEqual([where, true]);
      if (access?.kind !== 'public') {
        expect([where, ['401', '403', '429'].every((s) => responses.includes(s))]).toEqual([where, true]);
        expect([where, Array.isArray(op.security) && (op.security as unknown[]).length > 0]).toEqual([where, true]);
      }
    }
  });
});
