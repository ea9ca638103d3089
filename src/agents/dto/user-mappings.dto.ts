import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsIn,
  IsOptional,
  IsString,
  IsUUID,
  isUUID,
  Length,
  Matches,
  registerDecorator,
  type ValidationArguments,
} from 'class-validator';
import { OffsetPageQuery } from '../../common/pagination.js';
import { PROVIDERS, type Provider } from '../user-mapping.entity.js';

export const MAX_BATCH = 1000;
/** No white space at either end (and so not blank). */
const TRIMMED = /^\S(?:.*\S)?$/;

/**
 * `agentId`: a UUID, or absent when `crmUserId` is given: a mapping links the identity at the
 * provider to our agent, to a CRM user, or to both.
 */
function IsAgentIdOrCrmUser() {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'isAgentIdOrCrmUser',
      target: object.constructor,
      propertyName,
      validator: {
        validate(value: unknown, args: ValidationArguments) {
          if (value === undefined || value === null) {
            const crmUserId = (args.object as { crmUserId?: unknown }).crmUserId;
            return crmUserId !== undefined && crmUserId !== null;
          }
          return isUUID(value);
        },
        defaultMessage(args: ValidationArguments) {
          return args.value === undefined || args.value === null
            ? 'a mapping needs agentId, crmUserId or both'
            : 'agentId must be a UUID';
        },
      },
    });
}

export class CreateUserMappingDto {
  @ApiProperty({ enum: PROVIDERS })
  @IsIn(PROVIDERS)
  provider!: Provider;

  @ApiProperty({ example: '1001', maxLength: 128, description: 'The user id or extension at the provider' })
  @IsString()
  @Length(1, 128)
  @Matches(TRIMMED, { message: 'externalId must not start or end with white space' })
  externalId!: string;

  @ApiPropertyOptional({
    type: String,
    format: 'uuid',
    nullable: true,
    description: 'A live agent of the company; agentId, crmUserId or both',
  })
  @IsAgentIdOrCrmUser()
  agentId?: string | null;

  @ApiPropertyOptional({ type: String, example: 'seed-user-17', maxLength: 254, nullable: true })
  @IsOptional()
  @IsString()
  @Length(1, 254)
  @Matches(TRIMMED, { message: 'crmUserId must not start or end with white space' })
  crmUserId?: string | null;
}

export class BatchUserMappingsDto {
  @ApiProperty({
    type: [CreateUserMappingDto],
    minItems: 1,
    maxItems: MAX_BATCH,
    description: 'Written all together or not at all; errors name the row: mappings[3].agentId',
  })
  // Rows are checked one by one by the service, which names them `mappings[i]`.
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_BATCH)
  mappings!: unknown[];
}

export class UserMappingListQuery extends OffsetPageQuery {
  @ApiPropertyOptional({ enum: PROVIDERS })
  @IsOptional()
  @IsIn(PROVIDERS)
  provider?: Provider;

  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID()
  agentId?: string;
}

export class ProviderIdentityParams {
  @ApiProperty({ enum: PROVIDERS })
  @IsIn(PROVIDERS)
  provider!: Provider;

  @ApiProperty({ maxLength: 128 })
  @IsString()
  @Length(1, 128)
  externalId!: string;
}

export class CrmUserParams {
  @ApiProperty({ maxLength: 254 })
  @IsString()
  @Length(1, 254)
  crmUserId!: string;
}

export class UserMappingDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) companyId!: string;
  @ApiProperty({ enum: PROVIDERS }) provider!: Provider;
  @ApiProperty() externalId!: string;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) agentId!: string | null;
  @ApiProperty({ type: String, nullable: true }) crmUserId!: string | null;
  @ApiProperty() createdAt!: Date;
}

export class UserMappingListDto {
  @ApiProperty({ type: [UserMappingDto] }) data!: UserMappingDto[];
}
