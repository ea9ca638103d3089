import { Inject, Injectable, Logger } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { Webhook } from 'standardwebhooks';
import { type FieldError, validationFailed } from '../../common/errors/common.errors.js';
import { toFieldErrors } from '../../common/errors/validation.js';
import { enforce } from '../../common/rate-limit/rate-limit.js';
import { RateLimitService } from '../../common/rate-limit/rate-limit.service.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import { inboxPartition, recordsToJson } from '../inbox/inbox-records.js';
import { WebhookInboxService } from '../inbox/webhook-inbox.service.js';
import { GENERIC_PROVIDER, genericInboxCallKey, toCallRecords } from './incoming-call-event.mapper.js';
import { IncomingWebhookSecretsService } from './incoming-webhook-secrets.service.js';
import { IncomingCallEventDto, type IncomingWebhookAckDto, MAX_EVENTS_PER_REQUEST } from './incoming-webhooks.dto.js';
import { incomingError } from './incoming-webhooks.errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Seconds since the epoch, as Standard Webhooks sends them. */
const TIMESTAMP = /^\d{1,12}$/;
/** The inbox's event id column (varchar 200). */
const MAX_WEBHOOK_ID = 200;

/** A request as the controller hands it over (no Fastify types here). */
export interface IncomingRequest {
  /** Header names lower-case. */
  headers: Record<string, string | string[] | undefined>;
  /** The body bytes as received: the signature is over them. */
  rawBody: Buffer;
  /** The body as parsed (JSON). */
  body: unknown;
}

/**
 * The generic incoming webhook (issue 12): any phone system or script feeds call events in,
 * signed with the company's secret by the Standard Webhooks scheme. Order of checks, nothing
 * stored before the last one passes: the company and its secret (404), suspended (403), rate
 * limit (429), the signed time within ± WEBHOOK_MAX_AGE_MS (403 `stale-webhook`, checked first so
 * a replayed capture is named as such), the signature over the raw bytes with the current secret
 * or, during a rotation's overlap, the previous one (403 `incoming-signature-invalid`), then the
 * body (400 naming the field). Then one inbox row (provider `generic`, no connection, unique per
 * company and webhook-id: the same webhook-id again is answered `duplicate: true` and not
 * processed again), processed by the inbox processor like provider webhooks.
 */
@Injectable()
export class IncomingWebhooksService {
  private readonly logger = new Logger(IncomingWebhooksService.name);

  constructor(
    private readonly secrets: IncomingWebhookSecretsService,
    private readonly inbox: WebhookInboxService,
    private readonly rateLimits: RateLimitService,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
  ) {}

  async ingest(companyId: string, request: IncomingRequest): Promise<IncomingWebhookAckDto> {
    const company = companyId.toLowerCase();
    const found = UUID.test(company) ? await this.secrets.forVerification(company) : null;
    if (!found || found.secrets.length === 0) {
      throw incomingError('not-found', 'No such incoming webhook (unknown company, or no secret configured).');
    }
    if (!found.companyActive) throw incomingError('company-suspended', 'The company is suspended.');
    enforce(
      await this.rateLimits.hit(`webhook:incoming:${company}`, this.config.RATE_LIMIT_WEBHOOK_PER_MIN),
      'the incoming webhook of this company',
    );

    // Other types the application parses (forms, text, JWT) are not call events.
    const contentType = String(request.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (contentType !== 'application/json') {
      throw incomingError('unsupported-media-type', 'The body must be JSON (content-type: application/json).');
    }
    const webhookId = this.verify(company, found.secrets, request);
    const events = await this.validateBody(request.body);
    if (webhookId.length > MAX_WEBHOOK_ID) {
      throw validationFailed([
        { field: 'webhook-id', messages: [`webhook-id must be at most ${MAX_WEBHOOK_ID} characters`] },
      ]);
    }

    const records = toCallRecords(events);
    const callKey = genericInboxCallKey(company, events[0]!.callId);
    const inboxId = await this.inbox.writeRow({
      companyId: company,
      connectionId: null,
      provider: GENERIC_PROVIDER,
      route: '',
      kind: 'call',
      eventId: webhookId,
      payloadJson: JSON.stringify(request.body),
      callKey,
      partition: inboxPartition(callKey),
      recordsJson: recordsToJson(records),
    });
    return { received: true, duplicate: inboxId === null, events: events.length };
  }

  /** The Standard Webhooks checks; returns the webhook-id. */
  private verify(companyId: string, secrets: string[], request: IncomingRequest): string {
    const header = (name: string) => {
      const v = request.headers[name];
      return typeof v === 'string' && v.length > 0 ? v : undefined;
    };
    const id = header('webhook-id');
    const timestamp = header('webhook-timestamp');
    const signature = header('webhook-signature');
    if (!id || !timestamp || !signature) {
      throw this.refused(
        companyId,
        'missing headers',
        'The webhook-id, webhook-timestamp and webhook-signature headers are required.',
      );
    }
    if (!TIMESTAMP.test(timestamp)) {
      throw this.refused(companyId, 'bad timestamp', 'webhook-timestamp must be the seconds since the epoch.');
    }
    // The signed time first (a replayed capture is named as such): ± WEBHOOK_MAX_AGE_MS.
    const skewMs = Date.now() - Number(timestamp) * 1000;
    if (Math.abs(skewMs) > this.config.WEBHOOK_MAX_AGE_MS) {
      this.logger.warn({ companyId, skewMs }, 'incoming webhook refused: stale');
      throw incomingError(
        'stale-webhook',
        `webhook-timestamp is ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs > 0 ? 'old' : 'in the future'}; ` +
          `at most ${this.config.WEBHOOK_MAX_AGE_MS / 1000} s either way is accepted.`,
      );
    }
    const headers = { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature };
    let stale: string | undefined;
    for (const secret of secrets) {
      try {
        new Webhook(secret).verify(request.rawBody, headers, { jsonParse: false });
        return id;
      } catch (error) {
        // The library holds its own 5-minute tolerance; a wider WEBHOOK_MAX_AGE_MS meets it here.
        const message = error instanceof Error ? error.message : String(error);
        if (/timestamp too (old|new)/i.test(message)) stale = message;
      }
    }
    if (stale) throw incomingError('stale-webhook', `The webhook is outside the accepted time window: ${stale}.`);
    throw this.refused(companyId, 'no signature verifies', 'No signature in webhook-signature verifies.');
  }

  private refused(companyId: string, reason: string, detail: string) {
    this.logger.warn({ companyId, reason }, 'incoming webhook refused: not verified');
    return incomingError('incoming-signature-invalid', detail);
  }

  /**
   * The body, validated as the global ValidationPipe does (unknown properties refused): one call
   * event, or a list of 1..MAX_EVENTS_PER_REQUEST. 400 `validation-failed` naming each field
   * (`[2].from` in a list).
   */
  private async validateBody(body: unknown): Promise<IncomingCallEventDto[]> {
    const list = Array.isArray(body);
    const items: unknown[] = list ? (body as unknown[]) : [body];
    if (list && (items.length === 0 || items.length > MAX_EVENTS_PER_REQUEST)) {
      throw validationFailed([
        { field: '(body)', messages: [`a list must hold 1 to ${MAX_EVENTS_PER_REQUEST} call events`] },
      ]);
    }
    const errors: FieldError[] = [];
    const events: IncomingCallEventDto[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const prefix = list ? `[${i}]` : '';
      if (item === null || typeof item !== 'object' || Array.isArray(item)) {
        errors.push({ field: prefix || '(body)', messages: ['a call event must be a JSON object'] });
        continue;
      }
      const dto = plainToInstance(IncomingCallEventDto, item);
      const found = await validate(dto, { whitelist: true, forbidNonWhitelisted: true, stopAtFirstError: false });
      errors.push(...toFieldErrors(found, prefix));
      events.push(dto);
    }
    if (errors.length > 0) throw validationFailed(errors);
    return events;
  }
}
