import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AgentsService } from '../agents/agents.service.js';
import { actorOf, type Tenant } from '../common/access/principal.js';
import { type FieldError, validationFailed } from '../common/errors/common.errors.js';
import { EventsService } from '../events/events.service.js';
import { type BatchFields, CallApplyService } from './call-apply.service.js';
import type { CallEvent } from './call-event.js';
import { CallQueriesService } from './call-queries.service.js';
import { callNotFound } from './calls.errors.js';
import { type CallView, type ScreenPopCall, toCallView } from './call-view.js';
import type { CallEntity } from './call.entity.js';
import type { CreateCallDto, ScreenPopDto, UpdateCallDto } from './dto/calls.dto.js';

/** What users do to calls: log one by hand, change its notes, assign it, pop a screen. */
@Injectable()
export class CallCommandsService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly apply: CallApplyService,
    private readonly queries: CallQueriesService,
    private readonly agents: AgentsService,
    private readonly events: EventsService,
  ) {}

  /**
   * Logs a call by hand: one event per milestone (ringing at startedAt, answered, ended), applied
   * as a phone system's would be (the one apply), so the same state machine derives its status
   * and durations.
   */
  async logManual(tenant: Tenant, dto: CreateCallDto): Promise<CallView> {
    const startedAt = new Date(dto.startedAt);
    const answeredAt = dto.answeredAt === undefined ? null : new Date(dto.answeredAt);
    const endedAt = dto.endedAt === undefined ? null : new Date(dto.endedAt);
    const errors: FieldError[] = [];
    if (answeredAt && answeredAt < startedAt) {
      errors.push({ field: 'answeredAt', messages: ['answeredAt must not be before startedAt'] });
    }
    if (endedAt && endedAt < (answeredAt ?? startedAt)) {
      const after = answeredAt ? 'answeredAt' : 'startedAt';
      errors.push({ field: 'endedAt', messages: [`endedAt must not be before ${after}`] });
    }
    if (dto.endReason && !endedAt) errors.push({ field: 'endReason', messages: ['endReason needs endedAt'] });
    if (dto.agentId && !(await this.agents.exists(tenant.companyId, dto.agentId))) errors.push(noSuchAgent('agentId'));
    if (errors.length > 0) throw validationFailed(errors);

    const base = {
      companyId: tenant.companyId,
      provider: 'manual',
      providerCallId: randomUUID(),
      raw: { manual: true, ...actorOf(tenant.principal) },
      // Every event carries who and where, so that whichever is applied first names them.
      direction: dto.direction,
      from: dto.from,
      to: dto.to,
      ...(dto.agentId ? { agent: { agentId: dto.agentId } } : {}),
    };
    const events: CallEvent[] = [{ ...base, eventKey: 'manual:ringing', kind: 'ringing', at: startedAt }];
    if (answeredAt) events.push({ ...base, eventKey: 'manual:answered', kind: 'answered', at: answeredAt });
    if (endedAt) {
      events.push({
        ...base,
        eventKey: 'manual:ended',
        kind: 'ended',
        at: endedAt,
        ...(dto.endReason ? { endReason: dto.endReason } : {}),
      });
    }
    // One batch, in lifecycle order: the company sees call.ringing, call.answered (when answered)
    // and call.ended (when ended), in that order, the last with the final status; the notes,
    // disposition and tags are set in the same transaction, so every envelope carries them and no
    // call.updated follows.
    const fields: BatchFields = {};
    if (dto.notes !== undefined) fields.notes = dto.notes;
    if (dto.disposition !== undefined) fields.disposition = dto.disposition;
    if (dto.tags !== undefined) fields.tags = dto.tags;
    const results = await this.apply.applyBatch(events, fields);
    return toCallView(results[results.length - 1]!.call);
  }

  /** Notes, disposition, tags; an agent user changes only its own calls. */
  async updateCall(tenant: Tenant, id: string, dto: UpdateCallDto): Promise<CallView> {
    const own = await this.agents.visibleAgent(tenant);
    if (own === null) throw callNotFound();
    if (dto.notes === undefined && dto.disposition === undefined && dto.tags === undefined) {
      // Nothing to change: no event.
      return toCallView(await this.queries.findVisible(tenant, id));
    }
    const saved = await this.apply.updateFields(tenant.companyId, id, (call) => {
      // Checked on the locked row: an assignment cannot slip in between.
      if (own !== undefined && call.agentId !== own) throw callNotFound();
      setCallFields(call, dto);
    });
    return toCallView(saved);
  }

  /** Assigns the call to an agent of the company; the latest assignment wins over the provider's. */
  async assign(tenant: Tenant, id: string, agentId: string): Promise<CallView> {
    if (!(await this.agents.exists(tenant.companyId, agentId))) {
      throw validationFailed([noSuchAgent('agentId')]);
    }
    const { call } = await this.apply.applyToCall(tenant.companyId, id, {
      eventKey: `assign:${randomUUID()}`,
      kind: 'updated',
      at: new Date(),
      agentId,
    });
    return toCallView(call);
  }

  /**
   * A screen pop by hand: a `call.ringing` event for the agent, shaped as a real one (`call`,
   * `contact`) and marked `manual`. With a callId, the call's record; else a call made of the
   * request (id null). Nothing is stored but the event.
   */
  async screenPop(tenant: Tenant, dto: ScreenPopDto): Promise<{ eventId: string; seq: number }> {
    const [agentKnown, call] = await Promise.all([
      this.agents.exists(tenant.companyId, dto.agentId),
      dto.callId ? this.queries.find(tenant.companyId, dto.callId) : null,
    ]);
    const errors: FieldError[] = [];
    if (!agentKnown) errors.push(noSuchAgent('agentId'));
    if (dto.callId && !call) errors.push({ field: 'callId', messages: ['callId must be a call of the company'] });
    if (errors.length > 0) throw validationFailed(errors);

    const view: ScreenPopCall = call ? toCallView(call) : syntheticRingingCall(dto, new Date());
    const [envelope] = await this.dataSource.transaction((m) =>
      this.events.appendMany(m, tenant.companyId, [
        { type: 'call.ringing', data: { call: view, contact: null, manual: true }, agentId: dto.agentId },
      ]),
    );
    if (!envelope) throw new Error('appendMany wrote no event');
    this.events.publish([envelope]);
    return { eventId: envelope.id, seq: envelope.seq };
  }
}

function syntheticRingingCall(dto: ScreenPopDto, now: Date): ScreenPopCall {
  const at = now.toISOString();
  return {
    id: null,
    provider: 'manual',
    connectionId: null,
    providerCallId: null,
    direction: 'inbound',
    status: 'ringing',
    from: dto.from,
    to: dto.to ?? null,
    callerName: dto.callerName ?? null,
    agentId: dto.agentId,
    startedAt: at,
    ringingAt: at,
    answeredAt: null,
    endedAt: null,
    ringSeconds: null,
    talkSeconds: null,
    durationSeconds: null,
    endReason: null,
    hangupCause: null,
    recordingUrl: null,
    contact: null,
    ai: null,
    tags: [],
    notes: null,
    disposition: null,
    createdAt: at,
    updatedAt: at,
  };
}

function setCallFields(call: CallEntity, dto: UpdateCallDto): void {
  if (dto.notes !== undefined) call.notes = dto.notes;
  if (dto.disposition !== undefined) call.disposition = dto.disposition;
  if (dto.tags !== undefined) call.tags = dto.tags;
}

function noSuchAgent(field: string): FieldError {
  return { field, messages: [`${field} must be an agent of the company`] };
}
