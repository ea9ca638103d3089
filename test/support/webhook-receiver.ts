import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How the receiver answers one request. */
export interface ReceiverAnswer {
  /** HTTP status (default 200). */
  status?: number;
  /** Wait this long before answering (headers included). */
  delayMs?: number;
  /** The response body (default empty). */
  body?: string;
  /** Answer bytes that are not HTTP, then close. */
  garbage?: boolean;
  /** A 2xx/other status with a body of this many bytes. */
  hugeBytes?: number;
  /** Send the headers at once, then the body this long after. */
  slowBodyMs?: number;
  /** Reset the connection (TCP RST) without answering. */
  reset?: boolean;
  /** Extra response headers (e.g. `location`). */
  headers?: Record<string, string>;
}

/** One request the receiver got. */
export interface ReceivedRequest {
  /** 1 for the first request. */
  n: number;
  at: number;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The raw body, exactly as sent. */
  body: string;
}

export type ReceiverScript = (req: ReceivedRequest) => ReceiverAnswer;

/**
 * A real HTTP receiver on 127.0.0.1 for outbound webhooks: records every request (raw body and
 * headers) and answers as its script says (status, delay, garbage, huge body, slow body, reset).
 */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  private readonly server: Server;
  private waiters: (() => void)[] = [];
  private timers = new Set<NodeJS.Timeout>();
  script: ReceiverScript;

  private constructor(script: ReceiverScript) {
    this.script = script;
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const got: ReceivedRequest = {
          n: this.requests.length + 1,
          at: Date.now(),
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        this.requests.push(got);
        for (const w of this.waiters.splice(0)) w();
        const answer = this.script(got);
        const respond = () => {
          if (answer.reset) {
            req.socket.resetAndDestroy();
            return;
          }
          if (answer.garbage) {
            req.socket.end('\u0000\u0001 THIS IS NOT HTTP \u00ff\r\n\r\n');
            return;
          }
          const status = answer.status ?? 200;
          if (answer.hugeBytes) {
            res.writeHead(status, { 'content-type': 'text/plain', 'x-secret-header': 'never-echoed' });
            const chunk = Buffer.alloc(64 * 1024, 'x');
            let left = answer.hugeBytes;
            const pump = () => {
              while (left > 0) {
                left -= chunk.length;
                if (!res.write(chunk)) {
                  res.once('drain', pump);
                  return;
                }
              }
              res.end();
            };
            res.on('error', () => undefined);
            pump();
            return;
          }
          if (answer.slowBodyMs) {
            res.writeHead(status, { 'content-type': 'text/plain' });
            res.write('slow');
            this.later(answer.slowBodyMs, () => res.end(' body'));
            return;
          }
          res.writeHead(status, { 'content-type': 'text/plain', 'x-secret-header': 'never-echoed', ...answer.headers });
          res.end(answer.body ?? '');
        };
        if (answer.delayMs) this.later(answer.delayMs, respond);
        else respond();
      });
    });
  }

  static async start(script: ReceiverScript = () => ({ status: 200 })): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(script);
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The URL to register (path `/hook`). */
  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Resolves when `n` requests have come in all (rejects after `ms`). */
  async waitFor(n: number, ms = 10_000): Promise<ReceivedRequest[]> {
    const deadline = Date.now() + ms;
    while (this.requests.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${n} requests within ${ms} ms, got ${this.requests.length}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.requests;
  }

  /** Requests by webhook-id: how many times each event came. */
  countsById(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const r of this.requests) {
      const id = String(r.headers['webhook-id']);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }
}
