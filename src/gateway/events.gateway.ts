import { type BeforeApplicationShutdown, Inject, Logger, type OnApplicationShutdown } from '@nestjs/common';
import {
  type OnGatewayConnection,
  type OnGatewayDisconnect,
  type OnGatewayInit,
  WebSocketGateway,
  WebSocketServer,
} from '@nestjs/websockets';
import type { Subscription } from 'rxjs';
import type { Server, Socket } from 'socket.io';
import { AgentsService } from '../agents/agents.service.js';
import { AuthService } from '../auth/auth.service.js';
import { roleAtLeast } from '../common/access/principal.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import type { EventEnvelope } from '../events/event-envelope.js';
import { EventsService } from '../events/events.service.js';
import { ApiKeysService } from '../tenants/api-keys.service.js';
import { CompaniesService } from '../tenants/companies.service.js';
import { EventStreams, type StreamClient } from './event-streams.js';
import { gatewayError, handshakeError, socketProblem } from './gateway.errors.js';

/** What a connection is allowed to receive, settled in the handshake. */
export interface ConnectionData {
  companyId: string;
  kind: 'user' | 'api_key';
  userId?: string;
  apiKeyId?: string;
  /** Set for an agent (its own events only) or an API key subscribed to one agent. */
  agentId: string | null;
  resumeFrom?: number;
  client?: StreamClient;
}

const CROSS_INSTANCE = 'switchboard:event';

/** Rooms, for presence across instances (delivery itself goes through EventStreams). */
export const clientsRoom = (companyId: string) => `company:${companyId}`;
export const agentRoom = (agentId: string) => `agent:${agentId}`;
export const agentsRoom = (companyId: string) => `agents:${companyId}`;

/**
 * The live gateway (socket.io at /socket.io). The handshake carries a user's access token
 * (`auth.token`, or `Authorization: Bearer`) or an API key (`auth.apiKey`, `x-api-key`, or the
 * `api_key` query parameter of the CTI server this replaces); optionally `auth.lastSeq` to resume
 * and, for an API key, `auth.agentId` to follow one agent. Refused handshakes get a
 * `connect_error` whose `data` is a problem object. Agents receive their own events; managers,
 * admins, owners and API keys every event of their company. Each event is sent as `event` with
 * the envelope `{ id, type, companyId, seq, occurredAt, agentId, data }`. With `lastSeq`, the
 * missed events are replayed first and `ready` follows them (`ready` = caught up): replayed
 * events arrive before `ready`.
 */
@WebSocketGateway()
export class EventsGateway
  implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly logger = new Logger(EventsGateway.name);
  @WebSocketServer() server!: Server;
  readonly streams: EventStreams;
  private subscription?: Subscription;
  private crossInstance = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
    private readonly auth: AuthService,
    private readonly apiKeys: ApiKeysService,
    private readonly companies: CompaniesService,
    private readonly agents: AgentsService,
    private readonly events: EventsService,
  ) {
    // A live event is encoded once and written to all its local recipients (never through the
    // adapter: each instance delivers to its own sockets, in order).
    this.streams = new EventStreams(events, (clients, envelope) => {
      const ids = clients.map((c) => c.id).filter((id): id is string => id !== undefined);
      if (ids.length > 0) this.server.local.to(ids).emit('event', envelope);
    });
  }

  afterInit(server: Server): void {
    this.crossInstance = Boolean(this.config.REDIS_URL);
    server.use((socket, next) => {
      this.authenticate(socket).then(
        (data) => {
          socket.data = data;
          next();
        },
        (error: unknown) => next(handshakeError(error)),
      );
    });
    this.subscription = this.events.produced$.subscribe((envelope) => {
      this.streams.ingest(envelope);
      if (this.crossInstance) server.serverSideEmit(CROSS_INSTANCE, envelope);
    });
    server.on(CROSS_INSTANCE, (envelope: EventEnvelope) => this.streams.ingest(envelope));
  }

  async handleConnection(socket: Socket): Promise<void> {
    const data = socket.data as ConnectionData;
    if (!data?.companyId) return; // refused in the handshake
    await socket.join([clientsRoom(data.companyId), ...(data.agentId ? [agentRoom(data.agentId)] : [])]);
    if (data.kind === 'user' && data.agentId) await socket.join(agentsRoom(data.companyId));
    const client: StreamClient = {
      id: socket.id,
      agentId: data.agentId,
      live: false,
      lastSeq: 0,
      send: (envelope) => socket.emit('event', envelope),
    };
    data.client = client;
    try {
      const seq = await this.streams.add(data.companyId, client, data.resumeFrom);
      socket.emit('ready', { companyId: data.companyId, agentId: data.agentId, seq });
    } catch (error) {
      this.logger.error({ err: error }, 'could not open the event stream of a connection');
      socket.emit('error', socketProblem(503, 'service-unavailable', 'The event stream is unavailable; reconnect.'));
      socket.disconnect(true);
    }
  }

  handleDisconnect(socket: Socket): void {
    const data = socket.data as ConnectionData | undefined;
    if (data?.client) this.streams.remove(data.companyId, data.client);
  }

  /**
   * A stop (after the HTTP requests in flight are answered): each socket of this instance is sent
   * `server.shutdown` `{ reconnect: true, lastSeq }` and its transport is closed. socket.io
   * clients see the reason `transport close` and reconnect by themselves (unlike after a server
   * `disconnect()`); passing `lastSeq` in `auth` on reconnect replays what they missed meanwhile.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.subscription?.unsubscribe();
    const sockets = [...this.server.of('/').sockets.values()];
    await Promise.all(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve) => {
            const data = socket.data as ConnectionData | undefined;
            socket.emit('server.shutdown', { reconnect: true, lastSeq: data?.client?.lastSeq ?? null });
            // engine.io flushes what is buffered (the event above) before closing the transport.
            const done = setTimeout(resolve, 1_000); // a client that never reads must not hold the stop
            socket.conn.once('close', () => {
              clearTimeout(done);
              resolve();
            });
            socket.conn.close();
          }),
      ),
    );
  }

  onApplicationShutdown(): void {
    this.subscription?.unsubscribe();
    this.streams.close();
  }

  private async authenticate(socket: Socket): Promise<ConnectionData> {
    const hs = socket.handshake;
    const auth = (hs.auth ?? {}) as Record<string, unknown>;
    const header =
      typeof hs.headers.authorization === 'string'
        ? /^Bearer\s+(\S+)$/i.exec(hs.headers.authorization)?.[1]
        : undefined;
    const token = typeof auth.token === 'string' ? auth.token : header;
    const keyHeader = hs.headers['x-api-key'];
    const apiKey =
      typeof auth.apiKey === 'string'
        ? auth.apiKey
        : typeof keyHeader === 'string'
          ? keyHeader
          : typeof hs.query.api_key === 'string'
            ? hs.query.api_key
            : undefined;
    const resumeFrom = parseSeq(auth.lastSeq ?? hs.query.lastSeq);
    const requestedAgent = typeof auth.agentId === 'string' ? auth.agentId : undefined;

    if (token) {
      const claims = await this.auth.verifyAccessToken(token);
      const user = claims ? await this.auth.identityOf(claims) : null;
      if (!user) throw gatewayError('unauthorized', 'The access token is invalid or expired.');
      if (!user.companyId) throw gatewayError('no-company', 'Platform operators have no company stream.');
      await this.assertActive(user.companyId);
      let agentId: string | null = null;
      if (!roleAtLeast(user.role, 'manager')) {
        const agent = await this.agents.forUser(user.companyId, user.id);
        if (!agent) throw gatewayError('no-agent', 'This user has no agent profile: ask a manager to link one.');
        agentId = agent.id;
      }
      return { companyId: user.companyId, kind: 'user', userId: user.id, agentId, resumeFrom };
    }
    if (apiKey) {
      const found = await this.apiKeys.authenticate(apiKey);
      if (!found) throw gatewayError('unauthorized', 'The API key is unknown, revoked or expired.');
      const { companyActive, ...identity } = found;
      if (!identity.scopes.includes('calls:read') && !identity.scopes.includes('*')) {
        throw gatewayError('insufficient-scope', 'The API key lacks the scope calls:read.');
      }
      if (companyActive === false) throw gatewayError('company-suspended', 'This company is suspended.');
      if (companyActive === undefined) await this.assertActive(identity.companyId);
      if (
        requestedAgent &&
        !(/^[0-9a-f-]{36}$/i.test(requestedAgent) && (await this.agents.exists(identity.companyId, requestedAgent)))
      ) {
        throw gatewayError('not-found', 'No such agent in this company.');
      }
      return {
        companyId: identity.companyId,
        kind: 'api_key',
        apiKeyId: identity.apiKeyId,
        agentId: requestedAgent ?? null,
        resumeFrom,
      };
    }
    throw gatewayError('unauthorized', 'Send auth: { token } (a user access token) or auth: { apiKey }.');
  }

  private async assertActive(companyId: string): Promise<void> {
    if (!(await this.companies.isActive(companyId)))
      throw gatewayError('company-suspended', 'This company is suspended.');
  }
}

function parseSeq(value: unknown): number | undefined {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
