import { randomUUID } from 'node:crypto';
import type { CallDetail } from '../src/calls/call-view.js';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import { EventsService } from '../src/events/events.service.js';
import type { CallEvent } from '../src/calls/call-event.js';
import type { CallDirection, EndReason } from '../src/calls/call-state.js';
import { CallApplyService } from '../src/calls/call-apply.service.js';
import { CallQueriesService } from '../src/calls/call-queries.service.js';
import { query } from './support/database.js';
import { json, type Auth, expectProblem } from './support/http.js';
import { call, createApiKey, createCompany, createUser, type TestCompany, type TestUser } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);

type CallBody = Omit<CallDetail, 'timeline'> & { timeline?: CallDetail['timeline'] };

interface Page {
  data: CallBody[];
  next: string | null;
}

const fieldsOf = (body: { errors?: { field: string }[] }) => (body.errors ?? []).map((e) => e.field).sort();

describe('calls: /api/v1/calls, /api/v1/screen-pop', () => {
  let t: TestApp;
  let a: TestCompany;
  let b: TestCompany;
  let manager: TestUser;
  let agentUser1: TestUser;
  let agentUser2: TestUser;
  let agentUserWithoutProfile: TestUser;
  /** Agents of A: 1 and 2 are the agent users; 3 has no user; `gone` is deleted. */
  let agent1: string;
  let agent2: string;
  let agent3: string;
  let goneAgent: string;
  let bAgent: string;
  let readKey: string;
  let writeKey: string;
  let usersKey: string;

  const sql = <T extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []) =>
    query<T>(t.db.url, text, params);
  const svc = () => t.app.get(CallApplyService);
  const owner = () => ({ token: a.owner.accessToken });
  const as = (u: TestUser) => ({ token: u.accessToken });

  async function insertAgent(
    company: TestCompany,
    o: { extension?: string; userId?: string; deleted?: boolean } = {},
  ): Promise<string> {
    const [row] = await sql<{ id: string }>(
      `INSERT INTO agents (company_id, display_name, extension, user_id, deleted_at)
       VALUES ($1, $2, $3, $4, $5) RETURNING id`,
      [
        company.id,
        `Agent ${randomUUID().slice(0, 6)}`,
        o.extension ?? null,
        o.userId ?? null,
        o.deleted ? new Date() : null,
      ],
    );
    return row!.id;
  }

  interface CallSpec {
    at: Date;
    direction?: CallDirection;
    from?: string;
    to?: string;
    callerName?: string;
    agentId?: string;
    /** Queued instead of ringing first. */
    queued?: boolean;
    answerAfter?: number;
    endAfter?: number;
    endReason?: EndReason;
  }

  /** A call as a phone system makes it: through CallApplyService.apply, provider asterisk. */
  async function makeCall(company: TestCompany, spec: CallSpec): Promise<string> {
    const base = { companyId: company.id, provider: 'asterisk', providerCallId: randomUUID() };
    const events: CallEvent[] = [
      {
        ...base,
        eventKey: 'first',
        kind: spec.queued ? 'queued' : 'ringing',
        at: spec.at,
        direction: spec.direction ?? 'inbound',
        from: spec.from ?? '+15551230001',
        to: spec.to ?? '+15550001234',
        ...(spec.callerName ? { callerName: spec.callerName } : {}),
        ...(spec.agentId ? { agent: { agentId: spec.agentId } } : {}),
      },
    ];
    if (spec.answerAfter !== undefined) {
      events.push({
        ...base,
        eventKey: 'answer',
        kind: 'answered',
        at: new Date(spec.at.getTime() + spec.answerAfter * 1000),
      });
    }
    if (spec.endAfter !== undefined) {
      events.push({
        ...base,
        eventKey: 'end',
        kind: 'ended',
        at: new Date(spec.at.getTime() + spec.endAfter * 1000),
        ...(spec.endReason ? { endReason: spec.endReason } : {}),
      });
    }
    let id = '';
    for (const e of events) id = (await svc().apply(e)).call.id;
    return id;
  }

  /** The company events of one call, in order. */
  const eventsOfCall = (companyId: string, callId: string) =>
    sql<{ seq: string; type: string; agent_id: string | null; data: Record<string, unknown> }>(
      `SELECT seq, type, agent_id, data FROM company_events WHERE company_id = $1 AND data->'call'->>'id' = $2 ORDER BY seq`,
      [companyId, callId],
    );
  const latestSeq = async (companyId: string) =>
    Number(
      (
        await sql<{ s: string | null }>('SELECT max(seq) AS s FROM company_events WHERE company_id = $1', [companyId])
      )[0]!.s ?? 0,
    );
  const callCount = async (companyId: string) =>
    Number((await sql<{ n: string }>('SELECT count(*) AS n FROM calls WHERE company_id = $1', [companyId]))[0]!.n);

  const get = (path: string, auth: Auth = owner()) => call(t, 'GET', path, auth);
  async function page(path: string, auth: Auth = owner()): Promise<Page> {
    const res = await get(path, auth);
    const body = await json(res);
    expect({ path, status: res.status }).toEqual({ path, status: 200 });
    return body;
  }
  const idsOf = (p: Page) => p.data.map((c) => c.id);

  /** Every page of a list, following `next`. */
  async function walk(
    path: string,
    auth: Auth = owner(),
    from: string | null = null,
  ): Promise<{ ids: string[]; pages: number[] }> {
    const ids: string[] = [];
    const pages: number[] = [];
    let cursor: string | null = from;
    const sep = path.includes('?') ? '&' : '?';
    do {
      const p = await page(cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path, auth);
      ids.push(...idsOf(p));
      pages.push(p.data.length);
      cursor = p.next;
      expect(pages.length).toBeLessThan(500);
    } while (cursor);
    return { ids, pages };
  }

  beforeAll(async () => {
    t = await startTestApp();
    a = await createCompany(t, 'calls');
    b = await createCompany(t, 'calls-b');
    manager = await createUser(t, a, 'manager');
    agentUser1 = await createUser(t, a, 'agent');
    agentUser2 = await createUser(t, a, 'agent');
    agentUserWithoutProfile = await createUser(t, a, 'agent');
    agent1 = await insertAgent(a, { extension: '1001', userId: agentUser1.id });
    agent2 = await insertAgent(a, { extension: '1002', userId: agentUser2.id });
    agent3 = await insertAgent(a, { extension: '1003' });
    goneAgent = await insertAgent(a, { extension: '1009', deleted: true });
    bAgent = await insertAgent(b, { extension: '1001' });
    readKey = (await createApiKey(t, a, ['calls:read'])).key;
    writeKey = (await createApiKey(t, a, ['calls:write'])).key;
    usersKey = (await createApiKey(t, a, ['users:read'])).key;
  });
  afterAll(() => t.close());

  describe('calls made through CallApplyService.apply', () => {
    it('emits call.ringing for the agent, call.answered, call.ended, and nothing for a repeated event', async () => {
      const base = { companyId: a.id, provider: 'asterisk', providerCallId: randomUUID() };
      const ring: CallEvent = {
        ...base,
        eventKey: 'r1',
        kind: 'ringing',
        at: at(0),
        direction: 'inbound',
        from: '+15551230001',
        to: '+15550001234',
        agent: { extension: '1001' },
      };
      const first = await svc().apply(ring);
      expect(first).toMatchObject({ applied: true, call: { status: 'ringing', agentId: agent1 } });
      await svc().apply({ ...base, eventKey: 'a1', kind: 'answered', at: at(3) });
      await svc().apply({ ...base, eventKey: 'e1', kind: 'ended', at: at(60), endReason: 'completed' });
      const before = await latestSeq(a.id);
      const again = await svc().apply({ ...base, eventKey: 'e1', kind: 'ended', at: at(60), endReason: 'completed' });
      expect(again.applied).toBe(false);
      expect(again.events).toEqual([]);
      expect(await latestSeq(a.id)).toBe(before);

      const events = await eventsOfCall(a.id, first.call.id);
      expect(events.map((e) => [e.type, e.agent_id])).toEqual([
        ['call.ringing', agent1],
        ['call.answered', agent1],
        ['call.ended', agent1],
      ]);
      expect(events[0]!.data).toMatchObject({
        call: { id: first.call.id, status: 'ringing', from: '+15551230001' },
        contact: null,
      });
      expect(events[2]!.data).toMatchObject({ call: { status: 'completed', talkSeconds: 57, durationSeconds: 60 } });
    });
  });

  describe('GET /api/v1/calls: filters', () => {
    let l: TestCompany;
    let lAgent1: string;
    let lAgent2: string;
    let lAgentUser: TestUser;
    /** Calls of company L by name, oldest (c1) to newest (c8). */
    const c: Record<string, string> = {};

    beforeAll(async () => {
      l = await createCompany(t, 'calls-list');
      lAgentUser = await createUser(t, l, 'agent');
      lAgent1 = await insertAgent(l, { extension: '2001', userId: lAgentUser.id });
      lAgent2 = await insertAgent(l, { extension: '2002' });
      const specs: [string, CallSpec][] = [
        [
          'c1',
          {
            at: at(100),
            direction: 'inbound',
            from: '+15551230001',
            to: '+15550001000',
            agentId: lAgent1,
            answerAfter: 5,
            endAfter: 65,
          },
        ],
        [
          'c2',
          {
            at: at(200),
            direction: 'outbound',
            from: '+15550001000',
            to: '+15551230002',
            agentId: lAgent2,
            endAfter: 20,
            endReason: 'busy',
          },
        ],
        ['c3', { at: at(300), direction: 'inbound', from: '+15551230001', to: '+15550001000', agentId: lAgent2 }],
        ['c4', { at: at(400), direction: 'internal', from: '2001', to: '2002', agentId: lAgent1, answerAfter: 2 }],
        ['c5', { at: at(500), direction: 'inbound', from: '+442071234567', to: '+15550001000', endAfter: 30 }],
        ['c6', { at: at(600), direction: 'inbound', from: '+15551230003', to: '+15550002000', queued: true }],
        [
          'c7',
          {
            at: at(700),
            direction: 'outbound',
            from: '+15550001000',
            to: '+15551230001',
            agentId: lAgent1,
            answerAfter: 1,
            endAfter: 9,
          },
        ],
        [
          'c8',
          {
            at: at(800),
            direction: 'inbound',
            from: '+15551230001',
            to: '+15550002000',
            agentId: lAgent1,
            endAfter: 15,
            endReason: 'abandoned',
          },
        ],
      ];
      for (const [name, spec] of specs) c[name] = await makeCall(l, spec);
      // Company B has calls that match every filter: none may show up in L's lists.
      await makeCall(b, {
        at: at(150),
        from: '+15551230001',
        to: '+15550001000',
        agentId: bAgent,
        answerAfter: 1,
        endAfter: 9,
      });
      await makeCall(b, { at: at(450), direction: 'outbound', from: '+15550001000', to: '+15551230002' });
    });

    const L = () => ({ token: l.owner.accessToken });
    const expectIds = async (qs: string, names: string[], auth: Auth = L()) => {
      const p = await page(`/api/v1/calls${qs}`, auth);
      expect({ qs, ids: idsOf(p) }).toEqual({ qs, ids: names.map((n) => c[n]) });
      expect(p.next).toBeNull();
      return p;
    };

    it('lists every call of the company, newest first, with the derived fields', async () => {
      const p = await expectIds('', ['c8', 'c7', 'c6', 'c5', 'c4', 'c3', 'c2', 'c1']);
      expect(p.data.map((x) => x.status)).toEqual([
        'abandoned',
        'completed',
        'queued',
        'missed',
        'in_progress',
        'ringing',
        'busy',
        'completed',
      ]);
      expect(p.data[7]).toMatchObject({
        provider: 'asterisk',
        direction: 'inbound',
        from: '+15551230001',
        to: '+15550001000',
        agentId: lAgent1,
        startedAt: at(100).toISOString(),
        answeredAt: at(105).toISOString(),
        endedAt: at(165).toISOString(),
        ringSeconds: 5,
        talkSeconds: 60,
        durationSeconds: 65,
        tags: [],
        notes: null,
      });
      expect(p.data[7]).not.toHaveProperty('state');
      expect(p.data[7]).not.toHaveProperty('callKey');
    });

    it('filters by status', async () => {
      await expectIds('?status=completed', ['c7', 'c1']);
      await expectIds('?status=ringing', ['c3']);
      await expectIds('?status=queued', ['c6']);
      await expectIds('?status=missed', ['c5']);
      await expectIds('?status=voicemail', []);
    });

    it('filters by direction', async () => {
      await expectIds('?direction=outbound', ['c7', 'c2']);
      await expectIds('?direction=internal', ['c4']);
      await expectIds('?direction=inbound', ['c8', 'c6', 'c5', 'c3', 'c1']);
    });

    it('filters by from and to: E.164, formatted, national digits, an unencoded +, or an extension', async () => {
      await expectIds('?from=%2B15551230001', ['c8', 'c3', 'c1']);
      await expectIds(`?from=${encodeURIComponent('+1 (555) 123-0001')}`, ['c8', 'c3', 'c1']);
      await expectIds('?from=5551230001', ['c8', 'c3', 'c1']);
      await expectIds('?from=555.123.0001', ['c8', 'c3', 'c1']);
      // `+` in a query string means a space: the number still matches.
      await expectIds('?from=+15551230001', ['c8', 'c3', 'c1']);
      await expectIds('?from=+442071234567', ['c5']);
      await expectIds('?from=2001', ['c4']);
      await expectIds('?to=2002', ['c4']);
      await expectIds('?to=%2B15550002000', ['c8', 'c6']);
      await expectIds('?to=%2B15551230001', ['c7']);
      await expectIds('?from=%2B19999999999', []);
    });

    it('filters by agent and by time (since inclusive, until exclusive, on startedAt)', async () => {
      await expectIds(`?agentId=${lAgent1}`, ['c8', 'c7', 'c4', 'c1']);
      await expectIds(`?agentId=${lAgent2}`, ['c3', 'c2']);
      await expectIds(`?agentId=${bAgent}`, []);
      await expectIds(`?since=${at(300).toISOString()}`, ['c8', 'c7', 'c6', 'c5', 'c4', 'c3']);
      await expectIds(`?until=${at(300).toISOString()}`, ['c2', 'c1']);
      await expectIds(`?since=${at(300).toISOString()}&until=${at(500).toISOString()}`, ['c4', 'c3']);
      // Other spellings of the same instants.
      await expectIds(`?since=${encodeURIComponent('2026-03-01T12:05:00+02:00')}&until=2026-03-01T10:08:20.000001Z`, [
        'c5',
        'c4',
        'c3',
      ]);
      await expectIds('?since=2026-03-02', []);
      await expectIds('?until=2026-03-01', []);
      await expectIds('?since=2026-03-01&until=2026-03-02', ['c8', 'c7', 'c6', 'c5', 'c4', 'c3', 'c2', 'c1']);
    });

    it('combines filters', async () => {
      await expectIds(`?status=completed&agentId=${lAgent1}`, ['c7', 'c1']);
      await expectIds(`?direction=inbound&from=%2B15551230001&agentId=${lAgent1}`, ['c8', 'c1']);
      await expectIds(`?from=5551230001&to=5550001000&status=ringing`, ['c3']);
      await expectIds(`?direction=inbound&since=${at(200).toISOString()}&until=${at(800).toISOString()}`, [
        'c6',
        'c5',
        'c3',
      ]);
      await expectIds(`?status=completed&direction=internal`, []);
      await expectIds(
        `?status=abandoned&direction=inbound&from=%2B15551230001&to=%2B15550002000&agentId=${lAgent1}&since=${at(800).toISOString()}&until=${at(801).toISOString()}`,
        ['c8'],
      );
    });

    it('shows an agent user only the calls of its own agent, and an agent without a profile none', async () => {
      const mine = ['c8', 'c7', 'c4', 'c1'];
      await expectIds('', mine, as(lAgentUser));
      await expectIds('?status=completed', ['c7', 'c1'], as(lAgentUser));
      await expectIds(`?agentId=${lAgent2}`, [], as(lAgentUser));
      const noProfile = await createUser(t, l, 'agent');
      await expectIds('', [], as(noProfile));
      await expectIds(`?agentId=${lAgent1}`, [], as(noProfile));
      // Managers, admins and API keys see every call.
      const all = ['c8', 'c7', 'c6', 'c5', 'c4', 'c3', 'c2', 'c1'];
      await expectIds('', all, as(await createUser(t, l, 'manager')));
      await expectIds('', all, as(await createUser(t, l, 'admin')));
      await expectIds('', all, { key: (await createApiKey(t, l, ['calls:read'])).key });
    });

    it('lists active calls (queued, ringing, in progress), newest first, with the same agent rule', async () => {
      const res = await page('/api/v1/calls/active', L());
      expect(idsOf(res)).toEqual([c.c6, c.c4, c.c3]);
      expect(res.data.map((x) => x.status)).toEqual(['queued', 'in_progress', 'ringing']);
      expect(res.next).toBeNull();
      expect(idsOf(await page('/api/v1/calls/active', as(lAgentUser)))).toEqual([c.c4]);
      // One at a time.
      const walked = await walk('/api/v1/calls/active?limit=1', L());
      expect(walked).toEqual({ ids: [c.c6, c.c4, c.c3], pages: [1, 1, 1] });
      // A call that ends leaves the list.
      await svc().apply({
        companyId: l.id,
        provider: 'asterisk',
        providerCallId: (await t.app.get(CallQueriesService).get(l.id, c.c3!)).providerCallId,
        eventKey: 'late-end',
        kind: 'ended',
        at: at(330),
      });
      expect(idsOf(await page('/api/v1/calls/active', L()))).toEqual([c.c6, c.c4]);
      expect(idsOf(await page('/api/v1/calls/active', as(lAgentUser)))).toEqual([c.c4]);
    });

    it('refuses bad filters with 400 field errors, never a 500', async () => {
      const cases: [string, string][] = [
        ['?status=bogus', 'status'],
        ['?status=', 'status'],
        ['?direction=sideways', 'direction'],
        ['?from=abc', 'from'],
        ['?from=555%3B1', 'from'],
        ['?from=', 'from'],
        ['?from=%2B%2B', 'from'],
        [`?from=${'1'.repeat(33)}`, 'from'],
        ['?to=%27%20OR%201%3D1', 'to'],
        ['?agentId=not-a-uuid', 'agentId'],
        ['?since=yesterday', 'since'],
        ['?since=2026-02-30', 'since'],
        ['?since=2026-03-01T10:00:00', 'since'],
        ['?since=0000-01-01', 'since'],
        ['?since=2026-W10', 'since'],
        ['?until=1700000000', 'until'],
        ['?until=2026-03-01T25:00:00Z', 'until'],
        ['?limit=0', 'limit'],
        ['?limit=201', 'limit'],
        ['?limit=ten', 'limit'],
        ['?status=completed&status=missed', 'status'],
        ['?page=2', 'page'],
      ];
      for (const [qs, field] of cases) {
        const res = await get(`/api/v1/calls${qs}`, L());
        const body = await json(res);
        expect({ qs, status: res.status, type: body.type, fields: fieldsOf(body) }).toEqual({
          qs,
          status: 400,
          type: 'urn:switchboard:problem:validation-failed',
          fields: [field],
        });
      }
      for (const qs of ['?limit=0', '?cursor=x']) {
        expect((await get(`/api/v1/calls/active${qs}`, L())).status).toBe(400);
      }
    });

    it('takes limit up to 200', async () => {
      const p = await page('/api/v1/calls?limit=200', L());
      expect(p.data).toHaveLength(8);
      const two = await page('/api/v1/calls?limit=2', L());
      expect(idsOf(two)).toEqual([c.c8, c.c7]);
      expect(two.next).toEqual(expect.any(String));
    });
  });

  describe('GET /api/v1/calls: keyset pagination', () => {
    let p: TestCompany;
    /** Every call of company P in the order the list must give: started_at DESC, id DESC. */
    let expected: string[];

    beforeAll(async () => {
      p = await createCompany(t, 'calls-pages');
      const agent = await insertAgent(p, { extension: '3001' });
      const same = at(1000);
      const specs: CallSpec[] = [];
      for (let i = 0; i < 60; i++)
        specs.push({ at: same, agentId: i % 2 ? agent : undefined, answerAfter: 1, endAfter: 5 });
      for (let i = 0; i < 30; i++) specs.push({ at: at(500), endAfter: 3, endReason: i % 3 ? 'missed' : 'busy' });
      for (let i = 0; i < 30; i++) specs.push({ at: at(2000 + i), agentId: agent });
      await Promise.all(specs.map((s) => makeCall(p, s)));
      // Microseconds, which a JavaScript Date cannot hold: 20 of the equal calls move 0.000123 s later, so
      // they share their millisecond with the others but not their time.
      await sql(
        `UPDATE calls SET started_at = started_at + interval '123 microseconds'
         WHERE id IN (SELECT id FROM calls WHERE company_id = $1 AND started_at = $2 ORDER BY id LIMIT 20)`,
        [p.id, same],
      );
      expected = (
        await sql<{ id: string }>('SELECT id FROM calls WHERE company_id = $1 ORDER BY started_at DESC, id DESC', [
          p.id,
        ])
      ).map((r) => r.id);
      expect(expected).toHaveLength(120);
    });

    const P = () => ({ token: p.owner.accessToken });

    it.each([1, 7, 50, 119, 120, 200])(
      'walks 120 calls with limit %i: no duplicates, no gaps, newest first',
      async (limit) => {
        const { ids, pages } = await walk(`/api/v1/calls?limit=${limit}`, P());
        expect(ids).toEqual(expected);
        expect(new Set(ids).size).toBe(120);
        const full = Math.floor(120 / limit);
        expect(pages.slice(0, full)).toEqual(Array(full).fill(limit));
        expect(pages.length).toBe(Math.ceil(120 / limit));
      },
    );

    it('walks the default page size (50) and a filtered list the same way', async () => {
      const { ids, pages } = await walk('/api/v1/calls', P());
      expect(ids).toEqual(expected);
      expect(pages).toEqual([50, 50, 20]);
      const missed = (
        await sql<{ id: string }>(
          `SELECT id FROM calls WHERE company_id = $1 AND status = 'missed' ORDER BY started_at DESC, id DESC`,
          [p.id],
        )
      ).map((r) => r.id);
      expect(missed).toHaveLength(20);
      expect((await walk('/api/v1/calls?status=missed&limit=3', P())).ids).toEqual(missed);
      const ringing = expected.slice(0, 30);
      expect((await walk('/api/v1/calls/active?limit=4', P())).ids).toEqual(ringing);
    });

    it('gives the exact database time in the cursor, so the rows that share a millisecond are neither skipped nor repeated', async () => {
      const first = await page('/api/v1/calls?limit=40', P());
      const [cursorAt] = JSON.parse(Buffer.from(first.next!, 'base64url').toString('utf8')) as [string, string];
      expect(cursorAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
      // The 40th row is one of the 20 moved by 123 µs (the newest of the equal ones).
      expect(cursorAt).toBe('2026-03-01T10:16:40.000123Z');
      const rest = await walk('/api/v1/calls?limit=40', P(), first.next);
      expect([...idsOf(first), ...rest.ids]).toEqual(expected);
    });

    it('refuses a tampered cursor (400 invalid-cursor)', async () => {
      const first = await page('/api/v1/calls?limit=5', P());
      const [cursorAt, id] = JSON.parse(Buffer.from(first.next!, 'base64url').toString('utf8')) as [string, string];
      const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const bad = [
        'not-a-cursor',
        first.next!.slice(0, -3),
        enc([cursorAt]),
        enc([cursorAt, 'not-a-uuid']),
        enc(['2026-02-30T00:00:00.000000Z', id]),
        enc(['0000-01-01T00:00:00.000000Z', id]),
        enc(['2026-03-01 10:00:00', id]),
        enc([1, id]),
        enc({ at: cursorAt, id }),
        enc(["2026-03-01T10:00:00Z'; DROP TABLE calls; --", id]),
      ];
      for (const cursor of bad) {
        const res = await get(`/api/v1/calls?cursor=${encodeURIComponent(cursor)}`, P());
        const body = await json(res);
        expect({ cursor, status: res.status, type: body.type }).toEqual({
          cursor,
          status: 400,
          type: 'urn:switchboard:problem:invalid-cursor',
        });
      }
      await expectProblem(await get(`/api/v1/calls?cursor=${'a'.repeat(201)}`, P()), 400, 'validation-failed');
      await expectProblem(
        await get(`/api/v1/calls/active?cursor=${encodeURIComponent(bad[3]!)}`, P()),
        400,
        'invalid-cursor',
      );
      // A well-formed cursor of any time is accepted: before everything gives an empty page.
      const early = await page(`/api/v1/calls?cursor=${enc(['2000-01-01T00:00:00.000000Z', id])}`, P());
      expect(early).toEqual({ data: [], next: null });
    });
  });

  describe('GET /api/v1/calls/:id', () => {
    let mine: string;
    let theirs: string;
    let bCall: string;

    beforeAll(async () => {
      // Delivered out of order: ended before answered.
      const base = { companyId: a.id, provider: 'asterisk', providerCallId: randomUUID() };
      const raw = { Event: 'Hangup', CallerIDNum: '+15551230001' };
      await svc().apply({
        ...base,
        eventKey: 'r',
        kind: 'ringing',
        at: at(0),
        from: '+15551230001',
        to: '+15550001234',
        agent: { agentId: agent1 },
      });
      await svc().apply({ ...base, eventKey: 'e', kind: 'ended', at: at(30), endReason: 'completed', raw });
      mine = (await svc().apply({ ...base, eventKey: 'a', kind: 'answered', at: at(4) })).call.id;
      theirs = await makeCall(a, { at: at(10), agentId: agent2, answerAfter: 1, endAfter: 2 });
      bCall = await makeCall(b, { at: at(10), agentId: bAgent });
    });

    it('returns the call with its timeline in time order', async () => {
      const res = await get(`/api/v1/calls/${mine}`);
      expect(res.status).toBe(200);
      const body: CallBody = await json(res);
      expect(body).toMatchObject({
        id: mine,
        status: 'completed',
        agentId: agent1,
        ringSeconds: 4,
        talkSeconds: 26,
        durationSeconds: 30,
        endReason: 'completed',
      });
      expect(body.timeline).toEqual([
        {
          kind: 'ringing',
          at: at(0).toISOString(),
          data: expect.objectContaining({ kind: 'ringing', from: '+15551230001', to: '+15550001234', agentId: agent1 }),
        },
        { kind: 'answered', at: at(4).toISOString(), data: { kind: 'answered' } },
        {
          kind: 'ended',
          at: at(30).toISOString(),
          data: { kind: 'ended', endReason: 'completed', raw: { Event: 'Hangup', CallerIDNum: '+15551230001' } },
        },
      ]);
      // The list shows the same call without the timeline.
      const listed = (await page('/api/v1/calls?limit=200')).data.find((x) => x.id === mine);
      const { timeline, ...view } = body;
      expect(timeline).toHaveLength(3);
      expect(listed).toEqual(view);
    });

    it('answers 404 for another company’s call and a missing one alike, 400 for a malformed id', async () => {
      const missing = await expectProblem(await get(`/api/v1/calls/${UNKNOWN_ID}`), 404, 'not-found');
      const other = await expectProblem(await get(`/api/v1/calls/${bCall}`), 404, 'not-found');
      expect(other.detail).toBe(missing.detail);
      await expectProblem(await get(`/api/v1/calls/${bCall}`, { key: a.apiKey }), 404, 'not-found');
      await expectProblem(await get('/api/v1/calls/not-a-uuid'), 400, 'bad-request');
      // B itself sees it.
      expect((await get(`/api/v1/calls/${bCall}`, { token: b.owner.accessToken })).status).toBe(200);
    });

    it('shows an agent user its own calls only (others: 404)', async () => {
      expect((await get(`/api/v1/calls/${mine}`, as(agentUser1))).status).toBe(200);
      await expectProblem(await get(`/api/v1/calls/${theirs}`, as(agentUser1)), 404, 'not-found');
      expect((await get(`/api/v1/calls/${theirs}`, as(agentUser2))).status).toBe(200);
      await expectProblem(await get(`/api/v1/calls/${mine}`, as(agentUserWithoutProfile)), 404, 'not-found');
      const unassigned = await makeCall(a, { at: at(20) });
      await expectProblem(await get(`/api/v1/calls/${unassigned}`, as(agentUserWithoutProfile)), 404, 'not-found');
      expect((await get(`/api/v1/calls/${unassigned}`, as(manager))).status).toBe(200);
    });

    it('takes API keys with calls:read, refuses other scopes and no credential', async () => {
      expect((await get(`/api/v1/calls/${mine}`, { key: readKey })).status).toBe(200);
      expect((await get('/api/v1/calls', { key: readKey })).status).toBe(200);
      expect((await get('/api/v1/calls/active', { key: readKey })).status).toBe(200);
      for (const path of [`/api/v1/calls/${mine}`, '/api/v1/calls', '/api/v1/calls/active']) {
        await expectProblem(await get(path, { key: usersKey }), 403, 'insufficient-scope');
        await expectProblem(await get(path, { key: writeKey }), 403, 'insufficient-scope');
        await expectProblem(await get(path, {}), 401, 'unauthorized');
      }
    });
  });

  describe('POST /api/v1/calls (a call logged by hand)', () => {
    const valid = (extra: Record<string, unknown> = {}) => ({
      direction: 'inbound',
      from: '+15551230001',
      to: '+15550001234',
      startedAt: '2026-03-02T09:00:00Z',
      answeredAt: '2026-03-02T09:00:07Z',
      endedAt: '2026-03-02T09:05:07Z',
      endReason: 'completed',
      agentId: agent3,
      notes: 'Asked about the invoice',
      disposition: 'resolved',
      tags: ['billing', 'vip'],
      ...extra,
    });
    const post = (body: unknown, auth: Auth = as(manager)) => call(t, 'POST', '/api/v1/calls', auth, body);

    it('creates it through the state machine, with its events, and returns the call (201)', async () => {
      const res = await post(valid());
      expect(res.status).toBe(201);
      const created: CallBody = await json(res);
      expect(created).toMatchObject({
        provider: 'manual',
        direction: 'inbound',
        status: 'completed',
        from: '+15551230001',
        to: '+15550001234',
        agentId: agent3,
        startedAt: '2026-03-02T09:00:00.000Z',
        ringingAt: '2026-03-02T09:00:00.000Z',
        answeredAt: '2026-03-02T09:00:07.000Z',
        endedAt: '2026-03-02T09:05:07.000Z',
        ringSeconds: 7,
        talkSeconds: 300,
        durationSeconds: 307,
        endReason: 'completed',
        notes: 'Asked about the invoice',
        disposition: 'resolved',
        tags: ['billing', 'vip'],
      });
      expect(created.providerCallId).toMatch(/^[0-9a-f-]{36}$/);

      const detail: CallBody = await json(await get(`/api/v1/calls/${created.id}`));
      expect(detail.timeline!.map((e) => [e.kind, e.at])).toEqual([
        ['ringing', '2026-03-02T09:00:00.000Z'],
        ['answered', '2026-03-02T09:00:07.000Z'],
        ['ended', '2026-03-02T09:05:07.000Z'],
      ]);
      expect(detail.timeline![0]!.data).toMatchObject({
        raw: { manual: true, actorType: 'user', actorId: manager.id },
      });
      const { timeline, ...view } = detail;
      expect(timeline).toBeDefined();
      expect(view).toEqual(created);

      const events = await eventsOfCall(a.id, created.id);
      // A call logged by hand is announced in lifecycle order, one event per milestone, each with
      // the call as it was then, the last with the final status; its notes are in every one (set
      // in the same transaction), and nothing follows.
      expect(
        events.map((e) => [e.type, e.agent_id, (e.data as { call: CallBody }).call.status, Number(e.seq)]),
      ).toEqual([
        ['call.ringing', agent3, 'ringing', Number(events[0]!.seq)],
        ['call.answered', agent3, 'in_progress', Number(events[0]!.seq) + 1],
        ['call.ended', agent3, 'completed', Number(events[0]!.seq) + 2],
      ]);
      for (const e of events) {
        expect(e.data).toMatchObject({
          call: { id: created.id, notes: 'Asked about the invoice', disposition: 'resolved', tags: ['billing', 'vip'] },
        });
      }
      expect(events[2]!.data).toEqual({ call: created });
    });

    it('derives unanswered and unfinished calls the same way', async () => {
      const busy: CallBody = await json(
        await post(
          valid({
            answeredAt: undefined,
            endReason: 'busy',
            notes: undefined,
            disposition: undefined,
            tags: undefined,
          }),
        ),
      );
      expect(busy).toMatchObject({
        status: 'busy',
        answeredAt: null,
        ringSeconds: 307,
        talkSeconds: null,
        durationSeconds: 307,
      });
      expect(
        (await eventsOfCall(a.id, busy.id)).map((e) => [e.type, (e.data as { call: CallBody }).call.status]),
      ).toEqual([
        ['call.ringing', 'ringing'],
        ['call.ended', 'busy'],
      ]);

      const missed: CallBody = await json(
        await post({
          direction: 'outbound',
          from: '+15550001234',
          to: '+15551230009',
          startedAt: '2026-03-02T09:00:00Z',
          endedAt: '2026-03-02T09:00:30Z',
        }),
      );
      expect(missed).toMatchObject({
        status: 'missed',
        direction: 'outbound',
        agentId: null,
        endReason: 'missed',
        durationSeconds: 30,
      });

      const live = await post({
        direction: 'inbound',
        from: '+15551230001',
        to: '+15550001234',
        startedAt: '2026-03-02T09:00:00+01:00',
      });
      expect(live.status).toBe(201);
      const liveBody: CallBody = await json(live);
      expect(liveBody).toMatchObject({ status: 'ringing', startedAt: '2026-03-02T08:00:00.000Z', endedAt: null });
      expect(idsOf(await page('/api/v1/calls/active?limit=200'))).toContain(liveBody.id);

      const answered: CallBody = await json(await post(valid({ endedAt: undefined, endReason: undefined, tags: [] })));
      expect(answered).toMatchObject({ status: 'in_progress', talkSeconds: null, tags: [] });

      const sameInstant: CallBody = await json(
        await post(
          valid({ answeredAt: '2026-03-02T09:00:00Z', endedAt: '2026-03-02T09:00:00Z', endReason: 'voicemail' }),
        ),
      );
      expect(sameInstant).toMatchObject({ status: 'voicemail', ringSeconds: 0, talkSeconds: 0, durationSeconds: 0 });
    });

    it('refuses inconsistent times, unknown agents and bad fields (400), and creates nothing', async () => {
      const before = await callCount(a.id);
      const cases: [Record<string, unknown>, string[]][] = [
        [valid({ answeredAt: '2026-03-02T08:59:59Z' }), ['answeredAt']],
        [valid({ endedAt: '2026-03-02T09:00:06Z' }), ['endedAt']],
        [valid({ answeredAt: undefined, endedAt: '2026-03-02T08:00:00Z' }), ['endedAt']],
        [valid({ endedAt: undefined }), ['endReason']],
        [valid({ agentId: bAgent }), ['agentId']],
        [valid({ agentId: goneAgent }), ['agentId']],
        [valid({ agentId: UNKNOWN_ID }), ['agentId']],
        [valid({ agentId: 'agent-1' }), ['agentId']],
        [valid({ from: '5551230001' }), ['from']],
        [valid({ to: '+1555' }), ['to']],
        [valid({ direction: 'sideways' }), ['direction']],
        [valid({ startedAt: 'yesterday' }), ['startedAt']],
        [valid({ startedAt: '2026-03-02T09:00:00' }), ['startedAt']],
        [valid({ startedAt: undefined }), ['startedAt']],
        [valid({ endReason: 'exploded' }), ['endReason']],
        [valid({ tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }), ['tags']],
        [valid({ tags: ['x'.repeat(51)] }), ['tags']],
        [valid({ tags: [''] }), ['tags']],
        [valid({ tags: ['a', 'a'] }), ['tags']],
        [valid({ tags: [1] }), ['tags']],
        [valid({ tags: null }), ['tags']],
        [valid({ answeredAt: null }), ['answeredAt']],
        [valid({ endedAt: null }), ['endedAt']],
        [valid({ endReason: null }), ['endReason']],
        [valid({ agentId: null }), ['agentId']],
        [valid({ disposition: 'd'.repeat(65) }), ['disposition']],
        [valid({ notes: 'n'.repeat(10_001) }), ['notes']],
        [valid({ status: 'completed' }), ['status']],
        [valid({ companyId: b.id }), ['companyId']],
        [
          valid({ answeredAt: '2026-03-02T08:00:00Z', endedAt: '2026-03-02T07:00:00Z', agentId: bAgent }),
          ['agentId', 'answeredAt', 'endedAt'],
        ],
      ];
      for (const [body, fields] of cases) {
        const res = await post(body);
        const problem = await json(res);
        expect({ body, status: res.status, type: problem.type, fields: fieldsOf(problem) }).toEqual({
          body,
          status: 400,
          type: 'urn:switchboard:problem:validation-failed',
          fields,
        });
      }
      await expectProblem(await post([valid()]), 400, 'validation-failed');
      expect(await callCount(a.id)).toBe(before);
    });

    it('is for managers and above, and API keys with calls:write', async () => {
      const before = await callCount(a.id);
      await expectProblem(await post(valid(), as(agentUser1)), 403, 'forbidden');
      await expectProblem(await post(valid(), { key: readKey }), 403, 'insufficient-scope');
      await expectProblem(await post(valid(), {}), 401, 'unauthorized');
      expect(await callCount(a.id)).toBe(before);
      const viaKey = await post(valid(), { key: writeKey });
      expect(viaKey.status).toBe(201);
      const byKey: CallBody = await json(viaKey);
      const detail: CallBody = await json(await get(`/api/v1/calls/${byKey.id}`));
      expect(detail.timeline![0]!.data).toMatchObject({ raw: { manual: true, actorType: 'api_key' } });
      expect((await post(valid(), owner())).status).toBe(201);
      expect(await callCount(a.id)).toBe(before + 2);
    });
  });

  describe('PATCH /api/v1/calls/:id', () => {
    let mine: string;
    let theirs: string;
    let bCall: string;

    beforeAll(async () => {
      mine = await makeCall(a, { at: at(40), agentId: agent1, answerAfter: 1, endAfter: 10 });
      theirs = await makeCall(a, { at: at(41), agentId: agent2, answerAfter: 1, endAfter: 10 });
      bCall = await makeCall(b, { at: at(41), agentId: bAgent });
    });
    const patch = (id: string, body: unknown, auth: Auth = owner()) =>
      call(t, 'PATCH', `/api/v1/calls/${id}`, auth, body);
    const view = async (id: string, auth: Auth = owner()): Promise<CallBody> =>
      json(await get(`/api/v1/calls/${id}`, auth));

    it('lets an agent user change its own call, and emits call.updated', async () => {
      const before = await view(mine);
      const res = await patch(
        mine,
        { notes: 'Called back', disposition: 'callback', tags: ['urgent'] },
        as(agentUser1),
      );
      expect(res.status).toBe(200);
      const body: CallBody = await json(res);
      expect(body).toMatchObject({
        id: mine,
        notes: 'Called back',
        disposition: 'callback',
        tags: ['urgent'],
        status: 'completed',
      });
      expect(Date.parse(body.updatedAt)).toBeGreaterThan(Date.parse(before.updatedAt));
      const { timeline, ...after } = await view(mine);
      expect(timeline).toHaveLength(3);
      expect(after).toEqual(body);
      const events = await eventsOfCall(a.id, mine);
      expect(events.at(-1)).toMatchObject({
        type: 'call.updated',
        agent_id: agent1,
        data: { call: { notes: 'Called back' } },
      });
    });

    it('changes only what is given; null clears notes and disposition; tags are replaced', async () => {
      await patch(mine, { notes: 'one', disposition: 'sale', tags: ['a', 'b'] });
      expect(await json(await patch(mine, { tags: ['c'] }))).toMatchObject({
        notes: 'one',
        disposition: 'sale',
        tags: ['c'],
      });
      expect(await json(await patch(mine, { notes: null }))).toMatchObject({
        notes: null,
        disposition: 'sale',
        tags: ['c'],
      });
      expect(await json(await patch(mine, { disposition: null, tags: [] }))).toMatchObject({
        notes: null,
        disposition: null,
        tags: [],
      });
      // An empty change returns the call and tells nobody.
      const seq = await latestSeq(a.id);
      const same = await patch(mine, {});
      expect(same.status).toBe(200);
      expect(await json(same)).toMatchObject({ id: mine, tags: [] });
      expect(await latestSeq(a.id)).toBe(seq);
    });

    it("answers 404 for another agent's call, another company's call and a missing one, and changes nothing", async () => {
      const before = await view(theirs);
      const seq = await latestSeq(a.id);
      await expectProblem(await patch(theirs, { notes: 'not mine' }, as(agentUser1)), 404, 'not-found');
      await expectProblem(await patch(theirs, {}, as(agentUser1)), 404, 'not-found');
      await expectProblem(await patch(mine, { notes: 'no profile' }, as(agentUserWithoutProfile)), 404, 'not-found');
      await expectProblem(await patch(bCall, { notes: 'from A' }), 404, 'not-found');
      await expectProblem(await patch(bCall, { notes: 'from A' }, { key: a.apiKey }), 404, 'not-found');
      await expectProblem(await patch(UNKNOWN_ID, { notes: 'x' }), 404, 'not-found');
      await expectProblem(await patch('not-a-uuid', { notes: 'x' }), 400, 'bad-request');
      expect(await view(theirs)).toEqual(before);
      expect(await latestSeq(a.id)).toBe(seq);
      const bView: CallBody = await json(await get(`/api/v1/calls/${bCall}`, { token: b.owner.accessToken }));
      expect(bView.notes).toBeNull();
      // Managers change any call of the company.
      expect(await json(await patch(theirs, { notes: 'by manager' }, as(manager)))).toMatchObject({
        notes: 'by manager',
      });
    });

    it('refuses bad fields (400), scopes and missing credentials', async () => {
      const before = await view(theirs);
      const cases: [unknown, string[]][] = [
        [{ tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, ['tags']],
        [{ tags: ['x'.repeat(51)] }, ['tags']],
        [{ tags: 'vip' }, ['tags']],
        [{ tags: [{}] }, ['tags']],
        [{ tags: null }, ['tags']],
        [{ disposition: '' }, ['disposition']],
        [{ notes: 42 }, ['notes']],
        [{ status: 'completed' }, ['status']],
        [{ agentId: agent1 }, ['agentId']],
      ];
      for (const [body, fields] of cases) {
        const res = await patch(theirs, body);
        const problem = await json(res);
        expect({ body, status: res.status, fields: fieldsOf(problem) }).toEqual({ body, status: 400, fields });
      }
      // The limits themselves are fine: 20 distinct tags of 50 characters.
      const twenty = Array.from({ length: 20 }, (_, i) => `${String(i).padStart(2, '0')}${'y'.repeat(48)}`);
      expect(twenty.every((tag) => tag.length === 50)).toBe(true);
      expect(await json(await patch(theirs, { tags: twenty }))).toMatchObject({ tags: twenty });
      await expectProblem(await patch(theirs, { notes: 'x' }, { key: readKey }), 403, 'insufficient-scope');
      await expectProblem(await patch(theirs, { notes: 'x' }, {}), 401, 'unauthorized');
      expect(await json(await patch(theirs, { notes: 'by key' }, { key: writeKey }))).toMatchObject({
        notes: 'by key',
      });
      expect((await view(theirs)).status).toBe(before.status);
    });
  });

  describe('POST /api/v1/calls/:id/assign', () => {
    const assign = (id: string, body: unknown, auth: Auth = as(manager)) =>
      call(t, 'POST', `/api/v1/calls/${id}/assign`, auth, body);

    it('assigns a ringing call to another agent: the screen pop moves (call.ringing for that agent)', async () => {
      const providerCallId = randomUUID();
      const base = { companyId: a.id, provider: 'asterisk', providerCallId };
      const id = (
        await svc().apply({
          ...base,
          eventKey: 'r',
          kind: 'ringing',
          at: new Date(Date.now() - 5000),
          agent: { agentId: agent1 },
        })
      ).call.id;
      const res = await assign(id, { agentId: agent2 });
      expect(res.status).toBe(200);
      expect(await json(res)).toMatchObject({ id, agentId: agent2, status: 'ringing' });
      const events = await eventsOfCall(a.id, id);
      expect(events.map((e) => [e.type, e.agent_id])).toEqual([
        ['call.ringing', agent1],
        ['call.ringing', agent2],
      ]);
      // The provider's later events do not take it back: the assignment is the latest stamp.
      await svc().apply({
        ...base,
        eventKey: 'a',
        kind: 'answered',
        at: new Date(Date.now() - 2000),
        agent: { agentId: agent1 },
      });
      const now: CallBody = await json(await get(`/api/v1/calls/${id}`));
      expect(now).toMatchObject({ agentId: agent2, status: 'in_progress' });
      expect(now.timeline!.map((e) => e.kind)).toEqual(['ringing', 'answered', 'updated']);
      // Now the agent user 2 sees it, and 1 does not.
      expect((await get(`/api/v1/calls/${id}`, as(agentUser2))).status).toBe(200);
      await expectProblem(await get(`/api/v1/calls/${id}`, as(agentUser1)), 404, 'not-found');
    });

    it('assigns a finished call (call.updated); the same agent again changes nothing', async () => {
      const id = await makeCall(a, { at: at(50), agentId: agent1, answerAfter: 1, endAfter: 3 });
      expect(await json(await assign(id, { agentId: agent3 }, owner()))).toMatchObject({
        agentId: agent3,
        status: 'completed',
      });
      const after = await eventsOfCall(a.id, id);
      expect(after.at(-1)).toMatchObject({ type: 'call.updated', agent_id: agent3 });
      const seq = await latestSeq(a.id);
      expect(await json(await assign(id, { agentId: agent3 }, { key: writeKey }))).toMatchObject({ agentId: agent3 });
      expect(await latestSeq(a.id)).toBe(seq);
    });

    it("refuses another company's agent, a deleted or unknown one (400), and never assigns it", async () => {
      const id = await makeCall(a, { at: at(60), agentId: agent1 });
      const seq = await latestSeq(a.id);
      for (const agentId of [bAgent, goneAgent, UNKNOWN_ID]) {
        const problem = await expectProblem(await assign(id, { agentId }), 400, 'validation-failed');
        expect(fieldsOf(problem)).toEqual(['agentId']);
      }
      for (const body of [{}, { agentId: 'x' }, { agentId: agent2, extra: 1 }, { agentId: null }]) {
        expect({ body, status: (await assign(id, body)).status }).toEqual({ body, status: 400 });
      }
      const now: CallBody = await json(await get(`/api/v1/calls/${id}`));
      expect(now.agentId).toBe(agent1);
      expect(now.timeline).toHaveLength(1);
      expect(await latestSeq(a.id)).toBe(seq);
    });

    it("answers 404 for another company's call and a missing one; refuses agents and read-only keys", async () => {
      const bCall = await makeCall(b, { at: at(70), agentId: bAgent });
      const missing = await expectProblem(await assign(UNKNOWN_ID, { agentId: agent2 }), 404, 'not-found');
      const other = await expectProblem(await assign(bCall, { agentId: agent2 }), 404, 'not-found');
      expect(other.detail).toBe(missing.detail);
      await expectProblem(await assign(bCall, { agentId: agent2 }, { key: a.apiKey }), 404, 'not-found');
      const bView: CallBody = await json(await get(`/api/v1/calls/${bCall}`, { token: b.owner.accessToken }));
      expect(bView.agentId).toBe(bAgent);
      expect(bView.timeline).toHaveLength(1);

      const id = await makeCall(a, { at: at(80), agentId: agent1 });
      await expectProblem(await assign(id, { agentId: agent1 }, as(agentUser1)), 403, 'forbidden');
      await expectProblem(await assign(id, { agentId: agent2 }, { key: readKey }), 403, 'insufficient-scope');
      await expectProblem(await assign(id, { agentId: agent2 }, {}), 401, 'unauthorized');
      expect(((await json(await get(`/api/v1/calls/${id}`))) as CallBody).agentId).toBe(agent1);
    });
  });

  describe('POST /api/v1/screen-pop', () => {
    const pop = (body: unknown, auth: Auth = as(manager)) => call(t, 'POST', '/api/v1/screen-pop', auth, body);
    const eventAt = async (seq: number) =>
      (
        await sql<{ type: string; agent_id: string | null; data: Record<string, unknown> }>(
          'SELECT type, agent_id, data FROM company_events WHERE company_id = $1 AND seq = $2',
          [a.id, seq],
        )
      )[0];

    it('appends and publishes a call.ringing for the agent, shaped as a real one (202)', async () => {
      const published: EventEnvelope[] = [];
      const sub = t.app.get(EventsService).produced$.subscribe((e) => published.push(e));
      try {
        const res = await pop({ agentId: agent2, from: '+15551230001', to: '+15550001234', callerName: 'Pat Caller' });
        expect(res.status).toBe(202);
        const body = await json(res);
        expect(body).toEqual({ eventId: expect.stringMatching(/^[0-9a-f-]{36}$/), seq: expect.any(Number) });
        expect(body.seq).toBe(await latestSeq(a.id));
        const stored = await eventAt(body.seq);
        expect(stored).toMatchObject({ type: 'call.ringing', agent_id: agent2 });
        expect(stored!.data).toMatchObject({
          call: {
            id: null,
            provider: 'manual',
            status: 'ringing',
            direction: 'inbound',
            from: '+15551230001',
            to: '+15550001234',
            callerName: 'Pat Caller',
            agentId: agent2,
          },
          contact: null,
          manual: true,
        });
        const mine = published.filter((e) => e.id === body.eventId);
        expect(mine).toHaveLength(1);
        expect(mine[0]).toMatchObject({ type: 'call.ringing', companyId: a.id, seq: body.seq, agentId: agent2 });

        // The same keys as the call of a real call.ringing.
        const real = await makeCall(a, { at: at(90), agentId: agent1 });
        const [realEvent] = await eventsOfCall(a.id, real);
        expect(realEvent!.type).toBe('call.ringing');
        const keys = (o: unknown) => Object.keys(o as object).sort();
        expect(keys((stored!.data as { call: unknown }).call)).toEqual(keys(realEvent!.data.call));
        expect(keys(stored!.data).filter((k) => k !== 'manual')).toEqual(keys(realEvent!.data));
      } finally {
        sub.unsubscribe();
      }
    });

    it('shows the record of a call of the company when callId is given', async () => {
      const id = await makeCall(a, { at: at(95), from: '+15551230077', callerName: 'Known Caller', agentId: agent1 });
      const res = await pop({ agentId: agent3, from: '+15551230001', callId: id }, { key: writeKey });
      expect(res.status).toBe(202);
      const stored = await eventAt((await json(res)).seq);
      const { timeline, ...view } = (await json(await get(`/api/v1/calls/${id}`))) as CallBody;
      expect(timeline).toHaveLength(1);
      expect(stored).toEqual({
        type: 'call.ringing',
        agent_id: agent3,
        data: { call: view, contact: null, manual: true },
      });
    });

    it("refuses unknown, deleted and other company's agents or calls, bad fields (400), and appends nothing", async () => {
      const bCall = await makeCall(b, { at: at(96), agentId: bAgent });
      const seq = await latestSeq(a.id);
      const bSeq = await latestSeq(b.id);
      const cases: [Record<string, unknown>, string[]][] = [
        [{ agentId: UNKNOWN_ID, from: '+15551230001' }, ['agentId']],
        [{ agentId: bAgent, from: '+15551230001' }, ['agentId']],
        [{ agentId: goneAgent, from: '+15551230001' }, ['agentId']],
        [{ agentId: agent1, from: '+15551230001', callId: bCall }, ['callId']],
        [{ agentId: agent1, from: '+15551230001', callId: UNKNOWN_ID }, ['callId']],
        [{ agentId: bAgent, from: '+15551230001', callId: bCall }, ['agentId', 'callId']],
        [{ agentId: agent1, from: '555-123' }, ['from']],
        [{ agentId: agent1 }, ['from']],
        [{ from: '+15551230001' }, ['agentId']],
        [{ agentId: agent1, from: '+15551230001', to: 'x' }, ['to']],
        [{ agentId: agent1, from: '+15551230001', callerName: '' }, ['callerName']],
        [{ agentId: agent1, from: '+15551230001', callId: 'nope' }, ['callId']],
        [{ agentId: agent1, from: '+15551230001', callId: null }, ['callId']],
        [{ agentId: agent1, from: '+15551230001', to: null, callerName: null }, ['callerName', 'to']],
        [{ agentId: agent1, from: '+15551230001', contact: { name: 'x' } }, ['contact']],
      ];
      for (const [body, fields] of cases) {
        const res = await pop(body);
        const problem = await json(res);
        expect({ body, status: res.status, type: problem.type, fields: fieldsOf(problem) }).toEqual({
          body,
          status: 400,
          type: 'urn:switchboard:problem:validation-failed',
          fields,
        });
      }
      await expectProblem(await pop({ agentId: agent1, from: '+15551230001' }, as(agentUser1)), 403, 'forbidden');
      await expectProblem(
        await pop({ agentId: agent1, from: '+15551230001' }, { key: readKey }),
        403,
        'insufficient-scope',
      );
      await expectProblem(await pop({ agentId: agent1, from: '+15551230001' }, {}), 401, 'unauthorized');
      expect(await latestSeq(a.id)).toBe(seq);
      expect(await latestSeq(b.id)).toBe(bSeq);
    });
  });
});
