import { signTwilioRequest } from '../../../test/fakes/twilio-fake.js';
import {
  isValidTwilioBodySignature,
  isValidTwilioSignature,
  parseForm,
  signatureUrlCandidates,
  twilioBodyHash,
  twilioSignature,
} from './twilio.signature.js';

// The example of Twilio's security documentation and of every official SDK's tests
// (twilio-node, twilio-python, twilio-php, twilio-csharp): token 12345, this URL and these fields.
const TOKEN = '12345';
const URL_ = 'https://mycompany.com/myapp.php?foo=1&bar=2';
const PARAMS = {
  CallSid: 'CA1234567890ABCDE',
  Caller: '+14158675309',
  Digits: '1234',
  From: '+14158675309',
  To: '+18005551212',
};
const SIGNATURE = 'RSOYDt4T1cUTdK1PDd93/VVr8B8=';
// The JSON variant from the same SDK tests.
const JSON_BODY = '{"property": "value", "boolean": true}';
const BODY_HASH = '0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620';
const JSON_SIGNATURE = 'a9nBmqA0ju/hNViExpshrM61xv4=';

describe('twilioSignature', () => {
  it("matches Twilio's published example, whatever the field order", () => {
    expect(twilioSignature(TOKEN, URL_, PARAMS)).toBe(SIGNATURE);
    const reversed = Object.fromEntries(Object.entries(PARAMS).reverse());
    expect(twilioSignature(TOKEN, URL_, reversed)).toBe(SIGNATURE);
  });

  it("agrees with the fake's independent signer", () => {
    const params = { b: 'x y', a: ['2', '1', '2'], é: 'ü' };
    expect(twilioSignature('tok-0123456789abcdef', 'https://a.example/x?y=1', params)).toBe(
      signTwilioRequest('tok-0123456789abcdef', 'https://a.example/x?y=1', params),
    );
  });

  it('takes each distinct value of a repeated field once, sorted (as twilio-node does)', () => {
    const url = 'https://example.test/hook';
    expect(twilioSignature(TOKEN, url, { x: ['2', '1', '1'] })).toBe(twilioSignature(TOKEN, url, { x: ['1', '2'] }));
    expect(twilioSignature(TOKEN, url, { x: ['1', '2'] })).not.toBe(twilioSignature(TOKEN, url, { x: '1' }));
  });

  it('hashes bodies as hex SHA-256', () => {
    expect(twilioBodyHash(JSON_BODY)).toBe(BODY_HASH);
  });
});

describe('isValidTwilioSignature', () => {
  it('accepts the published example and rejects any change', () => {
    expect(isValidTwilioSignature(TOKEN, SIGNATURE, URL_, PARAMS)).toBe(true);
    expect(isValidTwilioSignature(TOKEN, SIGNATURE, URL_, { ...PARAMS, Digits: '9999' })).toBe(false);
    expect(isValidTwilioSignature(TOKEN, SIGNATURE, URL_.replace('bar=2', 'bar=3'), PARAMS)).toBe(false);
    expect(isValidTwilioSignature(TOKEN, SIGNATURE, 'https://evil.example/myapp.php?foo=1&bar=2', PARAMS)).toBe(false);
    expect(isValidTwilioSignature('54321', SIGNATURE, URL_, PARAMS)).toBe(false);
    expect(isValidTwilioSignature(TOKEN, '', URL_, PARAMS)).toBe(false);
    expect(isValidTwilioSignature(TOKEN, SIGNATURE.slice(0, -1), URL_, PARAMS)).toBe(false);
  });

  it('accepts the URL signed with or without the port, as twilio-node does', () => {
    const withPort = 'https://mycompany.com:443/myapp.php?foo=1&bar=2';
    expect(isValidTwilioSignature(TOKEN, twilioSignature(TOKEN, withPort, PARAMS), URL_, PARAMS)).toBe(true);
    expect(isValidTwilioSignature(TOKEN, SIGNATURE, withPort, PARAMS)).toBe(true);
    // Another port is another URL: a signature made for it does not pass here.
    const other = 'https://mycompany.com:8443/myapp.php?foo=1&bar=2';
    expect(isValidTwilioSignature(TOKEN, twilioSignature(TOKEN, other, PARAMS), URL_, PARAMS)).toBe(false);
  });

  it('accepts a query string signed unescaped (twilio-node issue #1183)', () => {
    const signed = "https://example.test/hook?name=William+O'hara";
    const sig = twilioSignature(TOKEN, signed, PARAMS);
    expect(isValidTwilioSignature(TOKEN, sig, signed, PARAMS)).toBe(true);
  });

  it('lists the URL as received first, then the port and querystring variants', () => {
    const c = signatureUrlCandidates('https://a.example/x?q=1');
    expect(c[0]).toBe('https://a.example/x?q=1');
    expect(c).toContain('https://a.example:443/x?q=1');
    expect(signatureUrlCandidates('http://a.example:8080/x')).toContain('http://a.example/x');
  });
});

describe('isValidTwilioBodySignature', () => {
  const url = `${URL_}&bodySHA256=${BODY_HASH}`;

  it("accepts the SDKs' JSON example", () => {
    expect(isValidTwilioBodySignature(TOKEN, JSON_SIGNATURE, url, Buffer.from(JSON_BODY))).toBe(true);
  });

  it('rejects a body that does not hash to bodySHA256, a URL without it, or a bad signature', () => {
    expect(isValidTwilioBodySignature(TOKEN, JSON_SIGNATURE, url, Buffer.from(`${JSON_BODY} `))).toBe(false);
    expect(isValidTwilioBodySignature(TOKEN, twilioSignature(TOKEN, URL_, {}), URL_, Buffer.from(JSON_BODY))).toBe(
      false,
    );
    expect(isValidTwilioBodySignature('54321', JSON_SIGNATURE, url, Buffer.from(JSON_BODY))).toBe(false);
  });
});

describe('parseForm', () => {
  it('decodes a form body, a repeated name as an array', () => {
    expect(parseForm('To=%2B15550100001&Body=hello+world&x=1&x=2&x=3')).toEqual({
      To: '+15550100001',
      Body: 'hello world',
      x: ['1', '2', '3'],
    });
  });
});

describe('parseForm and the signature of odd field names', () => {
  it('keeps a field named __proto__ as a field, so the signature covers it', () => {
    const signed = { CallSid: 'CA1', CallStatus: 'ringing' };
    const sig = twilioSignature(TOKEN, URL_, signed);
    const injected = parseForm('CallSid=CA1&CallStatus=ringing&__proto__=x');
    expect(Object.keys(injected)).toContain('__proto__');
    expect(isValidTwilioSignature(TOKEN, sig, URL_, injected)).toBe(false);
  });
});
