import { Omittable } from '../../common/validation.js';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsEmail, IsIn, IsString, Length, Matches, MaxLength, ValidateNested } from 'class-validator';
import { ROLES, type CompanyRole } from '../../common/access/roles.js';

export const MIN_PASSWORD = 12;
export const MAX_PASSWORD = 256;

export class PreferencesDto {
  @ApiPropertyOptional({ enum: ['light', 'dark', 'system'] })
  @Omittable()
  @IsIn(['light', 'dark', 'system'])
  theme?: 'light' | 'dark' | 'system';

  @ApiPropertyOptional({ example: 'en-US', description: 'BCP 47 language tag' })
  @Omittable()
  @Matches(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, { message: 'language must be a BCP 47 tag such as en or en-US' })
  language?: string;
}

export class CreateUserDto {
  @ApiProperty({ example: 'agent@example.com' })
  @IsEmail()
  @MaxLength(254)
  email!: string;

  @ApiProperty({ example: 'correct-horse-battery-staple', minLength: MIN_PASSWORD, maxLength: MAX_PASSWORD })
  @IsString()
  @Length(MIN_PASSWORD, MAX_PASSWORD)
  password!: string;

  @ApiProperty({ example: 'Ada Agent' })
  @IsString()
  @Length(1, 200)
  displayName!: string;

  @ApiProperty({ enum: ROLES })
  @IsIn(ROLES)
  role!: CompanyRole;
}

export class UpdateUserDto {
  @ApiPropertyOptional()
  @Omittable()
  @IsString()
  @Length(1, 200)
  displayName?: string;

  @ApiPropertyOptional({ enum: ROLES })
  @Omittable()
  @IsIn(ROLES)
  role?: CompanyRole;

  @ApiPropertyOptional({ minLength: MIN_PASSWORD, description: 'Sets a new password (managers and above for others)' })
  @Omittable()
  @IsString()
  @Length(MIN_PASSWORD, MAX_PASSWORD)
  password?: string;

  @ApiPropertyOptional({ type: PreferencesDto })
  @Omittable()
  @ValidateNested()
  @Type(() => PreferencesDto)
  preferences?: PreferencesDto;
}

export class UserDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) companyId!: string | null;
  @ApiProperty() email!: string;
  @ApiProperty() displayName!: string;
  @ApiProperty({ enum: [...ROLES, 'superadmin'] }) role!: string;
  @ApiProperty({ type: PreferencesDto }) preferences!: PreferencesDto;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) lastLoginAt!: Date | null;
  @ApiProperty() createdAt!: Date;
  @ApiProperty() updatedAt!: Date;
}
