import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsOptional,
  IsString,
  IsUUID,
  isISO8601,
  Length,
  Matches,
  MaxLength,
  registerDecorator,
  type ValidationOptions,
} from 'class-validator';
import { CursorPageQuery } from '../../common/pagination.js';
import { Omittable } from '../../common/validation.js';
import { IsE164 } from '../../common/phone.js';
import {
  CALL_DIRECTIONS,
  CALL_STATUSES,
  END_REASONS,
  type CallDirection,
  type CallStatus,
  type EndReason,
} from '../call-state.js';

export const MAX_TAGS = 20;
export const MAX_TAG_LENGTH = 50;
export const MAX_NOTES_LENGTH = 10_000;
export const MAX_DISPOSITION_LENGTH = 64;

/**
 * A date (`2026-11-21`, midnight UTC) or a date-time with its offset (`2026-11-21T10:00:00Z`,
 * `…+02:00`), up to microseconds. A date-time without an offset is refused: it would mean the
 * server's local time.
 */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/;

export function isIsoTime(value: unknown): value is string {
  if (typeof value !== 'string' || !ISO_TIME.test(value)) return false;
  // strict: no 30 February; a time JavaScript reads; no year 0 (PostgreSQL has none).
  return isISO8601(value, { strict: true }) && !Number.isNaN(Date.parse(value)) && !value.startsWith('0000');
}

/** The time as PostgreSQL must read it (a bare date is midnight UTC, not the session's zone). */
export function isoForDatabase(value: string): string {
  return value.length === 10 ? `${value}T00:00:00Z` : value;
}

export function IsIsoTime(options?: ValidationOptions) {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'isIsoTime',
      target: object.constructor,
      propertyName,
      options: {
        message: `${propertyName} must be an ISO 8601 date or date-time with an offset, such as 2026-11-21T10:00:00Z`,
        ...options,
      },
      validator: { validate: isIsoTime },
    });
}

/** Digits, with `+`, spaces, dots, dashes and parentheses: `+1 (555) 123-0001`, `1001`. */
export const PHONE_FILTER = /^[+\d\s().-]*\d[+\d\s().-]*$/;

export class ListCallsQuery extends CursorPageQuery {
  @ApiPropertyOptional({ enum: CALL_STATUSES })
  @IsOptional()
  @IsIn(CALL_STATUSES)
  status?: CallStatus;

  @ApiPropertyOptional({ enum: CALL_DIRECTIONS })
  @IsOptional()
  @IsIn(CALL_DIRECTIONS)
  direction?: CallDirection;

  @ApiPropertyOptional({
    example: '+15551230001',
    description:
      'Caller number: normalised to E.164 when it is a phone number (national numbers read as US), else matched ' +
      'by its digits (extensions). Send `+` as `%2B`; a leading `+` sent as is (read as a space) is understood.',
  })
  @IsOptional()
  @IsString()
  @MaxLength(32)
  @Matches(PHONE_FILTER, { message: 'from must be a phone number: digits, +, spaces, dots, dashes, parentheses' })
  from?: string;

  @ApiPropertyOptional({ example: '+15550001234', description: 'Called number, as `from`' })
  @IsOptional()
  @IsString()
  @MaxLength(32)
  @Matches(PHONE_FILTER, { message: 'to must be a phone number: digits, +, spaces, dots, dashes, parentheses' })
  to?: string;

  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID()
  agentId?: string;

  @ApiPropertyOptional({ description: 'ISO 8601, inclusive, on startedAt', example: '2026-11-21T00:00:00Z' })
  @IsOptional()
  @IsIsoTime()
  since?: string;

  @ApiPropertyOptional({ description: 'ISO 8601, exclusive, on startedAt', example: '2026-11-22T00:00:00Z' })
  @IsOptional()
  @IsIsoTime()
  until?: string;
}

/** The fields a person keeps on a call. `null` clears notes or disposition. */
export class CallFieldsDto {
  @ApiPropertyOptional({ type: String, nullable: true, maxLength: MAX_NOTES_LENGTH })
  @IsOptional()
  @IsString()
  @MaxLength(MAX_NOTES_LENGTH)
  notes?: string | null;

  @ApiPropertyOptional({ type: String, nullable: true, example: 'sale', maxLength: MAX_DISPOSITION_LENGTH })
  @IsOptional()
  @IsString()
  @Length(1, MAX_DISPOSITION_LENGTH)
  disposition?: string | null;

  @ApiPropertyOptional({
    type: [String],
    maxItems: MAX_TAGS,
    example: ['vip', 'follow-up'],
    description: `Replaces the tags: up to ${MAX_TAGS} distinct strings of 1 to ${MAX_TAG_LENGTH} characters`,
  })
  @Omittable()
  @IsArray()
  @ArrayMaxSize(MAX_TAGS)
  @ArrayUnique()
  @IsString({ each: true })
  @Length(1, MAX_TAG_LENGTH, { each: true })
  tags?: string[];
}

export class UpdateCallDto extends CallFieldsDto {}

export class CreateCallDto extends CallFieldsDto {
  @ApiProperty({ enum: CALL_DIRECTIONS })
  @IsIn(CALL_DIRECTIONS)
  direction!: CallDirection;

  @ApiProperty({ example: '+15551230001' })
  @IsE164()
  from!: string;

  @ApiProperty({ example: '+15550001234' })
  @IsE164()
  to!: string;

  @ApiProperty({ example: '2026-11-21T10:00:00Z', description: 'When it started ringing' })
  @IsIsoTime()
  startedAt!: string;

  @ApiPropertyOptional({ example: '2026-11-21T10:00:05Z', description: 'Not before startedAt' })
  @Omittable()
  @IsIsoTime()
  answeredAt?: string;

  @ApiPropertyOptional({ example: '2026-11-21T10:03:00Z', description: 'Not before answeredAt (or startedAt)' })
  @Omittable()
  @IsIsoTime()
  endedAt?: string;

  @ApiPropertyOptional({ enum: END_REASONS, description: 'Only with endedAt' })
  @Omittable()
  @IsIn(END_REASONS)
  endReason?: EndReason;

  @ApiPropertyOptional({ format: 'uuid', description: 'An agent of the company' })
  @Omittable()
  @IsUUID()
  agentId?: string;
}

export class AssignCallDto {
  @ApiProperty({
    format: 'uuid',
    example: '6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b',
    description: 'An agent of the company',
  })
  @IsUUID()
  agentId!: string;
}

export class ScreenPopDto {
  @ApiProperty({
    format: 'uuid',
    example: '6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b',
    description: 'The agent whose screen pops',
  })
  @IsUUID()
  agentId!: string;

  @ApiProperty({ example: '+15551230001', description: 'The caller (shown when no callId is given)' })
  @IsE164()
  from!: string;

  @ApiPropertyOptional({ example: '+15550001234' })
  @Omittable()
  @IsE164()
  to?: string;

  @ApiPropertyOptional({ example: 'Pat Caller' })
  @Omittable()
  @IsString()
  @Length(1, 200)
  callerName?: string;

  @ApiPropertyOptional({
    format: 'uuid',
    description: 'A call of the company: its record is shown instead of from/to/callerName',
  })
  @Omittable()
  @IsUUID()
  callId?: string;
}

// --- responses (documentation) ----------------------------------------------------------------

export class CallDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'asterisk', description: 'asterisk | dialpad | twilio | netsapiens | manual' })
  provider!: string;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) connectionId!: string | null;
  @ApiProperty() providerCallId!: string;
  @ApiProperty({ enum: CALL_DIRECTIONS }) direction!: string;
  @ApiProperty({ enum: CALL_STATUSES }) status!: string;
  @ApiProperty({ type: String, nullable: true, example: '+15551230001' }) from!: string | null;
  @ApiProperty({ type: String, nullable: true, example: '+15550001234' }) to!: string | null;
  @ApiProperty({ type: String, nullable: true }) callerName!: string | null;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) agentId!: string | null;
  @ApiProperty({ format: 'date-time' }) startedAt!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) ringingAt!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) answeredAt!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) endedAt!: string | null;
  @ApiProperty({ type: 'integer', nullable: true }) ringSeconds!: number | null;
  @ApiProperty({ type: 'integer', nullable: true }) talkSeconds!: number | null;
  @ApiProperty({ type: 'integer', nullable: true }) durationSeconds!: number | null;
  @ApiProperty({ type: String, enum: END_REASONS, nullable: true }) endReason!: string | null;
  @ApiProperty({ type: String, nullable: true }) hangupCause!: string | null;
  @ApiProperty({ type: String, nullable: true }) recordingUrl!: string | null;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true, description: 'CRM contact' })
  contact!: Record<string, unknown> | null;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true }) ai!: Record<string, unknown> | null;
  @ApiProperty({ type: [String] }) tags!: string[];
  @ApiProperty({ type: String, nullable: true }) notes!: string | null;
  @ApiProperty({ type: String, nullable: true }) disposition!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
}

export class CallPageDto {
  @ApiProperty({ type: [CallDto] }) data!: CallDto[];
  @ApiProperty({ nullable: true, type: String, description: 'Cursor of the next page; null on the last page' })
  next!: string | null;
}

export class TimelineEntryDto {
  @ApiProperty({ example: 'ringing', description: 'queued | ringing | answered | ended | updated' }) kind!: string;
  @ApiProperty({ format: 'date-time' }) at!: string;
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'What the event said (and its raw payload)' })
  data!: Record<string, unknown>;
}

export class CallDetailDto extends CallDto {
  @ApiProperty({ type: [TimelineEntryDto], description: 'The events of the call, oldest first' })
  timeline!: TimelineEntryDto[];
}

export class ScreenPopAcceptedDto {
  @ApiProperty({ format: 'uuid' }) eventId!: string;
  @ApiProperty({ example: 42, description: 'Sequence number of the event in the company stream' }) seq!: number;
}
