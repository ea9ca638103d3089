import { Omittable } from '../../common/validation.js';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsOptional,
  IsString,
  IsUUID,
  Length,
  Matches,
} from 'class-validator';
import { OffsetPageQuery } from '../../common/pagination.js';
import { AGENT_STATUSES, type AgentStatus } from '../agent.entity.js';

export const MAX_SKILLS = 50;
export const EXTENSION = /^[A-Za-z0-9*#._-]{1,32}$/;
export const SKILL = /^\S(?:.{0,62}\S)?$/;
const EXTENSION_MESSAGE = 'extension must be 1 to 32 letters, digits or * # . _ -';
const SKILL_MESSAGE = 'each skill must be 1 to 64 characters, without white space at either end';

export class CreateAgentDto {
  @ApiProperty({ example: 'Ada Agent', maxLength: 200 })
  @IsString()
  @Length(1, 200)
  displayName!: string;

  @ApiPropertyOptional({
    type: String,
    format: 'uuid',
    nullable: true,
    description: 'A user of the same company who is this agent (one agent per user)',
  })
  @IsOptional()
  @IsUUID()
  userId?: string | null;

  @ApiPropertyOptional({
    type: String,
    example: '1001',
    nullable: true,
    description: "PBX extension, unique among the company's agents",
  })
  @IsOptional()
  @Matches(EXTENSION, { message: EXTENSION_MESSAGE })
  extension?: string | null;

  @ApiPropertyOptional({ type: [String], example: ['spanish', 'billing'], maxItems: MAX_SKILLS })
  @Omittable()
  @IsArray()
  @ArrayMaxSize(MAX_SKILLS)
  @ArrayUnique()
  @IsString({ each: true })
  @Matches(SKILL, { each: true, message: SKILL_MESSAGE })
  skills?: string[];
}

export class UpdateAgentDto {
  @ApiPropertyOptional({ maxLength: 200 })
  @Omittable()
  @IsString()
  @Length(1, 200)
  displayName?: string;

  @ApiPropertyOptional({ type: String, format: 'uuid', nullable: true, description: 'null unlinks the user' })
  @IsOptional()
  @IsUUID()
  userId?: string | null;

  @ApiPropertyOptional({ type: String, example: '1001', nullable: true, description: 'null clears the extension' })
  @IsOptional()
  @Matches(EXTENSION, { message: EXTENSION_MESSAGE })
  extension?: string | null;

  @ApiPropertyOptional({ type: [String], maxItems: MAX_SKILLS, description: 'Replaces the skills' })
  @Omittable()
  @IsArray()
  @ArrayMaxSize(MAX_SKILLS)
  @ArrayUnique()
  @IsString({ each: true })
  @Matches(SKILL, { each: true, message: SKILL_MESSAGE })
  skills?: string[];
}

export class SetAvailabilityDto {
  @ApiProperty({ enum: AGENT_STATUSES })
  @IsIn(AGENT_STATUSES)
  status!: AgentStatus;
}

export class AgentListQuery extends OffsetPageQuery {
  @ApiPropertyOptional({ enum: AGENT_STATUSES })
  @IsOptional()
  @IsIn(AGENT_STATUSES)
  status?: AgentStatus;

  @ApiPropertyOptional({ example: 'spanish', description: 'Agents having this skill (exact match)' })
  @IsOptional()
  @Matches(SKILL, { message: 'skill must be 1 to 64 characters, without white space at either end' })
  skill?: string;
}

export class AgentDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) companyId!: string;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) userId!: string | null;
  @ApiProperty() displayName!: string;
  @ApiProperty({ type: String, nullable: true, example: '1001' }) extension!: string | null;
  @ApiProperty({ type: [String] }) skills!: string[];
  @ApiProperty({ enum: AGENT_STATUSES }) status!: AgentStatus;
  @ApiProperty() statusChangedAt!: Date;
  @ApiProperty() createdAt!: Date;
  @ApiProperty() updatedAt!: Date;
}
