import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository, type SelectQueryBuilder } from 'typeorm';
import { AgentsService } from '../agents/agents.service.js';
import type { Tenant } from '../common/access/principal.js';
import { type CursorPage, keysetPage } from '../common/pagination.js';
import { phoneFilter } from '../calls/call-queries.service.js';
import { isoForDatabase } from '../calls/dto/calls.dto.js';
import { EventsService } from '../events/events.service.js';
import type { MessageRecord, PbxProviderName, VoicemailRecord } from '../pbx/pbx-provider.js';
import { MessageEntity } from './message.entity.js';
import type { ListMessagesQuery, ListVoicemailsQuery, MessageDto, VoicemailDto } from './messages.dto.js';
import { messagesError } from './messages.errors.js';
import { VoicemailEntity } from './voicemail.entity.js';

export interface RecordSource {
  companyId: string;
  connectionId: string;
  provider: string;
}

const iso = (d: Date) => d.toISOString();

export function toVoicemailDto(v: VoicemailEntity): VoicemailDto {
  return {
    id: v.id,
    connectionId: v.connectionId,
    provider: v.provider,
    providerVoicemailId: v.providerVoicemailId,
    callId: v.callId,
    agentId: v.agentId,
    from: v.fromNumber,
    to: v.toNumber,
    durationSeconds: v.durationSeconds,
    recordingUrl: v.recordingUrl,
    transcription: v.transcription,
    receivedAt: iso(v.receivedAt),
    createdAt: iso(v.createdAt),
  };
}

export function toMessageDto(m: MessageEntity): MessageDto {
  return {
    id: m.id,
    connectionId: m.connectionId,
    provider: m.provider,
    providerMessageId: m.providerMessageId,
    direction: m.direction,
    from: m.fromNumber,
    to: m.toNumber,
    text: m.text,
    status: m.status,
    agentId: m.agentId,
    sentAt: iso(m.sentAt),
    createdAt: iso(m.createdAt),
    updatedAt: iso(m.updatedAt),
  };
}

/**
 * Voicemails and SMS delivered by provider webhooks. Recording is idempotent per (connection,
 * provider id): a redelivery changes nothing (a message's later status is kept); a new one is
 * announced live (`voicemail.received`, `message.received`) in the same transaction.
 */
@Injectable()
export class MessagesService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(VoicemailEntity) private readonly voicemails: Repository<VoicemailEntity>,
    @InjectRepository(MessageEntity) private readonly messages: Repository<MessageEntity>,
    private readonly agents: AgentsService,
    private readonly events: EventsService,
  ) {}

  /**
   * Records a voicemail once per (connection, provider id); a later delivery of the same one
   * fills what was missing (link, transcription, duration) without announcing it again.
   */
  async recordVoicemail(source: RecordSource, record: VoicemailRecord, callId: string | null): Promise<boolean> {
    const agentId = record.agent
      ? await this.agents.resolve(source.companyId, { provider: source.provider as PbxProviderName, ...record.agent })
      : null;
    const envelope = await this.dataSource.transaction(async (m) => {
      // xmax = 0 only on a row this statement inserted (an update of a conflicting row sets it).
      const rows = (await m.query(
        `INSERT INTO voicemails (company_id, connection_id, provider, provider_voicemail_id, call_id, agent_id,
           from_number, to_number, duration_seconds, recording_url, transcription, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (connection_id, provider_voicemail_id) DO UPDATE SET
           call_id = COALESCE(voicemails.call_id, EXCLUDED.call_id),
           agent_id = COALESCE(voicemails.agent_id, EXCLUDED.agent_id),
           from_number = COALESCE(voicemails.from_number, EXCLUDED.from_number),
           to_number = COALESCE(voicemails.to_number, EXCLUDED.to_number),
           duration_seconds = COALESCE(EXCLUDED.duration_seconds, voicemails.duration_seconds),
           recording_url = COALESCE(EXCLUDED.recording_url, voicemails.recording_url),
           transcription = COALESCE(EXCLUDED.transcription, voicemails.transcription)
         RETURNING id, (xmax = 0) AS inserted`,
        [
          source.companyId,
          source.connectionId,
          source.provider,
          record.providerVoicemailId,
          callId,
          agentId,
          record.from ?? null,
          record.to ?? null,
          record.durationSeconds ?? null,
          record.recordingUrl ?? null,
          record.transcription ?? null,
          record.at,
        ],
      )) as { id: string; inserted: boolean }[];
      const row = rows[0];
      if (!row?.inserted) return null;
      const saved = await m.getRepository(VoicemailEntity).findOneByOrFail({ id: row.id });
      return this.events.append(
        m,
        source.companyId,
        'voicemail.received',
        { voicemail: toVoicemailDto(saved) },
        saved.agentId,
        record.at,
      );
    });
    if (envelope) this.events.publish([envelope]);
    return envelope !== null;
  }

  async recordMessage(source: RecordSource, record: MessageRecord): Promise<boolean> {
    const agentId = record.agent
      ? await this.agents.resolve(source.companyId, { provider: source.provider as PbxProviderName, ...record.agent })
      : null;
    const envelope = await this.dataSource.transaction(async (m) => {
      const rows = (await m.query(
        `INSERT INTO messages (company_id, connection_id, provider, provider_message_id, direction, from_number,
           to_number, text, status, agent_id, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (connection_id, provider_message_id) DO NOTHING RETURNING id`,
        [
          source.companyId,
          source.connectionId,
          source.provider,
          record.providerMessageId,
          record.direction,
          record.from ?? null,
          record.to ?? null,
          record.text,
          record.status ?? null,
          agentId,
          record.at,
        ],
      )) as { id: string }[];
      if (rows.length === 0) {
        // Known already: a later delivery status updates it, silently.
        if (record.status) {
          await m.query(
            `UPDATE messages SET status = $3, updated_at = now()
             WHERE connection_id = $1 AND provider_message_id = $2 AND status IS DISTINCT FROM $3`,
            [source.connectionId, record.providerMessageId, record.status],
          );
        }
        return null;
      }
      const saved = await m.getRepository(MessageEntity).findOneByOrFail({ id: rows[0]!.id });
      return this.events.append(
        m,
        source.companyId,
        'message.received',
        { message: toMessageDto(saved) },
        agentId,
        record.at,
      );
    });
    if (envelope) this.events.publish([envelope]);
    return envelope !== null;
  }

  // --- the API ------------------------------------------------------------------------------------

  async listVoicemails(tenant: Tenant, query: ListVoicemailsQuery): Promise<CursorPage<VoicemailDto>> {
    const own = await this.agents.visibleAgent(tenant);
    if (own === null) return { data: [], next: null };
    const qb = this.voicemails
      .createQueryBuilder('v')
      .where('v.company_id = :companyId', { companyId: tenant.companyId });
    this.filter(qb, 'v', 'received_at', own, query);
    return keysetPage(qb, 'v', 'received_at', query, toVoicemailDto);
  }

  async getVoicemail(tenant: Tenant, id: string): Promise<VoicemailDto> {
    return toVoicemailDto(await this.findVoicemail(tenant, id));
  }

  async deleteVoicemail(tenant: Tenant, id: string): Promise<void> {
    const v = await this.findVoicemail(tenant, id);
    await this.voicemails.delete({ companyId: tenant.companyId, id: v.id });
  }

  async listMessages(tenant: Tenant, query: ListMessagesQuery): Promise<CursorPage<MessageDto>> {
    const own = await this.agents.visibleAgent(tenant);
    if (own === null) return { data: [], next: null };
    const qb = this.messages
      .createQueryBuilder('m')
      .where('m.company_id = :companyId', { companyId: tenant.companyId });
    this.filter(qb, 'm', 'sent_at', own, query);
    if (query.to) qb.andWhere('m.to_number = :to', { to: phoneFilter(query.to) });
    if (query.direction) qb.andWhere('m.direction = :direction', { direction: query.direction });
    return keysetPage(qb, 'm', 'sent_at', query, toMessageDto);
  }

  private filter<E extends { id: string }>(
    qb: SelectQueryBuilder<E>,
    alias: string,
    time: string,
    own: string | undefined,
    query: ListVoicemailsQuery,
  ): void {
    if (own !== undefined) qb.andWhere(`${alias}.agent_id = :own`, { own });
    if (query.agentId) qb.andWhere(`${alias}.agent_id = :agentId`, { agentId: query.agentId });
    if (query.from) qb.andWhere(`${alias}.from_number = :from`, { from: phoneFilter(query.from) });
    if (query.since) {
      qb.andWhere(`${alias}.${time} >= CAST(:since AS timestamptz)`, { since: isoForDatabase(query.since) });
    }
    if (query.until) {
      qb.andWhere(`${alias}.${time} < CAST(:until AS timestamptz)`, { until: isoForDatabase(query.until) });
    }
  }

  private async findVoicemail(tenant: Tenant, id: string): Promise<VoicemailEntity> {
    const [v, own] = await Promise.all([
      this.voicemails.findOne({ where: { companyId: tenant.companyId, id } }),
      this.agents.visibleAgent(tenant),
    ]);
    if (!v || own === null || (own !== undefined && v.agentId !== own)) {
      throw messagesError('not-found', 'No such voicemail.');
    }
    return v;
  }

  /** As for calls: an agent user sees only what is its own; managers and keys see the company's. */
}
