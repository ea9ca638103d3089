import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import pg from 'pg';
import type { EntityManager } from 'typeorm';
import { DATABASE_URL } from './database.tokens.js';

type Handler = (payload: string) => void;

/** The one channel our instances tell each other things on (cache invalidations). */
const CHANNEL = 'switchboard_events';

/**
 * PostgreSQL LISTEN/NOTIFY between application instances: a notification sent inside a
 * transaction is delivered to every instance when, and only if, that transaction commits. Used to
 * drop cached credentials at once when a key is revoked or a company suspended. After a lost
 * connection, `onReset` handlers run (notifications may have been missed) and it reconnects.
 */
@Injectable()
export class NotificationsService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(NotificationsService.name);
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly resetHandlers = new Set<() => void>();
  private client: pg.Client | null = null;
  private stopped = false;
  private retryMs = 250;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(@Inject(DATABASE_URL) private readonly databaseUrl: string) {}

  async onModuleInit(): Promise<void> {
    await this.connect();
  }

  /** Handles `<topic>:<rest>` payloads for a topic. */
  on(topic: string, handler: Handler): void {
    let set = this.handlers.get(topic);
    if (!set) this.handlers.set(topic, (set = new Set()));
    set.add(handler);
  }

  /** Runs after a reconnect: whatever was cached may be stale. */
  onReset(handler: () => void): void {
    this.resetHandlers.add(handler);
  }

  /** Queues `<topic>:<value>` for delivery when the transaction of `manager` commits. */
  async notify(manager: EntityManager, topic: string, value: string): Promise<void> {
    await manager.query('SELECT pg_notify($1, $2)', [CHANNEL, `${topic}:${value}`]);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.databaseUrl, application_name: 'switchboard-listen' });
    client.on('notification', (msg) => this.dispatch(msg.payload ?? ''));
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      this.client = client;
      this.retryMs = 250;
    } catch (error) {
      this.lost(client, error);
    }
  }

  private lost(client: pg.Client, error?: unknown): void {
    if (this.client !== client && this.client !== null) return;
    this.client = null;
    client.removeAllListeners();
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
    for (const reset of this.resetHandlers) reset();
    if (this.stopped || this.retryTimer) return;
    this.logger.warn({ err: error, retryMs: this.retryMs }, 'notification listener lost its connection; reconnecting');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
  }

  private dispatch(payload: string): void {
    const at = payload.indexOf(':');
    if (at < 0) return;
    for (const handler of this.handlers.get(payload.slice(0, at)) ?? []) handler(payload.slice(at + 1));
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
    }
  }
}
