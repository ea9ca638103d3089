import { maskNumbers, twilioCodeOf, twilioError } from './twilio-errors.js';

const h = (init: Record<string, string> = {}) => new Headers(init);
const body = (code: number, status: number, message = 'x') => ({
  code,
  message,
  more_info: `https://www.twilio.com/docs/errors/${code}`,
  status,
});

describe('twilioError', () => {
  it("maps Twilio's codes to ours", () => {
    expect(twilioError(401, h(), body(20003, 401, 'Authenticate'), 'fetch account').code).toBe('AUTH');
    expect(twilioError(404, h(), body(20404, 404), 'fetch call').code).toBe('NOT_FOUND');
    expect(twilioError(400, h(), body(21211, 400), 'create call').code).toBe('REJECTED');
    expect(twilioError(400, h(), body(21220, 400), 'update call').code).toBe('REJECTED');
    expect(twilioCodeOf(twilioError(400, h(), body(21220, 400), 'update call'))).toBe(21220);
    const limited = twilioError(429, h({ 'retry-after': '3' }), body(20429, 429), 'create call');
    expect(limited.code).toBe('RATE_LIMITED');
    expect(limited.options).toEqual({ vendorStatus: 429, retryAfterSeconds: 3 });
  });

  it('falls back to the HTTP status without a Twilio body', () => {
    expect(twilioError(403, h(), undefined, 'x').code).toBe('AUTH');
    expect(twilioError(409, h(), 'not json', 'x').code).toBe('REJECTED');
    expect(twilioError(404, h(), {}, 'x').code).toBe('NOT_FOUND');
  });

  it('keeps the Twilio code and message in the text, phone numbers masked', () => {
    const e = twilioError(
      400,
      h(),
      body(21211, 400, "The 'To' number +1 (555) 010-0099 is not a valid phone number."),
      'create call',
    );
    expect(e.message).toBe(
      "Twilio create call answered 400 (error 21211): The 'To' number …0099 is not a valid phone number.",
    );
  });
});

describe('maskNumbers', () => {
  it('masks phone numbers but not short numbers', () => {
    expect(maskNumbers('call +15550100099 or 5550100098, code 21211')).toBe('call …0099 or …0098, code 21211');
  });
});
