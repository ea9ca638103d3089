import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsDate, IsOptional, Matches } from 'class-validator';
import { CursorPageQuery } from '../common/pagination.js';

export class AuditLogQuery extends CursorPageQuery {
  @ApiPropertyOptional({ example: 'auth.login_failed' })
  @IsOptional()
  @Matches(/^[a-z_]+\.[a-z_]+$/, { message: 'action must look like auth.login or api_key.rotated' })
  action?: string;

  @ApiPropertyOptional({ description: 'ISO 8601, inclusive' }) @IsOptional() @Type(() => Date) @IsDate() since?: Date;
  @ApiPropertyOptional({ description: 'ISO 8601, exclusive' }) @IsOptional() @Type(() => Date) @IsDate() until?: Date;
}
