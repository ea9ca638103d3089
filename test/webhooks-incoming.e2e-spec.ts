import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { CallDetail, CallView } from '../src/calls/call-view.js';
import { WebhookInboxProcessorService } from '../src/webhooks/inbox/webhook-inbox-processor.service.js';
import { query } from './support/database.js';
import { type Auth, expectProblem, json } from './support/http.js';
import { connect, type LiveClient, sleep } from './support/sockets.js';
import { call, createCompany, createUser, operator, type TestCompany, type TestUser } from './support/tenant.js';
import { startTestApp, TEST_PUBLIC_BASE_URL, type TestApp } from './support/test-app.js';

/**
 * The generic incoming webhook (issue 12, "Inbound"): a company's own systems post canonical call
 * events signed with its secret by the Standard Webhooks scheme. Deliveries are signed here with
 * the `standardwebhooks` package (what a sender would use) and posted to the real application.
 * Valid → 200 once; forged → 403; stale → 403; replayed → 200 duplicate, not processed again;
 * malformed body (correctly signed) → 400 naming the field, nothing stored.
 */

/** Short, so that the end of a rotation's overlap is seen without waiting long. */
const OVERLAP_MS = 2_500;
const SECRET = /^whsec_[A-Za-z0-9+/]{43}=$/;

interface Signed {
  body: string;
  headers: Record<string, string>;
}

/** Signs `body` (an object: its JSON; a string: those bytes) as a Standard Webhooks sender does. */
function sign(
  secret: string,
  body: unknown,
  options: { id?: string; at?: Date; contentType?: string; signatures?: string[] } = {},
): Signed {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const id = options.id ?? `msg_${randomUUID()}`;
  const at = options.at ?? new Date();
  const signature = new Webhook(secret).sign(id, at, text);
  return {
    body: text,
    headers: {
      'content-type': options.contentType ?? 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': [...(options.signatures ?? []), signature].join(' '),
    },
  };
}

/** Polls until `check` returns a value (not undefined), or fails after `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('generic incoming webhook (Standard Webhooks)', () => {
  let t: TestApp;
  let a: TestCompany;
  let b: TestCompany;
  let secretA: string;
  let secretB: string;
  const open: LiveClient[] = [];

  const owner = (c: TestCompany): Auth => ({ token: c.owner.accessToken });
  const urlOf = (companyId: string) => `/api/v1/webhooks/incoming/${companyId}`;
  const post = (companyId: string, s: Signed) =>
    t.fetch(urlOf(companyId), { method: 'POST', headers: s.headers, body: s.body });
  const createSecret = async (c: TestCompany) => {
    const res = await call(t, 'POST', '/api/v1/webhooks/incoming-secret', owner(c));
    expect(res.status).toBe(201);
    return json(res);
  };
  const calls = async (c: TestCompany): Promise<CallView[]> => {
    const res = await call(t, 'GET', '/api/v1/calls?limit=200', owner(c));
    expect(res.status).toBe(200);
    return (await json(res)).data as CallView[];
  };
  const callOf = async (c: TestCompany, callId: string) => (await calls(c)).find((x) => x.providerCallId === callId);
  const detail = async (c: TestCompany, id: string): Promise<CallDetail> => {
    const res = await call(t, 'GET', `/api/v1/calls/${id}`, owner(c));
    expect(res.status).toBe(200);
    return (await json(res)) as CallDetail;
  };
  /** Every generic inbox row of the company (straight from the table: nothing hidden). */
  const inboxRows = (companyId: string) =>
    query<{ event_id: string; status: string; connection_id: string | null; provider: string; call_key: string }>(
      t.db.url,
      `SELECT event_id, status, connection_id, provider, call_key FROM webhook_inbox
       WHERE company_id = $1 AND provider = 'generic' ORDER BY seq`,
      [companyId],
    );
  const drain = () => t.app.get(WebhookInboxProcessorService).drain();
  const auditOf = async (c: TestCompany, action: string): Promise<Record<string, unknown>[]> => {
    const res = await call(t, 'GET', `/api/v1/audit-log?limit=200${action ? `&action=${action}` : ''}`, owner(c));
    expect(res.status).toBe(200);
    return (await json(res)).data;
  };
  const ringing = (callId: string, extra: Record<string, unknown> = {}) => ({
    callId,
    event: 'ringing',
    at: new Date(Date.now() - 30_000).toISOString(),
    direction: 'inbound',
    from: '+15551230001',
    to: '+15550001000',
    ...extra,
  });

  beforeAll(async () => {
    t = await startTestApp({ env: { WEBHOOK_SECRET_OVERLAP_MS: String(OVERLAP_MS) } });
    a = await createCompany(t, 'inc-a');
    b = await createCompany(t, 'inc-b');
    secretA = (await createSecret(a)).secret as string;
    secretB = (await createSecret(b)).secret as string;
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });
  afterAll(() => t.close());

  describe('the secret', () => {
    let c: TestCompany;
    let manager: TestUser;
    let agent: TestUser;

    beforeAll(async () => {
      c = await createCompany(t, 'inc-secret');
      manager = await createUser(t, c, 'manager');
      agent = await createUser(t, c, 'agent');
    });

    it('is absent at first (404), then created and shown once, with its metadata and URL', async () => {
      await expectProblem(await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(c)), 404, 'not-found');
      const created = await createSecret(c);
      expect(created).toMatchObject({
        secret: expect.stringMatching(SECRET),
        hint: `${(created.secret as string).slice(0, 10)}…${(created.secret as string).slice(-4)}`,
        url: `${TEST_PUBLIC_BASE_URL}/api/v1/webhooks/incoming/${c.id}`,
        rotatedAt: null,
        previousHint: null,
        previousValidUntil: null,
        note: expect.stringContaining('shown once'),
      });
      expect(Buffer.from((created.secret as string).slice('whsec_'.length), 'base64')).toHaveLength(32);

      const res = await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(c));
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).not.toContain((created.secret as string).slice(10, -4));
      expect(JSON.parse(text)).toEqual({
        hint: created.hint,
        url: created.url,
        createdAt: created.createdAt,
        rotatedAt: null,
        previousHint: null,
        previousValidUntil: null,
      });

      // Sealed at rest: the secret is nowhere in the row, nor in the audit log.
      const [row] = await query<Record<string, unknown>>(
        t.db.url,
        'SELECT * FROM webhook_incoming_secrets WHERE company_id = $1',
        [c.id],
      );
      expect(JSON.stringify(row)).not.toContain((created.secret as string).slice('whsec_'.length));
      const audit = await auditOf(c, 'webhook_incoming_secret.created');
      expect(audit).toEqual([
        expect.objectContaining({
          companyId: c.id,
          actorType: 'user',
          actorId: c.owner.id,
          targetType: 'webhook_incoming_secret',
          targetId: c.id,
          details: { hint: created.hint },
        }),
      ]);
    });

    it('is managed by admins only: managers, agents and API keys get 403, and nothing changes', async () => {
      const before = await json(await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(c)));
      for (const auth of [{ token: manager.accessToken }, { token: agent.accessToken }, { key: c.apiKey }]) {
        for (const method of ['GET', 'POST', 'DELETE']) {
          await expectProblem(await call(t, method, '/api/v1/webhooks/incoming-secret', auth), 403, 'forbidden');
        }
      }
      expect(await json(await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(c)))).toEqual(before);
    });

    it("is the company's own: company B reads and revokes only its own", async () => {
      const mine = await json(await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(c)));
      const other = await json(await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(b)));
      expect(other.url).toBe(`${TEST_PUBLIC_BASE_URL}/api/v1/webhooks/incoming/${b.id}`);
      expect(other.hint).not.toBe(mine.hint);
      const fresh = await createCompany(t, 'inc-none');
      await expectProblem(await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(fresh)), 404, 'not-found');
      await expectProblem(await call(t, 'DELETE', '/api/v1/webhooks/incoming-secret', owner(fresh)), 404, 'not-found');
      expect(await json(await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(c)))).toEqual(mine);
    });

    it('creates once under concurrent requests: one creation, the others rotations, the last secret verifies', async () => {
      const e = await createCompany(t, 'inc-race');
      const results = await Promise.all(
        Array.from({ length: 5 }, () => call(t, 'POST', '/api/v1/webhooks/incoming-secret', owner(e))),
      );
      expect(results.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
      const bodies = (await Promise.all(results.map((r) => json(r)))) as { secret: string; hint: string }[];
      expect(new Set(bodies.map((x) => x.secret)).size).toBe(5);
      expect(await auditOf(e, 'webhook_incoming_secret.created')).toHaveLength(1);
      expect(await auditOf(e, 'webhook_incoming_secret.rotated')).toHaveLength(4);
      const current = await json(await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(e)));
      const last = bodies.find((x) => x.hint === current.hint)!;
      expect((await post(e.id, sign(last.secret, ringing('race-1')))).status).toBe(200);
    });

    it('rotates: the old secret verifies during the overlap and not after it; revoked: nothing verifies', async () => {
      const d = await createCompany(t, 'inc-rotate');
      const first = await createSecret(d);
      const second = await createSecret(d);
      expect(second.secret).toMatch(SECRET);
      expect(second.secret).not.toBe(first.secret);
      expect(second).toMatchObject({ rotatedAt: expect.any(String), previousHint: first.hint });
      const until = Date.parse(second.previousValidUntil as string);
      expect(until - Date.parse(second.rotatedAt as string)).toBeGreaterThanOrEqual(OVERLAP_MS - 5);
      expect(until - Date.parse(second.rotatedAt as string)).toBeLessThanOrEqual(OVERLAP_MS + 1_000);

      // Both verify now: the old one (a sender not yet switched) and the new one.
      expect((await post(d.id, sign(first.secret, ringing('rot-1')))).status).toBe(200);
      expect((await post(d.id, sign(second.secret, ringing('rot-2')))).status).toBe(200);
      // Several signatures: one that verifies is enough.
      const both = sign(second.secret, ringing('rot-3'), {
        signatures: [sign(first.secret, '', { id: 'x' }).headers['webhook-signature']!],
      });
      expect((await post(d.id, both)).status).toBe(200);

      // After the overlap the old secret is refused, the new one still verifies.
      await sleep(Math.max(0, until - Date.now()) + 200);
      await expectProblem(await post(d.id, sign(first.secret, ringing('rot-4'))), 403, 'incoming-signature-invalid');
      expect((await post(d.id, sign(second.secret, ringing('rot-5')))).status).toBe(200);
      const meta = await json(await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(d)));
      expect(meta).toMatchObject({ hint: second.hint, previousHint: null, previousValidUntil: null });

      // Revoked: 204, then no secret at all (404 for senders and for the metadata).
      expect((await call(t, 'DELETE', '/api/v1/webhooks/incoming-secret', owner(d))).status).toBe(204);
      await expectProblem(await post(d.id, sign(second.secret, ringing('rot-6'))), 404, 'not-found');
      await expectProblem(await call(t, 'GET', '/api/v1/webhooks/incoming-secret', owner(d)), 404, 'not-found');
      await expectProblem(await call(t, 'DELETE', '/api/v1/webhooks/incoming-secret', owner(d)), 404, 'not-found');
      expect((await inboxRows(d.id)).map((r) => r.event_id)).toHaveLength(4);

      // Audited, without the secrets.
      const rotated = await auditOf(d, 'webhook_incoming_secret.rotated');
      expect(rotated).toEqual([
        expect.objectContaining({
          actorId: d.owner.id,
          details: { hint: second.hint, previousHint: first.hint, previousValidUntil: second.previousValidUntil },
        }),
      ]);
      const revoked = await auditOf(d, 'webhook_incoming_secret.revoked');
      expect(revoked).toEqual([expect.objectContaining({ actorId: d.owner.id, details: { hint: second.hint } })]);
      const all = JSON.stringify(await auditOf(d, ''));
      for (const s of [first.secret as string, second.secret as string]) expect(all).not.toContain(s.slice(10, -4));
    });
  });

  describe('receiving', () => {
    it('valid → 200 once: the call appears, with its socket event; replayed → 200 duplicate, not processed again', async () => {
      const live = await connect(t.url, { apiKey: a.apiKey });
      open.push(live);
      const event = ringing('valid-1', { from: '(555) 123-0001', to: '555.000.1000', callerName: 'Pat Caller' });
      const signed = sign(secretA, event);
      const res = await post(a.id, signed);
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual({ received: true, duplicate: false, events: 1 });

      const [envelope] = await live.waitFor(1);
      expect(envelope).toMatchObject({ type: 'call.ringing', companyId: a.id });
      const created = await until('the call', () => callOf(a, 'valid-1'));
      expect(created).toMatchObject({
        provider: 'generic',
        connectionId: null,
        providerCallId: 'valid-1',
        direction: 'inbound',
        status: 'ringing',
        from: '+15551230001',
        to: '+15550001000',
        callerName: 'Pat Caller',
      });
      expect((envelope!.data as { call: { id: string } }).call.id).toBe(created.id);
      const before = await detail(a, created.id);
      expect(before.timeline).toHaveLength(1);

      // The same delivery again (a sender's retry): acknowledged, nothing processed again (the
      // processor's count of rows stays; applying the same event again would change nothing
      // visible, so the count is what proves it).
      await drain();
      const processor = t.app.get(WebhookInboxProcessorService);
      const processedBefore = processor.processedCount;
      const again = await post(a.id, signed);
      expect(again.status).toBe(200);
      expect(await json(again)).toEqual({ received: true, duplicate: true, events: 1 });
      await drain();
      await sleep(200);
      expect(processor.processedCount).toBe(processedBefore);
      expect(live.events).toHaveLength(1);
      expect(await detail(a, created.id)).toEqual(before);
      const rows = (await inboxRows(a.id)).filter((r) => r.event_id === signed.headers['webhook-id']);
      expect(rows).toEqual([
        {
          event_id: signed.headers['webhook-id'],
          status: 'processed',
          connection_id: null,
          provider: 'generic',
          call_key: `generic:${a.id}:valid-1`,
        },
      ]);
      // The inbox listing shows it, without a connection.
      const listed = await json(await call(t, 'GET', '/api/v1/webhook-inbox?provider=generic&limit=200', owner(a)));
      expect(listed.data).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            eventId: signed.headers['webhook-id'],
            connectionId: null,
            provider: 'generic',
            kind: 'call',
            status: 'processed',
          }),
        ]),
      );
    });

    it('the same event under another webhook-id is applied once (its eventId)', async () => {
      const event = ringing('same-event', { eventId: 'ev-1' });
      expect((await post(a.id, sign(secretA, event))).status).toBe(200);
      const c = await until('the call', () => callOf(a, 'same-event'));
      const res = await post(a.id, sign(secretA, event));
      expect(await json(res)).toMatchObject({ duplicate: false });
      await drain();
      expect((await detail(a, c.id)).timeline).toHaveLength(1);
    });

    it('takes a list of events in one request: a whole call, and another call', async () => {
      const t0 = Date.now() - 60_000;
      const at = (s: number) => new Date(t0 + s * 1000).toISOString();
      const list = [
        {
          callId: 'list-1',
          event: 'ringing',
          at: at(0),
          direction: 'outbound',
          from: '+15550001000',
          to: '+15551239999',
        },
        { callId: 'list-1', event: 'answered', at: at(5) },
        { callId: 'list-1', event: 'ended', at: at(35), endReason: 'completed', hangupCause: 'NORMAL_CLEARING' },
        { callId: 'list-2', event: 'ringing', at: at(10), direction: 'inbound', from: '+15551230002' },
      ];
      const res = await post(a.id, sign(secretA, list));
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual({ received: true, duplicate: false, events: 4 });
      const first = await until('list-1 ended', async () => {
        const c = await callOf(a, 'list-1');
        return c?.status === 'completed' ? c : undefined;
      });
      expect(first).toMatchObject({
        direction: 'outbound',
        to: '+15551239999',
        ringSeconds: 5,
        talkSeconds: 30,
        hangupCause: 'NORMAL_CLEARING',
      });
      expect((await detail(a, first.id)).timeline.map((e) => e.kind)).toEqual(['ringing', 'answered', 'ended']);
      expect(await until('list-2', () => callOf(a, 'list-2'))).toMatchObject({ status: 'ringing' });
    });

    it('names the agent by extension or id', async () => {
      const created = await call(t, 'POST', '/api/v1/agents', owner(a), {
        displayName: 'Inc Agent',
        extension: '4711',
      });
      expect(created.status).toBe(201);
      const agent = await json(created);
      expect((await post(a.id, sign(secretA, ringing('agent-ext', { agent: { extension: '4711' } })))).status).toBe(
        200,
      );
      expect((await post(a.id, sign(secretA, ringing('agent-id', { agent: { id: agent.id } })))).status).toBe(200);
      expect(await until('agent-ext', () => callOf(a, 'agent-ext'))).toMatchObject({ agentId: agent.id });
      expect(await until('agent-id', () => callOf(a, 'agent-id'))).toMatchObject({ agentId: agent.id });
    });

    it('keeps companies apart: one callId in two companies is two calls, each in its own company', async () => {
      expect((await post(a.id, sign(secretA, ringing('shared-id', { callerName: 'For A' })))).status).toBe(200);
      expect((await post(b.id, sign(secretB, ringing('shared-id', { callerName: 'For B' })))).status).toBe(200);
      const inA = await until('A', () => callOf(a, 'shared-id'));
      const inB = await until('B', () => callOf(b, 'shared-id'));
      expect(inA.id).not.toBe(inB.id);
      expect(inA.callerName).toBe('For A');
      expect(inB.callerName).toBe('For B');
      // The same webhook-id in two companies: two rows (unique per company), both processed.
      const id = `msg_${randomUUID()}`;
      expect(await json(await post(a.id, sign(secretA, ringing('same-msg-a'), { id })))).toMatchObject({
        duplicate: false,
      });
      expect(await json(await post(b.id, sign(secretB, ringing('same-msg-b'), { id })))).toMatchObject({
        duplicate: false,
      });
    });
  });

  describe('refusing', () => {
    let storedA: number;
    beforeEach(async () => {
      await drain();
      storedA = (await inboxRows(a.id)).length;
    });
    const nothingStored = async () => {
      expect(await inboxRows(a.id)).toHaveLength(storedA);
    };

    it('forged → 403, nothing stored: wrong secret, altered body, other id or time, missing or junk headers', async () => {
      const forger = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
      const cases: Signed[] = [];
      cases.push(sign(forger, ringing('forged-1')));
      const altered = sign(secretA, ringing('forged-2'));
      cases.push({ ...altered, body: altered.body.replace('forged-2', 'forged-3') });
      const otherId = sign(secretA, ringing('forged-4'));
      cases.push({ ...otherId, headers: { ...otherId.headers, 'webhook-id': 'msg_other' } });
      const otherTime = sign(secretA, ringing('forged-5'));
      const later = String(Number(otherTime.headers['webhook-timestamp']) + 1);
      cases.push({ ...otherTime, headers: { ...otherTime.headers, 'webhook-timestamp': later } });
      for (const drop of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
        const s = sign(secretA, ringing('forged-6'));
        const headers = { ...s.headers };
        delete headers[drop];
        cases.push({ ...s, headers });
      }
      const junk = sign(secretA, ringing('forged-7'));
      cases.push({ ...junk, headers: { ...junk.headers, 'webhook-signature': 'v1,not-base64 v2,x ,' } });
      cases.push({ ...junk, headers: { ...junk.headers, 'webhook-timestamp': '17e8' } });
      const unsigned = sign(secretA, ringing('forged-8'));
      cases.push({ ...unsigned, headers: { ...unsigned.headers, 'webhook-signature': '' } });
      for (const c of cases) {
        const res = await post(a.id, c);
        const problem = await expectProblem(res, 403, 'incoming-signature-invalid');
        expect(problem.detail).not.toContain(secretA.slice(10));
      }
      await nothingStored();
      for (const id of ['forged-1', 'forged-2', 'forged-3', 'forged-4', 'forged-5', 'forged-6', 'forged-7']) {
        expect(await callOf(a, id)).toBeUndefined();
      }
    });

    it("company A's secret cannot post into company B, nor B's into A", async () => {
      const storedB = (await inboxRows(b.id)).length;
      await expectProblem(await post(b.id, sign(secretA, ringing('cross-1'))), 403, 'incoming-signature-invalid');
      await expectProblem(await post(a.id, sign(secretB, ringing('cross-2'))), 403, 'incoming-signature-invalid');
      await nothingStored();
      expect(await inboxRows(b.id)).toHaveLength(storedB);
    });

    it('stale → 403: correctly signed 6 minutes ago, or 6 minutes ahead; nothing stored', async () => {
      const old = sign(secretA, ringing('stale-1'), { at: new Date(Date.now() - 6 * 60_000) });
      const problem = await expectProblem(await post(a.id, old), 403, 'stale-webhook');
      expect(problem.detail).toMatch(/webhook-timestamp is 36\d s old/);
      const ahead = sign(secretA, ringing('stale-2'), { at: new Date(Date.now() + 6 * 60_000) });
      await expectProblem(await post(a.id, ahead), 403, 'stale-webhook');
      // Within the window (4 minutes old) it verifies.
      const recent = sign(secretA, ringing('stale-3'), { at: new Date(Date.now() - 4 * 60_000) });
      expect((await post(a.id, recent)).status).toBe(200);
      expect(await inboxRows(a.id)).toHaveLength(storedA + 1);
    });

    it('malformed body, correctly signed → 400 naming the field, nothing stored', async () => {
      const cases: [unknown, string[]][] = [
        [{ ...ringing('bad-1'), event: 'exploded' }, ['event']],
        [{ ...ringing('bad-2'), from: 'not a number' }, ['from']],
        [{ ...ringing('bad-3'), at: '2026-12-04T10:00:00' }, ['at']],
        [{ ...ringing('bad-4'), surprise: true }, ['surprise']],
        [{ ...ringing('bad-5'), agent: { extension: '1', name: 'x' } }, ['agent.name']],
        [{ ...ringing('bad-6'), callId: 'has space' }, ['callId']],
        [{ ...ringing('bad-7'), callId: 'x'.repeat(129) }, ['callId']],
        [{ ...ringing('bad-8'), direction: 'sideways', endReason: 'bored' }, ['direction', 'endReason']],
        [{ ...ringing('bad-9'), recordingUrl: 'javascript:alert(1)' }, ['recordingUrl']],
        [{ event: 'ringing' }, ['callId', 'at']],
        [[ringing('bad-10'), { ...ringing('bad-11'), to: 42 }], ['[1].to']],
        [[], ['(body)']],
        [Array.from({ length: 101 }, (_, i) => ringing(`bad-many-${i}`)), ['(body)']],
        // A JSON string (sign() sends a string as it is).
        [JSON.stringify('just a string'), ['(body)']],
        [
          [1, null],
          ['[0]', '[1]'],
        ],
      ];
      for (const [body, fields] of cases) {
        const problem = await expectProblem(await post(a.id, sign(secretA, body)), 400, 'validation-failed');
        expect((problem.errors as { field: string }[]).map((e) => e.field).sort()).toEqual([...fields].sort());
      }
      // The webhook-id must fit the inbox (200 characters).
      const long = sign(secretA, ringing('bad-12'), { id: 'm'.repeat(201) });
      const problem = await expectProblem(await post(a.id, long), 400, 'validation-failed');
      expect(problem.errors).toEqual([{ field: 'webhook-id', messages: [expect.stringContaining('200')] }]);
      await nothingStored();
    });

    it('hostile bodies → 4xx, never a 5xx: deep JSON, NUL, huge, not JSON, broken JSON', async () => {
      let deep = '"x"';
      for (let i = 0; i < 200; i++) deep = `{"a":${deep}}`;
      await expectProblem(await post(a.id, sign(secretA, deep)), 400, 'invalid-body');
      const nul = await expectProblem(
        await post(a.id, sign(secretA, ringing('nul-1', { callerName: 'a\u0000b' }))),
        400,
        'invalid-body',
      );
      expect(nul.detail).toContain('callerName');
      const huge = sign(secretA, ringing('huge-1', { callerName: 'x'.repeat(2 * 1024 * 1024) }));
      expect((await post(a.id, huge)).status).toBe(413);
      // Other types: those the application parses for providers (form, text, JWT) and unknown ones.
      for (const contentType of [
        'application/x-www-form-urlencoded',
        'text/plain',
        'application/jwt',
        'application/xml',
      ]) {
        const other = sign(secretA, 'callId=x&event=ringing', { contentType });
        const res = await post(a.id, other);
        expect(res.status).toBe(415);
        expect(res.headers.get('content-type')).toContain('application/problem+json');
      }
      const broken = sign(secretA, '{"callId": "x", ');
      expect((await post(a.id, broken)).status).toBe(400);
      await nothingStored();
    });

    it('limits each company to RATE_LIMIT_WEBHOOK_PER_MIN, forged requests included; other companies unaffected', async () => {
      const limited = await startTestApp({ env: { RATE_LIMIT_WEBHOOK_PER_MIN: '3' } });
      try {
        const x = await createCompany(limited, 'inc-rl-x');
        const y = await createCompany(limited, 'inc-rl-y');
        const secretOf = async (c: TestCompany) => {
          const res = await call(limited, 'POST', '/api/v1/webhooks/incoming-secret', owner(c));
          expect(res.status).toBe(201);
          return (await json(res)).secret as string;
        };
        const [sx, sy] = [await secretOf(x), await secretOf(y)];
        const send = (c: TestCompany, s: Signed) =>
          limited.fetch(urlOf(c.id), { method: 'POST', headers: s.headers, body: s.body });
        expect((await send(x, sign(sx, ringing('rl-1')))).status).toBe(200);
        await expectProblem(await send(x, sign(secretA, ringing('rl-2'))), 403, 'incoming-signature-invalid');
        const third = await send(x, sign(sx, ringing('rl-3')));
        expect(third.status).toBe(200);
        expect(third.headers.get('ratelimit-remaining')).toBe('0');
        const refused = await expectProblem(await send(x, sign(sx, ringing('rl-4'))), 429, 'too-many-requests');
        expect(refused.detail).toContain('incoming webhook');
        expect((await send(y, sign(sy, ringing('rl-5')))).status).toBe(200);
      } finally {
        await limited.close();
      }
    });

    it('unknown company or no secret → 404; suspended company → 403', async () => {
      const s = sign(secretA, ringing('where-1'));
      await expectProblem(await post(randomUUID(), s), 404, 'not-found');
      await expectProblem(await post('not-a-uuid', s), 404, 'not-found');
      const none = await createCompany(t, 'inc-nosecret');
      await expectProblem(await post(none.id, s), 404, 'not-found');

      const suspended = await createCompany(t, 'inc-suspended');
      const secret = (await createSecret(suspended)).secret as string;
      expect((await call(t, 'POST', `/internal/apps/${suspended.id}/suspend`, operator)).status).toBeLessThan(300);
      await expectProblem(await post(suspended.id, sign(secret, ringing('susp-1'))), 403, 'company-suspended');
      expect(await inboxRows(suspended.id)).toHaveLength(0);
      await nothingStored();
    });
  });
});
