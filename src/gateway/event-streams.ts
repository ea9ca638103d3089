import type { EventEnvelope } from '../events/event-envelope.js';

/** A connected client as the streams see it. */
export interface StreamClient {
  /** The socket's id (the gateway sends to many sockets by id at once). */
  readonly id?: string;
  /** null: every event of the company; an id: only that agent's events. */
  readonly agentId: string | null;
  /** Not live while it is being replayed what it missed. */
  live: boolean;
  /** The last sequence number sent to it. */
  lastSeq: number;
  send(envelope: EventEnvelope): void;
}

export interface EventSource {
  latestSeq(companyId: string): Promise<number>;
  since(companyId: string, seq: number, limit: number): Promise<EventEnvelope[]>;
}

const GAP_WAIT_MS = 150;
const PAGE = 500;

interface CompanyStream {
  companyId: string;
  /** Every event up to this one has been handed to the live clients. */
  delivered: number;
  pending: Map<number, EventEnvelope>;
  clients: Set<StreamClient>;
  gapTimer?: NodeJS.Timeout;
  filling: boolean;
}

/**
 * Per-company ordered delivery on one instance. Events may arrive out of order (two instances
 * commit seq 5 and 6 and publish in the other order) or not at all (a lost cross-instance
 * message): each company's events are handed to clients strictly by sequence number, holding
 * later ones until the gap fills, and reading the missing ones from the database when a gap
 * lasts. A client that resumes from a sequence number is replayed what it missed, in order,
 * before it receives live events: no gap and no duplicate.
 */
export class EventStreams {
  private readonly streams = new Map<string, CompanyStream>();
  private readonly opening = new Map<string, Promise<CompanyStream>>();

  /**
   * @param deliver hands one live event to all the clients that get it, at once (the gateway
   * encodes it once for all of them); by default each client's `send`.
   */
  constructor(
    private readonly source: EventSource,
    private readonly deliver: (clients: StreamClient[], envelope: EventEnvelope) => void = (clients, envelope) => {
      for (const client of clients) client.send(envelope);
    },
  ) {}

  /** An event committed by any instance. */
  ingest(envelope: EventEnvelope): void {
    const stream = this.streams.get(envelope.companyId);
    if (!stream || envelope.seq <= stream.delivered) return;
    stream.pending.set(envelope.seq, envelope);
    this.drain(stream);
  }

  /** Adds a client; replays what came after `resumeFrom` first when given. Returns the current seq. */
  async add(companyId: string, client: StreamClient, resumeFrom?: number): Promise<number> {
    const stream = await this.open(companyId);
    client.live = false;
    stream.clients.add(client);
    if (resumeFrom !== undefined && resumeFrom >= 0) {
      let from = resumeFrom;
      while (from < stream.delivered) {
        const batch = await this.source.since(companyId, from, PAGE);
        if (batch.length === 0) break;
        for (const envelope of batch) {
          if (envelope.seq > stream.delivered) break;
          if (this.wants(client, envelope)) client.send(envelope);
          from = envelope.seq;
        }
        if (!stream.clients.has(client)) return stream.delivered; // left while replaying
      }
    }
    client.lastSeq = stream.delivered;
    client.live = true;
    return stream.delivered;
  }

  remove(companyId: string, client: StreamClient): void {
    const stream = this.streams.get(companyId);
    if (!stream) return;
    stream.clients.delete(client);
    if (stream.clients.size === 0) {
      clearTimeout(stream.gapTimer);
      this.streams.delete(companyId);
    }
  }

  clientsOf(companyId: string): ReadonlySet<StreamClient> {
    return this.streams.get(companyId)?.clients ?? new Set();
  }

  close(): void {
    for (const stream of this.streams.values()) clearTimeout(stream.gapTimer);
    this.streams.clear();
  }

  private async open(companyId: string): Promise<CompanyStream> {
    const existing = this.streams.get(companyId);
    if (existing) return existing;
    let opening = this.opening.get(companyId);
    if (!opening) {
      opening = this.source.latestSeq(companyId).then((delivered) => {
        const stream: CompanyStream = { companyId, delivered, pending: new Map(), clients: new Set(), filling: false };
        this.streams.set(companyId, stream);
        this.opening.delete(companyId);
        return stream;
      });
      opening.catch(() => this.opening.delete(companyId));
      this.opening.set(companyId, opening);
    }
    return opening;
  }

  private wants(client: StreamClient, envelope: EventEnvelope): boolean {
    return client.agentId === null || client.agentId === envelope.agentId;
  }

  private drain(stream: CompanyStream): void {
    for (let next = stream.pending.get(stream.delivered + 1); next; next = stream.pending.get(stream.delivered + 1)) {
      stream.pending.delete(next.seq);
      stream.delivered = next.seq;
      const recipients: StreamClient[] = [];
      for (const client of stream.clients) {
        if (!client.live || next.seq <= client.lastSeq) continue;
        client.lastSeq = next.seq;
        if (this.wants(client, next)) recipients.push(client);
      }
      if (recipients.length > 0) this.deliver(recipients, next);
    }
    for (const seq of stream.pending.keys()) if (seq <= stream.delivered) stream.pending.delete(seq);
    if (stream.pending.size > 0 && !stream.gapTimer) {
      stream.gapTimer = setTimeout(() => void this.fill(stream), GAP_WAIT_MS);
    } else if (stream.pending.size === 0 && stream.gapTimer) {
      clearTimeout(stream.gapTimer);
      stream.gapTimer = undefined;
    }
  }

  /** Reads from the database the events of a gap that did not fill by itself. */
  private async fill(stream: CompanyStream): Promise<void> {
    stream.gapTimer = undefined;
    if (stream.filling || this.streams.get(stream.companyId) !== stream) return;
    stream.filling = true;
    try {
      const upTo = Math.max(...stream.pending.keys());
      while (stream.delivered < upTo) {
        const batch = await this.source.since(stream.companyId, stream.delivered, PAGE);
        if (batch.length === 0) break;
        for (const envelope of batch) if (envelope.seq > stream.delivered) stream.pending.set(envelope.seq, envelope);
        this.drain(stream);
      }
    } catch {
      // The database is unreachable: try again later.
    } finally {
      stream.filling = false;
      if (stream.pending.size > 0 && !stream.gapTimer && this.streams.get(stream.companyId) === stream) {
        stream.gapTimer = setTimeout(() => void this.fill(stream), GAP_WAIT_MS * 4);
      }
    }
  }
}
