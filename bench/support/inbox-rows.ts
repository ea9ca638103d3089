import { DataSource, type Repository } from 'typeorm';
import type { AgentsService } from '../../src/agents/agents.service.js';
import { CallApplyService } from '../../src/calls/call-apply.service.js';
import type { CallEvent } from '../../src/calls/call-event.js';
import type { CompanyEventEntity } from '../../src/events/company-event.entity.js';
import { EventsService } from '../../src/events/events.service.js';
import {
  inboxCallKey,
  inboxPartition,
  recordsFromJson,
  recordsToJson,
} from '../../src/webhooks/inbox/inbox-records.js';
import { parseTwilioPayload, twilioEventId, type TwilioWebhookPayload } from '../../src/pbx/twilio/twilio.mapper.js';
import { createCompany, type RunningApp, sleep } from './harness.js';

/**
 * What the pipeline and crash-drain benchmarks share: Twilio status callbacks of app-placed calls
 * (ringing → in-progress → completed), the inbox rows the application's writer makes of them
 * (same payload, same mapper, same call key, partition and records), written 200 a statement,
 * and a bare processing loop (no Nest, no HTTP, no sockets) applying them set-based.
 */

export const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
export const AUTH_TOKEN = 'bench-auth-token-0123456789abcdef';
export const PUBLIC_BASE_URL = 'https://switchboard.bench.test';
const COMPANY_NUMBER = '+14155550100';
export type CallStatus = 'ringing' | 'in-progress' | 'completed';
export const STATUSES: readonly CallStatus[] = ['ringing', 'in-progress', 'completed'];

const twilioTime = (d: Date) => d.toUTCString().replace('GMT', '+0000');

/** Call `n`'s delivery of `status` (an app-placed call, `Direction=outbound-api`). */
export function callbackFields(salt: string, n: number, status: CallStatus): Record<string, string> {
  const sid = `CA${salt}${n.toString(16).padStart(24, '0')}`;
  const customer = `+1415555${String(n % 10_000).padStart(4, '0')}`;
  const p: Record<string, string> = {
    AccountSid: ACCOUNT_SID,
    ApiVersion: '2010-04-01',
    CallSid: sid,
    CallStatus: status,
    CallbackSource: 'call-progress-events',
    Called: customer,
    Caller: COMPANY_NUMBER,
    Direction: 'outbound-api',
    From: COMPANY_NUMBER,
    To: customer,
    Timestamp: twilioTime(new Date()),
    SequenceNumber: String(STATUSES.indexOf(status)),
  };
  if (status === 'completed') p['CallDuration'] = '2';
  return p;
}

/** The inbox row the writer makes of a delivery (its INSERT's 10 values, in its column order). */
export function inboxRow(companyId: string, connectionId: string, fields: Record<string, string>): unknown[] {
  const payload: TwilioWebhookPayload = {
    route: 'status',
    query: {},
    params: fields,
    receivedAt: new Date().toISOString(),
  };
  const { eventId, kind } = twilioEventId(payload);
  const records = parseTwilioPayload(JSON.parse(JSON.stringify(payload)));
  const key = inboxCallKey(connectionId, eventId, records);
  return [
    companyId,
    connectionId,
    'twilio',
    'status',
    kind,
    eventId,
    JSON.stringify(payload),
    key,
    inboxPartition(key),
    recordsToJson(records),
  ];
}

/** Writes rows as the writer does: one multi-row `INSERT … ON CONFLICT DO NOTHING` per 200. */
export async function insertRows(ds: DataSource, rows: unknown[][]): Promise<void> {
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < rows.length; i += 200) writes.push(insertChunk(ds, rows.slice(i, i + 200)));
  await Promise.all(writes);
}

function insertChunk(ds: DataSource, chunk: unknown[][]): Promise<unknown> {
  const values = chunk.map(
    (_, j) =>
      `(${Array.from({ length: 10 }, (__, k) => `$${j * 10 + k + 1}${k === 6 || k === 9 ? '::jsonb' : ''}`).join(', ')})`,
  );
  return ds.query(
    `INSERT INTO webhook_inbox (company_id, connection_id, provider, route, kind, event_id, payload, call_key, partition, records)
     VALUES ${values.join(', ')} ON CONFLICT (connection_id, event_id) DO NOTHING`,
    chunk.flat(),
  );
}

export async function bareDataSource(url: string): Promise<DataSource> {
  const ds = new DataSource({ type: 'postgres', url, extra: { max: 4 } });
  await ds.initialize();
  return ds;
}

/**
 * The bare processing loop: one transaction per 500 rows (`FOR UPDATE SKIP LOCKED` by seq, the
 * same set-based apply, mark processed), until `stop()`; no partitions, no wake-up signals.
 */
export function bareProcessing(ds: DataSource): { stop(): Promise<void> } {
  const events = new EventsService(null as unknown as Repository<CompanyEventEntity>);
  const noAgents = { resolveMany: (refs: unknown[]) => Promise.resolve(refs.map(() => null)) };
  const apply = new CallApplyService(ds, noAgents as unknown as AgentsService, events);
  let stopping = false;
  const done = (async () => {
    while (!stopping) {
      const n = await ds.transaction(async (m) => {
        const rows = (await m.query(
          `SELECT id, company_id, connection_id, provider, records FROM webhook_inbox
           WHERE status = 'pending' ORDER BY seq LIMIT 500 FOR UPDATE SKIP LOCKED`,
        )) as { id: string; company_id: string; connection_id: string; provider: string; records: unknown }[];
        if (rows.length === 0) return 0;
        const batch: CallEvent[] = rows.flatMap((r) =>
          recordsFromJson(r.records).calls.map((e) => ({
            ...e,
            companyId: r.company_id,
            connectionId: r.connection_id,
            provider: r.provider,
          })),
        );
        await apply.applyIn(m, batch);
        await m.query(
          `UPDATE webhook_inbox SET status = 'processed', processed_at = now() WHERE id = ANY($1::uuid[])`,
          [rows.map((r) => r.id)],
        );
        return rows.length;
      });
      if (n === 0) await sleep(20);
    }
  })();
  return {
    async stop() {
      stopping = true;
      await done;
    },
  };
}

/** A company and its Twilio connection, through the API. */
export async function createTwilioConnection(
  running: RunningApp,
): Promise<{ companyId: string; apiKey: string; id: string }> {
  const company = await createCompany(running.port, 'Bench inbox');
  const res = await fetch(`http://127.0.0.1:${running.port}/api/v1/pbx-connections`, {
    method: 'POST',
    headers: { 'x-api-key': company.apiKey, 'content-type': 'application/json' },
    body: JSON.stringify({
      provider: 'twilio',
      name: 'Bench Twilio',
      settings: { accountSid: ACCOUNT_SID },
      secrets: { authToken: AUTH_TOKEN },
    }),
  });
  if (res.status !== 201) throw new Error(`POST /api/v1/pbx-connections: ${res.status} ${await res.text()}`);
  return { companyId: company.id, apiKey: company.apiKey, id: ((await res.json()) as { id: string }).id };
}
