import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { toE164 } from '../../common/phone.js';
import {
  PbxDriver,
  PbxError,
  PbxProvider,
  type InboundWebhook,
  type OriginateRequest,
  type OriginateResult,
  type PbxCapabilities,
  type PbxConnectionConfig,
  type CallRef,
  type PbxEnvironment,
  type ProviderCallStatus,
  type VerifiedWebhook,
  type WebhookRecords,
} from '../pbx-provider.js';
import { vendorFetch } from '../vendor-http.js';
import { TWILIO_ERROR_CODES, twilioCodeOf, twilioError } from './twilio-errors.js';
import {
  LEG_AGENT,
  LEG_CUSTOMER,
  TWILIO_TERMINAL_CALL_STATUSES,
  TWILIO_WEBHOOK_ROUTES,
  parseTwilioPayload,
  twilioEventId,
  type TwilioWebhookPayload,
  type TwilioWebhookRoute,
} from './twilio.mapper.js';
import {
  assertTwilioFresh,
  isValidTwilioBodySignature,
  isValidTwilioSignature,
  parseForm,
  type FormParams,
} from './twilio.signature.js';
import { freshnessWindow } from '../webhook-freshness.js';
import { STATUS_CALLBACK_EVENTS, conferenceName, conferenceTwiml, playDigitsThenRejoinTwiml } from './twilio.twiml.js';

/**
 * The Twilio driver: Programmable Voice REST API 2010-04-01 with Basic auth (AccountSid:AuthToken),
 * form-encoded bodies, and Twilio's signed webhooks.
 *
 * Documentation followed:
 * - Call resource (create, fetch, update, list; properties; StatusCallback / StatusCallbackEvent,
 *   "specify each one in a separate status_callback_event parameter"):
 *   https://www.twilio.com/docs/voice/api/call-resource
 * - Modifying live calls (Status=completed; new TwiML for a call in progress):
 *   https://www.twilio.com/docs/api/rest/change-call-state and
 *   https://www.twilio.com/docs/guides/voice/how-to-modify-calls-in-progress-in-php
 * - Authentication (HTTP Basic, AccountSid / AuthToken): https://www.twilio.com/docs/usage/your-request-to-twilio
 * - Account resource (fetch): https://www.twilio.com/docs/iam/api/account
 * - TwiML `<Dial>`, `<Number>`, `<Play digits>`: see twilio.twiml.ts
 * - Webhook signatures: see twilio.signature.ts; webhook fields and their meaning: see twilio.mapper.ts
 * - Errors (`{code, message, more_info, status}`): https://www.twilio.com/docs/usage/twilios-response,
 *   https://www.twilio.com/docs/api/errors (20003, 20404, 20429, 21211, 21220, …)
 * - The official SDK for the exact wire names: twilio-node `src/rest/api/v2010/account/call.ts`
 *
 * Click-to-call is built on a `<Conference>` (https://www.twilio.com/docs/voice/twiml/conference)
 * named after our call id (twilio.twiml.ts): `originate` creates two calls — the agent's leg (To =
 * the agent's identity at Twilio from user_mappings: an E.164 number, `client:<identity>` or
 * `sip:<uri>`) and then the customer's leg, both presenting the caller id, each running TwiML that
 * `<Dial>`s the same conference. The agent's leg starts and ends the conference; the customer waits
 * (wait music) until the agent is there. Both phones therefore ring at once: ringing the agent
 * first would need us to dial the customer when the agent's leg is answered, i.e. to act on a
 * webhook, which drivers do not do. Each leg reports its progress to our `status` webhook; the
 * URLs carry our call id and the leg (`?callId=…&leg=agent|customer`), the customer's also the
 * agent leg's CallSid (`&parentCallSid=CA…`: the legs are two independent calls now, not a
 * `<Dial>` parent and child); Twilio signs the full URL, so those markers are authenticated.
 * providerCallId = the agent leg's CallSid.
 *
 * DTMF: Twilio has no "send digits" REST call; the documented way is to update a live call's TwiML
 * (https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource) with
 * `<Play digits>` (https://www.twilio.com/docs/voice/twiml/play#attributes-digits), which replaces
 * the document the leg runs. On the customer's leg, in a conference, that leg leaves the
 * conference (which the customer does not end), hears the tones, and the same new document's
 * `<Dial><Conference>` brings it back: the call stays up. The customer's leg is found through the
 * conference: Conferences list by FriendlyName and Status
 * (https://www.twilio.com/docs/voice/api/conference-resource#read-multiple-conference-resources),
 * then its Participants (https://www.twilio.com/docs/voice/api/conference-participant-resource).
 * We refuse (REJECTED) rather than guess when the customer is not in the conference, and when the
 * digits contain A–D (Twilio documents only 0-9, *, # and w).
 *
 * Hangup: Status=completed on the agent's leg, which ends the conference and so the customer's leg;
 * a customer still waiting in a conference that never started (the agent did not answer) is hung
 * up too.
 */

export const TWILIO_CAPABILITIES: PbxCapabilities = Object.freeze({
  originate: true,
  hangup: true,
  dtmf: true,
  status: true,
  webhooks: Object.freeze({ calls: true, sms: true, voicemail: false }),
});

const E164 = /^\+[1-9]\d{6,14}$/;
const isE164 = (value: string) => E164.test(value) && toE164(value) === value;

export const twilioSettingsSchema = z.object({
  accountSid: z.string().regex(/^AC[0-9a-f]{32}$/, 'accountSid must be "AC" followed by 32 lowercase hex digits'),
  callerId: z.string().refine(isE164, 'callerId must be a phone number in E.164, such as +15551230001').optional(),
});
export type TwilioSettings = z.infer<typeof twilioSettingsSchema>;

export const twilioSecretsSchema = z.object({
  authToken: z.string().min(16, 'authToken must be the account auth token (at least 16 characters)'),
});
export type TwilioSecrets = z.infer<typeof twilioSecretsSchema>;

/** Twilio's Call resource as JSON (the fields we read). */
export interface TwilioCall {
  sid: string;
  parent_call_sid: string | null;
  account_sid: string;
  to: string;
  from: string;
  status: string;
  direction: string;
  duration?: string | null;
}

/** Twilio's Conference and Participant resources (the fields we read). */
interface TwilioConference {
  sid: string;
  friendly_name: string;
  status: string;
}
interface TwilioParticipant {
  call_sid: string;
  conference_sid: string;
}

interface TwilioAccount {
  sid: string;
  friendly_name?: string;
  status?: string;
  type?: string;
}

const CALL_SID = /^CA[0-9a-fA-F]{32}$/;
/** What an agent's identity at Twilio may be: a number, a Voice SDK client, a SIP URI. */
const AGENT_ADDRESS = [E164, /^client:[^\s<>"'&]{1,256}$/, /^sip:[^\s<>"']+@[^\s<>"']+$/];
/** 4xx answers are read as Twilio error bodies (5xx and network failures stay vendor-http's). */
const CLIENT_ERRORS = Array.from({ length: 100 }, (_, i) => 400 + i);

function header(headers: InboundWebhook['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** JSON body fields as form-like strings (the JSON variant of Twilio webhooks). */
function jsonFields(value: unknown): FormParams {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new PbxError('REJECTED', 'Twilio webhook JSON body is not an object.');
  }
  const fields = new Map<string, string | string[]>();
  for (const [k, v] of Object.entries(value)) {
    if (v === null || v === undefined) continue;
    if (Array.isArray(v))
      fields.set(
        k,
        v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))),
      );
    else fields.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  return Object.fromEntries(fields);
}

export class TwilioProvider extends PbxProvider {
  readonly capabilities = TWILIO_CAPABILITIES;
  private readonly settings: TwilioSettings;
  private readonly authToken: string;
  private readonly apiBase: string;
  private readonly authorization: string;

  constructor(
    private readonly connection: PbxConnectionConfig<TwilioSettings, TwilioSecrets>,
    private readonly env: PbxEnvironment,
  ) {
    super();
    const settings = twilioSettingsSchema.safeParse(connection.settings);
    if (!settings.success)
      throw new PbxError('REJECTED', `Invalid Twilio settings: ${settings.error.issues[0]?.message}`);
    const secrets = twilioSecretsSchema.safeParse(connection.secrets);
    if (!secrets.success) throw new PbxError('REJECTED', `Invalid Twilio secrets: ${secrets.error.issues[0]?.message}`);
    this.settings = settings.data;
    this.authToken = secrets.data.authToken;
    this.apiBase = `${env.baseUrls.twilio.replace(/\/+$/, '')}/2010-04-01/Accounts/${this.settings.accountSid}`;
    this.authorization = `Basic ${Buffer.from(`${this.settings.accountSid}:${this.authToken}`).toString('base64')}`;
  }

  private async request<T>(method: 'GET' | 'POST', path: string, what: string, body?: URLSearchParams): Promise<T> {
    const res = await vendorFetch<T>(`${this.apiBase}${path}`, {
      method,
      headers: { authorization: this.authorization },
      body,
      timeoutMs: this.env.httpTimeoutMs,
      accept: CLIENT_ERRORS,
    });
    if (res.status >= 400) throw twilioError(res.status, res.headers, res.json, what);
    return res.json;
  }

  private callPath(sid: string): string {
    if (!CALL_SID.test(sid)) throw new PbxError('NOT_FOUND', 'Not a Twilio call sid.');
    return `/Calls/${sid}.json`;
  }

  private async fetchCall(sid: string): Promise<TwilioCall> {
    const call = await this.request<TwilioCall | undefined>('GET', this.callPath(sid), 'fetch call');
    if (!call || typeof call.status !== 'string')
      throw new PbxError('TRANSIENT', 'Twilio answered a call without a status.');
    return call;
  }

  private statusCallbackUrl(callId: string, leg: string, parentCallSid?: string): string {
    const base = `${this.env.publicBaseUrl}/webhooks/twilio/${encodeURIComponent(this.connection.id)}/status`;
    const parent = parentCallSid ? `&parentCallSid=${parentCallSid}` : '';
    return `${base}?callId=${encodeURIComponent(callId)}&leg=${leg}${parent}`;
  }

  /** Creates one leg of a click-to-call: a call to `to` running `twiml`, reporting to `statusCallback`. */
  private async createLeg(to: string, from: string, twiml: string, statusCallback: string): Promise<TwilioCall> {
    const body = new URLSearchParams();
    body.set('To', to);
    body.set('From', from);
    body.set('Twiml', twiml);
    body.set('StatusCallback', statusCallback);
    for (const event of STATUS_CALLBACK_EVENTS) body.append('StatusCallbackEvent', event);
    body.set('StatusCallbackMethod', 'POST');
    const call = await this.request<TwilioCall | undefined>('POST', '/Calls.json', 'create call', body);
    if (!call || typeof call.sid !== 'string' || !CALL_SID.test(call.sid)) {
      throw new PbxError('TRANSIENT', 'Twilio accepted the call but answered no call sid.');
    }
    return call;
  }

  /** The other participants (call sids) of the click-to-call conference of `call`, when it exists. */
  private async conferencePeers(call: CallRef, agentSid: string, statuses: readonly string[]): Promise<string[]> {
    const peers: string[] = [];
    for (const status of statuses) {
      const query = new URLSearchParams({ FriendlyName: conferenceName(call.id), Status: status, PageSize: '20' });
      const page = await this.request<{ conferences?: TwilioConference[] } | undefined>(
        'GET',
        `/Conferences.json?${query.toString()}`,
        'list conferences',
      );
      for (const conference of page?.conferences ?? []) {
        if (!/^CF[0-9a-fA-F]{32}$/.test(conference.sid)) continue;
        const participants = await this.request<{ participants?: TwilioParticipant[] } | undefined>(
          'GET',
          `/Conferences/${conference.sid}/Participants.json?PageSize=20`,
          'list conference participants',
        );
        for (const p of participants?.participants ?? []) {
          if (CALL_SID.test(p.call_sid) && p.call_sid !== agentSid) peers.push(p.call_sid);
        }
      }
    }
    return peers;
  }

  async testCredentials(): Promise<{ detail: string }> {
    const account = await this.request<TwilioAccount | undefined>('GET', '.json', 'fetch account');
    const status = account?.status ?? 'unknown';
    if (status !== 'active') throw new PbxError('AUTH', `The Twilio account is ${status}.`);
    return {
      detail: `Twilio account ${this.settings.accountSid} is active${account?.type ? ` (${account.type})` : ''}.`,
    };
  }

  override async originate(request: OriginateRequest): Promise<OriginateResult> {
    const agent = request.agent.externalId?.trim();
    if (!agent) {
      throw new PbxError(
        'REJECTED',
        'The agent has no Twilio identity: map them (user mappings) to their phone number in E.164, client:<identity> or sip:<uri>.',
      );
    }
    if (!AGENT_ADDRESS.some((re) => re.test(agent))) {
      throw new PbxError(
        'REJECTED',
        "The agent's Twilio identity must be a phone number in E.164, client:<identity> or sip:<user@host>.",
      );
    }
    const callerId = request.callerId ?? this.settings.callerId;
    if (!callerId) {
      throw new PbxError('REJECTED', 'No caller id: give one with the call or set callerId on the Twilio connection.');
    }
    const customer = toE164(request.to);
    if (!customer) throw new PbxError('REJECTED', 'The number to call is not a valid phone number.');

    const room = conferenceName(request.callId);
    const agentLeg = await this.createLeg(
      agent,
      callerId,
      conferenceTwiml(room, 'agent'),
      this.statusCallbackUrl(request.callId, LEG_AGENT),
    );
    let customerLeg: TwilioCall;
    try {
      customerLeg = await this.createLeg(
        customer,
        callerId,
        conferenceTwiml(room, 'customer'),
        this.statusCallbackUrl(request.callId, LEG_CUSTOMER, agentLeg.sid),
      );
    } catch (error) {
      // No customer: do not leave the agent's phone ringing into an empty conference.
      await this.hangup(agentLeg.sid).catch(() => undefined);
      throw error;
    }
    return { providerCallId: agentLeg.sid, raw: { agent: agentLeg, customer: customerLeg } };
  }

  private async complete(sid: string): Promise<void> {
    try {
      await this.request('POST', this.callPath(sid), 'hang up call', new URLSearchParams({ Status: 'completed' }));
    } catch (error) {
      // 21220: the call is no longer in progress — it is already over, which is what we wanted.
      if (twilioCodeOf(error) === TWILIO_ERROR_CODES.INVALID_CALL_STATE) return;
      throw error;
    }
  }

  override async hangup(providerCallId: string, call?: CallRef): Promise<void> {
    await this.complete(providerCallId);
    if (!call) return;
    // The agent ending the conference drops the customer; one still waiting in a conference that
    // never started (the agent did not answer) is hung up here.
    for (const sid of await this.conferencePeers(call, providerCallId, ['init', 'in-progress'])) {
      await this.complete(sid);
    }
  }

  override async sendDtmf(providerCallId: string, digits: string, call?: CallRef): Promise<void> {
    if (!/^[0-9*#]{1,32}$/.test(digits)) {
      throw new PbxError('REJECTED', 'Twilio <Play digits> plays only 0-9, * and # (no A-D).');
    }
    if (!call) throw new PbxError('REJECTED', 'Twilio DTMF needs the click-to-call it belongs to.');
    const agentLeg = await this.fetchCall(providerCallId);
    if (TWILIO_TERMINAL_CALL_STATUSES.has(agentLeg.status)) throw new PbxError('REJECTED', 'The call is over.');
    const [customer] = await this.conferencePeers(call, providerCallId, ['in-progress']);
    if (!customer) {
      throw new PbxError('REJECTED', 'The customer is not in the conversation: there is no leg to send digits to.');
    }
    await this.request(
      'POST',
      this.callPath(customer),
      'send DTMF',
      new URLSearchParams({ Twiml: playDigitsThenRejoinTwiml(digits, conferenceName(call.id)) }),
    );
  }

  override async status(providerCallId: string): Promise<ProviderCallStatus> {
    const call = await this.fetchCall(providerCallId);
    return { state: call.status, ended: TWILIO_TERMINAL_CALL_STATUSES.has(call.status) };
  }

  verifyWebhook(request: InboundWebhook): VerifiedWebhook {
    const signature = header(request.headers, 'x-twilio-signature');
    if (!signature) throw new PbxError('AUTH', 'Missing X-Twilio-Signature.');
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      throw new PbxError('AUTH', 'Cannot verify a Twilio webhook without its URL.');
    }

    let params: FormParams;
    if (url.searchParams.has('bodySHA256')) {
      if (!isValidTwilioBodySignature(this.authToken, signature, request.url, request.rawBody)) {
        throw new PbxError('AUTH', 'Invalid X-Twilio-Signature or body hash.');
      }
      let json: unknown;
      try {
        json = JSON.parse(request.rawBody.toString('utf-8'));
      } catch {
        throw new PbxError('REJECTED', 'Twilio webhook body is not JSON.');
      }
      params = jsonFields(json);
    } else {
      const type = request.contentType.split(';')[0]!.trim().toLowerCase();
      if (type !== '' && type !== 'application/x-www-form-urlencoded') {
        // Only form bodies are covered by the signature; any other body needs bodySHA256.
        throw new PbxError('AUTH', 'A Twilio webhook that is not a form must carry bodySHA256.');
      }
      params =
        request.rawBody.length || !request.body || typeof request.body !== 'object'
          ? parseForm(request.rawBody.toString('utf-8'))
          : (request.body as FormParams);
      if (!isValidTwilioSignature(this.authToken, signature, request.url, params)) {
        throw new PbxError('AUTH', 'Invalid X-Twilio-Signature.');
      }
    }

    // Verified from here on: what fails now is unreadable, not forged.
    const route = request.route;
    if (!(TWILIO_WEBHOOK_ROUTES as readonly string[]).includes(route)) {
      throw new PbxError('REJECTED', `Unknown Twilio webhook route "${route}".`);
    }
    const account = params['AccountSid'];
    const accounts = account === undefined ? [] : Array.isArray(account) ? account : [account];
    if (accounts.some((a) => a !== this.settings.accountSid)) {
      throw new PbxError('REJECTED', 'Twilio webhook for another account.');
    }
    const window = freshnessWindow(this.env);
    assertTwilioFresh(params, window);
    const markers = new Map<string, string>();
    for (const [k, v] of url.searchParams) if (k !== 'bodySHA256' && !markers.has(k)) markers.set(k, v);
    const query: Record<string, string> = Object.fromEntries(markers);
    const payload: TwilioWebhookPayload = {
      route: route as TwilioWebhookRoute,
      query,
      params,
      receivedAt: new Date(window.nowMs).toISOString(),
    };
    const { eventId, kind } = twilioEventId(payload);
    return { eventId, kind, payload };
  }

  parseWebhook(webhook: VerifiedWebhook): WebhookRecords {
    return parseTwilioPayload(webhook.payload);
  }
}

@Injectable()
export class TwilioDriver extends PbxDriver<TwilioSettings, TwilioSecrets> {
  readonly provider = 'twilio' as const;
  readonly capabilities = TWILIO_CAPABILITIES;
  readonly settingsSchema = twilioSettingsSchema;
  readonly secretsSchema = twilioSecretsSchema;
  readonly webhookRoutes = TWILIO_WEBHOOK_ROUTES;

  connect(connection: PbxConnectionConfig<TwilioSettings, TwilioSecrets>, env: PbxEnvironment): PbxProvider {
    return new TwilioProvider(connection, env);
  }

  /**
   * The messaging webhook expects TwiML back: an empty <Response> means "do not reply"
   * (https://www.twilio.com/docs/messaging/guides/webhook-request). Status callbacks take any 2xx.
   */
  override webhookAck(route: string): { contentType: string; body: string } | null {
    return route === 'sms'
      ? { contentType: 'text/xml; charset=utf-8', body: '<?xml version="1.0" encoding="UTF-8"?><Response/>' }
      : null;
  }
}
