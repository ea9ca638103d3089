import { ValidateIf } from 'class-validator';

/**
 * An optional body field that may be left out but is never null: `undefined` skips the checks,
 * `null` fails them (400). (`@IsOptional()` lets null through, which would reach NOT NULL columns.)
 */
export const Omittable = () => ValidateIf((_: object, value: unknown) => value !== undefined);
