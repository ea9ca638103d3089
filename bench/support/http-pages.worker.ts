import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';

/**
 * The calls-paging benchmark's HTTP client, in a worker thread so that it does not share the
 * event loop of the server it measures. One keep-alive socket, one request in flight; each
 * latency is from `request()` to the last byte of the body. Every response is then checked
 * (outside the timed part): status, number of rows, id of the first row. Also walks a list
 * by its `next` cursors. Talks to 127.0.0.1 only.
 */

export interface PageExpectation {
  status: number;
  rows: number;
  firstId: string;
}

export type PagesJob =
  | {
      kind: 'repeat';
      id: number;
      port: number;
      path: string;
      headers: Record<string, string>;
      count: number;
      expect: PageExpectation;
    }
  | { kind: 'walk'; id: number; port: number; path: string; headers: Record<string, string>; pages: number };

export interface RepeatResult {
  id: number;
  latencies: Float64Array<ArrayBuffer>;
  statuses: Record<number, number>;
  /** Responses whose body did not match the expectation. */
  mismatches: number;
  firstMismatch?: string;
  error?: string;
}

export interface WalkResult {
  id: number;
  /** The `next` of the last page fetched: the cursor of the page after it. */
  cursor: string | null;
  /** The `next` of each page fetched, in order (`cursors[i]` leads to page i + 2). */
  cursors: string[];
  rows: number;
  distinctIds: number;
  /** Latencies of the pages fetched, in order. */
  latencies: Float64Array<ArrayBuffer>;
  error?: string;
}

interface Page {
  data: { id: string }[];
  next: string | null;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function get(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

function check(status: number, body: string, expect: PageExpectation): string | null {
  if (status !== expect.status) return `status ${status}: ${body.slice(0, 200)}`;
  const page = JSON.parse(body) as Page;
  if (!Array.isArray(page.data) || page.data.length !== expect.rows) return `${page.data?.length} rows`;
  if (page.data[0]?.id !== expect.firstId) return `first row ${page.data[0]?.id}, expected ${expect.firstId}`;
  if (typeof page.next !== 'string') return 'no next cursor';
  return null;
}

async function repeat(job: Extract<PagesJob, { kind: 'repeat' }>): Promise<RepeatResult> {
  const latencies = new Float64Array(job.count);
  const statuses: Record<number, number> = {};
  let mismatches = 0;
  let firstMismatch: string | undefined;
  for (let i = 0; i < job.count; i++) {
    const start = performance.now();
    const { status, body } = await get(job.port, job.path, job.headers);
    latencies[i] = performance.now() - start;
    statuses[status] = (statuses[status] ?? 0) + 1;
    const wrong = check(status, body, job.expect);
    if (wrong) {
      mismatches++;
      firstMismatch ??= wrong;
    }
  }
  return { id: job.id, latencies, statuses, mismatches, firstMismatch };
}

async function walk(job: Extract<PagesJob, { kind: 'walk' }>): Promise<WalkResult> {
  const latencies = new Float64Array(job.pages);
  const ids = new Set<string>();
  let rows = 0;
  let cursor: string | null = null;
  const cursors: string[] = [];
  for (let i = 0; i < job.pages; i++) {
    const path: string = cursor ? `${job.path}&cursor=${encodeURIComponent(cursor)}` : job.path;
    const start = performance.now();
    const { status, body } = await get(job.port, path, job.headers);
    latencies[i] = performance.now() - start;
    if (status !== 200) throw new Error(`page ${i + 1}: status ${status}: ${body.slice(0, 200)}`);
    const page = JSON.parse(body) as Page;
    rows += page.data.length;
    for (const row of page.data) ids.add(row.id);
    cursor = page.next;
    if (!cursor) throw new Error(`page ${i + 1} has no next cursor`);
    cursors.push(cursor);
  }
  return { id: job.id, cursor, cursors, rows, distinctIds: ids.size, latencies };
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

parentPort?.on('message', (job: PagesJob) => {
  if (job.kind === 'repeat') {
    repeat(job).then(
      (result) => parentPort?.postMessage(result, [result.latencies.buffer]),
      (error: unknown) =>
        parentPort?.postMessage({
          id: job.id,
          latencies: new Float64Array(0),
          statuses: {},
          mismatches: 0,
          error: message(error),
        } satisfies RepeatResult),
    );
  } else {
    walk(job).then(
      (result) => parentPort?.postMessage(result, [result.latencies.buffer]),
      (error: unknown) =>
        parentPort?.postMessage({
          id: job.id,
          cursor: null,
          cursors: [],
          rows: 0,
          distinctIds: 0,
          latencies: new Float64Array(0),
          error: message(error),
        } satisfies WalkResult),
    );
  }
});
