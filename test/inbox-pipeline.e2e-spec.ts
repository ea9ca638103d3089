import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { CallApplyService } from '../src/calls/call-apply.service.js';
import type { CallEvent } from '../src/calls/call-event.js';
import type { EventEnvelope } from '../src/events/event-envelope.js';
import { EventsService } from '../src/events/events.service.js';
import { inboxPartition } from '../src/webhooks/inbox/inbox-records.js';
import { WebhookInboxProcessorService } from '../src/webhooks/inbox/webhook-inbox-processor.service.js';
import {
  newCallSid,
  startTwilioFake,
  twilioDelivery,
  twilioStatusCallback,
  type TwilioDelivery,
  type TwilioFake,
} from './fakes/twilio-fake.js';
import { query } from './support/database.js';
import { json } from './support/http.js';
import { sleep } from './support/sockets.js';
import { call, createAgent, createCompany, type TestCompany, unique } from './support/tenant.js';
import { startTestApp, TEST_PUBLIC_BASE_URL, type TestApp } from './support/test-app.js';

const CUSTOMER = '+15551230001';
const COMPANY_NUMBER = '+15550001000';

/**
 * The webhook pipeline (issue 11 §5, §6): the set-based batch apply, the inbox claimed in the
 * transaction that applies it (a crash rolls back and the rows are claimable at once), and one
 * call's rows applied in order across workers and instances. Real PostgreSQL, real Twilio-signed
 * deliveries (the fake's signer).
 */
describe('inbox pipeline: batch apply, claim in the applying transaction, per-call order', () => {
  let fake: TwilioFake;
  let t: TestApp;
  let co: TestCompany;
  let conn: string;
  let ext: string;
  let agentId: string;
  const sql = <T extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []) =>
    query<T>(t.db.url, text, params);

  /** Twilio status callbacks of the company's connection, signed, at `at`. */
  const callback = (callSid: string, status: string, at = new Date()) =>
    twilioDelivery(
      fake.authToken,
      `${TEST_PUBLIC_BASE_URL}/webhooks/twilio/${conn}/status`,
      twilioStatusCallback({
        accountSid: fake.accountSid,
        callSid,
        status,
        // Placed by the company's own app: in-progress is the answer (twilio.mapper.ts).
        direction: 'outbound-api',
        from: COMPANY_NUMBER,
        to: CUSTOMER,
        at,
        sequenceNumber: { ringing: 0, 'in-progress': 1, completed: 2 }[status] ?? 0,
        ...(status === 'completed' ? { callDuration: 30 } : {}),
      }),
    );
  const post = async (app: TestApp, d: TwilioDelivery) => {
    const u = new URL(d.url);
    const res = await fetch(`${app.url}${u.pathname}${u.search}`, { method: 'POST', headers: d.headers, body: d.body });
    expect(res.status).toBe(200);
  };
  const inboxOf = (callSids: string[]) =>
    sql<{ id: string; status: string; attempts: number; call_key: string }>(
      `SELECT id, status, attempts, call_key FROM webhook_inbox WHERE connection_id = $1 AND call_key = ANY($2::varchar[])`,
      [conn, callSids.map((sid) => `${conn}:${sid}`)],
    );
  /** The company events of each call, in sequence order, as types. */
  const eventTypesByCall = async (callSids: string[]) => {
    const rows = await sql<{ sid: string; type: string; status: string }>(
      `SELECT c.provider_call_id AS sid, e.type, e.data->'call'->>'status' AS status
       FROM company_events e JOIN calls c ON c.company_id = e.company_id AND c.id::text = e.data->'call'->>'id'
       WHERE e.company_id = $1 AND c.provider_call_id = ANY($2::varchar[])
       ORDER BY e.seq`,
      [co.id, callSids],
    );
    const out = new Map<string, string[]>(callSids.map((s) => [s, []]));
    for (const r of rows) out.get(r.sid)!.push(`${r.type}:${r.status}`);
    return out;
  };
  const lifecycle = ['call.ringing:ringing', 'call.answered:in_progress', 'call.ended:completed'];

  beforeAll(async () => {
    fake = await startTwilioFake();
    t = await startTestApp({
      env: {
        TWILIO_BASE_URL: fake.baseUrl,
        RATE_LIMIT_WEBHOOK_PER_MIN: '1000000',
        // Rows accumulate until a test drains or resumes: it stands for a crash before processing.
        WEBHOOK_PROCESSING_ENABLED: 'false',
        WEBHOOK_PROCESS_WORKERS: '3',
        WEBHOOK_PROCESS_BATCH: '7',
      },
    });
    co = await createCompany(t, 'pipeline');
    ext = String(4000 + Math.floor(Math.random() * 5000));
    agentId = (await createAgent(t, co, { extension: ext })).id;
    const res = await call(
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
    expect(res.status).toBe(201);
    conn = (await json(res)).id as string;
  });
  afterEach(() => t.app.get(WebhookInboxProcessorService).pause());
  afterAll(async () => {
    await t.close();
    await fake.close();
  });

  describe('CallApplyService.applyBatch', () => {
    const event = (providerCallId: string, kind: CallEvent['kind'], second: number, extra: Partial<CallEvent> = {}) =>
      ({
        companyId: co.id,
        provider: 'asterisk',
        providerCallId,
        eventKey: `${providerCallId}:${kind}`,
        kind,
        at: new Date(Date.UTC(2026, 2, 2, 9, 0, second)),
        direction: 'inbound',
        from: CUSTOMER,
        to: COMPANY_NUMBER,
        ...extra,
      }) as CallEvent;

    it('applies events of many calls in one batch, each call in order; the same batch again changes nothing', async () => {
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
      const batch: CallEvent[] = [
        event(a, 'ringing', 0, { agent: { extension: ext } }),
        event(b, 'ringing', 1),
        event(a, 'answered', 5),
        event(c, 'ringing', 2),
        event(b, 'ended', 9, { endReason: 'busy' }),
        event(a, 'ended', 65),
        event(c, 'answered', 4),
      ];
      const published: EventEnvelope[] = [];
      const sub = t.app.get(EventsService).produced$.subscribe((e) => {
        if (e.companyId === co.id) published.push(e);
      });
      try {
        const results = await t.app.get(CallApplyService).applyBatch(batch);
        expect(results.map((r) => r.applied)).toEqual(batch.map(() => true));
        // One envelope per change, per call in the order of the batch.
        const typesOf = (sid: string) =>
          results
            .filter((_, i) => batch[i]!.providerCallId === sid)
            .flatMap((r) => r.events.map((e) => `${e.type}:${(e.data as { call: { status: string } }).call.status}`));
        expect(typesOf(a)).toEqual(['call.ringing:ringing', 'call.answered:in_progress', 'call.ended:completed']);
        expect(typesOf(b)).toEqual(['call.ringing:ringing', 'call.ended:busy']);
        expect(typesOf(c)).toEqual(['call.ringing:ringing', 'call.answered:in_progress']);
        // Published after the commit, in sequence order, gap-free, in the order of the batch.
        const seqs = published.map((e) => e.seq);
        expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
        expect(published.map((e) => e.type)).toEqual([
          'call.ringing',
          'call.ringing',
          'call.answered',
          'call.ringing',
          'call.ended',
          'call.ended',
          'call.answered',
        ]);
        expect(published[0]!.agentId).toBe(agentId);
        expect(results[5]!.call).toMatchObject({ status: 'completed', agentId, ringSeconds: 5, talkSeconds: 60 });
        const [row] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM call_events WHERE call_id = $1`, [
          results[0]!.call.id,
        ]);
        expect(row!.n).toBe(3);

        // The same batch again: nothing applied, nothing published, nothing written.
        const before = await sql(
          `SELECT id, status, updated_at, state FROM calls WHERE company_id = $1 AND provider_call_id = ANY($2) ORDER BY id`,
          [co.id, [a, b, c]],
        );
        const [{ seq: seqBefore }] = (await sql<{ seq: string }>(
          'SELECT last_seq AS seq FROM event_counters WHERE company_id = $1',
          [co.id],
        )) as [{ seq: string }];
        published.length = 0;
        const again = await t.app.get(CallApplyService).applyBatch(batch);
        expect(again.map((r) => [r.applied, r.events.length])).toEqual(batch.map(() => [false, 0]));
        expect(published).toEqual([]);
        expect(
          await sql(
            `SELECT id, status, updated_at, state FROM calls WHERE company_id = $1 AND provider_call_id = ANY($2) ORDER BY id`,
            [co.id, [a, b, c]],
          ),
        ).toEqual(before);
        const [{ seq: seqAfter }] = (await sql<{ seq: string }>(
          'SELECT last_seq AS seq FROM event_counters WHERE company_id = $1',
          [co.id],
        )) as [{ seq: string }];
        expect(seqAfter).toBe(seqBefore);
      } finally {
        sub.unsubscribe();
      }
    });

    it('two events of one call in one batch, and a repetition inside the batch, count once', async () => {
      const id = randomUUID();
      const ringing = event(id, 'ringing', 0);
      const results = await t.app
        .get(CallApplyService)
        .applyBatch([ringing, event(id, 'answered', 3), { ...ringing, at: new Date(ringing.at.getTime() + 1000) }]);
      expect(results.map((r) => [r.applied, r.events.map((e) => e.type)])).toEqual([
        [true, ['call.ringing']],
        [true, ['call.answered']],
        [false, []],
      ]);
      expect(results[2]!.call).toMatchObject({ status: 'in_progress', ringSeconds: 3 });
    });
  });

  it('a worker killed mid-batch rolls back; its rows are claimable at once and applied exactly once', async () => {
    const sids = [newCallSid(), newCallSid(), newCallSid()];
    for (const status of ['ringing', 'in-progress', 'completed']) {
      for (const sid of sids) await post(t, callback(sid, status));
    }
    expect((await inboxOf(sids)).map((r) => r.status)).toEqual(sids.flatMap(() => ['pending', 'pending', 'pending']));

    // Hold the company's event counter: the batch does all its writes, then waits on it (last).
    const holder = new pg.Client({ connectionString: t.db.url });
    await holder.connect();
    const killer = new pg.Client({ connectionString: t.db.url });
    await killer.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(
        `INSERT INTO event_counters (company_id, last_seq) VALUES ($1, 0)
         ON CONFLICT (company_id) DO UPDATE SET last_seq = event_counters.last_seq`,
        [co.id],
      );
      const draining = t.app.get(WebhookInboxProcessorService).drain();
      let pid: number | undefined;
      for (let i = 0; i < 200 && pid === undefined; i++) {
        const rows = await killer.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%event_counters%'
             AND pid <> $1`,
          [(holder as unknown as { processID: number }).processID],
        );
        pid = rows.rows[0]?.pid;
        if (pid === undefined) await sleep(25);
      }
      expect(pid).toBeDefined();
      // The worker's connection dies mid-transaction (as a crashed process's would).
      await killer.query('SELECT pg_terminate_backend($1)', [pid]);
      await sleep(100);
      // Rolled back: no timeline row, every row still pending, and no lease on any of them.
      const [written] = (
        await killer.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM call_events e JOIN calls c ON c.id = e.call_id
         WHERE c.company_id = $1 AND c.provider_call_id = ANY($2)`,
          [co.id, sids],
        )
      ).rows;
      expect(written!.n).toBe(0);
      expect((await inboxOf(sids)).every((r) => r.status === 'pending')).toBe(true);
      const released = Date.now();
      await holder.query('COMMIT');
      await draining;
      // Claimable at once: applied right after the lock went, not after a lease or a sweep.
      expect(Date.now() - released).toBeLessThan(5_000);
    } finally {
      await holder.end();
      await killer.end();
    }
    const rows = await inboxOf(sids);
    expect(rows.map((r) => r.status)).toEqual(rows.map(() => 'processed'));
    const events = await eventTypesByCall(sids);
    for (const sid of sids) expect(events.get(sid)).toEqual(lifecycle);
    const [timeline] = await sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM call_events e JOIN calls c ON c.id = e.call_id
       WHERE c.company_id = $1 AND c.provider_call_id = ANY($2)`,
      [co.id, sids],
    );
    expect(timeline!.n).toBe(9);
  });

  it("a call's partition held by another worker is left alone: its rows wait, then apply in order", async () => {
    const x = newCallSid();
    let y = newCallSid();
    // Two calls in two partitions (the partition is a hash of the call key).
    while (inboxPartition(`${conn}:${y}`) === inboxPartition(`${conn}:${x}`)) y = newCallSid();
    for (const status of ['ringing', 'in-progress', 'completed']) await post(t, callback(x, status));
    await post(t, callback(y, 'ringing'));
    const rows = await sql<{ partition: number; call_key: string }>(
      'SELECT DISTINCT partition, call_key FROM webhook_inbox WHERE call_key = ANY($1::varchar[])',
      [[`${conn}:${x}`, `${conn}:${y}`]],
    );
    const partitionOf = (sid: string) => rows.find((r) => r.call_key === `${conn}:${sid}`)!.partition;
    // One partition per call, set at ingest (x's three rows share it).
    expect(rows).toHaveLength(2);
    expect(partitionOf(x)).toBe(inboxPartition(`${conn}:${x}`));

    // Another worker (this client) holds x's partition, as a batch in flight would.
    const other = new pg.Client({ connectionString: t.db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT pg_advisory_xact_lock(7311001, $1)', [partitionOf(x)]);
      expect(await t.app.get(WebhookInboxProcessorService).drain()).toBe(1);
      expect((await inboxOf([x])).map((r) => r.status)).toEqual(['pending', 'pending', 'pending']);
      expect((await inboxOf([y])).map((r) => r.status)).toEqual(['processed']);
      await other.query('COMMIT');
    } finally {
      await other.end();
    }
    expect(await t.app.get(WebhookInboxProcessorService).drain()).toBe(3);
    expect((await eventTypesByCall([x])).get(x)).toEqual(lifecycle);
  });

  it('two instances with three workers each never apply one call out of order', async () => {
    const t2 = await startTestApp({
      databaseUrl: t.db.url,
      env: {
        TWILIO_BASE_URL: fake.baseUrl,
        RATE_LIMIT_WEBHOOK_PER_MIN: '1000000',
        WEBHOOK_PROCESSING_ENABLED: 'false',
        WEBHOOK_PROCESS_WORKERS: '3',
        WEBHOOK_PROCESS_BATCH: '7',
        WEBHOOK_BACKLOG_THRESHOLD: '100',
      },
    });
    try {
      const sids = Array.from({ length: 40 }, () => newCallSid());
      // Each call's three callbacks one after the other: rows of one call are neighbours, so
      // small batches split them across workers of both instances.
      const base = Date.now() - 60_000;
      for (const [n, sid] of sids.entries()) {
        await post(n % 2 ? t : t2, callback(sid, 'ringing', new Date(base + n * 10)));
        await post(n % 2 ? t2 : t, callback(sid, 'in-progress', new Date(base + n * 10 + 3_000)));
        await post(n % 2 ? t : t2, callback(sid, 'completed', new Date(base + n * 10 + 40_000)));
      }
      // Past the threshold: ready still answers 200, and says the backlog is degraded.
      const ready = await fetch(`${t2.url}/health/ready`);
      expect(ready.status).toBe(200);
      const health = (await ready.json()) as { details: Record<string, Record<string, unknown>> };
      expect(health.details['webhookBacklog']).toMatchObject({ status: 'up', threshold: 100, degraded: true });
      expect(health.details['webhookBacklog']!['pending']).toBeGreaterThanOrEqual(120);

      const before = t.app.get(WebhookInboxProcessorService).processedCount;
      // The second instance starts first (so that both surely take part), the first joins it.
      t2.app.get(WebhookInboxProcessorService).resume();
      for (let i = 0; i < 100 && t2.app.get(WebhookInboxProcessorService).processedCount === 0; i++) await sleep(5);
      t.app.get(WebhookInboxProcessorService).resume();
      for (let i = 0; i < 200; i++) {
        const rows = await inboxOf(sids);
        if (rows.every((r) => r.status === 'processed')) break;
        await sleep(50);
      }
      const rows = await inboxOf(sids);
      expect(rows).toHaveLength(120);
      expect(rows.filter((r) => r.status !== 'processed')).toEqual([]);
      // Each row once, between the two instances.
      expect(t2.app.get(WebhookInboxProcessorService).processedCount).toBeGreaterThan(0);
      expect(
        t.app.get(WebhookInboxProcessorService).processedCount -
          before +
          t2.app.get(WebhookInboxProcessorService).processedCount,
      ).toBe(120);
      // In order: every call announced ringing, answered, ended, once each, in sequence order.
      const events = await eventTypesByCall(sids);
      for (const sid of sids) expect({ sid, events: events.get(sid) }).toEqual({ sid, events: lifecycle });
    } finally {
      await t2.app.get(WebhookInboxProcessorService).pause();
      await t2.close();
    }
  });

  it('reports the backlog: /health/ready (200, degraded past the threshold) and /metrics', async () => {
    const sids = [newCallSid(), newCallSid()];
    for (const sid of sids) await post(t, callback(sid, 'ringing'));
    const ready = await fetch(`${t.url}/health/ready`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { details: Record<string, Record<string, unknown>> };
    expect(body.details['webhookBacklog']).toMatchObject({
      status: 'up',
      pending: expect.any(Number),
      oldestAgeSeconds: expect.any(Number),
      threshold: 10_000,
      degraded: false,
    });
    expect(body.details['webhookBacklog']!['pending']).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    expect(value('webhook_inbox_pending')).toBeGreaterThanOrEqual(2);
    expect(value('webhook_inbox_oldest_pending_age_seconds')).toBeGreaterThanOrEqual(0);
    const processedBefore = value('webhook_inbox_processed_total');
    expect(processedBefore).toBeGreaterThan(0);

    await t.app.get(WebhookInboxProcessorService).drain();
    const after = await (await fetch(`${t.url}/metrics`)).text();
    expect(Number(/^webhook_inbox_pending (\S+)$/m.exec(after)?.[1])).toBe(0);
    expect(Number(/^webhook_inbox_processed_total (\S+)$/m.exec(after)?.[1])).toBeGreaterThanOrEqual(
      processedBefore + 2,
    );
  });
});
