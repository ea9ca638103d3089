import { randomUUID } from 'node:crypto';
import { startTwilioFake, type TwilioFake } from './fakes/twilio-fake.js';
import { expectProblem, json } from './support/http.js';
import {
  call,
  createAgent,
  createCompany,
  createUser,
  operator,
  type TestCompany,
  type TestUser,
  unique,
} from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * The seed systems' own paths, kept as deprecated aliases for migrating clients (README "Seed
 * systems' endpoints"): the NetSapiens click-to-call middleware's `/api/calls/…` (seed 000) and the
 * Dialpad CTI server's `/internal/apps/:id/api-key/rotate` (seeds 003/004). Same authentication and
 * the same answers as Switchboard's own routes, against the real app and the fake Twilio.
 */

const CUSTOMER = '+15551230001';
const COMPANY_NUMBER = '+15550001000';
const AGENT_PHONE = '+15557770101';

describe('deprecated seed aliases', () => {
  let fake: TwilioFake;
  let t: TestApp;
  let co: TestCompany;
  let other: TestCompany;
  let agentUser: TestUser;
  const asAgent = () => ({ token: agentUser.accessToken });

  beforeAll(async () => {
    fake = await startTwilioFake();
    t = await startTestApp({ env: { TWILIO_BASE_URL: fake.baseUrl } });
    co = await createCompany(t, 'aliases');
    other = await createCompany(t, 'aliases-other');
    agentUser = await createUser(t, co, 'agent');
    const agent = await createAgent(t, co, { userId: agentUser.id });
    const conn = await call(
      t,
      'POST',
      '/api/v1/pbx-connections',
      { token: co.owner.accessToken },
      {
        provider: 'twilio',
        name: unique('Twilio'),
        settings: { accountSid: fake.accountSid, callerId: COMPANY_NUMBER },
        secrets: { authToken: fake.authToken },
      },
    );
    expect(conn.status).toBe(201);
    const mapping = await call(
      t,
      'POST',
      '/api/v1/user-mappings',
      { token: co.owner.accessToken },
      { provider: 'twilio', externalId: AGENT_PHONE, agentId: agent.id },
    );
    expect(mapping.status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  it('are documented as deprecated in Swagger', async () => {
    const doc = await json(await t.fetch('/docs-json'));
    expect(doc.paths['/api/calls/initiate'].post.deprecated).toBe(true);
    expect(doc.paths['/api/calls/end/{callId}'].post.deprecated).toBe(true);
    expect(doc.paths['/api/calls/dtmf/{callId}'].post.deprecated).toBe(true);
    expect(doc.paths['/api/calls/status/{callId}'].get.deprecated).toBe(true);
    expect(doc.paths['/internal/apps/{appId}/api-key/rotate'].post.deprecated).toBe(true);
    // Ours are not.
    expect(doc.paths['/api/v1/calls/click-to-call'].post.deprecated).toBeUndefined();
  });

  it('POST /api/calls/initiate, GET /api/calls/status/:callId, POST /api/calls/end/:callId answer as ours do', async () => {
    const res = await call(t, 'POST', '/api/calls/initiate', asAgent(), { phoneNumber: CUSTOMER });
    expect(res.status).toBe(202);
    const accepted = await json(res);
    expect(accepted).toEqual({
      callId: expect.any(String),
      status: 'queued',
      connectionId: expect.any(String),
      provider: 'twilio',
      providerCallId: expect.stringMatching(/^CA[0-9a-f]{32}$/),
    });
    const callId = accepted.callId as string;
    // The seed's phoneNumber is our `to`; the caller id falls back to the connection's.
    expect(fake.calls.get(accepted.providerCallId)!.call).toMatchObject({ to: AGENT_PHONE, from: COMPANY_NUMBER });
    expect(fake.customerLegOf(accepted.providerCallId)!.call.to).toBe(CUSTOMER);

    const ours = await call(t, 'GET', `/api/v1/calls/${callId}/status`, asAgent());
    const alias = await call(t, 'GET', `/api/calls/status/${callId}`, asAgent());
    expect(alias.status).toBe(200);
    expect(await json(alias)).toEqual(await json(ours));

    // Not answered yet: the DTMF alias answers what ours does.
    await expectProblem(
      await call(t, 'POST', `/api/calls/dtmf/${callId}`, asAgent(), { digit: '1' }),
      409,
      'call-not-answered',
    );

    const end = await call(t, 'POST', `/api/calls/end/${callId}`, asAgent());
    expect(end.status).toBe(202);
    expect(await json(end)).toEqual({ callId, accepted: true });
    expect(fake.calls.get(accepted.providerCallId)!.call.status).toBe('canceled');
  });

  it('validate and authenticate as ours: 400 on bad input, 401 without a credential, 404 for another company', async () => {
    for (const body of [{}, { phoneNumber: 'not a number' }, { phoneNumber: CUSTOMER, extra: 1 }]) {
      await expectProblem(await call(t, 'POST', '/api/calls/initiate', asAgent(), body), 400, 'validation-failed');
    }
    const id = randomUUID();
    await expectProblem(
      await call(t, 'POST', `/api/calls/dtmf/${id}`, asAgent(), { digit: 'x' }),
      400,
      'validation-failed',
    );
    await expectProblem(await call(t, 'POST', '/api/calls/end/not-a-uuid', asAgent()), 400, 'bad-request');

    await expectProblem(
      await call(t, 'POST', '/api/calls/initiate', {}, { phoneNumber: CUSTOMER }),
      401,
      'unauthorized',
    );
    await expectProblem(await call(t, 'POST', `/api/calls/end/${id}`), 401, 'unauthorized');
    await expectProblem(await call(t, 'POST', `/api/calls/dtmf/${id}`, {}, { digit: '1' }), 401, 'unauthorized');
    await expectProblem(await call(t, 'GET', `/api/calls/status/${id}`), 401, 'unauthorized');

    // A call of this company is not found from another company.
    const res = await call(t, 'POST', '/api/calls/initiate', asAgent(), { phoneNumber: CUSTOMER });
    const { callId } = (await json(res)) as { callId: string };
    const otherOwner = { token: other.owner.accessToken };
    for (const [ours, alias] of [
      [`/api/v1/calls/${callId}/status`, `/api/calls/status/${callId}`],
      [`/api/v1/calls/${callId}/hangup`, `/api/calls/end/${callId}`],
    ]) {
      const method = ours.endsWith('/status') ? 'GET' : 'POST';
      await expectProblem(await call(t, method, ours!, otherOwner), 404, 'not-found');
      await expectProblem(await call(t, method, alias!, otherOwner), 404, 'not-found');
    }
  });

  it('POST /internal/apps/:appId/api-key/rotate rotates the key as POST /internal/apps/:appId/api-key does', async () => {
    const oldKey = co.apiKey;
    await expectProblem(await call(t, 'POST', `/internal/apps/${co.id}/api-key/rotate`, {}, {}), 401, 'unauthorized');
    await expectProblem(
      await call(t, 'POST', `/internal/apps/${co.id}/api-key/rotate`, { key: oldKey }, {}),
      401,
      'unauthorized',
    );
    const res = await call(t, 'POST', `/internal/apps/${co.id}/api-key/rotate`, operator, {});
    expect(res.status).toBe(201);
    const body = await json(res);
    const ours = await json(await call(t, 'POST', `/internal/apps/${co.id}/api-key`, operator, {}));
    expect(Object.keys(body).sort()).toEqual(Object.keys(ours).sort());
    expect(body).toMatchObject({ appId: co.id, apiKey: expect.stringMatching(/^sbk_/) });
    expect(body.apiKey).not.toBe(oldKey);
    // Without overlap the old key stops working; the rotated one works (until ours rotated it again).
    expect((await call(t, 'GET', '/api/v1/company', { key: oldKey })).status).toBe(401);
    expect((await call(t, 'GET', '/api/v1/company', { key: ours.apiKey as string })).status).toBe(200);
    await expectProblem(
      await call(t, 'POST', `/internal/apps/${randomUUID()}/api-key/rotate`, operator, {}),
      404,
      'not-found',
    );
  });
});
