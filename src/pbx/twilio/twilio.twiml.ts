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

/**
 * The agent leg's document: dial the customer, presenting `callerId`, with the customer leg's
 * progress reported to `customerStatusCallback`.
 */
export function clickToCallTwiml(customer: string, callerId: string, customerStatusCallback: string): string {
  return (
    `<Response><Dial callerId="${escapeXml(callerId)}">` +
    `<Number statusCallback="${escapeXml(customerStatusCallback)}" statusCallbackEvent="${STATUS_CALLBACK_EVENTS.join(' ')}" statusCallbackMethod="POST">` +
    `${escapeXml(customer)}</Number></Dial></Response>`
  );
}

/** Plays DTMF tones to the party of the leg this runs on. */
export function playDigitsTwiml(digits: string): string {
  return `<Response><Play digits="${escapeXml(digits)}"/></Response>`;
}
