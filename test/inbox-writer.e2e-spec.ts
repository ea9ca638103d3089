import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { InboxWriter } from '../src/webhooks/inbox/inbox-writer.js';
import { json } from './support/http.js';
import { call, createCompany, type TestCompany } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

describe('inbox writer (group commit of incoming webhooks)', () => {
  let t: TestApp;
  let co: TestCompany;
  let connectionId: string;
  const row = (eventId: string) => ({
    companyId: co.id,
    connectionId,
    provider: 'twilio',
    route: 'status',
    kind: 'call',
    eventId,
    payloadJson: JSON.stringify({ eventId }),
    callKey: `${connectionId}:${eventId}`,
    partition: 0,
    recordsJson: null,
  });

  beforeAll(async () => {
    t = await startTestApp();
    co = await createCompany(t, 'writer');
    const res = await call(
      t,
      'POST',
      '/api/v1/pbx-connections',
      { token: co.owner.accessToken },
      {
        provider: 'twilio',
        name: 'w',
        settings: { accountSid: 'AC0123456789abcdef0123456789abcdef' },
        secrets: { authToken: 'test-auth-token-0123456789' },
      },
    );
    connectionId = (await json(res)).id;
  });
  afterAll(() => t.close());

  it('writes rows arriving together in few statements, each answered once committed, duplicates as null', async () => {
    const ds = t.app.get(DataSource);
    let statements = 0;
    const counting = new Proxy(ds, {
      get: (target, prop, receiver) =>
        prop === 'query'
          ? (sql: string, params?: unknown[]) => {
              statements++;
              return target.query(sql, params);
            }
          : Reflect.get(target, prop, receiver),
    });
    const writer = new InboxWriter(counting);
    const distinct = Array.from({ length: 120 }, () => randomUUID());
    const repeated = randomUUID();
    const results = await Promise.all([
      ...distinct.map((id) => writer.write(row(id))),
      ...Array.from({ length: 5 }, () => writer.write(row(repeated))),
    ]);
    const ids = results.slice(0, 120);
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    // Two go at once; the rest wait and go together: a handful of statements for 125 rows.
    expect(statements).toBeLessThanOrEqual(6);
    expect(new Set(ids).size).toBe(120);
    // The same event five times at once: one row, four duplicates.
    expect(results.slice(120).filter((id) => id !== null)).toHaveLength(1);
    const [count] = (await t.app
      .get(DataSource)
      .query('SELECT count(*)::int AS n FROM webhook_inbox WHERE connection_id = $1', [connectionId])) as {
      n: number;
    }[];
    expect(count!.n).toBe(121);
    // Every id answered is a committed row with that event.
    const stored = (await t.app
      .get(DataSource)
      .query('SELECT id, event_id FROM webhook_inbox WHERE id = ANY($1::uuid[])', [ids])) as {
      id: string;
      event_id: string;
    }[];
    const byId = new Map(stored.map((r) => [r.id, r.event_id]));
    expect(distinct.map((_, i) => byId.get(ids[i]!))).toEqual(distinct);
    // Again later: all duplicates.
    expect(await writer.write(row(distinct[0]!))).toBeNull();
  });

  it('fails every caller of a statement that fails, and keeps working', async () => {
    const writer = new InboxWriter(t.app.get(DataSource));
    const bad = { ...row(randomUUID()), connectionId: randomUUID() }; // no such connection: foreign key
    await expect(writer.write(bad)).rejects.toThrow();
    expect(await writer.write(row(randomUUID()))).toEqual(expect.any(String));
  });
});
