import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, ApiResponse } from '@nestjs/swagger';
import { titleFor } from '../errors/problem.js';

export class FieldErrorDto {
  @ApiProperty({ example: 'to' }) field!: string;
  @ApiProperty({ type: [String], example: ['to must be a phone number in E.164'] }) messages!: string[];
}

/** The body of every error (RFC 9457), served as `application/problem+json`. */
export class ProblemDto {
  @ApiProperty({ example: 'urn:switchboard:problem:validation-failed', description: 'Stable problem type' })
  type!: string;
  @ApiProperty({ example: 'Bad request' }) title!: string;
  @ApiProperty({ example: 400 }) status!: number;
  @ApiProperty({ example: 'to: to must be a phone number in E.164' }) detail!: string;
  @ApiPropertyOptional({ example: '/api/v1/calls' }) instance?: string;
  @ApiPropertyOptional({ example: 'b3c5a1f0-5d2e-4f7e-9a57-0f6f1f3f8c11', description: 'Also in x-request-id' })
  requestId?: string;
  @ApiPropertyOptional({ type: [FieldErrorDto], description: 'Field errors of a validation problem' })
  errors?: FieldErrorDto[];
}

/** Documents the problem responses a route can give (400 and 500 are added to every route). */
export function ApiProblems(...statuses: number[]): MethodDecorator & ClassDecorator {
  const all = [...new Set([...statuses, 500])].sort();
  return applyDecorators(
    ...all.map((status) =>
      ApiResponse({
        status,
        description: titleFor(status) + ' (application/problem+json)',
        content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/ProblemDto' } } },
      }),
    ),
  );
}
