import { Omittable } from '../../common/validation.js';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayUnique,
  IsArray,
  IsDate,
  IsEmail,
  IsIn,
  IsInt,
  IsString,
  Length,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
  registerDecorator,
  type ValidationOptions,
} from 'class-validator';
import { DEFAULT_SCOPES, SCOPES, type ScopeGrant } from '../../common/access/principal.js';
import { IsE164 } from '../../common/phone.js';
import { MAX_PASSWORD, MIN_PASSWORD } from '../../users/dto/users.dto.js';
import { MAX_OVERLAP_SECONDS } from '../api-keys.service.js';

function IsTimeZone(options?: ValidationOptions) {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'isTimeZone',
      target: object.constructor,
      propertyName,
      options: { message: `${propertyName} must be an IANA time zone such as America/New_York`, ...options },
      validator: {
        validate(value: unknown) {
          if (typeof value !== 'string') return false;
          try {
            new Intl.DateTimeFormat('en-US', { timeZone: value });
            return true;
          } catch {
            return false;
          }
        },
      },
    });
}

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;

export class IntervalDto {
  @ApiProperty({ example: '09:00' }) @Matches(HHMM, { message: 'start must be HH:MM (24 h)' }) start!: string;
  @ApiProperty({ example: '17:30' }) @Matches(HHMM, { message: 'end must be HH:MM (24 h)' }) end!: string;
}

export class BusinessHoursDto {
  @ApiPropertyOptional({ type: [IntervalDto] })
  @Omittable()
  @ValidateNested({ each: true })
  @Type(() => IntervalDto)
  @ArrayMaxSize(4)
  mon?: IntervalDto[];
  @ApiPropertyOptional({ type: [IntervalDto] })
  @Omittable()
  @ValidateNested({ each: true })
  @Type(() => IntervalDto)
  @ArrayMaxSize(4)
  tue?: IntervalDto[];
  @ApiPropertyOptional({ type: [IntervalDto] })
  @Omittable()
  @ValidateNested({ each: true })
  @Type(() => IntervalDto)
  @ArrayMaxSize(4)
  wed?: IntervalDto[];
  @ApiPropertyOptional({ type: [IntervalDto] })
  @Omittable()
  @ValidateNested({ each: true })
  @Type(() => IntervalDto)
  @ArrayMaxSize(4)
  thu?: IntervalDto[];
  @ApiPropertyOptional({ type: [IntervalDto] })
  @Omittable()
  @ValidateNested({ each: true })
  @Type(() => IntervalDto)
  @ArrayMaxSize(4)
  fri?: IntervalDto[];
  @ApiPropertyOptional({ type: [IntervalDto] })
  @Omittable()
  @ValidateNested({ each: true })
  @Type(() => IntervalDto)
  @ArrayMaxSize(4)
  sat?: IntervalDto[];
  @ApiPropertyOptional({ type: [IntervalDto] })
  @Omittable()
  @ValidateNested({ each: true })
  @Type(() => IntervalDto)
  @ArrayMaxSize(4)
  sun?: IntervalDto[];
}

export class CompanySettingsDto {
  @ApiPropertyOptional({ example: 'America/New_York' }) @Omittable() @IsTimeZone() timezone?: string;

  @ApiPropertyOptional({ type: BusinessHoursDto })
  @Omittable()
  @ValidateNested()
  @Type(() => BusinessHoursDto)
  businessHours?: BusinessHoursDto;

  @ApiPropertyOptional({ example: '+15550001234', description: 'E.164' })
  @Omittable()
  @IsE164()
  defaultCallerId?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 3650 })
  @Omittable()
  @IsInt()
  @Min(1)
  @Max(3650)
  dataRetentionDays?: number;

  @ApiPropertyOptional({ type: [String], example: ['https://crm.example.com'] })
  @Omittable()
  @IsArray()
  @ArrayMaxSize(50)
  @Matches(/^https?:\/\/[^/\s]+$/, {
    each: true,
    message: 'allowedOrigins must be origins such as https://crm.example.com',
  })
  allowedOrigins?: string[];
}

export class UpdateCompanyDto {
  @ApiPropertyOptional() @Omittable() @IsString() @Length(1, 200) name?: string;

  @ApiPropertyOptional({ type: CompanySettingsDto, description: 'Merged into the current settings' })
  @Omittable()
  @ValidateNested()
  @Type(() => CompanySettingsDto)
  settings?: CompanySettingsDto;
}

export class CompanyDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() name!: string;
  @ApiProperty() slug!: string;
  @ApiProperty({ enum: ['active', 'suspended'] }) status!: string;
  @ApiProperty({ type: CompanySettingsDto }) settings!: CompanySettingsDto;
  @ApiProperty() createdAt!: Date;
  @ApiProperty() updatedAt!: Date;
}

export class CreateApiKeyDto {
  @ApiProperty({ example: 'CRM integration' }) @IsString() @Length(1, 100) name!: string;

  @ApiPropertyOptional({ enum: [...SCOPES, '*'], isArray: true, default: DEFAULT_SCOPES })
  @Omittable()
  @IsArray()
  @ArrayUnique()
  @IsIn([...SCOPES, '*'], { each: true })
  scopes?: ScopeGrant[];

  @ApiPropertyOptional({ description: 'ISO 8601; the key stops working then' })
  @Omittable()
  @Type(() => Date)
  @IsDate()
  expiresAt?: Date;
}

export class RotateApiKeyDto {
  @ApiPropertyOptional({
    minimum: 0,
    maximum: MAX_OVERLAP_SECONDS,
    default: 0,
    description: 'How long the previous key keeps working, in seconds (0: it stops at once)',
  })
  @Omittable()
  @IsInt()
  @Min(0)
  @Max(MAX_OVERLAP_SECONDS)
  overlapSeconds?: number;
}

export class OwnerDto {
  @ApiProperty({ example: 'owner@acme.example' }) @IsEmail() @MaxLength(254) email!: string;
  @ApiProperty({ example: 'correct-horse-battery-staple', minLength: MIN_PASSWORD })
  @IsString()
  @Length(MIN_PASSWORD, MAX_PASSWORD)
  password!: string;
  @ApiProperty({ example: 'Olivia Owner' }) @IsString() @Length(1, 200) displayName!: string;
}

export class CreateAppDto {
  @ApiProperty({ example: 'Acme Dental' }) @IsString() @Length(1, 200) name!: string;

  @ApiPropertyOptional({ example: 'acme-dental', description: 'Lower-case letters, digits and dashes' })
  @Omittable()
  @Matches(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, { message: 'slug must be lower-case letters, digits and dashes' })
  slug?: string;

  @ApiPropertyOptional({ type: OwnerDto, description: 'Also create the company owner' })
  @Omittable()
  @ValidateNested()
  @Type(() => OwnerDto)
  owner?: OwnerDto;
}

export class CreateOperatorDto extends OwnerDto {}

export const API_KEY_SCOPES_NOTE = `Scopes: ${SCOPES.join(', ')}; '*' grants all. Default: ${DEFAULT_SCOPES.join(', ')}.`;
