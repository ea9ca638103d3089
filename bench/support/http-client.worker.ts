import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';

/**
 * The benchmark's HTTP client, in a worker thread so that it does not share the event loop of
 * the server it measures. One keep-alive socket, one request in flight: each latency is one
 * request, from `request()` to the last byte of the response body. Talks to 127.0.0.1 only.
 */
export interface ClientJob {
  id: number;
  port: number;
  path: string;
  headers: Record<string, string>;
  count: number;
  /** Request i adds `perRequest[i]` to `headers` (e.g. a different API key each time). */
  perRequest?: Record<string, string>[];
}

export interface ClientResult {
  id: number;
  /** Milliseconds, one per request, in order. */
  latencies: Float64Array<ArrayBuffer>;
  /** How many responses had each status code. */
  statuses: Record<number, number>;
  error?: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function get(port: number, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers, agent }, (res) => {
      res.on('error', reject);
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.resume();
    });
    req.on('error', reject);
    req.end();
  });
}

async function run(job: ClientJob): Promise<ClientResult> {
  const latencies = new Float64Array(job.count);
  const statuses: Record<number, number> = {};
  for (let i = 0; i < job.count; i++) {
    const start = performance.now();
    const headers = job.perRequest ? { ...job.headers, ...job.perRequest[i] } : job.headers;
    const status = await get(job.port, job.path, headers);
    latencies[i] = performance.now() - start;
    statuses[status] = (statuses[status] ?? 0) + 1;
  }
  return { id: job.id, latencies, statuses };
}

parentPort?.on('message', (job: ClientJob) => {
  run(job).then(
    (result) => parentPort?.postMessage(result, [result.latencies.buffer]),
    (error: unknown) =>
      parentPort?.postMessage({
        id: job.id,
        latencies: new Float64Array(0),
        statuses: {},
        error: error instanceof Error ? error.message : String(error),
      } satisfies ClientResult),
  );
});
