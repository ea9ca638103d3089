import { performance, PerformanceObserver } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import { io, type Socket } from 'socket.io-client';

/**
 * socket.io clients of the event-delay benchmark, in a worker thread so that they do not share
 * the event loop of the server they measure. Each client connects over the websocket transport
 * to 127.0.0.1, waits for `ready`, and stamps every `event` it receives with
 * `performance.timeOrigin + performance.now()` (comparable across threads of one process), the
 * first thing its handler does. It also checks, per client, that sequence numbers come in order
 * and once.
 */

export interface ClientSpec {
  /** Index of the client's company in the benchmark (0-based). */
  company: number;
  auth: Record<string, unknown>;
}

export type SocketWorkerRequest =
  | { type: 'connect'; url: string; clients: ClientSpec[]; concurrency: number }
  | { type: 'ping'; t: number }
  | { type: 'count' }
  | { type: 'collect' }
  | { type: 'close' };

export interface ClientTally {
  company: number;
  readySeq: number;
  received: number;
  duplicates: number;
  outOfOrder: number;
  /** Sequence numbers that skipped ahead of lastSeq + 1 when they arrived. */
  gaps: number;
  lastSeq: number;
  /** Disconnected while the benchmark still expected events. */
  disconnected: boolean;
}

export type SocketWorkerReply =
  | { type: 'connected'; count: number; error?: string }
  | { type: 'pong'; t: number; tw: number }
  | { type: 'count'; received: number }
  | {
      type: 'collected';
      /** Triples: client index (in this worker), seq, receipt time (ms since the epoch, sub-ms). */
      receipts: Float64Array<ArrayBuffer>;
      clients: ClientTally[];
      /** Garbage-collection pauses of this worker since it connected: [start (ms since the epoch), duration] pairs. */
      gc: number[];
    }
  | { type: 'closed' };

interface LiveClient {
  socket: Socket;
  tally: ClientTally;
  seen: Set<number>;
}

const now = () => performance.timeOrigin + performance.now();
let clients: LiveClient[] = [];
let receipts: number[] = [];
let received = 0;
let closing = false;
let gcPauses: number[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push(performance.timeOrigin + e.startTime, e.duration);
}).observe({ entryTypes: ['gc'] });

function connectOne(url: string, spec: ClientSpec, index: number): Promise<LiveClient> {
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      path: '/socket.io',
      transports: ['websocket'],
      auth: spec.auth,
      reconnection: false,
      forceNew: true,
      timeout: 30_000,
    });
    const client: LiveClient = {
      socket,
      seen: new Set(),
      tally: {
        company: spec.company,
        readySeq: -1,
        received: 0,
        duplicates: 0,
        outOfOrder: 0,
        gaps: 0,
        lastSeq: 0,
        disconnected: false,
      },
    };
    socket.on('event', (envelope: { seq: number }) => {
      const t1 = now();
      const tally = client.tally;
      const seq = envelope.seq;
      receipts.push(index, seq, t1);
      received++;
      tally.received++;
      if (client.seen.has(seq)) {
        tally.duplicates++;
        return;
      }
      client.seen.add(seq);
      if (seq < tally.lastSeq) tally.outOfOrder++;
      else {
        if (seq > tally.lastSeq + 1) tally.gaps++;
        tally.lastSeq = seq;
      }
    });
    socket.on('disconnect', () => {
      if (!closing) client.tally.disconnected = true;
    });
    socket.once('connect_error', (error: Error & { data?: unknown }) => {
      socket.close();
      reject(new Error(`${error.message} ${JSON.stringify(error.data ?? null)}`));
    });
    socket.once('ready', (ready: { seq: number }) => {
      client.tally.readySeq = ready.seq;
      client.tally.lastSeq = ready.seq;
      resolve(client);
    });
  });
}

async function connectAll(url: string, specs: ClientSpec[], concurrency: number): Promise<number> {
  closing = false;
  clients = new Array<LiveClient>(specs.length);
  receipts = [];
  received = 0;
  gcPauses = [];
  let next = 0;
  const lane = async () => {
    while (next < specs.length) {
      const i = next++;
      clients[i] = await connectOne(url, specs[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, lane));
  return clients.length;
}

function closeAll(): void {
  closing = true;
  for (const client of clients) client?.socket.close();
  clients = [];
}

const reply = (message: SocketWorkerReply, transfer: ArrayBuffer[] = []) => parentPort?.postMessage(message, transfer);

parentPort?.on('message', (request: SocketWorkerRequest) => {
  switch (request.type) {
    case 'connect':
      connectAll(request.url, request.clients, request.concurrency).then(
        (n) => reply({ type: 'connected', count: n }),
        (error: unknown) => {
          closeAll();
          reply({ type: 'connected', count: 0, error: error instanceof Error ? error.message : String(error) });
        },
      );
      break;
    case 'ping':
      reply({ type: 'pong', t: request.t, tw: now() });
      break;
    case 'count':
      reply({ type: 'count', received });
      break;
    case 'collect': {
      const packed = Float64Array.from(receipts);
      reply({ type: 'collected', receipts: packed, clients: clients.map((c) => ({ ...c.tally })), gc: gcPauses }, [
        packed.buffer,
      ]);
      break;
    }
    case 'close':
      closeAll();
      reply({ type: 'closed' });
      break;
  }
});
