import { maskDeep, maskJsonLine, maskPhoneText } from './mask.js';

describe('maskPhoneText', () => {
  it.each([
    ['+15551230001', '+*******0001'],
    ['call from +1 (555) 123-0001 now', 'call from +* (***) ***-0001 now'],
    ['555.123.0001', '***.***.0001'],
    ['ext 5551230001,', 'ext ******0001,'],
    ['/calls?from=%2B15551230001&x=1', '/calls?from=%2B*******0001&x=1'],
    ['tel:+442071838750', 'tel:+********8750'],
  ])('masks %s', (input, expected) => {
    expect(maskPhoneText(input)).toBe(expected);
  });

  it.each([
    ['request id 550e8400-e29b-41d4-a716-446655440000'],
    ['at 2026-11-21T04:43:25.123Z'],
    ['on 2026-11-21'],
    ['extension 1001 and port 5038'],
    ['Linkedid 1732166400.42'],
    ['hex abcdef1234567890'],
  ])('leaves %s alone', (input) => {
    expect(maskPhoneText(input)).toBe(input);
  });
});

describe('maskDeep', () => {
  it('masks strings at any depth and keeps everything else', () => {
    const error = new Error('dial to +15551230001 failed');
    const input = {
      call: { from: '+15551230001', to: ['+15550002001', { nested: 'callee 5550001234' }] },
      count: 3,
      ok: true,
      at: new Date(0),
      error,
    };
    const out = maskDeep(input);
    expect(out.call.from).toBe('+*******0001');
    expect(out.call.to[0]).toBe('+*******2001');
    expect(out.call.to[1]).toEqual({ nested: 'callee ******1234' });
    expect(out.count).toBe(3);
    expect(out.ok).toBe(true);
    expect(out.at).toEqual(new Date(0));
    expect((out.error as unknown as { message: string }).message).toBe('dial to +*******0001 failed');
    expect(JSON.stringify(out)).not.toMatch(/5551230001|5550002001|5550001234/);
    expect(input.call.from).toBe('+15551230001');
  });

  it('cuts cycles', () => {
    const a: Record<string, unknown> = { phone: '+15551230001' };
    a.self = a;
    expect(maskDeep(a)).toEqual({ phone: '+*******0001', self: '[Circular]' });
  });
});

describe('maskJsonLine', () => {
  it('masks inside string literals only and keeps the line valid JSON', () => {
    const line = JSON.stringify({
      time: 1732166400000,
      msg: 'line one\n+15551230001 called "5550002001"',
      req: { url: '/calls?to=%2B15550001234' },
      size: 15551230001,
    });
    const masked = maskJsonLine(line);
    const parsed = JSON.parse(masked) as Record<string, unknown>;
    expect(parsed.time).toBe(1732166400000);
    expect(parsed.size).toBe(15551230001);
    expect(parsed.msg).toBe('line one\n+*******0001 called "******2001"');
    expect(parsed.req).toEqual({ url: '/calls?to=%2B*******1234' });
  });
});
