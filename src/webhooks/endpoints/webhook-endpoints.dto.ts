import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsBoolean,
  IsInt,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  registerDecorator,
  type ValidationArguments,
} from 'class-validator';
import { EVENT_TYPES } from '../../events/event-envelope.js';
import { Omittable } from '../../common/validation.js';
import { ENDPOINT_DISABLED_REASONS, type EndpointDisabledReason } from './webhook-endpoint.entity.js';
import { headerProblems, MAX_HEADER_VALUE, MAX_HEADERS, MAX_HEADERS_BYTES } from './endpoint-headers.js';
import { unknownEventTypes } from './event-type-filter.js';

export const MAX_URL_LENGTH = 2048;
export const MAX_DESCRIPTION = 500;
export const MAX_EVENT_TYPES = 50;
export const MIN_RATE_LIMIT = 1;
export const MAX_RATE_LIMIT = 10_000;

const URL_DOC =
  'Where events are POSTed. https, unless the target is allow-listed (WEBHOOK_ALLOWED_TARGETS); no user:password. ' +
  'The host must resolve to public addresses only (loopback, private, link-local, CGNAT, multicast and metadata ' +
  'addresses are refused: SSRF guard), checked now and again at every delivery. Redirects are not followed.';
const EVENT_TYPES_DOC =
  `Event types to send: catalogue types (${EVENT_TYPES.join(', ')}), \`prefix.*\` wildcards such as \`call.*\`, ` +
  'or `*` for all.';
const HEADERS_DOC =
  `Extra request headers, name → value (at most ${MAX_HEADERS}; values up to ${MAX_HEADER_VALUE} visible ASCII ` +
  `characters; ${MAX_HEADERS_BYTES} bytes in all). Not \`webhook-*\` (the signature headers), nor hop-by-hop or ` +
  'framing headers (connection, keep-alive, proxy-*, te, trailer, transfer-encoding, upgrade, host, content-length, ' +
  'content-type, content-encoding, expect).';

/** A syntactically valid absolute http(s) URL of at most 2048 characters (SSRF checks come after). */
function IsWebhookUrl() {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'isWebhookUrl',
      target: object.constructor,
      propertyName,
      validator: {
        validate: (value: unknown) => urlProblem(value) === null,
        defaultMessage: (args?: ValidationArguments) => urlProblem(args?.value) ?? 'url is not valid',
      },
    });
}

function urlProblem(value: unknown): string | null {
  if (typeof value !== 'string') return 'url must be a string';
  if (value.length > MAX_URL_LENGTH) return `url must be at most ${MAX_URL_LENGTH} characters`;
  if (value.trim() !== value || value === '') return 'url must be an absolute URL without surrounding spaces';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'url must be an absolute URL such as https://example.com/webhooks';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'url must start with https://';
  if (url.hostname === '') return 'url must name a host';
  return null;
}

/** Every entry a catalogue type or a wildcard matching one. */
function AreKnownEventTypes() {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'areKnownEventTypes',
      target: object.constructor,
      propertyName,
      validator: {
        validate: (value: unknown) =>
          !Array.isArray(value) ||
          !value.every((v) => typeof v === 'string') ||
          unknownEventTypes(value as string[]).length === 0,
        defaultMessage: (args?: ValidationArguments) => {
          const unknown = unknownEventTypes((args?.value as string[]) ?? []).slice(0, 5);
          return `eventTypes has unknown types: ${unknown.map((t) => JSON.stringify(t.slice(0, 64))).join(', ')} (see the event catalogue; wildcards like call.* or *)`;
        },
      },
    });
}

/** Custom headers: see endpoint-headers.ts. */
function AreWebhookHeaders() {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'areWebhookHeaders',
      target: object.constructor,
      propertyName,
      validator: {
        validate: (value: unknown) => headerProblems(value).length === 0,
        defaultMessage: (args?: ValidationArguments) => headerProblems(args?.value).slice(0, 5).join('; '),
      },
    });
}

export class CreateWebhookEndpointDto {
  @ApiProperty({ example: 'https://hooks.example.com/switchboard', maxLength: MAX_URL_LENGTH, description: URL_DOC })
  @IsWebhookUrl()
  url!: string;

  @ApiPropertyOptional({ maxLength: MAX_DESCRIPTION, example: 'Helpdesk sync', default: '' })
  @Omittable()
  @IsString()
  @MaxLength(MAX_DESCRIPTION)
  description?: string;

  @ApiProperty({
    type: [String],
    example: ['call.*', 'voicemail.received'],
    minItems: 1,
    maxItems: MAX_EVENT_TYPES,
    description: EVENT_TYPES_DOC,
  })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_EVENT_TYPES)
  @ArrayUnique()
  @IsString({ each: true })
  @MaxLength(64, { each: true })
  @AreKnownEventTypes()
  eventTypes!: string[];

  @ApiPropertyOptional({ default: true, description: 'false: created disabled (nothing is sent)' })
  @Omittable()
  @IsBoolean()
  enabled?: boolean;

  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    minimum: MIN_RATE_LIMIT,
    maximum: MAX_RATE_LIMIT,
    description: 'Deliveries per second to this endpoint at most (per instance); null or absent: no limit',
  })
  @IsOptional()
  @IsInt()
  @Min(MIN_RATE_LIMIT)
  @Max(MAX_RATE_LIMIT)
  rateLimitPerSecond?: number | null;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { type: 'string' },
    example: { Authorization: 'Bearer receiver-token' },
    description: HEADERS_DOC,
  })
  @Omittable()
  @AreWebhookHeaders()
  headers?: Record<string, string>;
}

export class UpdateWebhookEndpointDto {
  @ApiPropertyOptional({ maxLength: MAX_URL_LENGTH, description: URL_DOC })
  @Omittable()
  @IsWebhookUrl()
  url?: string;

  @ApiPropertyOptional({ maxLength: MAX_DESCRIPTION })
  @Omittable()
  @IsString()
  @MaxLength(MAX_DESCRIPTION)
  description?: string;

  @ApiPropertyOptional({ type: [String], minItems: 1, maxItems: MAX_EVENT_TYPES, description: EVENT_TYPES_DOC })
  @Omittable()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_EVENT_TYPES)
  @ArrayUnique()
  @IsString({ each: true })
  @MaxLength(64, { each: true })
  @AreKnownEventTypes()
  eventTypes?: string[];

  @ApiPropertyOptional({
    description:
      'false disables the endpoint (reason `manual`). true re-enables it: disabledReason, disabledAt and ' +
      'failingSince are cleared and it starts from the latest event — events of the time it was disabled are not ' +
      'sent (POST …/replay re-sends them).',
  })
  @Omittable()
  @IsBoolean()
  enabled?: boolean;

  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    minimum: MIN_RATE_LIMIT,
    maximum: MAX_RATE_LIMIT,
    description: 'null removes the limit',
  })
  @IsOptional()
  @IsInt()
  @Min(MIN_RATE_LIMIT)
  @Max(MAX_RATE_LIMIT)
  rateLimitPerSecond?: number | null;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { type: 'string' },
    description: `Replaces the custom headers ({} removes them). ${HEADERS_DOC}`,
  })
  @Omittable()
  @AreWebhookHeaders()
  headers?: Record<string, string>;
}

export class WebhookEndpointDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'https://hooks.example.com/switchboard' }) url!: string;
  @ApiProperty({ example: 'Helpdesk sync' }) description!: string;
  @ApiProperty({ type: [String], example: ['call.*'] }) eventTypes!: string[];
  @ApiProperty() enabled!: boolean;
  @ApiProperty({
    enum: ENDPOINT_DISABLED_REASONS,
    nullable: true,
    type: String,
    description: 'manual (PATCH enabled false), failing (failed without a success for too long), gone (answered 410)',
  })
  disabledReason!: EndpointDisabledReason | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) disabledAt!: string | null;
  @ApiProperty({ example: 'whsec_Ab…xyz=', description: 'Start and end of the signing secret (never the secret)' })
  secretHint!: string;
  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description: 'After a rotation, the previous secret also signs until then',
  })
  previousSecretExpiresAt!: string | null;
  @ApiProperty({ type: 'integer', nullable: true }) rateLimitPerSecond!: number | null;
  @ApiProperty({ type: 'object', additionalProperties: { type: 'string' } }) headers!: Record<string, string>;
  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description: 'The first failed attempt since the last success',
  })
  failingSince!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) lastSuccessAt!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
}

export class CreatedWebhookEndpointDto extends WebhookEndpointDto {
  @ApiProperty({
    example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    description: 'The signing secret (Standard Webhooks): shown this once, never again',
  })
  secret!: string;
}

export class WebhookEndpointListDto {
  @ApiProperty({ type: [WebhookEndpointDto] }) data!: WebhookEndpointDto[];
  @ApiProperty({ nullable: true, type: String, description: 'Cursor of the next page; null on the last page' })
  next!: string | null;
}

export class RotatedWebhookSecretDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ description: 'The new signing secret: shown this once, never again' }) secret!: string;
  @ApiProperty() secretHint!: string;
  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description:
      'Until then the previous secret signs too (both signatures are sent); null when WEBHOOK_SECRET_OVERLAP_MS is 0',
  })
  previousSecretExpiresAt!: string | null;
}
