import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { SecretBox } from '../src/common/crypto/secret-box.js';
import { AmiSimulator } from './support/ami-simulator.js';
import { expectProblem, json } from './support/http.js';
import { call, createApiKey, createCompany, createUser, operator, type TestCompany, unique } from './support/tenant.js';
import { startTestApp, TEST_PBX_SECRETS_KEY, TEST_PUBLIC_BASE_URL, type TestApp } from './support/test-app.js';

describe('phone-system connections', () => {
  let t: TestApp;
  let co: TestCompany;
  let ami: AmiSimulator;
  const owner = () => ({ token: co.owner.accessToken });

  beforeAll(async () => {
    t = await startTestApp();
    co = await createCompany(t, 'pbx');
    ami = new AmiSimulator({ username: 'cti', secret: 'ctisecret' });
    await ami.start();
  });
  afterAll(async () => {
    await ami.stop();
    await t.close();
  });

  const asterisk = (over: Record<string, unknown> = {}) => ({
    provider: 'asterisk',
    name: unique('PBX'),
    settings: { host: '127.0.0.1', port: ami.port, username: 'cti' },
    secrets: { secret: 'ctisecret' },
    ...over,
  });

  it('creates a connection, shows settings and the names of its secrets, never their values', async () => {
    const res = await call(t, 'POST', '/api/v1/pbx-connections', owner(), asterisk());
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body).toMatchObject({
      provider: 'asterisk',
      settings: {
        host: '127.0.0.1',
        port: ami.port,
        username: 'cti',
        context: 'from-internal',
        agentChannel: 'PJSIP/{extension}',
      },
      secretsSet: ['secret'],
      webhookUrls: {},
      capabilities: { originate: true, hangup: true, dtmf: true, status: true },
    });
    expect(JSON.stringify(body)).not.toContain('ctisecret');
    const got = await json(await call(t, 'GET', `/api/v1/pbx-connections/${body.id}`, owner()));
    expect(got).toEqual(body);
    const list = await json(await call(t, 'GET', '/api/v1/pbx-connections', owner()));
    expect(list.data.map((c: { id: string }) => c.id)).toContain(body.id);
    expect(JSON.stringify(list)).not.toContain('ctisecret');
  });

  it('stores secrets encrypted with AES-256-GCM under the configured key, bound to the row', async () => {
    const body = await json(await call(t, 'POST', '/api/v1/pbx-connections', owner(), asterisk()));
    const [row] = await t.app
      .get(DataSource)
      .query('SELECT secrets_sealed FROM pbx_connections WHERE id = $1', [body.id]);
    expect(row.secrets_sealed).toMatch(/^v1\.[0-9a-f]{8}\./);
    expect(row.secrets_sealed).not.toContain('ctisecret');
    const box = new SecretBox(TEST_PBX_SECRETS_KEY);
    expect(box.open(row.secrets_sealed, body.id)).toEqual({ secret: 'ctisecret' });
    expect(() => box.open(row.secrets_sealed, co.id)).toThrow();
  });

  it('checks the credentials against the phone system: ok, refused, unreachable', async () => {
    const good = await json(await call(t, 'POST', '/api/v1/pbx-connections', owner(), asterisk()));
    const ok = await call(t, 'POST', `/api/v1/pbx-connections/${good.id}/test`, owner());
    expect(ok.status).toBe(200);
    expect(await json(ok)).toEqual({ ok: true, detail: expect.stringContaining('as cti') });

    const bad = await json(
      await call(t, 'POST', '/api/v1/pbx-connections', owner(), asterisk({ secrets: { secret: 'wrong' } })),
    );
    expect(await json(await call(t, 'POST', `/api/v1/pbx-connections/${bad.id}/test`, owner()))).toEqual({
      ok: false,
      code: 'AUTH',
      detail: 'The provider refused the credentials.',
    });

    const closed = await json(
      await call(
        t,
        'POST',
        '/api/v1/pbx-connections',
        owner(),
        asterisk({ settings: { host: '127.0.0.1', port: 1, username: 'cti' } }),
      ),
    );
    expect(await json(await call(t, 'POST', `/api/v1/pbx-connections/${closed.id}/test`, owner()))).toMatchObject({
      ok: false,
      code: 'TRANSIENT',
    });
  });

  it('merges changes: settings and secrets by key, null removes, unknown keys and bad values are 400', async () => {
    const created = await json(await call(t, 'POST', '/api/v1/pbx-connections', owner(), asterisk()));
    const res = await call(t, 'PATCH', `/api/v1/pbx-connections/${created.id}`, owner(), {
      name: 'Renamed',
      settings: { context: 'ext-local', port: null },
      secrets: { secret: 'rotated-secret' },
    });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.name).toBe('Renamed');
    expect(body.settings).toMatchObject({ context: 'ext-local', port: 5038, host: '127.0.0.1' });
    const [row] = await t.app
      .get(DataSource)
      .query('SELECT secrets_sealed FROM pbx_connections WHERE id = $1', [created.id]);
    expect(new SecretBox(TEST_PBX_SECRETS_KEY).open(row.secrets_sealed, created.id)).toEqual({
      secret: 'rotated-secret',
    });

    const unknown = await expectProblem(
      await call(t, 'PATCH', `/api/v1/pbx-connections/${created.id}`, owner(), { secrets: { token: 'x' } }),
      400,
      'validation-failed',
    );
    expect(unknown.errors).toEqual([{ field: 'secrets.token', messages: [expect.stringContaining('not a secret')] }]);
    const badPort = await expectProblem(
      await call(t, 'PATCH', `/api/v1/pbx-connections/${created.id}`, owner(), { settings: { port: 'x' } }),
      400,
      'validation-failed',
    );
    expect(badPort.errors[0].field).toBe('settings.port');
    const pattern = await expectProblem(
      await call(t, 'PATCH', `/api/v1/pbx-connections/${created.id}`, owner(), {
        settings: { agentExtensionPattern: '(a+)+$' },
      }),
      400,
      'validation-failed',
    );
    expect(pattern.errors[0].field).toBe('settings.agentExtensionPattern');
    const agents = await call(t, 'PATCH', `/api/v1/pbx-connections/${created.id}`, owner(), {
      settings: { agentExtensionPattern: '^1\\d{3}$' },
    });
    expect((await json(agents)).settings.agentExtensionPattern).toBe('^1\\d{3}$');
    const injected = await expectProblem(
      await call(t, 'PATCH', `/api/v1/pbx-connections/${created.id}`, owner(), {
        secrets: { secret: 'x\r\nAction: Originate' },
      }),
      400,
      'validation-failed',
    );
    expect(JSON.stringify(injected)).not.toContain('Originate');
  });

  it('refuses bad creations with field errors, and duplicate names with 409', async () => {
    const res = await call(t, 'POST', '/api/v1/pbx-connections', owner(), {
      provider: 'asterisk',
      name: 'x',
      settings: {},
    });
    const body = await expectProblem(res, 400, 'validation-failed');
    expect(body.errors.map((e: { field: string }) => e.field).sort()).toEqual([
      'secrets.secret',
      'settings.host',
      'settings.username',
    ]);
    await expectProblem(
      await call(t, 'POST', '/api/v1/pbx-connections', owner(), { ...asterisk(), provider: 'avaya' }),
      400,
      'validation-failed',
    );
    const name = unique('Same');
    expect((await call(t, 'POST', '/api/v1/pbx-connections', owner(), asterisk({ name }))).status).toBe(201);
    await expectProblem(await call(t, 'POST', '/api/v1/pbx-connections', owner(), asterisk({ name })), 409, 'conflict');
  });

  it('deletes: gone from the API, the name is free again, and it is audited', async () => {
    const name = unique('Temp');
    const created = await json(await call(t, 'POST', '/api/v1/pbx-connections', owner(), asterisk({ name })));
    expect((await call(t, 'DELETE', `/api/v1/pbx-connections/${created.id}`, owner())).status).toBe(204);
    await expectProblem(await call(t, 'GET', `/api/v1/pbx-connections/${created.id}`, owner()), 404, 'not-found');
    await expectProblem(await call(t, 'DELETE', `/api/v1/pbx-connections/${created.id}`, owner()), 404, 'not-found');
    expect((await call(t, 'POST', '/api/v1/pbx-connections', owner(), asterisk({ name }))).status).toBe(201);
    const audit = await json(await call(t, 'GET', `/api/v1/audit-log?limit=200`, owner()));
    const actions = audit.data
      .filter((e: { targetId: string }) => e.targetId === created.id)
      .map((e: { action: string }) => e.action);
    expect(actions.sort()).toEqual(['pbx_connection.created', 'pbx_connection.deleted']);
  });

  it('is for admins and keys with pbx:manage only', async () => {
    const manager = await createUser(t, co, 'manager');
    await expectProblem(
      await call(t, 'GET', '/api/v1/pbx-connections', { token: manager.accessToken }),
      403,
      'forbidden',
    );
    const weak = await createApiKey(t, co, ['calls:read']);
    await expectProblem(await call(t, 'GET', '/api/v1/pbx-connections', { key: weak.key }), 403, 'insufficient-scope');
    const strong = await createApiKey(t, co, ['pbx:manage']);
    expect((await call(t, 'GET', '/api/v1/pbx-connections', { key: strong.key })).status).toBe(200);
  });

  it('rotates the encryption key: old values open with the previous key and are resealed by the operator', async () => {
    const created = await json(await call(t, 'POST', '/api/v1/pbx-connections', owner(), asterisk()));
    const newKey = randomBytes(32).toString('base64');
    // A second instance on the same database, configured as after a rotation.
    const rotated = await startTestApp({
      databaseUrl: t.db.url,
      env: { PBX_SECRETS_KEY: newKey, PBX_SECRETS_KEYS_PREVIOUS: TEST_PBX_SECRETS_KEY },
    });
    try {
      const ok = await json(await call(rotated, 'POST', `/api/v1/pbx-connections/${created.id}/test`, owner()));
      expect(ok.ok).toBe(true);
      const reseal = await call(rotated, 'POST', '/internal/pbx-connections/reseal', operator);
      expect(reseal.status).toBe(200);
      expect((await json(reseal)).resealed).toBeGreaterThan(0);
      const [row] = await rotated.app
        .get(DataSource)
        .query('SELECT secrets_sealed FROM pbx_connections WHERE id = $1', [created.id]);
      expect(new SecretBox(newKey).open(row.secrets_sealed, created.id)).toEqual({ secret: 'ctisecret' });
      expect(await json(await call(rotated, 'POST', '/internal/pbx-connections/reseal', operator))).toMatchObject({
        resealed: 0,
      });
    } finally {
      await rotated.close();
    }
  });

  it('names the webhook URLs to configure at the provider from PUBLIC_BASE_URL', async () => {
    const res = await call(t, 'POST', '/api/v1/pbx-connections', owner(), {
      provider: 'twilio',
      name: unique('Twilio'),
      settings: { accountSid: 'AC0123456789abcdef0123456789abcdef' },
      secrets: { authToken: 'test-auth-token-0123456789' },
    });
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body.webhookUrls).toEqual({
      status: `${TEST_PUBLIC_BASE_URL}/webhooks/twilio/${body.id}/status`,
      sms: `${TEST_PUBLIC_BASE_URL}/webhooks/twilio/${body.id}/sms`,
    });
  });
});
