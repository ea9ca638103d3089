import { conferenceName, conferenceTwiml, escapeXml, playDigitsThenRejoinTwiml } from './twilio.twiml.js';

describe('TwiML builders', () => {
  it('escapes what they carry', () => {
    expect(escapeXml(`a<b>&"c"'d'`)).toBe('a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;');
    const twiml = conferenceTwiml('"><Hangup/>', 'agent');
    expect(twiml).toContain('&quot;&gt;&lt;Hangup/&gt;');
    expect(twiml).not.toContain('<Hangup/>');
  });

  it('puts the agent and the customer in one conference; only the agent starts and ends it', () => {
    const name = conferenceName('33333333-3333-4333-8333-333333333333');
    expect(name).toBe('switchboard-33333333-3333-4333-8333-333333333333');
    expect(conferenceTwiml(name, 'agent')).toBe(
      `<Response><Dial><Conference startConferenceOnEnter="true" endConferenceOnExit="true" beep="false">${name}</Conference></Dial></Response>`,
    );
    expect(conferenceTwiml(name, 'customer')).toBe(
      `<Response><Dial><Conference startConferenceOnEnter="false" endConferenceOnExit="false" beep="false">${name}</Conference></Dial></Response>`,
    );
  });

  it('plays digits with <Play digits>, then rejoins the same conference', () => {
    expect(playDigitsThenRejoinTwiml('1w2#', 'switchboard-x')).toBe(
      '<Response><Play digits="1w2#"/><Dial><Conference startConferenceOnEnter="false" endConferenceOnExit="false" beep="false">switchboard-x</Conference></Dial></Response>',
    );
  });
});
