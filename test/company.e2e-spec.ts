import { json, type Auth, expectProblem } from './support/http.js';
import { call, createApiKey, createCompany, createUser, type TestCompany, type TestUser } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

describe('company: /api/v1/company', () => {
  let t: TestApp;
  let a: TestCompany;
  let admin: TestUser;
  let manager: TestUser;
  let agent: TestUser;

  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_LOGIN_PER_MIN: '10000' } });
    a = await createCompany(t, 'company');
    admin = await createUser(t, a, 'admin');
    manager = await createUser(t, a, 'manager');
    agent = await createUser(t, a, 'agent');
  });
  afterAll(() => t.close());

  const owner = () => ({ token: a.owner.accessToken });
  const as = (u: TestUser) => ({ token: u.accessToken });
  const patch = (auth: Auth, body: unknown) => call(t, 'PATCH', '/api/v1/company', auth, body);
  const read = async (company: TestCompany = a) => {
    const res = await call(t, 'GET', '/api/v1/company', { token: company.owner.accessToken });
    expect(res.status).toBe(200);
    return json(res);
  };

  it('any member reads its company', async () => {
    for (const who of [a.owner, admin, manager, agent]) {
      const res = await call(t, 'GET', '/api/v1/company', as(who));
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body).toMatchObject({ id: a.id, name: a.name, status: 'active' });
      expect(typeof body.slug).toBe('string');
      expect(body.settings).toEqual(expect.any(Object));
    }
    // Another company's member reads its own, not this one.
    const b = await createCompany(t, 'other');
    expect(await read(b)).toMatchObject({ id: b.id, name: b.name });
  });

  it('refuses a request without a credential (401)', async () => {
    await expectProblem(await call(t, 'GET', '/api/v1/company'), 401, 'unauthorized');
    await expectProblem(await patch({}, { name: 'x' }), 401, 'unauthorized');
  });

  it('admins and owners change the name; managers and agents get 403', async () => {
    const before = await read();
    await expectProblem(await patch(as(manager), { name: 'By manager' }), 403, 'forbidden');
    await expectProblem(await patch(as(agent), { name: 'By agent' }), 403, 'forbidden');
    await expectProblem(await patch(as(manager), { settings: { timezone: 'Europe/Paris' } }), 403, 'forbidden');
    expect(await read()).toEqual(before);

    const res = await patch(as(admin), { name: 'Renamed by admin' });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ id: a.id, name: 'Renamed by admin', slug: before.slug });
    expect((await read()).name).toBe('Renamed by admin');
    const again = await patch(owner(), { name: 'Renamed by owner' });
    expect(again.status).toBe(200);
    expect((await read()).name).toBe('Renamed by owner');
  });

  it('admins set every setting', async () => {
    const settings = {
      timezone: 'America/New_York',
      businessHours: {
        mon: [
          { start: '09:00', end: '12:00' },
          { start: '13:00', end: '17:30' },
        ],
        sat: [{ start: '00:00', end: '23:59' }],
        sun: [],
      },
      defaultCallerId: '+14155552671',
      dataRetentionDays: 365,
      allowedOrigins: ['https://crm.example.com', 'http://localhost:8080'],
    };
    const res = await patch(as(admin), { settings });
    expect(res.status).toBe(200);
    expect((await json(res)).settings).toEqual(settings);
    expect((await read()).settings).toEqual(settings);

    for (const dataRetentionDays of [1, 3650]) {
      expect((await patch(as(admin), { settings: { dataRetentionDays } })).status).toBe(200);
      expect((await read()).settings.dataRetentionDays).toBe(dataRetentionDays);
    }
  });

  it('merges settings rather than replacing them', async () => {
    const b = await createCompany(t, 'merge');
    const by = { token: b.owner.accessToken };
    expect((await patch(by, { settings: { timezone: 'Europe/Berlin', dataRetentionDays: 30 } })).status).toBe(200);
    expect((await patch(by, { settings: { defaultCallerId: '+442071838750' } })).status).toBe(200);
    expect((await patch(by, { name: 'Only the name' })).status).toBe(200);
    const res = await patch(by, { settings: { dataRetentionDays: 90 } });
    expect(res.status).toBe(200);
    const expected = { timezone: 'Europe/Berlin', dataRetentionDays: 90, defaultCallerId: '+442071838750' };
    expect((await json(res)).settings).toEqual(expected);
    expect(await read(b)).toMatchObject({ name: 'Only the name', settings: expected });
  });

  it('refuses bad settings with field errors (400) and changes nothing', async () => {
    const before = await read();
    const cases: [Record<string, unknown>, string][] = [
      [{ settings: { timezone: 'Mars/Olympus_Mons' } }, 'settings.timezone'],
      [{ settings: { timezone: 'EST5EDT, or so' } }, 'settings.timezone'],
      [{ settings: { timezone: 42 } }, 'settings.timezone'],
      [
        { settings: { businessHours: { mon: [{ start: '9:00', end: '17:00' }] } } },
        'settings.businessHours.mon.0.start',
      ],
      [
        { settings: { businessHours: { tue: [{ start: '09:00', end: '24:00' }] } } },
        'settings.businessHours.tue.0.end',
      ],
      [
        { settings: { businessHours: { wed: [{ start: '09:60', end: '10:00' }] } } },
        'settings.businessHours.wed.0.start',
      ],
      [{ settings: { businessHours: { fri: [{ start: '09:00' }] } } }, 'settings.businessHours.fri.0.end'],
      [
        { settings: { businessHours: { fri: [{ start: '09:00', end: '10:00', note: 'x' }] } } },
        'settings.businessHours.fri.0.note',
      ],
      [{ settings: { businessHours: { holiday: [] } } }, 'settings.businessHours.holiday'],
      [{ settings: { defaultCallerId: '555-1234' } }, 'settings.defaultCallerId'],
      [{ settings: { defaultCallerId: '14155552671' } }, 'settings.defaultCallerId'],
      [{ settings: { defaultCallerId: '+1415555267199999' } }, 'settings.defaultCallerId'],
      [{ settings: { dataRetentionDays: 0 } }, 'settings.dataRetentionDays'],
      [{ settings: { dataRetentionDays: 3651 } }, 'settings.dataRetentionDays'],
      [{ settings: { dataRetentionDays: 1.5 } }, 'settings.dataRetentionDays'],
      [{ settings: { dataRetentionDays: '30' } }, 'settings.dataRetentionDays'],
      [{ settings: { allowedOrigins: ['https://crm.example.com/path'] } }, 'settings.allowedOrigins'],
      [{ settings: { allowedOrigins: ['crm.example.com'] } }, 'settings.allowedOrigins'],
      [{ settings: { allowedOrigins: ['ftp://crm.example.com'] } }, 'settings.allowedOrigins'],
      [{ settings: { allowedOrigins: 'https://crm.example.com' } }, 'settings.allowedOrigins'],
      [{ settings: { colour: 'blue' } }, 'settings.colour'],
      [{ name: '' }, 'name'],
      [{ name: 'x'.repeat(201) }, 'name'],
      [{ slug: 'new-slug' }, 'slug'],
      [{ status: 'suspended' }, 'status'],
    ];
    for (const [body, field] of cases) {
      const problem = await expectProblem(await patch(as(admin), body), 400, 'validation-failed');
      expect({ body, fields: problem.errors.map((e: { field: string }) => e.field) }).toEqual({
        body,
        fields: expect.arrayContaining([field]),
      });
    }
    expect(await read()).toEqual(before);
  });

  it('a key with company:read reads; without company:write it cannot change (403)', async () => {
    const reader = await createApiKey(t, a, ['company:read']);
    const res = await call(t, 'GET', '/api/v1/company', { key: reader.key });
    expect(res.status).toBe(200);
    expect((await json(res)).id).toBe(a.id);
    const before = await read();
    await expectProblem(await patch({ key: reader.key }, { name: 'By key' }), 403, 'insufficient-scope');
    expect(await read()).toEqual(before);

    const other = await createApiKey(t, a, ['users:read']);
    await expectProblem(await call(t, 'GET', '/api/v1/company', { key: other.key }), 403, 'insufficient-scope');

    const writer = await createApiKey(t, a, ['company:write']);
    const written = await patch({ key: writer.key }, { settings: { timezone: 'Asia/Tokyo' } });
    expect(written.status).toBe(200);
    expect((await read()).settings).toMatchObject({ ...before.settings, timezone: 'Asia/Tokyo' });
  });

  it('records changes in the audit log', async () => {
    const res = await patch(as(admin), { name: 'Audited', settings: { dataRetentionDays: 7 } });
    expect(res.status).toBe(200);
    const log = await json(await call(t, 'GET', '/api/v1/audit-log?action=company.updated&limit=200', owner()));
    const entry = log.data.find((e: { requestId: string }) => e.requestId === res.headers.get('x-request-id'));
    expect(entry).toMatchObject({
      action: 'company.updated',
      actorType: 'user',
      actorId: admin.id,
      targetType: 'company',
      targetId: a.id,
    });
    expect([...entry.details.fields].sort()).toEqual(['dataRetentionDays', 'name']);
  });
});
