import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsUUID } from 'class-validator';
import { CursorPageQuery } from '../../common/pagination.js';
import { PBX_PROVIDERS, type PbxProviderName } from '../../pbx/pbx-provider.js';
import { INBOX_STATUSES, type InboxStatus } from './webhook-inbox.entity.js';

export class ListInboxQuery extends CursorPageQuery {
  @ApiPropertyOptional({ enum: INBOX_STATUSES })
  @IsOptional()
  @IsIn(INBOX_STATUSES)
  status?: InboxStatus;

  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID()
  connectionId?: string;

  @ApiPropertyOptional({ enum: PBX_PROVIDERS })
  @IsOptional()
  @IsIn(PBX_PROVIDERS)
  provider?: PbxProviderName;
}

export class InboxItemDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) connectionId!: string;
  @ApiProperty({ enum: PBX_PROVIDERS }) provider!: string;
  @ApiProperty({ description: "The provider's route ('', 'status', 'sms')" }) route!: string;
  @ApiProperty({ example: 'call' }) kind!: string;
  @ApiProperty({ description: "The provider's event id (unique per connection)" }) eventId!: string;
  @ApiProperty({ enum: INBOX_STATUSES }) status!: string;
  @ApiProperty() attempts!: number;
  @ApiProperty({ nullable: true, type: String }) lastError!: string | null;
  @ApiProperty({ format: 'date-time' }) receivedAt!: string;
  @ApiProperty({ format: 'date-time', nullable: true, type: String }) processedAt!: string | null;
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description: 'The verified payload, phone numbers masked to their last 4 digits',
  })
  payload!: unknown;
}

export class InboxPageDto {
  @ApiProperty({ type: [InboxItemDto] }) data!: InboxItemDto[];
  @ApiProperty({ nullable: true, type: String }) next!: string | null;
}

export class WebhookAckDto {
  @ApiProperty({ example: true }) received!: boolean;
  @ApiProperty({ description: 'True when this event was received before (it is not processed again)' })
  duplicate!: boolean;
}
