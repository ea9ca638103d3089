/**
 * The TwiML documents the driver sends inline (`Twiml` parameter of the Calls resource).
 * - `<Dial>`: https://www.twilio.com/docs/voice/twiml/dial (callerId; without `action`, when the
 *   dialled party hangs up Twilio continues the document, and with nothing after `<Dial>` the call
 *   ends)
 * - `<Number>`: https://www.twilio.com/docs/voice/twiml/number (statusCallback,
 *   statusCallbackEvent — space-separated `initiated ringing answered completed` —,
 *   statusCallbackMethod)
 * - `<Play digits>`: https://www.twilio.com/docs/voice/twiml/play#attributes-digits (DTMF tones,
 *   `w` = 0.5 s pause; played to the party of the call leg the document runs on)
 * - `<Conference>`: https://www.twilio.com/docs/voice/twiml/conference (a named room; a leg in it
 *   stays there until it hangs up, its TwiML is replaced, or the conference ends)
 */

/** Escapes text for XML content and double-quoted attributes. */
export function escapeXml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** The call progress events we ask for, on the Call (repeated parameter) and on `<Number>` (one attribute). */
export const STATUS_CALLBACK_EVENTS = ['initiated', 'ringing', 'answered', 'completed'] as const;

/** The conference both legs of one click-to-call meet in: named after our call id, unique. */
export function conferenceName(callId: string): string {
  return `switchboard-${callId}`;
}

/**
 * `<Dial><Conference>` for one leg (https://www.twilio.com/docs/voice/twiml/conference#attributes):
 * - the agent starts the conference when it enters (`startConferenceOnEnter`) and ends it when it
 *   leaves (`endConferenceOnExit`): the agent hanging up, or our hangup of the agent's leg, ends
 *   the call for both;
 * - the customer does neither: it hears the wait music until the agent is there, and it may leave
 *   the conference for a moment — a leg whose TwiML is replaced leaves its conference — without
 *   ending it. That is what lets DTMF play to the customer and bring it back.
 * `beep="false"`: no entry/exit tones in a two-party call.
 */
export function conferenceTwiml(name: string, role: 'agent' | 'customer'): string {
  const agent = role === 'agent';
  return `<Response>${conferenceDial(name, agent)}</Response>`;
}

function conferenceDial(name: string, agent: boolean): string {
  return (
    `<Dial><Conference startConferenceOnEnter="${agent}" endConferenceOnExit="${agent}" beep="false">` +
    `${escapeXml(name)}</Conference></Dial>`
  );
}

/**
 * DTMF on the customer's leg: `<Play digits>` plays the tones to the party of the leg it runs on
 * (https://www.twilio.com/docs/voice/twiml/play#attributes-digits), then — TwiML continues with the
 * next verb once `<Play>` is done — `<Dial><Conference>` puts the leg back into the same conference,
 * where the agent has stayed. Sent by updating the live call's TwiML
 * (https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource).
 */
export function playDigitsThenRejoinTwiml(digits: string, name: string): string {
  return `<Response><Play digits="${escapeXml(digits)}"/>${conferenceDial(name, false)}</Response>`;
}
