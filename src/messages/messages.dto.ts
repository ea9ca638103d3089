import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, IsUUID, Matches, MaxLength } from 'class-validator';
import { CursorPageQuery } from '../common/pagination.js';
import { IsIsoTime, PHONE_FILTER } from '../calls/dto/calls.dto.js';

class CommsQuery extends CursorPageQuery {
  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID()
  agentId?: string;

  @ApiPropertyOptional({
    example: '+15551230001',
    description: 'Sender: E.164 when a phone number (national numbers read as US), else its digits. Send `+` as `%2B`.',
  })
  @IsOptional()
  @IsString()
  @MaxLength(32)
  @Matches(PHONE_FILTER, { message: 'from must be a phone number: digits, +, spaces, dots, dashes, parentheses' })
  from?: string;

  @ApiPropertyOptional({ description: 'ISO 8601, inclusive', example: '2026-11-21T00:00:00Z' })
  @IsOptional()
  @IsIsoTime()
  since?: string;

  @ApiPropertyOptional({ description: 'ISO 8601, exclusive', example: '2026-11-22T00:00:00Z' })
  @IsOptional()
  @IsIsoTime()
  until?: string;
}

export class ListVoicemailsQuery extends CommsQuery {}

export class ListMessagesQuery extends CommsQuery {
  @ApiPropertyOptional({ example: '+15550001234', description: 'Recipient, as `from`' })
  @IsOptional()
  @IsString()
  @MaxLength(32)
  @Matches(PHONE_FILTER, { message: 'to must be a phone number: digits, +, spaces, dots, dashes, parentheses' })
  to?: string;

  @ApiPropertyOptional({ enum: ['inbound', 'outbound'] })
  @IsOptional()
  @IsIn(['inbound', 'outbound'])
  direction?: 'inbound' | 'outbound';
}

export class VoicemailDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) connectionId!: string;
  @ApiProperty({ example: 'dialpad' }) provider!: string;
  @ApiProperty() providerVoicemailId!: string;
  @ApiProperty({ format: 'uuid', nullable: true, type: String }) callId!: string | null;
  @ApiProperty({ format: 'uuid', nullable: true, type: String }) agentId!: string | null;
  @ApiProperty({ nullable: true, type: String, example: '+15551230001' }) from!: string | null;
  @ApiProperty({ nullable: true, type: String }) to!: string | null;
  @ApiProperty({ nullable: true, type: Number }) durationSeconds!: number | null;
  @ApiProperty({ nullable: true, type: String }) recordingUrl!: string | null;
  @ApiProperty({ nullable: true, type: String }) transcription!: string | null;
  @ApiProperty({ format: 'date-time' }) receivedAt!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
}

export class VoicemailPageDto {
  @ApiProperty({ type: [VoicemailDto] }) data!: VoicemailDto[];
  @ApiProperty({ nullable: true, type: String }) next!: string | null;
}

export class MessageDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) connectionId!: string;
  @ApiProperty({ example: 'twilio' }) provider!: string;
  @ApiProperty() providerMessageId!: string;
  @ApiProperty({ enum: ['inbound', 'outbound'] }) direction!: 'inbound' | 'outbound';
  @ApiProperty({ nullable: true, type: String }) from!: string | null;
  @ApiProperty({ nullable: true, type: String }) to!: string | null;
  @ApiProperty() text!: string;
  @ApiProperty({ nullable: true, type: String }) status!: string | null;
  @ApiProperty({ format: 'uuid', nullable: true, type: String }) agentId!: string | null;
  @ApiProperty({ format: 'date-time' }) sentAt!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
}

export class MessagePageDto {
  @ApiProperty({ type: [MessageDto] }) data!: MessageDto[];
  @ApiProperty({ nullable: true, type: String }) next!: string | null;
}
