import type { DataSource } from 'typeorm';

/** One row to write to the inbox. */
export interface InboxRow {
  companyId: string;
  /** Null for the generic incoming webhook: such rows are unique per (company, event id). */
  connectionId: string | null;
  provider: string;
  route: string;
  kind: string;
  eventId: string;
  payloadJson: string;
  /** The call the row is about (inbox-partition.ts), and its partition. */
  callKey: string;
  partition: number;
  /** The canonical records the mapper made of it at ingest, as JSON; null when it could not. */
  recordsJson: string | null;
}

interface Waiting {
  row: InboxRow;
  resolve: (id: string | null) => void;
  reject: (error: unknown) => void;
}

/** Rows in one statement at most. */
const MAX_BATCH = 200;
/** Statements in flight at once; the rows that arrive meanwhile go together in the next one. */
const MAX_IN_FLIGHT = 2;

/**
 * Group commit for the inbox: webhooks arriving while an INSERT is in flight are written
 * together, in one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING`, so under load a commit
 * (and its WAL flush) serves many requests instead of one. Each caller's promise resolves only
 * once its row is committed (its id), or null when the row was there already (a redelivery, also
 * within one batch); nothing is answered before it is durable. When idle, a row is written at once.
 */
export class InboxWriter {
  private readonly queue: Waiting[] = [];
  private inFlight = 0;

  /** `committed` runs after each INSERT that wrote rows (the inbox workers are woken by it). */
  constructor(
    private readonly dataSource: DataSource,
    private readonly committed: (written: number) => void = () => undefined,
  ) {}

  write(row: InboxRow): Promise<string | null> {
    return new Promise((resolve, reject) => {
      this.queue.push({ row, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.inFlight++;
      void this.flush(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async flush(batch: Waiting[]): Promise<void> {
    const generic = batch.filter((w) => w.row.connectionId === null);
    const connected = generic.length === 0 ? batch : batch.filter((w) => w.row.connectionId !== null);
    const written = (await Promise.all([this.insert(connected, false), this.insert(generic, true)])).reduce(
      (a, b) => a + b,
      0,
    );
    if (written > 0) this.committed(written);
  }

  /**
   * One multi-row INSERT; resolves each caller (its id, or null for a duplicate) and returns the
   * rows written. Rows with a connection are unique on (connection_id, event_id); rows without
   * (`generic`) on (company_id, event_id) where connection_id IS NULL (a partial unique index).
   */
  private async insert(batch: Waiting[], generic: boolean): Promise<number> {
    if (batch.length === 0) return 0;
    const values: string[] = [];
    const params: unknown[] = [];
    for (const { row } of batch) {
      const n = params.length;
      values.push(
        `($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}, $${n + 6}, $${n + 7}::jsonb, $${n + 8}, $${n + 9}, $${n + 10}::jsonb)`,
      );
      params.push(
        row.companyId,
        row.connectionId,
        row.provider,
        row.route,
        row.kind,
        row.eventId,
        row.payloadJson,
        row.callKey,
        row.partition,
        row.recordsJson,
      );
    }
    try {
      const inserted = (await this.dataSource.query(
        `INSERT INTO webhook_inbox (company_id, connection_id, provider, route, kind, event_id, payload, call_key, partition, records)
         VALUES ${values.join(', ')}
         ${generic ? 'ON CONFLICT (company_id, event_id) WHERE connection_id IS NULL' : 'ON CONFLICT (connection_id, event_id)'}
         DO NOTHING RETURNING id, ${generic ? 'company_id' : 'connection_id'} AS owner, event_id`,
        params,
      )) as { id: string; owner: string; event_id: string }[];
      const ids = new Map(inserted.map((r) => [`${r.owner}\n${r.event_id}`, r.id]));
      for (const w of batch) {
        const key = `${generic ? w.row.companyId : w.row.connectionId}\n${w.row.eventId}`;
        const id = ids.get(key) ?? null;
        // The same event twice in one batch: the first caller has the row, the others a duplicate.
        if (id !== null) ids.delete(key);
        w.resolve(id);
      }
      return inserted.length;
    } catch (error) {
      for (const w of batch) w.reject(error);
      return 0;
    }
  }
}
