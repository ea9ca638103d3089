import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AgentsService } from '../../agents/agents.service.js';
import { actorOf, roleAtLeast, type Tenant } from '../../common/access/principal.js';
import { AppException, ValidationFailedException } from '../../common/errors/problem.js';
import { ACTIVE_STATUSES } from '../../calls/call-state.js';
import { CallsService } from '../../calls/calls.service.js';
import { type LoadedConnection, PbxConnectionsService } from '../connections/pbx-connections.service.js';
import { ProviderSetupService } from '../connections/provider-setup.service.js';
import { viaPbx } from '../pbx-errors.js';
import { PbxError, type PbxCapabilities } from '../pbx-provider.js';
import type {
  CallCommandAcceptedDto,
  CallStatusDto,
  ClickToCallAcceptedDto,
  ClickToCallDto,
} from './click-to-call.dto.js';

/**
 * Click-to-call and live control of calls through the company's phone system. The provider is
 * asked first: when it fails (down, refused) nothing is written and the answer is a 502/503/422
 * problem. When it accepts, the call is recorded (queued, outbound, at the agent) with the
 * provider's call id, so the provider's own events for it land on the same record.
 */
@Injectable()
export class ClickToCallService {
  constructor(
    private readonly connections: PbxConnectionsService,
    private readonly calls: CallsService,
    private readonly agents: AgentsService,
    private readonly setup: ProviderSetupService,
  ) {}

  async clickToCall(tenant: Tenant, dto: ClickToCallDto): Promise<ClickToCallAcceptedDto> {
    const agentId = await this.agentFor(tenant, dto.agentId);
    const chosen = await this.connectionFor(tenant.companyId, dto.connectionId);
    this.requireCapability(chosen, 'originate');
    const connection = await viaPbx(chosen.provider, () => this.setup.fresh(chosen));
    const agent = await this.agents.identityAt(tenant.companyId, agentId, connection.provider);
    if (!agent)
      throw new ValidationFailedException([
        { field: 'agentId', messages: ['agentId must be an agent of the company'] },
      ]);

    const callId = randomUUID();
    const client = this.connections.clientOf(connection);
    const result = await viaPbx(connection.provider, () =>
      client.originate({ callId, to: dto.to, ...(dto.callerId ? { callerId: dto.callerId } : {}), agent }),
    );
    const { call } = await this.calls.apply({
      companyId: tenant.companyId,
      provider: connection.provider,
      connectionId: connection.id,
      providerCallId: result.providerCallId,
      callId,
      eventKey: 'click-to-call:originate',
      kind: 'queued',
      at: new Date(),
      direction: 'outbound',
      to: dto.to,
      ...(dto.callerId ? { from: dto.callerId } : {}),
      agent: { agentId },
      raw: { clickToCall: { ...actorOf(tenant.principal), connectionId: connection.id } },
    });
    return {
      callId: call.id,
      status: call.status,
      connectionId: connection.id,
      provider: connection.provider,
      providerCallId: result.providerCallId,
    };
  }

  async status(tenant: Tenant, id: string): Promise<CallStatusDto> {
    const call = await this.calls.findVisible(tenant, id);
    const out: CallStatusDto = {
      callId: call.id,
      status: call.status,
      endReason: call.endReason,
      answeredAt: call.answeredAt ? call.answeredAt.toISOString() : null,
      endedAt: call.endedAt ? call.endedAt.toISOString() : null,
      live: null,
    };
    if (!ACTIVE_STATUSES.includes(call.status) || !call.connectionId) return out;
    const connection = await this.connections.load(tenant.companyId, call.connectionId).catch(() => null);
    if (!connection || !this.connections.driverOf(connection).capabilities.status) return out;
    try {
      const ready = await this.setup.fresh(connection);
      out.live = await this.connections.clientOf(ready).status(call.providerCallId);
    } catch (error) {
      if (!(error instanceof PbxError)) throw error;
      out.liveError = error.code;
    }
    return out;
  }

  async hangup(tenant: Tenant, id: string): Promise<CallCommandAcceptedDto> {
    const { call, connection } = await this.controllable(tenant, id, 'hangup');
    await viaPbx(connection.provider, () => this.connections.clientOf(connection).hangup(call.providerCallId));
    return { callId: call.id, accepted: true };
  }

  async dtmf(tenant: Tenant, id: string, digits: string): Promise<CallCommandAcceptedDto> {
    const { call, connection } = await this.controllable(tenant, id, 'dtmf');
    if (!call.answeredAt) throw new AppException('call-not-answered', 409, 'DTMF needs an answered call.');
    await viaPbx(connection.provider, () =>
      this.connections.clientOf(connection).sendDtmf(call.providerCallId, digits),
    );
    return { callId: call.id, accepted: true };
  }

  /** An active call of the company (visible to the caller) on a connection that can do `what`. */
  private async controllable(
    tenant: Tenant,
    id: string,
    what: 'hangup' | 'dtmf',
  ): Promise<{ call: Awaited<ReturnType<CallsService['findVisible']>>; connection: LoadedConnection }> {
    const call = await this.calls.findVisible(tenant, id);
    if (!call.connectionId) {
      throw new AppException('call-not-controllable', 409, 'This call was not made through a phone-system connection.');
    }
    if (!ACTIVE_STATUSES.includes(call.status)) {
      throw new AppException('call-ended', 409, `The call has ended (${call.status}).`);
    }
    const connection = await this.connections.load(tenant.companyId, call.connectionId).catch((error: unknown) => {
      if (error instanceof AppException && error.status === 404) {
        throw new AppException('call-not-controllable', 409, 'The connection of this call was removed.');
      }
      throw error;
    });
    this.requireCapability(connection, what);
    return { call, connection: await viaPbx(connection.provider, () => this.setup.fresh(connection)) };
  }

  /** Checked before any vendor request, from the driver's declaration. */
  private requireCapability(connection: LoadedConnection, what: keyof Omit<PbxCapabilities, 'webhooks'>): void {
    if (!this.connections.driverOf(connection).capabilities[what]) {
      throw new AppException(
        'pbx-unsupported',
        422,
        `The phone system (${connection.provider}) cannot ${what === 'dtmf' ? 'send DTMF' : what} through its API.`,
        { pbxError: 'UNSUPPORTED' },
      );
    }
  }

  /** An agent user calls as itself; managers and API keys name the agent. */
  private async agentFor(tenant: Tenant, requested: string | undefined): Promise<string> {
    const p = tenant.principal;
    if (p.kind === 'user' && !roleAtLeast(p.role, 'manager')) {
      const own = await this.agents.forUser(tenant.companyId, p.userId);
      if (!own) {
        throw new ValidationFailedException([
          { field: 'agentId', messages: ['you have no agent profile to call from'] },
        ]);
      }
      if (requested && requested !== own.id) {
        throw new AppException('forbidden', 403, 'An agent places calls from its own phone only.');
      }
      return own.id;
    }
    if (!requested) {
      throw new ValidationFailedException([
        { field: 'agentId', messages: ['agentId is required: whose phone rings first'] },
      ]);
    }
    return requested;
  }

  private async connectionFor(companyId: string, requested: string | undefined): Promise<LoadedConnection> {
    if (requested) {
      return this.connections.load(companyId, requested).catch((error: unknown) => {
        if (error instanceof AppException && error.status === 404) {
          throw new ValidationFailedException([
            { field: 'connectionId', messages: ['connectionId must be a connection of the company'] },
          ]);
        }
        throw error;
      });
    }
    const usable = (await this.connections.loadAll(companyId)).filter(
      (c) => this.connections.driverOf(c).capabilities.originate,
    );
    if (usable.length === 1) return usable[0]!;
    if (usable.length === 0) {
      throw new AppException(
        'no-pbx-connection',
        409,
        'The company has no phone-system connection that can place calls.',
      );
    }
    throw new ValidationFailedException([
      { field: 'connectionId', messages: ['connectionId is required: the company has several connections'] },
    ]);
  }
}
