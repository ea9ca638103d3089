import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import type { Tenant } from '../../common/access/principal.js';
import { findNul } from '../../common/http/body-guards.js';
import { pbxError } from '../../pbx/pbx.errors.js';
import { maskDeep } from '../../common/logging/mask.js';
import { type CursorPage, keysetPage } from '../../common/pagination.js';
import { enforce } from '../../common/rate-limit/rate-limit.js';
import { RateLimitService } from '../../common/rate-limit/rate-limit.service.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import { PbxConnectionsService } from '../../pbx/connections/pbx-connections.service.js';
import { PbxRegistry } from '../../pbx/pbx-registry.js';
import { type InboundWebhook, PbxError, type VerifiedWebhook, type WebhookRecords } from '../../pbx/pbx-provider.js';
import type { InboxItemDto, ListInboxQuery } from './webhook-inbox.dto.js';
import { inboxCallKey, inboxPartition, recordsToJson } from './inbox-records.js';
import { type InboxRow, InboxWriter } from './inbox-writer.js';
import { WebhookInboxEntity } from './webhook-inbox.entity.js';
import { WebhookInboxProcessorService } from './webhook-inbox-processor.service.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface IngestResult {
  duplicate: boolean;
  inboxId: string | null;
  ack: { contentType: string; body: string } | null;
}

/**
 * Provider webhooks, exactly once in effect: verify (401 and nothing stored when it fails), map
 * once to canonical records, write to the inbox (unique per connection and provider event id;
 * the call key and its partition with it) and answer 2xx. Processing is the inbox processor's
 * (webhook-inbox-processor.service.ts), woken by the writer's commit; it is idempotent (call events by
 * key, voicemails and messages by provider id).
 */
@Injectable()
export class WebhookInboxService {
  private readonly logger = new Logger(WebhookInboxService.name);
  private readonly writer: InboxWriter;

  constructor(
    @InjectDataSource() dataSource: DataSource,
    @InjectRepository(WebhookInboxEntity) private readonly inbox: Repository<WebhookInboxEntity>,
    private readonly connections: PbxConnectionsService,
    private readonly registry: PbxRegistry,
    private readonly rateLimits: RateLimitService,
    processor: WebhookInboxProcessorService,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
  ) {
    this.writer = new InboxWriter(dataSource, () => processor.ingested());
  }

  async ingest(
    provider: string,
    connectionId: string,
    route: string,
    request: Omit<InboundWebhook, 'route'>,
  ): Promise<IngestResult> {
    const connection = UUID.test(connectionId) ? await this.connections.loadForWebhook(connectionId) : null;
    const driver = connection && connection.provider === provider ? this.registry.driver(connection.provider) : null;
    if (!connection || !driver || !driver.webhookRoutes.includes(route)) {
      throw pbxError('not-found', 'No such webhook endpoint.');
    }
    if (!connection.companyActive) {
      throw pbxError('company-suspended', 'The company of this connection is suspended.');
    }
    enforce(
      await this.rateLimits.hit(`webhook:${connection.id}`, this.config.RATE_LIMIT_WEBHOOK_PER_MIN),
      'this connection',
    );
    const client = this.registry.client(connection, connection.version);
    let verified: VerifiedWebhook;
    try {
      verified = await client.verifyWebhook({ ...request, route });
    } catch (error) {
      if (!(error instanceof PbxError)) throw error;
      if (error.code === 'AUTH') {
        this.logger.warn({ connectionId, provider, reason: error.message }, 'webhook refused: not verified');
        throw pbxError('invalid-signature', 'The webhook signature is missing or does not verify.');
      }
      if (error.code === 'STALE') {
        // Authentic but outside WEBHOOK_MAX_AGE_MS (± leeway): a replay or a lost clock; never stored.
        this.logger.warn({ connectionId, provider, reason: error.message }, 'webhook refused: stale');
        throw pbxError('stale-webhook', `The webhook is outside the accepted time window: ${error.message}`);
      }
      throw pbxError('malformed-webhook', `The webhook cannot be read: ${error.message}`);
    }
    // A signed body (a Dialpad JWT) is decoded after the edge's checks: PostgreSQL stores no NUL.
    const nulAt = findNul(verified.payload);
    if (nulAt !== undefined) {
      throw pbxError('malformed-webhook', `The webhook cannot be stored: a NUL character at ${nulAt || 'its root'}.`);
    }
    const payloadJson = JSON.stringify(verified.payload ?? null);
    // Mapped once, here: processing reads these records and never runs the mapper again. A
    // verified payload is plain JSON data already (parsed form or JSON bodies, decoded JWT claims),
    // so the mapper reads it as it is stored. A payload the mapper refuses is stored without
    // records (and fails at processing, as it did before).
    let records: WebhookRecords | null = verified.records ?? null;
    if (!records) {
      try {
        records = client.parseWebhook(verified);
      } catch (error) {
        this.logger.warn({ connectionId, provider, err: error }, 'webhook stored unmapped: the mapper refused it');
      }
    }
    const eventId = verified.eventId.slice(0, 200);
    const callKey = inboxCallKey(connection.id, eventId, records);
    const inboxId = await this.writer.write({
      companyId: connection.companyId,
      connectionId: connection.id,
      provider,
      route,
      kind: verified.kind.slice(0, 32),
      eventId,
      payloadJson,
      callKey,
      partition: inboxPartition(callKey),
      recordsJson: records ? recordsToJson(records) : null,
    });
    return { duplicate: inboxId === null, inboxId, ack: driver.webhookAck(route) };
  }

  /**
   * Writes a row verified and mapped elsewhere (the generic incoming webhook, which has no
   * connection) through the same group commit; resolves with its id once committed, or null when
   * the row was there already (a redelivery: nothing is processed again).
   */
  writeRow(row: InboxRow): Promise<string | null> {
    return this.writer.write(row);
  }

  async list(tenant: Tenant, query: ListInboxQuery): Promise<CursorPage<InboxItemDto>> {
    const qb = this.inbox.createQueryBuilder('w').where('w.company_id = :companyId', { companyId: tenant.companyId });
    if (query.status) qb.andWhere('w.status = :status', { status: query.status });
    if (query.connectionId) qb.andWhere('w.connection_id = :connectionId', { connectionId: query.connectionId });
    if (query.provider) qb.andWhere('w.provider = :provider', { provider: query.provider });
    return keysetPage(qb, 'w', 'received_at', query, toInboxItem);
  }
}

export function toInboxItem(w: WebhookInboxEntity): InboxItemDto {
  return {
    id: w.id,
    connectionId: w.connectionId,
    provider: w.provider,
    route: w.route,
    kind: w.kind,
    eventId: w.eventId,
    status: w.status,
    attempts: w.attempts,
    lastError: w.lastError,
    receivedAt: w.receivedAt.toISOString(),
    processedAt: w.processedAt ? w.processedAt.toISOString() : null,
    // Phone numbers masked (to their last 4 digits), as in the logs.
    payload: maskDeep(w.payload),
  };
}
