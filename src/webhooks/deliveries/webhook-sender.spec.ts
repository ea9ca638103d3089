import { Webhook } from 'standardwebhooks';
import { SsrfRefusedError } from '../endpoints/ssrf-guard.js';
import { classify, WebhookSender } from './webhook-sender.js';

describe('classify', () => {
  const coded = (code: string, name = 'Error') => Object.assign(new Error(code), { code, name });

  it.each([
    [new SsrfRefusedError('blocked-address', 'no', '10.0.0.1'), 'ssrf-blocked'],
    [Object.assign(new Error('wrapped'), { cause: new SsrfRefusedError('blocked-address', 'no') }), 'ssrf-blocked'],
    [coded('UND_ERR_HEADERS_TIMEOUT'), 'timeout'],
    [coded('UND_ERR_BODY_TIMEOUT'), 'timeout'],
    [coded('UND_ERR_CONNECT_TIMEOUT'), 'connect'],
    [coded('ECONNREFUSED'), 'connect'],
    [coded('ECONNRESET'), 'reset'],
    [coded('UND_ERR_SOCKET'), 'reset'],
    [coded('DEPTH_ZERO_SELF_SIGNED_CERT'), 'tls'],
    [coded('ERR_TLS_CERT_ALTNAME_INVALID'), 'tls'],
    [coded('HPE_INVALID_CONSTANT', 'HTTPParserError'), 'invalid-response'],
    [new Error('something else'), 'unknown'],
  ])('%s → %s', (error, expected) => {
    expect(classify(error)).toBe(expected);
  });
});

describe('WebhookSender.sign', () => {
  it('joins one signature per secret with a space, each verifiable with its own secret', () => {
    const sender = new WebhookSender(undefined, 1_000, 1);
    const one = 'whsec_' + Buffer.alloc(24, 1).toString('base64');
    const two = 'whsec_' + Buffer.alloc(24, 2).toString('base64');
    const at = new Date();
    const body = '{"id":"e1","type":"webhook.test"}';
    const header = sender.sign([one, two], 'e1', at, body);
    expect(header.split(' ')).toHaveLength(2);
    const headers = {
      'webhook-id': 'e1',
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': header,
    };
    expect(new Webhook(one).verify(body, headers)).toEqual({ id: 'e1', type: 'webhook.test' });
    expect(new Webhook(two).verify(body, headers)).toEqual({ id: 'e1', type: 'webhook.test' });
    void sender.close();
  });
});
