import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, IsUUID, Matches } from 'class-validator';
import { IsE164 } from '../../common/phone.js';
import { CALL_STATUSES, END_REASONS } from '../call-state.js';
import { PBX_ERROR_CODES } from '../../pbx/pbx-provider.js';

export const DTMF_DIGITS = /^[0-9*#ABCD]{1,32}$/;

export class ClickToCallDto {
  @ApiProperty({ example: '+15551230001', description: 'The customer, in E.164' })
  @IsE164()
  to!: string;

  @ApiPropertyOptional({
    example: '+15550001000',
    description: "Caller id shown to the customer, E.164 (else the connection's default)",
  })
  @IsOptional()
  @IsE164()
  callerId?: string;

  @ApiPropertyOptional({
    format: 'uuid',
    description: 'The agent whose phone rings first. An agent user: its own (the default); others: required.',
  })
  @IsOptional()
  @IsUUID()
  agentId?: string;

  @ApiPropertyOptional({
    format: 'uuid',
    description: 'The connection to call through; required when the company has several that can place calls.',
  })
  @IsOptional()
  @IsUUID()
  connectionId?: string;
}

export class DtmfDto {
  @ApiProperty({ example: '1234#', description: '1 to 32 of 0-9 * # A B C D' })
  @IsString()
  @Matches(DTMF_DIGITS, { message: 'digits must be 1 to 32 of 0-9, *, #, A, B, C, D' })
  digits!: string;
}

/**
 * `POST /api/calls/initiate` of the NetSapiens click-to-call middleware (seed 000), deprecated:
 * `phoneNumber` is our `to`; the rest as ClickToCallDto.
 */
export class InitiateCallAliasDto {
  @ApiProperty({ example: '+15551230001', description: 'The customer, in E.164 (our `to`)' })
  @IsE164()
  phoneNumber!: string;

  @ApiPropertyOptional({ example: '+15550001000', description: "Caller id, E.164 (else the connection's default)" })
  @IsOptional()
  @IsE164()
  callerId?: string;

  @ApiPropertyOptional({ format: 'uuid', description: 'As in click-to-call: required for managers and API keys' })
  @IsOptional()
  @IsUUID()
  agentId?: string;

  @ApiPropertyOptional({ format: 'uuid', description: 'As in click-to-call' })
  @IsOptional()
  @IsUUID()
  connectionId?: string;
}

/** `POST /api/calls/dtmf/:callId` of seed 000, deprecated: `{ "digit": "5" }` (a string of digits works too). */
export class DtmfAliasDto {
  @ApiProperty({ example: '5', description: '1 to 32 of 0-9 * # A B C D (the seed sent one digit)' })
  @IsString()
  @Matches(DTMF_DIGITS, { message: 'digit must be 1 to 32 of 0-9, *, #, A, B, C, D' })
  digit!: string;
}

export class ClickToCallAcceptedDto {
  @ApiProperty({ format: 'uuid' }) callId!: string;
  @ApiProperty({ enum: CALL_STATUSES }) status!: string;
  @ApiProperty({ format: 'uuid' }) connectionId!: string;
  @ApiProperty({ example: 'twilio' }) provider!: string;
  @ApiProperty({ description: "The provider's id of the call" }) providerCallId!: string;
}

export class LiveCallStatusDto {
  @ApiProperty({ example: 'in-progress', description: "The provider's own word for the call's state" })
  state!: string;
  @ApiProperty() ended!: boolean;
}

export class CallStatusDto {
  @ApiProperty({ format: 'uuid' }) callId!: string;
  @ApiProperty({ enum: CALL_STATUSES }) status!: string;
  @ApiProperty({ enum: END_REASONS, nullable: true, type: String }) endReason!: string | null;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) answeredAt!: string | null;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) endedAt!: string | null;
  @ApiProperty({
    type: LiveCallStatusDto,
    nullable: true,
    description: 'Asked of the provider while the call is active and the provider can tell; else null',
  })
  live!: LiveCallStatusDto | null;
  @ApiPropertyOptional({ enum: PBX_ERROR_CODES, description: 'Why `live` is null when the provider failed' })
  liveError?: string;
}

export class CallCommandAcceptedDto {
  @ApiProperty({ format: 'uuid' }) callId!: string;
  @ApiProperty({ example: true }) accepted!: boolean;
}
