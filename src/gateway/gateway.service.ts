import { Injectable } from '@nestjs/common';
import { CallQueriesService } from '../calls/call-queries.service.js';
import { EventsService } from '../events/events.service.js';
import { agentsRoom, clientsRoom, type ConnectionData, EventsGateway } from './events.gateway.js';

export interface ConnectedAgent {
  agentId: string;
  userId: string | null;
  connections: number;
}

/** Presence and status, across instances (socket.io's fetchSockets goes through the adapter). */
@Injectable()
export class GatewayService {
  constructor(
    private readonly gateway: EventsGateway,
    private readonly events: EventsService,
    private readonly calls: CallQueriesService,
  ) {}

  async connectedAgents(companyId: string): Promise<ConnectedAgent[]> {
    const sockets = await this.gateway.server.in(agentsRoom(companyId)).fetchSockets();
    const byAgent = new Map<string, ConnectedAgent>();
    for (const socket of sockets) {
      const data = socket.data as ConnectionData;
      if (!data.agentId) continue;
      const entry = byAgent.get(data.agentId) ?? { agentId: data.agentId, userId: data.userId ?? null, connections: 0 };
      entry.connections++;
      byAgent.set(data.agentId, entry);
    }
    return [...byAgent.values()].sort((a, b) => a.agentId.localeCompare(b.agentId));
  }

  async status(companyId: string) {
    const [clients, agents, activeCalls, lastSeq] = await Promise.all([
      this.gateway.server.in(clientsRoom(companyId)).fetchSockets(),
      this.connectedAgents(companyId),
      this.calls.countActive(companyId),
      this.events.latestSeq(companyId),
    ]);
    return {
      activeCalls,
      connectedAgents: agents.length,
      connectedClients: clients.length,
      /** Events of this company so far (its sequence number). */
      eventsProcessed: lastSeq,
      lastSeq,
      uptimeSeconds: Math.round(process.uptime()),
    };
  }
}
