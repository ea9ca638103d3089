import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsObject, IsString, Length, Matches } from 'class-validator';
import { Omittable } from '../../common/validation.js';
import { PBX_ERROR_CODES, PBX_PROVIDERS, type PbxErrorCode, type PbxProviderName } from '../pbx-provider.js';

const NAME = /^\S(?:.*\S)?$/;

export class CreatePbxConnectionDto {
  @ApiProperty({ enum: PBX_PROVIDERS })
  @IsIn(PBX_PROVIDERS)
  provider!: PbxProviderName;

  @ApiProperty({ example: 'Main office Twilio', minLength: 1, maxLength: 100 })
  @IsString()
  @Length(1, 100)
  @Matches(NAME, { message: 'name must not start or end with spaces' })
  name!: string;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    description:
      'Non-secret settings of the provider (see the README "Phone-system connections" for each): ' +
      'twilio `{ accountSid, callerId? }`; dialpad `{ environment?, auth? }`; netsapiens `{ baseUrl, domain }`; ' +
      'asterisk `{ host, port?, username, context?, … }`.',
  })
  @Omittable()
  @IsObject()
  settings?: Record<string, unknown>;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { type: 'string' },
    description:
      'Secrets, write-only (never returned; stored encrypted): twilio `{ authToken }`; dialpad ' +
      '`{ apiKey?, webhookSecret? }`; netsapiens `{ apiKey, webhookSecret? }`; asterisk `{ secret }`.',
  })
  @Omittable()
  @IsObject()
  secrets?: Record<string, unknown>;
}

export class UpdatePbxConnectionDto {
  @ApiPropertyOptional({ minLength: 1, maxLength: 100 })
  @Omittable()
  @IsString()
  @Length(1, 100)
  @Matches(NAME, { message: 'name must not start or end with spaces' })
  name?: string;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    description: 'Merged into the settings: a key set to null is removed.',
  })
  @Omittable()
  @IsObject()
  settings?: Record<string, unknown>;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    description: 'Merged into the secrets: a key set to null is removed.',
  })
  @Omittable()
  @IsObject()
  secrets?: Record<string, unknown>;
}

export class PbxCapabilitiesDto {
  @ApiProperty() originate!: boolean;
  @ApiProperty() hangup!: boolean;
  @ApiProperty() dtmf!: boolean;
  @ApiProperty() status!: boolean;
  @ApiProperty({
    type: 'object',
    properties: { calls: { type: 'boolean' }, sms: { type: 'boolean' }, voicemail: { type: 'boolean' } },
    example: { calls: true, sms: true, voicemail: true },
  })
  webhooks!: { calls: boolean; sms: boolean; voicemail: boolean };
}

export class PbxConnectionDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: PBX_PROVIDERS }) provider!: PbxProviderName;
  @ApiProperty() name!: string;
  @ApiProperty({ type: 'object', additionalProperties: true }) settings!: Record<string, unknown>;
  @ApiProperty({ description: 'Names of the secrets that are set (never their values)', example: ['authToken'] })
  secretsSet!: string[];
  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'string' },
    description: 'The webhook URLs to configure at the provider',
    example: { status: 'https://switchboard.example.com/webhooks/twilio/…/status' },
  })
  webhookUrls!: Record<string, string>;
  @ApiProperty({ type: PbxCapabilitiesDto }) capabilities!: PbxCapabilitiesDto;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
}

export class PbxConnectionListDto {
  @ApiProperty({ type: [PbxConnectionDto] }) data!: PbxConnectionDto[];
}

export class PbxConnectionTestDto {
  @ApiProperty({ description: 'Whether the provider accepted the credentials' }) ok!: boolean;
  @ApiPropertyOptional({ enum: PBX_ERROR_CODES }) code?: PbxErrorCode;
  @ApiProperty() detail!: string;
}
