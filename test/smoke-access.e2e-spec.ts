import { json } from './support/http.js';
import { call, createApiKey, createCompany, createUser } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

describe('access smoke', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('works end to end', async () => {
    const a = await createCompany(t, 'a');
    const me = await call(t, 'GET', '/api/v1/auth/me', { token: a.owner.accessToken });
    expect(me.status).toBe(200);
    const agent = await createUser(t, a, 'agent');
    const list = await json(await call(t, 'GET', '/api/v1/users', { token: agent.accessToken }));
    expect(list.data.map((u: { id: string }) => u.id)).toEqual([agent.id]);
    const viaKey = await call(t, 'GET', '/api/v1/users', { key: a.apiKey });
    expect(viaKey.status).toBe(200);
    const k = await createApiKey(t, a, ['users:read']);
    expect((await call(t, 'GET', '/api/v1/company', { key: k.key })).status).toBe(403);
    expect((await call(t, 'GET', '/api/v1/users', { key: k.key })).status).toBe(200);
  });
});
