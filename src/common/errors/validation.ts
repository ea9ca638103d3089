import { ValidationPipe, type ValidationError } from '@nestjs/common';
import { type FieldError, ValidationFailedException } from './app-exception.js';

/** Flattens class-validator's tree into `field.path: messages`. */
export function toFieldErrors(errors: ValidationError[], prefix = ''): FieldError[] {
  const out: FieldError[] = [];
  for (const error of errors) {
    const field = prefix ? `${prefix}.${error.property}` : error.property;
    if (error.constraints) out.push({ field, messages: Object.values(error.constraints) });
    if (error.children?.length) out.push(...toFieldErrors(error.children, field));
  }
  return out;
}

/** The global pipe: strip nothing silently — unknown properties are refused — and transform. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    stopAtFirstError: false,
    exceptionFactory: (errors) => new ValidationFailedException(toFieldErrors(errors)),
  });
}
