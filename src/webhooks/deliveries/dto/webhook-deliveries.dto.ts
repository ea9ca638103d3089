import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsDate, IsIn, IsOptional, MaxDate, MinDate } from 'class-validator';
import { CursorPageQuery } from '../../../common/pagination.js';
import { EVENT_TYPES } from '../../../events/event-envelope.js';
import { DELIVERY_ERROR_CLASSES, DELIVERY_ORIGINS, DELIVERY_STATUSES } from '../webhook-delivery.entity.js';

const EARLIEST = new Date('1970-01-01T00:00:00Z');
const LATEST = new Date('9999-12-31T00:00:00Z');

export class WebhookDeliveryAttemptDto {
  @ApiProperty({ example: 1, description: '1 for the first attempt of the delivery' }) attempt!: number;
  @ApiProperty({ format: 'date-time' }) startedAt!: string;
  @ApiProperty({ type: Number, nullable: true, example: 500, description: 'null when no HTTP answer came' })
  statusCode!: number | null;
  @ApiProperty({ example: 42 }) latencyMs!: number;
  @ApiProperty({
    type: String,
    enum: DELIVERY_ERROR_CLASSES,
    nullable: true,
    description: 'Why the attempt failed (null: it succeeded). `http-status`: the answer was not 2xx.',
  })
  errorClass!: string | null;
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'The first 1 KB of the response body as text (response headers are never kept)',
  })
  responseSnippet!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true, description: 'The retry this attempt scheduled' })
  nextAttemptAt!: string | null;
}

export class WebhookDeliveryDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) endpointId!: string;
  @ApiProperty({ format: 'uuid', description: 'The event id: the `webhook-id` header, the same on every retry' })
  eventId!: string;
  @ApiProperty({ enum: EVENT_TYPES }) eventType!: string;
  @ApiProperty({ example: 42, description: "The event's company sequence number (0 for webhook.test)" })
  eventSeq!: number;
  @ApiProperty({
    enum: DELIVERY_ORIGINS,
    description: 'event: from the event stream; replay: POST …/replay; retry: POST …/retry of a finished one; test',
  })
  origin!: string;
  @ApiProperty({ enum: DELIVERY_STATUSES }) status!: string;
  @ApiProperty({ example: 1, description: 'Attempts made' }) attemptCount!: number;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) nextAttemptAt!: string | null;
  @ApiProperty({ type: Number, nullable: true }) lastStatusCode!: number | null;
  @ApiProperty({ type: String, enum: DELIVERY_ERROR_CLASSES, nullable: true }) lastErrorClass!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) completedAt!: string | null;
  @ApiProperty({ type: [WebhookDeliveryAttemptDto], description: 'Every attempt, oldest first' })
  attempts!: WebhookDeliveryAttemptDto[];
}

export class WebhookDeliveryDetailDto extends WebhookDeliveryDto {
  @ApiProperty({ description: 'The exact JSON body sent (the event envelope)' }) body!: string;
}

export class WebhookDeliveryPageDto {
  @ApiProperty({ type: [WebhookDeliveryDto] }) data!: WebhookDeliveryDto[];
  @ApiProperty({ type: String, nullable: true, description: 'Cursor of the next page; null on the last page' })
  next!: string | null;
}

export class WebhookDeliveryListQuery extends CursorPageQuery {
  @ApiPropertyOptional({ enum: DELIVERY_STATUSES })
  @IsOptional()
  @IsIn(DELIVERY_STATUSES)
  status?: (typeof DELIVERY_STATUSES)[number];

  @ApiPropertyOptional({ enum: EVENT_TYPES })
  @IsOptional()
  @IsIn(EVENT_TYPES)
  eventType?: string;

  @ApiPropertyOptional({ description: 'Created at or after (ISO 8601)', type: String, format: 'date-time' })
  @IsOptional()
  @Type(() => Date)
  @IsDate()
  @MinDate(EARLIEST)
  @MaxDate(LATEST)
  since?: Date;

  @ApiPropertyOptional({ description: 'Created before (ISO 8601)', type: String, format: 'date-time' })
  @IsOptional()
  @Type(() => Date)
  @IsDate()
  @MinDate(EARLIEST)
  @MaxDate(LATEST)
  until?: Date;
}

export class ReplayWebhookEventsDto {
  @ApiProperty({
    type: String,
    format: 'date-time',
    description: 'Events stored (emitted) at or after this time',
    example: '2026-12-04T09:00:00Z',
  })
  @Type(() => Date)
  @IsDate()
  @MinDate(EARLIEST)
  @MaxDate(LATEST)
  since!: Date;

  @ApiPropertyOptional({
    type: String,
    format: 'date-time',
    description: 'Events stored before this time (default: now)',
    example: '2026-12-04T10:00:00Z',
  })
  @IsOptional()
  @Type(() => Date)
  @IsDate()
  @MinDate(EARLIEST)
  @MaxDate(LATEST)
  until?: Date;

  @ApiPropertyOptional({
    type: [String],
    enum: EVENT_TYPES,
    description: "Only these types (default: the endpoint's own event type filter)",
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(EVENT_TYPES.length)
  @IsIn(EVENT_TYPES, { each: true })
  types?: string[];
}

export class ReplayResultDto {
  @ApiProperty({ example: 12, description: 'Deliveries queued (origin `replay`)' }) queued!: number;
  @ApiProperty({ type: Number, nullable: true, description: 'Sequence number of the first event queued' })
  from!: number | null;
  @ApiProperty({ type: Number, nullable: true, description: 'Sequence number of the last event queued' })
  to!: number | null;
}

export class WebhookTestResultDto {
  @ApiProperty({ format: 'uuid' }) deliveryId!: string;
  @ApiProperty({ format: 'uuid', description: 'The id of the webhook.test event (its webhook-id)' }) eventId!: string;
  @ApiProperty({ description: 'True when the endpoint answered 2xx in time' }) ok!: boolean;
  @ApiProperty({ type: WebhookDeliveryAttemptDto }) attempt!: WebhookDeliveryAttemptDto;
}
