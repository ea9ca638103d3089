import { Omittable } from '../../common/validation.js';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsEmail, IsString, Length, MaxLength, ValidateNested } from 'class-validator';
import { MAX_PASSWORD, MIN_PASSWORD, PreferencesDto, UserDto } from '../../users/dto/users.dto.js';

export class RegisterDto {
  @ApiProperty({ example: 'Acme Dental' }) @IsString() @Length(1, 200) companyName!: string;
  @ApiProperty({ example: 'owner@acme.example' }) @IsEmail() @MaxLength(254) email!: string;
  @ApiProperty({ example: 'correct-horse-battery-staple', minLength: MIN_PASSWORD, maxLength: MAX_PASSWORD })
  @IsString()
  @Length(MIN_PASSWORD, MAX_PASSWORD)
  password!: string;
  @ApiProperty({ example: 'Olivia Owner' }) @IsString() @Length(1, 200) displayName!: string;
}

export class LoginDto {
  @ApiProperty({ example: 'owner@acme.example' }) @IsString() @MaxLength(254) email!: string;
  @ApiProperty({ example: 'correct-horse-battery-staple' }) @IsString() @MaxLength(MAX_PASSWORD) password!: string;
}

export class RefreshDto {
  @ApiProperty({
    example: 'pQ3x1vK8mZr0bN7tY2wL5sE9cF4hA6dJ0gU1iO3kR7e',
    description: 'The refresh token of the last login or refresh',
  })
  @IsString()
  @Length(20, 200)
  refreshToken!: string;
}

export class LogoutDto {
  @ApiPropertyOptional({
    description: 'End the session of this refresh token (default: the session of the access token)',
  })
  @Omittable()
  @IsString()
  @Length(20, 200)
  refreshToken?: string;
}

export class UpdateMeDto {
  @ApiPropertyOptional() @Omittable() @IsString() @Length(1, 200) displayName?: string;

  @ApiPropertyOptional({ type: PreferencesDto })
  @Omittable()
  @ValidateNested()
  @Type(() => PreferencesDto)
  preferences?: PreferencesDto;

  @ApiPropertyOptional({ minLength: MIN_PASSWORD, description: 'Needs currentPassword' })
  @Omittable()
  @IsString()
  @Length(MIN_PASSWORD, MAX_PASSWORD)
  newPassword?: string;

  @ApiPropertyOptional() @Omittable() @IsString() @MaxLength(MAX_PASSWORD) currentPassword?: string;
}

export class TokensDto {
  @ApiProperty({ description: 'JWT (HS256), sent as Authorization: Bearer' }) accessToken!: string;
  @ApiProperty({ example: 'Bearer' }) tokenType!: 'Bearer';
  @ApiProperty({ description: 'Seconds until the access token expires' }) expiresIn!: number;
  @ApiProperty({ description: 'Opaque; single use: each refresh returns a new one' }) refreshToken!: string;
  @ApiProperty() refreshTokenExpiresAt!: Date;
  @ApiProperty({ type: UserDto }) user!: UserDto;
}
