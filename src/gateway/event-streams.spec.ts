import type { EventEnvelope } from '../events/event-envelope.js';
import { EventStreams, type StreamClient } from './event-streams.js';

const CO = 'company-1';
const env = (seq: number, agentId: string | null = null): EventEnvelope => ({
  id: `e${seq}`,
  type: 'call.updated',
  companyId: CO,
  seq,
  occurredAt: new Date(0).toISOString(),
  agentId,
  data: {},
});

/** The database: every committed event, in order. */
class FakeSource {
  events: EventEnvelope[] = [];
  reads = 0;
  async latestSeq() {
    return this.events.length ? this.events[this.events.length - 1]!.seq : 0;
  }
  async since(_c: string, seq: number, limit: number) {
    this.reads++;
    return this.events.filter((e) => e.seq > seq).slice(0, limit);
  }
  commit(n: number, agentId: string | null = null) {
    const e = env(this.events.length + 1, agentId);
    this.events.push(e);
    return e;
  }
}

const client = (agentId: string | null = null): StreamClient & { got: number[] } => {
  const got: number[] = [];
  return { agentId, live: false, lastSeq: 0, got, send: (e) => got.push(e.seq) };
};

describe('EventStreams', () => {
  it('delivers in sequence order whatever the arrival order', async () => {
    const db = new FakeSource();
    const streams = new EventStreams(db);
    const c = client();
    await streams.add(CO, c);
    const [e1, e2, e3] = [db.commit(1), db.commit(2), db.commit(3)];
    streams.ingest(e3!);
    streams.ingest(e1!);
    expect(c.got).toEqual([1]);
    streams.ingest(e2!);
    streams.ingest(e2!); // a duplicate
    expect(c.got).toEqual([1, 2, 3]);
    streams.close();
  });

  it('reads a gap from the database when it does not fill by itself', async () => {
    const db = new FakeSource();
    const streams = new EventStreams(db);
    const c = client();
    await streams.add(CO, c);
    db.commit(1);
    db.commit(2);
    streams.ingest(db.commit(3)); // 1 and 2 never arrive
    expect(c.got).toEqual([]);
    await new Promise((r) => setTimeout(r, 250));
    expect(c.got).toEqual([1, 2, 3]);
    streams.close();
  });

  it('replays what a resuming client missed before live events, without gap or duplicate', async () => {
    const db = new FakeSource();
    const streams = new EventStreams(db);
    const watcher = client();
    await streams.add(CO, watcher);
    for (let i = 0; i < 5; i++) streams.ingest(db.commit(1));
    const resumed = client();
    const adding = streams.add(CO, resumed, 2);
    streams.ingest(db.commit(1)); // 6 arrives while the replay reads
    const seq = await adding;
    streams.ingest(db.commit(1)); // 7 live
    expect(seq).toBe(6);
    expect(resumed.got).toEqual([3, 4, 5, 6, 7]);
    expect(watcher.got).toEqual([1, 2, 3, 4, 5, 6, 7]);
    streams.close();
  });

  it('gives an agent only its own events, and a company client all of them', async () => {
    const db = new FakeSource();
    const streams = new EventStreams(db);
    const a = client('agent-a');
    const all = client();
    await streams.add(CO, a);
    await streams.add(CO, all);
    streams.ingest(db.commit(1, 'agent-a'));
    streams.ingest(db.commit(1, 'agent-b'));
    streams.ingest(db.commit(1, null));
    expect(a.got).toEqual([1]);
    expect(all.got).toEqual([1, 2, 3]);
    streams.close();
  });

  it('ignores events of companies without clients here', async () => {
    const db = new FakeSource();
    const streams = new EventStreams(db);
    streams.ingest(env(1));
    expect(db.reads).toBe(0);
    streams.close();
  });
});
