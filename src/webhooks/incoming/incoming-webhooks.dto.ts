import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsIn,
  IsObject,
  IsString,
  IsUrl,
  IsUUID,
  isISO8601,
  Length,
  Matches,
  MaxLength,
  registerDecorator,
  ValidateNested,
  type ValidationOptions,
} from 'class-validator';
import { CALL_DIRECTIONS, CALL_EVENT_KINDS, END_REASONS } from '../../calls/call-state.js';
import type { CallDirection, CallEventKind, EndReason } from '../../calls/call-state.js';
import { toE164 } from '../../common/phone.js';
import { Omittable } from '../../common/validation.js';

/** Events in one request at most (a list body). */
export const MAX_EVENTS_PER_REQUEST = 100;

/** Printable, no spaces: the caller's own ids (a call id, an event id). */
const ID = /^[\x21-\x7e]+$/;
/** A date-time with its offset (`2026-11-21T10:00:00Z`, `…+02:00`), up to microseconds. */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})$/;

function isDateTime(value: unknown): boolean {
  return (
    typeof value === 'string' &&
    DATE_TIME.test(value) &&
    isISO8601(value, { strict: true }) &&
    !Number.isNaN(Date.parse(value)) &&
    !value.startsWith('0000')
  );
}

function IsDateTimeWithOffset(options?: ValidationOptions) {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'isDateTimeWithOffset',
      target: object.constructor,
      propertyName,
      options: {
        message: `${propertyName} must be an ISO 8601 date-time with an offset, such as 2026-11-21T10:00:00Z`,
        ...options,
      },
      validator: { validate: isDateTime },
    });
}

/** A phone number in any usual writing (`+1 555 123 0001`, `(555) 123-0001`): stored as E.164. */
function IsPhoneNumber(options?: ValidationOptions) {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'isPhoneNumber',
      target: object.constructor,
      propertyName,
      options: {
        message: `${propertyName} must be a phone number, best in E.164 such as +15551230001 (without a country code it is read as a US number)`,
        ...options,
      },
      validator: {
        validate: (value: unknown) => typeof value === 'string' && value.length <= 32 && toE164(value) !== null,
      },
    });
}

/** How the event names the agent: our agent id, or the agent's extension. */
export class IncomingAgentDto {
  @ApiPropertyOptional({ format: 'uuid', description: 'Our id of an agent of the company' })
  @Omittable()
  @IsUUID()
  id?: string;

  @ApiPropertyOptional({ example: '1001', description: "The agent's extension (as set on the agent)" })
  @Omittable()
  @IsString()
  @Length(1, 32)
  @Matches(ID, { message: 'extension must be printable characters without spaces' })
  extension?: string;
}

/**
 * One canonical call event (the public shape of the generic incoming webhook). Events of one
 * call share its `callId`; applying them is idempotent (per call, by `eventId`) and tolerant of
 * order: an `ended` received before `answered` still gives a correct record.
 */
export class IncomingCallEventDto {
  @ApiProperty({
    example: 'pbx-42-1764858000.17',
    description: 'Your id of the call (1–128 printable characters, no spaces); the same for all its events',
  })
  @IsString()
  @Length(1, 128)
  @Matches(ID, { message: 'callId must be printable characters without spaces' })
  callId!: string;

  @ApiProperty({ enum: CALL_EVENT_KINDS, description: 'What happened' })
  @IsIn(CALL_EVENT_KINDS)
  event!: CallEventKind;

  @ApiProperty({ example: '2026-12-04T18:00:00Z', description: 'When it happened (ISO 8601 with an offset)' })
  @IsDateTimeWithOffset()
  at!: string;

  @ApiPropertyOptional({
    example: 'ringing-1',
    description:
      'Your id of this event, unique within the call; the same event sent again is applied once. ' +
      'Default: `<event>@<at>`.',
  })
  @Omittable()
  @IsString()
  @Length(1, 128)
  @Matches(ID, { message: 'eventId must be printable characters without spaces' })
  eventId?: string;

  @ApiPropertyOptional({ enum: CALL_DIRECTIONS })
  @Omittable()
  @IsIn(CALL_DIRECTIONS)
  direction?: CallDirection;

  @ApiPropertyOptional({ example: '+15551230001', description: 'The caller; normalised to E.164' })
  @Omittable()
  @IsPhoneNumber()
  from?: string;

  @ApiPropertyOptional({ example: '+15550001234', description: 'The callee; normalised to E.164' })
  @Omittable()
  @IsPhoneNumber()
  to?: string;

  @ApiPropertyOptional({ example: 'Pat Caller' })
  @Omittable()
  @IsString()
  @Length(1, 200)
  callerName?: string;

  @ApiPropertyOptional({ type: IncomingAgentDto, description: 'The agent handling the call' })
  @Omittable()
  @IsObject()
  @ValidateNested()
  @Type(() => IncomingAgentDto)
  agent?: IncomingAgentDto;

  @ApiPropertyOptional({ enum: END_REASONS, description: 'How the call ended (with `ended`)' })
  @Omittable()
  @IsIn(END_REASONS)
  endReason?: EndReason;

  @ApiPropertyOptional({ example: 'NORMAL_CLEARING', description: "The phone system's hangup cause" })
  @Omittable()
  @IsString()
  @Length(1, 128)
  hangupCause?: string;

  @ApiPropertyOptional({ example: 'https://pbx.example.com/recordings/42.wav' })
  @Omittable()
  @IsString()
  @MaxLength(2048)
  @IsUrl({ protocols: ['https', 'http'], require_protocol: true })
  recordingUrl?: string;
}

export class IncomingWebhookAckDto {
  @ApiProperty({ example: true }) received!: boolean;
  @ApiProperty({ description: 'True when this webhook-id was received before (it is not processed again)' })
  duplicate!: boolean;
  @ApiProperty({ example: 1, description: 'Call events in the request' })
  events!: number;
}

export class IncomingSecretDto {
  @ApiProperty({ example: 'whsec_Q2hh…3Rz=', description: 'First 10 and last 4 characters of the secret' })
  hint!: string;
  @ApiProperty({
    example: 'https://switchboard.example.com/api/v1/webhooks/incoming/6f1c2b8e-3d4a-4e5f-9a0b-1c2d3e4f5a6b',
    description: 'Where to POST the signed events',
  })
  url!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) rotatedAt!: string | null;
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Hint of the previous secret while it still verifies (after a rotation)',
  })
  previousHint!: string | null;
  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description: 'Until when the previous secret still verifies (null: none)',
  })
  previousValidUntil!: string | null;
}

export class IncomingSecretCreatedDto extends IncomingSecretDto {
  @ApiProperty({
    example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    description: 'The secret (Standard Webhooks): shown in this response only',
  })
  secret!: string;
  @ApiProperty() note!: string;
}
