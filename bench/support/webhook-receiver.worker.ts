import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';

/**
 * The benchmark's webhook receiver, in a worker thread so that it does not share the event loop
 * of the application it measures: a bare node:http server on 127.0.0.1 that reads each body,
 * answers 200 at once (or, under `/slow`, after SLOW_MS), and records when each delivery arrived
 * (epoch milliseconds with sub-millisecond precision, the same clock as the main thread's) by its
 * `webhook-id`.
 */
export type ReceiverCommand = { cmd: 'start'; slowMs: number } | { cmd: 'collect' } | { cmd: 'stop' };

export interface ReceiverArrivals {
  /** webhook-id, path, arrival time: one per request, in arrival order. */
  ids: string[];
  paths: string[];
  at: Float64Array<ArrayBuffer>;
}

const now = () => performance.timeOrigin + performance.now();
let ids: string[] = [];
let paths: string[] = [];
let at: number[] = [];
let slowMs = 10_000;
const timers = new Set<NodeJS.Timeout>();

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    const path = req.url ?? '/';
    ids.push(String(req.headers['webhook-id'] ?? ''));
    paths.push(path);
    at.push(now());
    if (path.startsWith('/slow')) {
      const t = setTimeout(() => {
        timers.delete(t);
        res.writeHead(200).end('ok');
      }, slowMs);
      timers.add(t);
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    }
  });
});
server.keepAliveTimeout = 60_000;

parentPort?.on('message', (message: ReceiverCommand) => {
  if (message.cmd === 'start') {
    slowMs = message.slowMs;
    server.listen(0, '127.0.0.1', () => parentPort?.postMessage({ port: (server.address() as AddressInfo).port }));
  } else if (message.cmd === 'collect') {
    const out: ReceiverArrivals = { ids, paths, at: Float64Array.from(at) };
    ids = [];
    paths = [];
    at = [];
    parentPort?.postMessage(out, [out.at.buffer]);
  } else {
    for (const t of timers) clearTimeout(t);
    server.closeAllConnections();
    server.close(() => parentPort?.postMessage({ stopped: true }));
  }
});
