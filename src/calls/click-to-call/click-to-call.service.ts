import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { AgentsService } from '../../agents/agents.service.js';
import { actorOf, roleAtLeast, type Tenant } from '../../common/access/principal.js';
import { commonError, isAppException, validationFailed } from '../../common/errors/common.errors.js';
import { callsError } from '../calls.errors.js';
import { pbxError } from '../../pbx/pbx.errors.js';
import { ACTIVE_STATUSES } from '../call-state.js';
import { CallApplyService } from '../call-apply.service.js';
import { CallQueriesService } from '../call-queries.service.js';
import { type LoadedConnection, PbxConnectionsService } from '../../pbx/connections/pbx-connections.service.js';
import { ProviderSetupService } from '../../pbx/connections/provider-setup.service.js';
import { viaPbx } from '../../pbx/pbx-errors.js';
import { PbxError, type PbxCapabilities } from '../../pbx/pbx-provider.js';
import { PbxRegistry } from '../../pbx/pbx-registry.js';
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
    private readonly callApply: CallApplyService,
    private readonly callQueries: CallQueriesService,
    private readonly agents: AgentsService,
    private readonly setup: ProviderSetupService,
    private readonly registry: PbxRegistry,
  ) {}

  async clickToCall(tenant: Tenant, dto: ClickToCallDto): Promise<ClickToCallAcceptedDto> {
    const agentId = await this.agentFor(tenant, dto.agentId);
    const chosen = await this.connectionFor(tenant.companyId, dto.connectionId);
    this.requireCapability(chosen, 'originate');
    const connection = await viaPbx(chosen.provider, () => this.setup.fresh(chosen));
    const agent = await this.agents.identityAt(tenant.companyId, agentId, connection.provider);
    if (!agent) throw validationFailed([{ field: 'agentId', messages: ['agentId must be an agent of the company'] }]);

    const callId = randomUUID();
    const client = this.registry.client(connection, connection.version);
    const result = await viaPbx(connection.provider, () =>
      client.originate({ callId, to: dto.to, ...(dto.callerId ? { callerId: dto.callerId } : {}), agent }),
    );
    const { call } = await this.callApply.apply({
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
    const call = await this.callQueries.findVisible(tenant, id);
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
    if (!connection || !this.registry.driver(connection.provider).capabilities.status) return out;
    try {
      const ready = await this.setup.fresh(connection);
      out.live = await this.registry.client(ready, ready.version).status(call.providerCallId);
    } catch (error) {
      if (!(error instanceof PbxError)) throw error;
      out.liveError = error.code;
    }
    return out;
  }

  async hangup(tenant: Tenant, id: string): Promise<CallCommandAcceptedDto> {
    const { call, connection } = await this.controllable(tenant, id, 'hangup');
    await viaPbx(connection.provider, () =>
      this.registry.client(connection, connection.version).hangup(call.providerCallId, { id: call.id }),
    );
    return { callId: call.id, accepted: true };
  }

  async dtmf(tenant: Tenant, id: string, digits: string): Promise<CallCommandAcceptedDto> {
    const { call, connection } = await this.controllable(tenant, id, 'dtmf');
    if (!call.answeredAt) throw callsError('call-not-answered', 'DTMF needs an answered call.');
    await viaPbx(connection.provider, () =>
      this.registry.client(connection, connection.version).sendDtmf(call.providerCallId, digits, { id: call.id }),
    );
    return { callId: call.id, accepted: true };
  }

  /** An active call of the company (visible to the caller) on a connection that can do `what`. */
  private async controllable(
    tenant: Tenant,
    id: string,
    what: 'hangup' | 'dtmf',
  ): Promise<{ call: Awaited<ReturnType<CallQueriesService['findVisible']>>; connection: LoadedConnection }> {
    const call = await this.callQueries.findVisible(tenant, id);
    if (!call.connectionId) {
      throw callsError('call-not-controllable', 'This call was not made through a phone-system connection.');
    }
    if (!ACTIVE_STATUSES.includes(call.status)) {
      throw callsError('call-ended', `The call has ended (${call.status}).`);
    }
    const connection = await this.connections.load(tenant.companyId, call.connectionId).catch((error: unknown) => {
      if (isAppException(error) && error.status === 404) {
        throw callsError('call-not-controllable', 'The connection of this call was removed.');
      }
      throw error;
    });
    this.requireCapability(connection, what);
    return { call, connection: await viaPbx(connection.provider, () => this.setup.fresh(connection)) };
  }

  /**
   * Checked before any vendor request, from the driver's declaration. DTMF that the vendor's API
   * lacks altogether (Dialpad, NetSapiens: README "capability matrix") is 501
   * `unsupported-by-provider` naming the vendor: nothing the caller can change makes it work.
   */
  private requireCapability(connection: LoadedConnection, what: keyof Omit<PbxCapabilities, 'webhooks'>): void {
    const driver = this.registry.driver(connection.provider);
    if (what === 'dtmf' && !driver.capabilities.dtmf) {
      throw callsError(
        'unsupported-by-provider',
        `${connection.provider} has no API operation to send DTMF into a call; capabilities.dtmf is false on this connection.`,
        { provider: connection.provider, capability: 'dtmf' },
      );
    }
    if (!driver.capabilities[what]) {
      throw pbxError(
        'pbx-unsupported',
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
        throw validationFailed([{ field: 'agentId', messages: ['you have no agent profile to call from'] }]);
      }
      if (requested && requested !== own.id) {
        throw commonError('forbidden', 'An agent places calls from its own phone only.');
      }
      return own.id;
    }
    if (!requested) {
      throw validationFailed([{ field: 'agentId', messages: ['agentId is required: whose phone rings first'] }]);
    }
    return requested;
  }

  private async connectionFor(companyId: string, requested: string | undefined): Promise<LoadedConnection> {
    if (requested) {
      return this.connections.load(companyId, requested).catch((error: unknown) => {
        if (isAppException(error) && error.status === 404) {
          throw validationFailed([
            { field: 'connectionId', messages: ['connectionId must be a connection of the company'] },
          ]);
        }
        throw error;
      });
    }
    const usable = (await this.connections.loadAll(companyId)).filter(
      (c) => this.registry.driver(c.provider).capabilities.originate,
    );
    if (usable.length === 1) return usable[0]!;
    if (usable.length === 0) {
      throw callsError('no-pbx-connection', 'The company has no phone-system connection that can place calls.');
    }
    throw validationFailed([
      { field: 'connectionId', messages: ['connectionId is required: the company has several connections'] },
    ]);
  }
}
