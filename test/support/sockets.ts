import { io, type Socket } from 'socket.io-client';
import type { EventEnvelope } from '../../src/events/event-envelope.js';

export interface LiveClient {
  socket: Socket;
  ready: { companyId: string; agentId: string | null; seq: number };
  events: EventEnvelope[];
  /** Resolves when `n` events have arrived in all (rejects after `ms`). */
  waitFor(n: number, ms?: number): Promise<EventEnvelope[]>;
  close(): void;
}

/** Connects to the gateway; resolves on `ready`, rejects with the handshake's problem. */
export function connect(
  url: string,
  auth: Record<string, unknown>,
  extra: { query?: Record<string, string>; headers?: Record<string, string> } = {},
): Promise<LiveClient> {
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      path: '/socket.io',
      transports: ['websocket'],
      auth,
      query: extra.query,
      extraHeaders: extra.headers,
      reconnection: false,
      forceNew: true,
    });
    const events: EventEnvelope[] = [];
    const waiters: (() => void)[] = [];
    socket.on('event', (envelope: EventEnvelope) => {
      events.push(envelope);
      for (const w of waiters.splice(0)) w();
    });
    socket.once('connect_error', (error: Error & { data?: unknown }) => {
      socket.close();
      reject(Object.assign(new Error(error.message), { data: error.data }));
    });
    socket.once('ready', (ready: LiveClient['ready']) => {
      resolve({
        socket,
        ready,
        events,
        close: () => socket.close(),
        waitFor: (n, ms = 5_000) =>
          new Promise((ok, fail) => {
            const deadline = setTimeout(
              () =>
                fail(
                  new Error(
                    `expected ${n} events within ${ms} ms, got ${events.length}: ${events.map((e) => `${e.seq}:${e.type}`).join(', ')}`,
                  ),
                ),
              ms,
            );
            const check = () => {
              if (events.length >= n) {
                clearTimeout(deadline);
                ok(events);
              } else waiters.push(check);
            };
            check();
          }),
      });
    });
  });
}

/** The handshake error a connection attempt gets (fails the test if it connects). */
export async function refusal(
  url: string,
  auth: Record<string, unknown>,
  extra?: Parameters<typeof connect>[2],
): Promise<{ message: string; data: { type: string; status: number; detail: string } }> {
  try {
    const client = await connect(url, auth, extra);
    client.close();
  } catch (error) {
    return error as { message: string; data: { type: string; status: number; detail: string } };
  }
  throw new Error('the connection was accepted');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
