import { LogCapture } from '../../../test/support/log-capture.js';
import { requestContext } from '../request-context.js';
import { createLogger, PinoNestLogger } from './logger.js';

describe('createLogger', () => {
  const setup = () => {
    const out = new LogCapture();
    return { out, logger: createLogger({ level: 'debug', pretty: false }, out) };
  };

  it('masks phone numbers in nested objects and in free text, and keeps JSON lines', () => {
    const { out, logger } = setup();
    logger.info(
      { call: { from: '+15551230001', legs: [{ to: '(555) 000-2001' }] }, note: 'callback 555.000.1234 asap' },
      'inbound call from +15551230001 to 5550001234',
    );
    expect(out.lines).toHaveLength(1);
    const line = out.lines[0]!;
    expect(line.msg).toBe('inbound call from +*******0001 to ******1234');
    expect(line.call).toEqual({ from: '+*******0001', legs: [{ to: '(***) ***-2001' }] });
    expect(line.note).toBe('callback ***.***.1234 asap');
    expect(out.text()).not.toMatch(/5551230001|0002001|0001234/);
  });

  it('masks numbers inside errors (message and stack)', () => {
    const { out, logger } = setup();
    logger.error({ err: new Error('originate to +15551230001 failed') }, 'failed');
    const err = out.lines[0]!.err as { message: string; stack: string };
    expect(err.message).toBe('originate to +*******0001 failed');
    expect(err.stack).toContain('+*******0001');
  });

  it('redacts credentials', () => {
    const { out, logger } = setup();
    logger.info({
      req: { headers: { authorization: 'Bearer abc.def', cookie: 'a=b', 'x-api-key': 'sk_live_123' } },
      connection: { password: 'pw', secret: 's3', token: 't0k' },
    });
    const text = out.text();
    for (const secret of ['abc.def', 'a=b', 'sk_live_123', '"pw"', '"s3"', 't0k']) expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
  });

  it('puts the request id of the current request on every line', () => {
    const { out, logger } = setup();
    requestContext.run({ requestId: 'req-42' }, () => logger.info('inside'));
    logger.info('outside');
    expect(out.lines[0]).toMatchObject({ msg: 'inside', requestId: 'req-42' });
    expect(out.lines[1]!.requestId).toBeUndefined();
  });
});

describe('PinoNestLogger', () => {
  it('writes Nest lines with their context, masked', () => {
    const out = new LogCapture();
    const nest = new PinoNestLogger(createLogger({ level: 'debug', pretty: false }, out));
    nest.log('agent 1001 rang +15551230001', 'CallsService');
    nest.error('failed', 'Error: x\n    at y', 'AmiClient');
    nest.warn({ phone: '+15551230001', ok: 1 });
    nest.error(
      { err: Object.assign(new Error('boom'), { code: 'E1', client: { password: 'pw' } }) },
      'queue failed',
      'Jobs',
    );
    expect(out.lines[0]).toMatchObject({ level: 30, context: 'CallsService', msg: 'agent 1001 rang +*******0001' });
    expect(out.lines[1]).toMatchObject({ level: 50, context: 'AmiClient', stack: 'Error: x\n    at y', msg: 'failed' });
    expect(out.lines[2]).toMatchObject({ level: 40, phone: '+*******0001', ok: 1 });
    expect(out.lines[3]).toMatchObject({
      level: 50,
      context: 'Jobs',
      msg: 'queue failed',
      err: { type: 'Error', message: 'boom', code: 'E1' },
    });
    expect(out.lines[3]!.err).not.toHaveProperty('client');
  });
});
