import { Agent, request } from 'undici';
import { Webhook } from 'standardwebhooks';
import type { DeliveryErrorClass } from './webhook-delivery.entity.js';

/** The most of a response body read (and kept in the delivery log). */
export const SNIPPET_BYTES = 1024;
export const USER_AGENT = 'Switchboard-Webhooks/1';

/** What one POST to a receiver gave. */
export interface SendResult {
  ok: boolean;
  statusCode: number | null;
  errorClass: DeliveryErrorClass | null;
  snippet: string | null;
  latencyMs: number;
  startedAt: Date;
}

export interface SendRequest {
  /** Whose connections to use: the endpoint's own (one slow endpoint never holds another's sockets). */
  endpointId: string;
  url: string;
  /** The webhook-id: the event id, stable across retries and replays. */
  eventId: string;
  body: string;
  /** The endpoint's secrets (`whsec_…`): the current one, then the previous one during a rotation. */
  secrets: readonly string[];
  /** The endpoint's own headers (never webhook-* nor hop-by-hop: checked when they were stored). */
  headers: Record<string, string>;
  /** The attempt's time: webhook-timestamp. */
  at: Date;
  /** Aborts the attempt from outside (shutdown). */
  signal?: AbortSignal;
}

class DeliveryTimeout extends Error {
  override readonly name = 'DeliveryTimeout';
}

const RESERVED = new Set(['content-type', 'user-agent', 'webhook-id', 'webhook-timestamp', 'webhook-signature']);

/** An endpoint's connections are closed after this long without a delivery. */
const IDLE_AGENT_MS = 60_000;

/**
 * Signs and POSTs deliveries with undici, over one keep-alive Agent PER ENDPOINT whose connector
 * is the SSRF guard's (it resolves and checks the target, pins the address, checks the socket's
 * peer). Per endpoint, not per origin: endpoints of many companies often share an origin (an
 * automation service's hooks differ only by path), and a shared pool would let one slow endpoint
 * hold every socket to that origin. No redirect is followed (undici follows none without its
 * redirect interceptor). Success is a 2xx whose headers and body (up to 1 KB read, then the rest
 * is dropped) came within the timeout; every failure is a result with its class, never a throw.
 */
export class WebhookSender {
  private readonly agents = new Map<string, { agent: Agent; lastUsed: number; busy: number }>();
  private readonly signers = new Map<string, Webhook>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly connector: NonNullable<ConstructorParameters<typeof Agent>[0]>['connect'],
    private readonly timeoutMs: number,
    /** Sockets per endpoint at most (its in-flight limit; +1 for the test route). */
    private readonly connectionsPerEndpoint: number,
  ) {
    this.sweeper = setInterval(() => this.closeIdle(), IDLE_AGENT_MS / 2);
    this.sweeper.unref();
  }

  private agentOf(endpointId: string): { agent: Agent; lastUsed: number; busy: number } {
    let entry = this.agents.get(endpointId);
    if (!entry) {
      entry = {
        agent: new Agent({
          connect: this.connector,
          connections: this.connectionsPerEndpoint + 1,
          pipelining: 1,
          keepAliveTimeout: 4_000,
          keepAliveMaxTimeout: 30_000,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
        }),
        lastUsed: Date.now(),
        busy: 0,
      };
      this.agents.set(endpointId, entry);
    }
    return entry;
  }

  private closeIdle(): void {
    const cutoff = Date.now() - IDLE_AGENT_MS;
    for (const [id, entry] of this.agents) {
      if (entry.busy === 0 && entry.lastUsed < cutoff) {
        this.agents.delete(id);
        void entry.agent.close().catch(() => undefined);
      }
    }
  }

  /** Endpoints with open connection pools (for tests and metrics). */
  get pools(): number {
    return this.agents.size;
  }

  /** `webhook-signature`: one `v1,…` per secret, space-separated (the scheme allows several). */
  sign(secrets: readonly string[], eventId: string, at: Date, body: string): string {
    return secrets.map((secret) => this.signer(secret).sign(eventId, at, body)).join(' ');
  }

  async send(req: SendRequest): Promise<SendResult> {
    const startedAt = new Date();
    const t0 = performance.now();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new DeliveryTimeout('timed out')), this.timeoutMs);
    const onOuterAbort = () => abort.abort(req.signal?.reason);
    req.signal?.addEventListener('abort', onOuterAbort, { once: true });
    const done = (r: Omit<SendResult, 'latencyMs' | 'startedAt'>): SendResult => ({
      ...r,
      latencyMs: Math.max(0, Math.round(performance.now() - t0)),
      startedAt,
    });
    const pool = this.agentOf(req.endpointId);
    pool.busy++;
    try {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (!RESERVED.has(name.toLowerCase())) headers[name] = value;
      }
      headers['content-type'] = 'application/json';
      headers['user-agent'] = USER_AGENT;
      headers['webhook-id'] = req.eventId;
      headers['webhook-timestamp'] = String(Math.floor(req.at.getTime() / 1000));
      headers['webhook-signature'] = this.sign(req.secrets, req.eventId, req.at, req.body);
      const res = await request(req.url, {
        dispatcher: pool.agent,
        method: 'POST',
        headers,
        body: req.body,
        signal: abort.signal,
      });
      let snippet: Buffer;
      try {
        snippet = await readSnippet(res.body);
      } finally {
        res.body.destroy();
      }
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      return done({
        ok,
        statusCode: res.statusCode,
        errorClass: ok ? null : 'http-status',
        snippet: toText(snippet),
      });
    } catch (error) {
      const timedOut = abort.signal.aborted && abort.signal.reason instanceof DeliveryTimeout;
      return done({
        ok: false,
        statusCode: null,
        errorClass: timedOut ? 'timeout' : req.signal?.aborted ? 'aborted' : classify(error),
        snippet: null,
      });
    } finally {
      pool.busy--;
      pool.lastUsed = Date.now();
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onOuterAbort);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const agents = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(agents.map((e) => e.agent.destroy().catch(() => undefined)));
  }

  private signer(secret: string): Webhook {
    let signer = this.signers.get(secret);
    if (!signer) {
      if (this.signers.size >= 1_000) this.signers.clear();
      signer = new Webhook(secret);
      this.signers.set(secret, signer);
    }
    return signer;
  }
}

/** Reads at most SNIPPET_BYTES of a body (to its end or the first 1 KB, whichever comes first). */
async function readSnippet(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= SNIPPET_BYTES) break;
  }
  return Buffer.concat(chunks).subarray(0, SNIPPET_BYTES);
}

/** Text for the log: UTF-8 (invalid bytes replaced), without NUL (PostgreSQL text refuses it). */
function toText(bytes: Buffer): string {
  return bytes.toString('utf8').replaceAll('\u0000', '\uFFFD');
}

const TLS_CODES =
  /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT|UNABLE_TO_|EPROTO$|HOSTNAME_MISMATCH)/;

/** The class of a failed attempt, from the error undici (or the SSRF guard) gave. */
export function classify(error: unknown): DeliveryErrorClass {
  for (let e: unknown = error, depth = 0; e && depth < 4; depth++) {
    const err = e as { name?: string; code?: string; cause?: unknown };
    if (err.name === 'SsrfRefusedError') return 'ssrf-blocked';
    const code = err.code ?? '';
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT')
      return code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect' : 'timeout';
    if (TLS_CODES.test(code)) return 'tls';
    if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL')
      return 'connect';
    if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET') return 'reset';
    if (code.startsWith('HPE_') || err.name === 'HTTPParserError' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH')
      return 'invalid-response';
    e = err.cause;
  }
  return 'unknown';
}
