import { Inject, Logger, type OnApplicationShutdown } from '@nestjs/common';
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
import { AppException, codeFor, problemType, titleFor } from '../common/errors/problem.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import type { EventEnvelope } from '../events/event-envelope.js';
import { EventsService } from '../events/events.service.js';
import { ApiKeysService } from '../tenants/api-keys.service.js';
import { CompaniesService } from '../tenants/companies.service.js';
import { EventStreams, type StreamClient } from './event-streams.js';

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
 * the envelope `{ id, type, companyId, seq, occurredAt, agentId, data }`.
 */
@WebSocketGateway()
export class EventsGateway implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect, OnApplicationShutdown {
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
      socket.emit('error', problem(503, 'service-unavailable', 'The event stream is unavailable; reconnect.'));
      socket.disconnect(true);
    }
  }

  handleDisconnect(socket: Socket): void {
    const data = socket.data as ConnectionData | undefined;
    if (data?.client) this.streams.remove(data.companyId, data.client);
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
      if (!user) throw new AppException('unauthorized', 401, 'The access token is invalid or expired.');
      if (!user.companyId) throw new AppException('no-company', 403, 'Platform operators have no company stream.');
      await this.assertActive(user.companyId);
      let agentId: string | null = null;
      if (!roleAtLeast(user.role, 'manager')) {
        const agent = await this.agents.forUser(user.companyId, user.id);
        if (!agent)
          throw new AppException('no-agent', 403, 'This user has no agent profile: ask a manager to link one.');
        agentId = agent.id;
      }
      return { companyId: user.companyId, kind: 'user', userId: user.id, agentId, resumeFrom };
    }
    if (apiKey) {
      const found = await this.apiKeys.authenticate(apiKey);
      if (!found) throw new AppException('unauthorized', 401, 'The API key is unknown, revoked or expired.');
      const { companyActive, ...identity } = found;
      if (!identity.scopes.includes('calls:read') && !identity.scopes.includes('*')) {
        throw new AppException('insufficient-scope', 403, 'The API key lacks the scope calls:read.');
      }
      if (companyActive === false) throw new AppException('company-suspended', 403, 'This company is suspended.');
      if (companyActive === undefined) await this.assertActive(identity.companyId);
      if (
        requestedAgent &&
        !(/^[0-9a-f-]{36}$/i.test(requestedAgent) && (await this.agents.exists(identity.companyId, requestedAgent)))
      ) {
        throw new AppException('not-found', 404, 'No such agent in this company.');
      }
      return {
        companyId: identity.companyId,
        kind: 'api_key',
        apiKeyId: identity.apiKeyId,
        agentId: requestedAgent ?? null,
        resumeFrom,
      };
    }
    throw new AppException('unauthorized', 401, 'Send auth: { token } (a user access token) or auth: { apiKey }.');
  }

  private async assertActive(companyId: string): Promise<void> {
    if (!(await this.companies.isActive(companyId)))
      throw new AppException('company-suspended', 403, 'This company is suspended.');
  }
}

function parseSeq(value: unknown): number | undefined {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function problem(status: number, code: string, detail: string) {
  return { type: problemType(code), title: titleFor(status), status, detail };
}

/** A refused handshake: the client's `connect_error` has `message` = the code, `data` = the problem. */
function handshakeError(error: unknown): Error {
  const known = error instanceof AppException ? error : null;
  const status = known?.status ?? 500;
  const code = known?.code ?? codeFor(500);
  const err = new Error(code) as Error & { data: unknown };
  err.data = problem(status, code, known?.detail ?? 'The connection could not be set up.');
  return err;
}
