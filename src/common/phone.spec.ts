import { toE164 } from './phone.js';

describe('toE164', () => {
  it.each([
    ['+1 (555) 123-0001', '+15551230001'], // fictional 555 numbers are possible, so accepted
    ['+1 212 555 0100', '+12125550100'],
    ['(212) 555-0100', '+12125550100'],
    ['+44 20 7183 8750', '+442071838750'],
    ['not a number', null],
    ['+1 555', null],
  ])('%s → %s', (input, expected) => {
    expect(toE164(input)).toBe(expected);
  });
});
