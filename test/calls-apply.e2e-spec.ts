import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import type { CallEvent } from '../src/calls/call-event.js';
import { CALL_DIRECTIONS, END_REASONS, type CallDirection, type EndReason } from '../src/calls/call-state.js';
import { CallApplyService } from '../src/calls/call-apply.service.js';
import { CallQueriesService } from '../src/calls/call-queries.service.js';
import { toCallView } from '../src/calls/call-view.js';
import { query } from './support/database.js';
import { createCompany, type TestCompany } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

/** An event of a call without the call it belongs to (the test picks a fresh providerCallId). */
type Step = Omit<CallEvent, 'companyId' | 'provider' | 'providerCallId'>;

interface Scenario {
  direction: CallDirection;
  /** Which agent the second ring names, and how (our id or the PBX extension). */
  agent: 0 | 1;
  by: 'agentId' | 'extension';
  ringDelay: number;
  /** Seconds from the ring at the agent to the answer; undefined: never answered. */
  answer: number | undefined;
  talk: number;
  endReason: EndReason;
  /** Seconds after the first ring at which the recording URL is known; undefined: none. */
  recording: number | undefined;
}

/**
 * Service-level guarantees of CallApplyService.apply on the real database: events of one call give
 * the same record whatever their order and repetition, sequentially or concurrently.
 */
describe('calls: CallApplyService.apply on the database', () => {
  let t: TestApp;
  let a: TestCompany;
  const agents: string[] = [];
  const extensions = ['1001', '1002'];
  const svc = () => t.app.get(CallApplyService);
  const queries = () => t.app.get(CallQueriesService);
  const sql = <T extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []) =>
    query<T>(t.db.url, text, params);

  beforeAll(async () => {
    t = await startTestApp();
    a = await createCompany(t, 'apply');
    for (const extension of extensions) {
      const [row] = await sql<{ id: string }>(
        'INSERT INTO agents (company_id, display_name, extension) VALUES ($1, $2, $3) RETURNING id',
        [a.id, `Agent ${extension}`, extension],
      );
      agents.push(row!.id);
    }
  });
  afterAll(() => t.close());

  let clock = Date.parse('2026-05-01T08:00:00.000Z');
  /** A fresh start time per call, so that calls do not share times by accident. */
  const nextStart = () => new Date((clock += 3_600_000));

  function steps(s: Scenario, start: Date): Step[] {
    const sec = (n: number) => new Date(start.getTime() + n * 1000);
    const atAgent = s.ringDelay;
    const agent = s.by === 'agentId' ? { agentId: agents[s.agent]! } : { extension: extensions[s.agent]! };
    const list: Step[] = [
      {
        eventKey: 'ring',
        kind: 'ringing',
        at: sec(0),
        direction: s.direction,
        from: '+15551230001',
        to: '+15550001234',
        callerName: 'Pat Caller',
      },
      { eventKey: 'ring-agent', kind: 'ringing', at: sec(atAgent), agent },
    ];
    const endAt = s.answer === undefined ? atAgent + s.talk : atAgent + s.answer + s.talk;
    if (s.answer !== undefined) list.push({ eventKey: 'answer', kind: 'answered', at: sec(atAgent + s.answer) });
    list.push({ eventKey: 'end', kind: 'ended', at: sec(endAt), endReason: s.endReason, hangupCause: '16' });
    if (s.recording !== undefined) {
      list.push({
        eventKey: 'recording',
        kind: 'updated',
        at: sec(s.recording),
        recordingUrl: `https://recordings.example.com/${s.recording}.wav`,
      });
    }
    return list;
  }

  async function applyAll(providerCallId: string, list: Step[], concurrently = false): Promise<string> {
    const event = (step: Step): CallEvent => ({ ...step, companyId: a.id, provider: 'asterisk', providerCallId });
    if (concurrently) {
      const results = await Promise.all(list.map((step) => svc().apply(event(step))));
      return results[0]!.call.id;
    }
    let id = '';
    for (const step of list) id = (await svc().apply(event(step))).call.id;
    return id;
  }

  /** The call as the API shows it, without what differs between two calls of the same events. */
  async function comparable(callId: string) {
    const call = await queries().get(a.id, callId);
    const { id, createdAt, updatedAt, providerCallId, ...rest } = toCallView(call);
    expect([id, createdAt, updatedAt, providerCallId].every((v) => typeof v === 'string')).toBe(true);
    return { ...rest, state: call.state };
  }

  const timeline = (callId: string) =>
    sql<{ event_key: string; kind: string; at: Date; data: Record<string, unknown> }>(
      'SELECT event_key, kind, at, data FROM call_events WHERE call_id = $1 ORDER BY event_key',
      [callId],
    );
  const companyEvents = (callId: string) =>
    sql<{ type: string; agent_id: string | null }>(
      `SELECT type, agent_id FROM company_events WHERE company_id = $1 AND data->'call'->>'id' = $2 ORDER BY seq`,
      [a.id, callId],
    );
  const callsWith = async (providerCallId: string) =>
    Number(
      (
        await sql<{ n: string }>('SELECT count(*) AS n FROM calls WHERE company_id = $1 AND provider_call_id = $2', [
          a.id,
          providerCallId,
        ])
      )[0]!.n,
    );

  const answered: Scenario = {
    direction: 'inbound',
    agent: 0,
    by: 'extension',
    ringDelay: 2,
    answer: 5,
    talk: 120,
    endReason: 'completed',
    recording: 130,
  };

  it('gives the same final row when ended arrives before answered', async () => {
    const start = nextStart();
    const inOrder = steps(answered, start);
    const natural = await applyAll(randomUUID(), inOrder);
    const endFirst = [inOrder[0]!, inOrder[1]!, inOrder[3]!, inOrder[2]!, inOrder[4]!];
    expect(endFirst.map((s) => s.kind)).toEqual(['ringing', 'ringing', 'ended', 'answered', 'updated']);
    const late = await applyAll(randomUUID(), endFirst);

    const expected = await comparable(natural);
    expect(expected).toMatchObject({
      status: 'completed',
      agentId: agents[0],
      direction: 'inbound',
      from: '+15551230001',
      callerName: 'Pat Caller',
      startedAt: start.toISOString(),
      ringSeconds: 7,
      talkSeconds: 120,
      durationSeconds: 127,
      endReason: 'completed',
      hangupCause: '16',
      recordingUrl: 'https://recordings.example.com/130.wav',
    });
    expect(await comparable(late)).toEqual(expected);
    // Between the two, the late call was "missed" for a moment: the events say so, once each.
    expect((await companyEvents(natural)).map((e) => e.type)).toEqual([
      'call.ringing',
      'call.ringing',
      'call.answered',
      'call.ended',
      'call.updated',
    ]);
    const lateTypes = (await companyEvents(late)).map((e) => e.type);
    expect(lateTypes.filter((type) => type === 'call.ended')).toHaveLength(1);
    expect(lateTypes).not.toContain('call.answered');
    const strip = (rows: Awaited<ReturnType<typeof timeline>>) => rows.map((r) => ({ ...r, at: r.at.toISOString() }));
    expect(strip(await timeline(late))).toEqual(strip(await timeline(natural)));
  });

  it('changes nothing when the same event is applied twice: one timeline row, no second company event', async () => {
    const providerCallId = randomUUID();
    const list = steps(answered, nextStart());
    const id = await applyAll(providerCallId, list);
    const before = await queries().get(a.id, id);
    const eventsBefore = await companyEvents(id);
    const seqBefore = await sql('SELECT last_seq FROM event_counters WHERE company_id = $1', [a.id]);

    for (const step of list) {
      const again = await svc().apply({ ...step, companyId: a.id, provider: 'asterisk', providerCallId });
      expect({ key: step.eventKey, applied: again.applied, events: again.events }).toEqual({
        key: step.eventKey,
        applied: false,
        events: [],
      });
    }
    // The same key with different content is still the same event: ignored.
    const changed = await svc().apply({
      ...list[3]!,
      endReason: 'busy',
      at: new Date(list[3]!.at.getTime() + 60_000),
      companyId: a.id,
      provider: 'asterisk',
      providerCallId,
    });
    expect(changed.applied).toBe(false);

    const after = await queries().get(a.id, id);
    expect(after).toEqual(before);
    expect(after.updatedAt.getTime()).toBe(before.updatedAt.getTime());
    expect((await timeline(id)).map((r) => r.event_key)).toEqual(['answer', 'end', 'recording', 'ring', 'ring-agent']);
    expect(await companyEvents(id)).toEqual(eventsBefore);
    expect(await sql('SELECT last_seq FROM event_counters WHERE company_id = $1', [a.id])).toEqual(seqBefore);
    expect(await callsWith(providerCallId)).toBe(1);
  });

  const scenario: fc.Arbitrary<Scenario> = fc.record({
    direction: fc.constantFrom(...CALL_DIRECTIONS),
    agent: fc.constantFrom(0 as const, 1 as const),
    by: fc.constantFrom('agentId' as const, 'extension' as const),
    ringDelay: fc.integer({ min: 0, max: 20 }),
    answer: fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }),
    talk: fc.integer({ min: 0, max: 600 }),
    endReason: fc.constantFrom(...END_REASONS),
    recording: fc.option(fc.integer({ min: 0, max: 900 }), { nil: undefined }),
  });

  /** A scenario, and the order to apply its steps in: every step at least once, some repeated, shuffled. */
  const perturbed = scenario.chain((s) => {
    const n = steps(s, new Date(0)).length;
    const all = Array.from({ length: n }, (_, i) => i);
    return fc.tuple(
      fc.constant(s),
      fc
        .array(fc.integer({ min: 0, max: n - 1 }), { maxLength: 8 })
        .chain((repeats) =>
          fc.shuffledSubarray([...all, ...repeats], { minLength: n + repeats.length, maxLength: n + repeats.length }),
        ),
    );
  });

  it('gives the same row under any duplication and reordering of the events (property, 25 runs)', async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(perturbed, async ([s, order]) => {
        runs++;
        const list = steps(s, nextStart());
        const once = await applyAll(randomUUID(), list);
        const providerCallId = randomUUID();
        const shuffled = await applyAll(
          providerCallId,
          order.map((i) => list[i]!),
        );
        expect(await comparable(shuffled)).toEqual(await comparable(once));
        expect((await timeline(shuffled)).map((r) => r.event_key)).toEqual(list.map((e) => e.eventKey).sort());
        expect(await callsWith(providerCallId)).toBe(1);
        const types = (await companyEvents(shuffled)).map((e) => e.type);
        expect(types.filter((type) => type === 'call.ended')).toHaveLength(1);
        expect(types.filter((type) => type === 'call.answered').length).toBeLessThanOrEqual(1);
      }),
      { numRuns: 25 },
    );
    expect(runs).toBe(25);
  }, 120_000);

  it('gives the same row, and one timeline row per event key, when the events arrive concurrently', async () => {
    const scenarios: Scenario[] = [
      answered,
      { ...answered, answer: undefined, endReason: 'busy', recording: undefined, by: 'agentId', agent: 1 },
      { ...answered, direction: 'outbound', ringDelay: 0, answer: 0, talk: 0, endReason: 'voicemail', recording: 0 },
    ];
    for (const s of scenarios) {
      for (let round = 0; round < 3; round++) {
        const list = steps(s, nextStart());
        const once = await applyAll(randomUUID(), list);
        const providerCallId = randomUUID();
        // Every event three times, all at once: the first inserts race for the call row itself.
        const id = await applyAll(providerCallId, [...list, ...list, ...list], true);
        expect(await comparable(id)).toEqual(await comparable(once));
        expect(await callsWith(providerCallId)).toBe(1);
        const counts = await sql<{ event_key: string; n: string }>(
          'SELECT event_key, count(*) AS n FROM call_events WHERE call_id = $1 GROUP BY event_key ORDER BY event_key',
          [id],
        );
        expect(counts).toEqual(
          list.map((e) => ({ event_key: e.eventKey, n: '1' })).sort((x, y) => (x.event_key < y.event_key ? -1 : 1)),
        );
        const types = (await companyEvents(id)).map((e) => e.type);
        expect(types.filter((type) => type === 'call.ended')).toHaveLength(1);
      }
    }
  }, 120_000);
});
