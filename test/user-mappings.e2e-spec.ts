import { query } from './support/database.js';
import { json, PROBLEM, type Auth } from './support/http.js';
import {
  call,
  createAgent,
  createApiKey,
  createCompany,
  createUser,
  type TestAgent,
  type TestCompany,
  type TestUser,
  unique,
} from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const BASE = '/api/v1/user-mappings';

interface Mapping {
  id: string;
  companyId: string;
  provider: string;
  externalId: string;
  agentId: string | null;
  crmUserId: string | null;
  createdAt: string;
}

describe('user mappings: /api/v1/user-mappings', () => {
  let t: TestApp;
  let a: TestCompany;
  let agentOfA: TestAgent;

  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_LOGIN_PER_MIN: '10000' } });
    a = await createCompany(t, 'mappings');
    agentOfA = await createAgent(t, a);
  });
  afterAll(() => t.close());

  const owner = (company: TestCompany = a) => ({ token: company.owner.accessToken });
  const as = (u: TestUser) => ({ token: u.accessToken });

  async function expectProblem(res: Response, status: number, code: string) {
    const body = await json(res);
    expect({ status: res.status, type: body.type }).toEqual({ status, type: `urn:switchboard:problem:${code}` });
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    return body;
  }

  function fieldsOf(body: { errors?: { field: string }[] }): string[] {
    return (body.errors ?? []).map((e) => e.field);
  }

  const ext = () => unique('ext');
  const create = (auth: Auth, body: unknown) => call(t, 'POST', BASE, auth, body);
  const batch = (auth: Auth, mappings: unknown) => call(t, 'POST', `${BASE}/batch`, auth, { mappings });
  const byProvider = (auth: Auth, provider: string, externalId: string) =>
    call(t, 'GET', `${BASE}/provider/${provider}/${encodeURIComponent(externalId)}`, auth);
  const byCrm = (auth: Auth, crmUserId: string) => call(t, 'GET', `${BASE}/crm/${encodeURIComponent(crmUserId)}`, auth);
  const remove = (auth: Auth, id: string) => call(t, 'DELETE', `${BASE}/${id}`, auth);

  async function created(res: Response): Promise<Mapping> {
    const body = await json(res);
    expect({ status: res.status, body }).toEqual({
      status: 201,
      body: expect.objectContaining({ id: expect.any(String) }),
    });
    return body;
  }

  /** The mapping of an identity as the company's owner sees it (null: none). */
  async function lookup(provider: string, externalId: string, company: TestCompany = a): Promise<Mapping | null> {
    const res = await byProvider(owner(company), provider, externalId);
    if (res.status === 404) return null;
    expect(res.status).toBe(200);
    return json(res);
  }

  async function countOf(companyId: string): Promise<number> {
    const [row] = await query<{ n: number }>(
      t.db.url,
      'SELECT count(*)::int AS n FROM user_mappings WHERE company_id = $1',
      [companyId],
    );
    return row!.n;
  }

  it('documents every user-mappings route with its access rule (OpenAPI x-access)', async () => {
    const doc = await json(await t.fetch('/docs-json'));
    const access = (path: string, method: string) => doc.paths[path]?.[method]?.['x-access'];
    const read = { kind: 'tenant', role: 'agent', scope: 'agents:read' };
    const write = { kind: 'tenant', role: 'manager', scope: 'agents:write' };
    expect({
      list: access(BASE, 'get'),
      create: access(BASE, 'post'),
      batch: access(`${BASE}/batch`, 'post'),
      byProvider: access(`${BASE}/provider/{provider}/{externalId}`, 'get'),
      byCrm: access(`${BASE}/crm/{crmUserId}`, 'get'),
      remove: access(`${BASE}/{id}`, 'delete'),
    }).toEqual({ list: read, create: write, batch: write, byProvider: read, byCrm: read, remove: write });
  });

  describe('create and read', () => {
    it('maps an identity to an agent, a CRM user, or both; reads it by provider identity and CRM user', async () => {
      const crm = unique('crm');
      const e1 = ext();
      const e2 = ext();
      const e3 = ext();
      const toAgent = await created(
        await create(owner(), { provider: 'asterisk', externalId: e1, agentId: agentOfA.id }),
      );
      expect(toAgent).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        companyId: a.id,
        provider: 'asterisk',
        externalId: e1,
        agentId: agentOfA.id,
        crmUserId: null,
        createdAt: expect.any(String),
      });
      const toCrm = await created(await create(owner(), { provider: 'dialpad', externalId: e2, crmUserId: crm }));
      expect(toCrm).toMatchObject({ agentId: null, crmUserId: crm });
      const both = await created(
        await create(owner(), { provider: 'twilio', externalId: e3, agentId: agentOfA.id, crmUserId: crm }),
      );
      expect(both).toMatchObject({ agentId: agentOfA.id, crmUserId: crm });

      expect(await lookup('asterisk', e1)).toEqual(toAgent);
      expect(await lookup('dialpad', e2)).toEqual(toCrm);
      // Same external id, other provider: nothing.
      expect(await lookup('twilio', e1)).toBeNull();

      const res = await byCrm(owner(), crm);
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual({ data: [toCrm, both] });
      expect((await byCrm(owner(), unique('nobody'))).status).toBe(404); // a CRM user without mappings: not found
    });

    it('keeps identities with odd characters exactly (path-encoded lookups)', async () => {
      for (const externalId of [`sip:${unique('u')}@pbx.example.com`, `a/b ${unique('c')}`, `+1555${Date.now()}`]) {
        const m = await created(await create(owner(), { provider: 'netsapiens', externalId, crmUserId: 'c/1 x' }));
        expect(await lookup('netsapiens', externalId)).toEqual(m);
        expect((await json(await byCrm(owner(), 'c/1 x'))).data.map((x: Mapping) => x.id)).toContain(m.id);
      }
    });

    it('an identity is mapped once per company (409 mapping-exists); other providers and companies are free', async () => {
      const e = ext();
      const first = await created(await create(owner(), { provider: 'asterisk', externalId: e, agentId: agentOfA.id }));
      const dup = await expectProblem(
        await create(owner(), { provider: 'asterisk', externalId: e, crmUserId: 'someone-else' }),
        409,
        'mapping-exists',
      );
      expect(fieldsOf(dup)).toEqual(['externalId']);
      expect(await lookup('asterisk', e)).toEqual(first);

      await created(await create(owner(), { provider: 'dialpad', externalId: e, agentId: agentOfA.id }));
      const b = await createCompany(t, 'dup');
      const inB = await created(await create(owner(b), { provider: 'asterisk', externalId: e, crmUserId: 'b' }));
      expect(inB.companyId).toBe(b.id);
      expect(await lookup('asterisk', e)).toEqual(first);
    });

    it('lists with offset pagination, filtered by provider and agent', async () => {
      const c = await createCompany(t, 'list');
      const ag1 = await createAgent(t, c);
      const ag2 = await createAgent(t, c);
      const rows: Mapping[] = [];
      for (const [provider, agentId] of [
        ['asterisk', ag1.id],
        ['twilio', ag1.id],
        ['asterisk', ag2.id],
        ['asterisk', null],
      ] as const) {
        // One at a time: their creation order is the list order.
        rows.push(await created(await create(owner(c), { provider, externalId: ext(), agentId, crmUserId: 'crm-x' })));
      }
      const page = await json(await call(t, 'GET', `${BASE}?limit=3`, owner(c)));
      expect(page.data).toEqual(rows.slice(0, 3));
      expect(page.pagination).toEqual({ limit: 3, offset: 0, total: 4, hasMore: true });
      const last = await json(await call(t, 'GET', `${BASE}?limit=3&offset=3`, owner(c)));
      expect(last).toEqual({ data: [rows[3]], pagination: { limit: 3, offset: 3, total: 4, hasMore: false } });

      const ids = async (qs: string) =>
        (await json(await call(t, 'GET', `${BASE}?${qs}`, owner(c)))).data.map((m: Mapping) => m.id);
      expect(await ids('provider=asterisk')).toEqual([rows[0]!.id, rows[2]!.id, rows[3]!.id]);
      expect(await ids(`agentId=${ag1.id}`)).toEqual([rows[0]!.id, rows[1]!.id]);
      expect(await ids(`agentId=${ag1.id}&provider=asterisk`)).toEqual([rows[0]!.id]);
      expect(await ids('provider=dialpad')).toEqual([]);
      expect(await ids(`agentId=${agentOfA.id}`)).toEqual([]);
    });
  });

  describe('who may', () => {
    it('agent users and agents:read keys read; only managers+ and agents:write keys write (403)', async () => {
      const agentUser = await createUser(t, a, 'agent');
      const manager = await createUser(t, a, 'manager');
      const reader = await createApiKey(t, a, ['agents:read']);
      const writer = await createApiKey(t, a, ['agents:write']);
      const unrelated = await createApiKey(t, a, ['users:read', 'users:write']);
      const crm = unique('crm');
      const m = await created(await create(as(manager), { provider: 'asterisk', externalId: ext(), crmUserId: crm }));

      for (const auth of [as(agentUser), { key: reader.key }]) {
        expect((await call(t, 'GET', BASE, auth)).status).toBe(200);
        const found = await byProvider(auth, 'asterisk', m.externalId);
        expect(found.status).toBe(200);
        expect(await json(found)).toEqual(m);
        expect(await json(await byCrm(auth, crm))).toEqual({ data: [m] });
      }

      const refused = ext();
      const write: [Auth, string][] = [
        [as(agentUser), 'forbidden'],
        [{ key: reader.key }, 'insufficient-scope'],
        [{ key: unrelated.key }, 'insufficient-scope'],
      ];
      for (const [auth, code] of write) {
        await expectProblem(
          await create(auth, { provider: 'asterisk', externalId: refused, crmUserId: 'x' }),
          403,
          code,
        );
        await expectProblem(
          await batch(auth, [{ provider: 'asterisk', externalId: refused, crmUserId: 'x' }]),
          403,
          code,
        );
        await expectProblem(await remove(auth, m.id), 403, code);
      }
      await expectProblem(await call(t, 'GET', BASE, { key: unrelated.key }), 403, 'insufficient-scope');
      await expectProblem(await byCrm({ key: writer.key }, crm), 403, 'insufficient-scope');
      expect(await lookup('asterisk', refused)).toBeNull();
      expect(await lookup('asterisk', m.externalId)).toEqual(m);

      // The writer key writes.
      await created(await create({ key: writer.key }, { provider: 'asterisk', externalId: ext(), crmUserId: 'k' }));
      expect((await remove({ key: writer.key }, m.id)).status).toBe(204);
    });

    it('refuses requests without a credential (401)', async () => {
      await expectProblem(await call(t, 'GET', BASE), 401, 'unauthorized');
      await expectProblem(
        await create({}, { provider: 'asterisk', externalId: '1', crmUserId: 'x' }),
        401,
        'unauthorized',
      );
      await expectProblem(await batch({}, []), 401, 'unauthorized');
      await expectProblem(await remove({}, UNKNOWN_ID), 401, 'unauthorized');
    });
  });

  describe('validation', () => {
    it('refuses bad bodies with field errors (400), writing nothing', async () => {
      const before = await countOf(a.id);
      const e = ext();
      const cases: [unknown, string[]][] = [
        [{ externalId: e, crmUserId: 'x' }, ['provider']],
        [{ provider: 'skype', externalId: e, crmUserId: 'x' }, ['provider']],
        [{ provider: 'asterisk', crmUserId: 'x' }, ['externalId']],
        [{ provider: 'asterisk', externalId: '', crmUserId: 'x' }, ['externalId']],
        [{ provider: 'asterisk', externalId: ' 1001', crmUserId: 'x' }, ['externalId']],
        [{ provider: 'asterisk', externalId: 'x'.repeat(129), crmUserId: 'x' }, ['externalId']],
        [{ provider: 'asterisk', externalId: 1001, crmUserId: 'x' }, ['externalId']],
        [{ provider: 'asterisk', externalId: e }, ['agentId']],
        [{ provider: 'asterisk', externalId: e, agentId: null, crmUserId: null }, ['agentId']],
        [{ provider: 'asterisk', externalId: e, agentId: 'agent-7' }, ['agentId']],
        [{ provider: 'asterisk', externalId: e, crmUserId: '' }, ['crmUserId']],
        [{ provider: 'asterisk', externalId: e, crmUserId: 'x'.repeat(255) }, ['crmUserId']],
        [{ provider: 'asterisk', externalId: e, crmUserId: 'x', companyId: UNKNOWN_ID }, ['companyId']],
      ];
      for (const [body, fields] of cases) {
        const res = await expectProblem(await create(owner(), body), 400, 'validation-failed');
        expect({ body, fields: fieldsOf(res) }).toEqual({ body, fields });
      }
      const neither = await expectProblem(
        await create(owner(), { provider: 'asterisk', externalId: e }),
        400,
        'validation-failed',
      );
      expect(neither.errors).toEqual([{ field: 'agentId', messages: ['a mapping needs agentId, crmUserId or both'] }]);
      expect(await countOf(a.id)).toBe(before);
      // At the limits is fine.
      await created(
        await create(owner(), { provider: 'asterisk', externalId: 'y'.repeat(128), crmUserId: 'z'.repeat(254) }),
      );
    });

    it('agentId must be a live agent of the company (400 on agentId): unknown, foreign and deleted alike', async () => {
      const b = await createCompany(t, 'foreign');
      const theirs = await createAgent(t, b);
      const gone = await createAgent(t, a);
      expect((await call(t, 'DELETE', `/api/v1/agents/${gone.id}`, owner())).status).toBe(204);
      const answers = [];
      for (const agentId of [UNKNOWN_ID, theirs.id, gone.id]) {
        const e = ext();
        const res = await expectProblem(
          await create(owner(), { provider: 'asterisk', externalId: e, agentId }),
          400,
          'validation-failed',
        );
        answers.push({ detail: res.detail, errors: res.errors });
        expect(await lookup('asterisk', e)).toBeNull();
      }
      expect(answers[0]).toEqual({
        detail: 'agentId: agentId must be an agent of this company',
        errors: [{ field: 'agentId', messages: ['agentId must be an agent of this company'] }],
      });
      expect(answers[1]).toEqual(answers[0]);
      expect(answers[2]).toEqual(answers[0]);
    });

    it('refuses bad paths and filters (400), and answers 404 to an unknown identity', async () => {
      const bad = await expectProblem(await byProvider(owner(), 'skype', '1001'), 400, 'validation-failed');
      expect(fieldsOf(bad)).toEqual(['provider']);
      await expectProblem(await byProvider(owner(), 'asterisk', ext()), 404, 'not-found');

      for (const [qs, field] of [
        ['provider=skype', 'provider'],
        ['agentId=nope', 'agentId'],
        ['limit=0', 'limit'],
        ['offset=x', 'offset'],
        ['crmUserId=x', 'crmUserId'],
      ]) {
        const res = await expectProblem(await call(t, 'GET', `${BASE}?${qs}`, owner()), 400, 'validation-failed');
        expect({ qs, fields: fieldsOf(res) }).toEqual({ qs, fields: [field] });
      }

      const malformed = await remove(owner(), 'not-a-uuid');
      expect(malformed.status).toBe(400);
      expect(malformed.headers.get('content-type')).toBe(PROBLEM);
      await expectProblem(await remove(owner(), UNKNOWN_ID), 404, 'not-found');
    });

    it('finds identities and CRM users as long as a mapping may hold (128, 254); refuses longer ones (400)', async () => {
      const externalId = `${unique('long')}-`.padEnd(128, 'x');
      const crmUserId = `${unique('crm')}-`.padEnd(254, 'y');
      const m = await created(await create(owner(), { provider: 'asterisk', externalId, crmUserId }));
      const found = await byProvider(owner(), 'asterisk', externalId);
      expect({ status: found.status, body: await found.json().catch(() => null) }).toEqual({ status: 200, body: m });
      const listed = await byCrm(owner(), crmUserId);
      expect({ status: listed.status, body: await listed.json().catch(() => null) }).toEqual({
        status: 200,
        body: { data: [m] },
      });

      const longId = await expectProblem(
        await byProvider(owner(), 'asterisk', `${externalId}x`),
        400,
        'validation-failed',
      );
      expect(fieldsOf(longId)).toEqual(['externalId']);
      const longCrm = await expectProblem(await byCrm(owner(), `${crmUserId}y`), 400, 'validation-failed');
      expect(fieldsOf(longCrm)).toEqual(['crmUserId']);
    });
  });

  describe('delete', () => {
    it('deletes a mapping (204); it is gone afterwards (404)', async () => {
      const manager = await createUser(t, a, 'manager');
      const crm = unique('crm');
      const m = await created(await create(owner(), { provider: 'twilio', externalId: ext(), crmUserId: crm }));
      const res = await remove(as(manager), m.id);
      expect(res.status).toBe(204);
      expect(await res.text()).toBe('');
      expect(await lookup('twilio', m.externalId)).toBeNull();
      expect((await byCrm(owner(), crm)).status).toBe(404);
      await expectProblem(await remove(owner(), m.id), 404, 'not-found');
      // The identity can be mapped again.
      await created(await create(owner(), { provider: 'twilio', externalId: m.externalId, crmUserId: crm }));
    });

    it('deleting an agent removes its agent-only mappings and unlinks it from the others', async () => {
      const c = await createCompany(t, 'agent-gone');
      const agent = await createAgent(t, c);
      const keep = await createAgent(t, c);
      const only = await created(await create(owner(c), { provider: 'asterisk', externalId: '1', agentId: agent.id }));
      const withCrm = await created(
        await create(owner(c), { provider: 'dialpad', externalId: '1', agentId: agent.id, crmUserId: 'crm-1' }),
      );
      const other = await created(await create(owner(c), { provider: 'twilio', externalId: '1', agentId: keep.id }));

      expect((await call(t, 'DELETE', `/api/v1/agents/${agent.id}`, owner(c))).status).toBe(204);
      expect(await lookup('asterisk', '1', c)).toBeNull();
      expect(await lookup('dialpad', '1', c)).toEqual({ ...withCrm, agentId: null });
      expect(await lookup('twilio', '1', c)).toEqual(other);
      const listed = await json(await call(t, 'GET', `${BASE}?agentId=${agent.id}`, owner(c)));
      expect(listed.data).toEqual([]);
      expect(only.id).not.toBe(withCrm.id);

      const audit = await json(await call(t, 'GET', '/api/v1/audit-log?action=agent.deleted', owner(c)));
      expect(audit.data).toEqual([
        expect.objectContaining({
          targetId: agent.id,
          details: expect.objectContaining({ mappingsRemoved: 1, mappingsUnlinked: 1 }),
        }),
      ]);
    });
  });

  describe('batch', () => {
    it('creates every row in one go (201), in the order given', async () => {
      const c = await createCompany(t, 'batch-ok');
      const agent = await createAgent(t, c);
      const rows = [
        { provider: 'asterisk', externalId: '1001', agentId: agent.id },
        { provider: 'dialpad', externalId: 'dp-1', crmUserId: 'crm-1' },
        { provider: 'twilio', externalId: 'client:ada', agentId: agent.id, crmUserId: 'crm-1' },
      ];
      const res = await batch(owner(c), rows);
      expect(res.status).toBe(201);
      const body = await json(res);
      expect(body.data).toHaveLength(3);
      body.data.forEach((m: Mapping, i: number) =>
        expect(m).toEqual({
          id: expect.any(String),
          companyId: c.id,
          agentId: null,
          crmUserId: null,
          createdAt: expect.any(String),
          ...rows[i],
        }),
      );
      for (const m of body.data as Mapping[]) expect(await lookup(m.provider, m.externalId, c)).toEqual(m);
    });

    it('writes nothing when any row is refused, and names every refused row (400)', async () => {
      const c = await createCompany(t, 'batch-bad');
      const agent = await createAgent(t, c);
      const b = await createCompany(t, 'batch-foreign');
      const foreign = await createAgent(t, b);
      await created(await create(owner(c), { provider: 'asterisk', externalId: 'taken', crmUserId: 'x' }));
      const before = await countOf(c.id);

      const rows = [
        { provider: 'asterisk', externalId: '2001', agentId: agent.id },
        { provider: 'skype', externalId: '2002', agentId: agent.id },
        { provider: 'asterisk', externalId: '2003', crmUserId: 'crm-3' },
        { provider: 'asterisk', externalId: '2004', agentId: UNKNOWN_ID },
        { provider: 'asterisk', externalId: '2001', crmUserId: 'crm-4' },
        { provider: 'asterisk', externalId: '2005', agentId: foreign.id },
        'not a mapping',
        { provider: 'asterisk', externalId: '2007', crmUserId: 'x', colour: 'blue' },
        { provider: 'asterisk', externalId: 'taken', crmUserId: 'y' },
        { provider: 'twilio', externalId: '2009' },
        null,
      ];
      const res = await batch(owner(c), rows);
      const problem = await expectProblem(res, 400, 'validation-failed');
      expect(fieldsOf(problem)).toEqual([
        'mappings[1].provider',
        'mappings[3].agentId',
        'mappings[4].externalId',
        'mappings[5].agentId',
        'mappings[6]',
        'mappings[7].colour',
        'mappings[8].externalId',
        'mappings[9].agentId',
        'mappings[10]',
      ]);
      const byField = Object.fromEntries(
        (problem.errors as { field: string; messages: string[] }[]).map((e) => [e.field, e.messages]),
      );
      expect(byField['mappings[3].agentId']).toEqual(['agentId must be an agent of this company']);
      expect(byField['mappings[4].externalId']).toEqual([
        'externalId repeats mappings[0].externalId for provider asterisk',
      ]);
      expect(byField['mappings[8].externalId']).toEqual([
        'a mapping of provider asterisk for this externalId already exists',
      ]);
      expect(byField['mappings[9].agentId']).toEqual(['a mapping needs agentId, crmUserId or both']);
      expect(problem.detail).toMatch(/^mappings\[1\]\.provider: .+ \(and 8 more\)$/);

      // Nothing was written, the valid rows included.
      expect(await countOf(c.id)).toBe(before);
      expect(await lookup('asterisk', '2001', c)).toBeNull();
      expect(await lookup('asterisk', '2003', c)).toBeNull();
      expect(await countOf(b.id)).toBe(0);
    });

    it('answers 409 mapping-exists, per row, when the only problem is identities already mapped', async () => {
      const c = await createCompany(t, 'batch-409');
      await created(await create(owner(c), { provider: 'asterisk', externalId: 'old-1', crmUserId: 'x' }));
      await created(await create(owner(c), { provider: 'twilio', externalId: 'old-2', crmUserId: 'x' }));
      const before = await countOf(c.id);
      const res = await batch(owner(c), [
        { provider: 'asterisk', externalId: 'new-1', crmUserId: 'y' },
        { provider: 'twilio', externalId: 'old-2', crmUserId: 'y' },
        { provider: 'asterisk', externalId: 'old-1', crmUserId: 'y' },
        { provider: 'dialpad', externalId: 'old-1', crmUserId: 'y' },
      ]);
      const problem = await expectProblem(res, 409, 'mapping-exists');
      expect(fieldsOf(problem)).toEqual(['mappings[1].externalId', 'mappings[2].externalId']);
      expect(await countOf(c.id)).toBe(before);
      expect(await lookup('asterisk', 'new-1', c)).toBeNull();
    });

    it('two batches mapping one identity at the same time: one 201, one 409, one row', async () => {
      const c = await createCompany(t, 'batch-race');
      const rows = (tag: string) => [
        { provider: 'asterisk', externalId: `${tag}-only`, crmUserId: tag },
        { provider: 'asterisk', externalId: 'shared', crmUserId: tag },
      ];
      const results = await Promise.all([batch(owner(c), rows('p')), batch(owner(c), rows('q'))]);
      expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
      const loser = results.find((r) => r.status === 409)!;
      expect((await json(loser)).type).toBe('urn:switchboard:problem:mapping-exists');
      expect(await countOf(c.id)).toBe(2);
    });

    it('refuses a body that is not a list of 1 to 1000 mappings (400)', async () => {
      const c = await createCompany(t, 'batch-size');
      const row = (i: number) => ({ provider: 'asterisk', externalId: `x${i}`, crmUserId: 'c' });
      for (const body of [
        { mappings: Array.from({ length: 1001 }, (_, i) => row(i)) },
        { mappings: [] },
        { mappings: row(1) },
        { mappings: null },
        {},
        { mappings: [row(1)], extra: true },
      ]) {
        const res = await call(t, 'POST', `${BASE}/batch`, owner(c), body);
        const problem = await expectProblem(res, 400, 'validation-failed');
        expect(fieldsOf(problem).length).toBeGreaterThan(0);
        expect(fieldsOf(problem).every((f) => f === 'mappings' || f === 'extra')).toBe(true);
      }
      expect(await countOf(c.id)).toBe(0);
    });

    it('creates 1000 mappings in one request', async () => {
      const c = await createCompany(t, 'batch-1000');
      const agents = [await createAgent(t, c), await createAgent(t, c)];
      const rows = Array.from({ length: 1000 }, (_, i) => ({
        provider: ['asterisk', 'dialpad', 'twilio', 'netsapiens'][i % 4],
        externalId: `user-${i}`,
        ...(i % 3 === 0 ? { crmUserId: `crm-${i % 7}` } : { agentId: agents[i % 2]!.id }),
      }));
      const res = await batch(owner(c), rows);
      expect(res.status).toBe(201);
      const body = await json(res);
      expect(body.data).toHaveLength(1000);
      expect(body.data.map((m: Mapping) => [m.provider, m.externalId])).toEqual(
        rows.map((r) => [r.provider, r.externalId]),
      );
      expect(new Set(body.data.map((m: Mapping) => m.id)).size).toBe(1000);
      expect(await countOf(c.id)).toBe(1000);
      const page = await json(await call(t, 'GET', `${BASE}?limit=1`, owner(c)));
      expect(page.pagination.total).toBe(1000);
      expect(await lookup('twilio', 'user-998', c)).toEqual(body.data[998]);

      // Again: every row now exists.
      const again = await expectProblem(await batch(owner(c), rows), 409, 'mapping-exists');
      expect(again.errors).toHaveLength(1000);
      expect(await countOf(c.id)).toBe(1000);
    });
  });

  describe('companies are isolated', () => {
    it("company A neither sees nor deletes company B's mappings", async () => {
      const b = await createCompany(t, 'iso');
      const bAgent = await createAgent(t, b);
      const crm = unique('crm-b');
      const e = ext();
      const theirs = await created(
        await create(owner(b), { provider: 'dialpad', externalId: e, agentId: bAgent.id, crmUserId: crm }),
      );
      const aAgentUser = await createUser(t, a, 'agent');

      for (const auth of [owner(), { key: a.apiKey }, as(aAgentUser)]) {
        await expectProblem(await byProvider(auth, 'dialpad', e), 404, 'not-found');
        expect((await byCrm(auth, crm)).status).toBe(404);
        const list = await call(t, 'GET', `${BASE}?limit=200&agentId=${bAgent.id}`, auth);
        expect(await json(list)).toMatchObject({ data: [], pagination: { total: 0 } });
        const all = await (await call(t, 'GET', `${BASE}?limit=200&provider=dialpad`, auth)).text();
        expect(all).not.toContain(theirs.id);
        expect(all).not.toContain(crm);
      }
      for (const auth of [owner(), { key: a.apiKey }]) {
        await expectProblem(await remove(auth, theirs.id), 404, 'not-found');
      }
      // A may map the same identity for itself, to its own agent, not B's.
      await created(await create(owner(), { provider: 'dialpad', externalId: e, agentId: agentOfA.id }));
      const batchForeign = await expectProblem(
        await batch(owner(), [{ provider: 'dialpad', externalId: ext(), agentId: bAgent.id }]),
        400,
        'validation-failed',
      );
      expect(fieldsOf(batchForeign)).toEqual(['mappings[0].agentId']);

      expect(await lookup('dialpad', e, b)).toEqual(theirs);
      expect(await json(await byCrm(owner(b), crm))).toEqual({ data: [theirs] });
    });
  });
});
