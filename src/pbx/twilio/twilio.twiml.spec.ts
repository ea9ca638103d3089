import { clickToCallTwiml, escapeXml, playDigitsTwiml } from './twilio.twiml.js';

describe('TwiML builders', () => {
  it('escapes what they carry', () => {
    expect(escapeXml(`a<b>&"c"'d'`)).toBe('a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;');
    const twiml = clickToCallTwiml('+15550100099', '"><Hangup/>', 'https://x.test/s?a=1&b=<2>');
    expect(twiml).toContain('callerId="&quot;&gt;&lt;Hangup/&gt;"');
    expect(twiml).toContain('statusCallback="https://x.test/s?a=1&amp;b=&lt;2&gt;"');
    expect(twiml).not.toContain('<Hangup/>');
  });

  it('plays digits with <Play digits>', () => {
    expect(playDigitsTwiml('1w2#')).toBe('<Response><Play digits="1w2#"/></Response>');
  });
});
