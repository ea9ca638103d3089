import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/core';
// The metadata as a JS module (the package's JSON import is deprecated under Jest's ESM loader).
import metadata from 'libphonenumber-js/min/metadata';
import { registerDecorator, type ValidationOptions } from 'class-validator';

/**
 * Normalises a phone number to E.164 (`+15551230001`), or returns null. Numbers without a
 * country code are read as `defaultCountry` (US when not given).
 */
export function toE164(input: string, defaultCountry: CountryCode = 'US'): string | null {
  const parsed = parsePhoneNumberFromString(input.trim(), defaultCountry, metadata);
  return parsed?.isPossible() ? parsed.number : null;
}

/** The value is a valid phone number already written in E.164. */
export function IsE164(options?: ValidationOptions) {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'isE164',
      target: object.constructor,
      propertyName,
      options: { message: `${propertyName} must be a phone number in E.164, such as +15551230001`, ...options },
      validator: {
        validate: (value: unknown) =>
          typeof value === 'string' && /^\+[1-9]\d{6,14}$/.test(value) && toE164(value) === value,
      },
    });
}
