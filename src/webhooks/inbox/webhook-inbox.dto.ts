import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsUUID } from 'class-validator';
import { CursorPageQuery } from '../../common/pagination.js';
import { PBX_PROVIDERS } from '../../pbx/pbx-provider.js';
import { INBOX_STATUSES, type InboxStatus } from './webhook-inbox.entity.js';

/** Who writes to the inbox: the PBX providers, and the generic incoming webhook (no connection). */
export const INBOX_PROVIDERS = [...PBX_PROVIDERS, 'generic'] as const;
export type InboxProviderName = (typeof INBOX_PROVIDERS)[number];

export class ListInboxQuery extends CursorPageQuery {
  @ApiPropertyOptional({ enum: INBOX_STATUSES })
  @IsOptional()
  @IsIn(INBOX_STATUSES)
  status?: InboxStatus;

  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID()
  connectionId?: string;

  @ApiPropertyOptional({ enum: INBOX_PROVIDERS })
  @IsOptional()
  @IsIn(INBOX_PROVIDERS)
  provider?: InboxProviderName;
}

export class InboxItemDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({
    type: String,
    format: 'uuid',
    nullable: true,
    description: 'Null for the generic incoming webhook (provider `generic`)',
  })
  connectionId!: string | null;
  @ApiProperty({ enum: INBOX_PROVIDERS }) provider!: string;
  @ApiProperty({ description: "The provider's route ('', 'status', 'sms')" }) route!: string;
  @ApiProperty({ example: 'call' }) kind!: string;
  @ApiProperty({
    description: "The provider's event id (unique per connection; `generic`: the webhook-id, unique per company)",
  })
  eventId!: string;
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
