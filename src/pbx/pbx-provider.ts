import type { z } from 'zod';
import type { AgentRef } from '../agents/agents.service.js';
import type { CallEvent } from '../calls/call-event.js';

/**
 * The PBX port (STYLE.md "Providers"): one driver per vendor under `src/pbx/<vendor>/`, all
 * registered as one list; the registry gives a client bound to one tenant connection. Drivers
 * speak the vendor's wire format and nothing else: they never touch the database, and they turn
 * every vendor failure into a PbxError with one of our codes.
 */

export const PBX_PROVIDERS = ['asterisk', 'dialpad', 'twilio', 'netsapiens'] as const;
export type PbxProviderName = (typeof PBX_PROVIDERS)[number];

/**
 * Our error codes for vendor failures. Retries and HTTP answers read these, never vendor text.
 * - AUTH: the vendor refused our credentials (or a webhook's signature did not verify).
 * - RATE_LIMITED: the vendor asked us to slow down (retryAfterSeconds when it said).
 * - TRANSIENT: unreachable, timed out, or a 5xx: worth retrying later.
 * - REJECTED: the vendor understood and refused (invalid number, bad request, malformed webhook).
 * - NOT_FOUND: the vendor does not know the call (or user) we named.
 * - UNSUPPORTED: this provider has no such capability.
 * - NOT_CONFIGURED: a credential or setting of ours is missing (nothing was sent to the vendor).
 * - STALE: a webhook that verifies but whose own time is outside the accepted window (a replay).
 */
export const PBX_ERROR_CODES = [
  'AUTH',
  'RATE_LIMITED',
  'TRANSIENT',
  'REJECTED',
  'NOT_FOUND',
  'UNSUPPORTED',
  'STALE',
  'NOT_CONFIGURED',
] as const;
export type PbxErrorCode = (typeof PBX_ERROR_CODES)[number];

export class PbxError extends Error {
  override readonly name = 'PbxError';
  constructor(
    readonly code: PbxErrorCode,
    message: string,
    readonly options: { retryAfterSeconds?: number; vendorStatus?: number } = {},
  ) {
    super(message);
  }
}

export interface PbxCapabilities {
  originate: boolean;
  hangup: boolean;
  dtmf: boolean;
  /** Live status of one call from the vendor. */
  status: boolean;
  /** What its webhooks carry. */
  webhooks: { calls: boolean; sms: boolean; voicemail: boolean };
}

/** What drivers get from the deployment (configuration), the same for every tenant. */
export interface PbxEnvironment {
  /** Public base URL of this service (PUBLIC_BASE_URL), without a trailing slash. */
  publicBaseUrl: string;
  /** Vendor API base URLs (configuration; tests point them at fakes on 127.0.0.1). */
  baseUrls: {
    dialpadProduction: string;
    dialpadSandbox: string;
    twilio: string;
  };
  /** Dialpad OAuth app (DIALPAD_CLIENT_ID / DIALPAD_CLIENT_SECRET), when configured. */
  dialpadOAuth?: { clientId: string; clientSecret: string };
  /** Timeout of one vendor HTTP request. */
  httpTimeoutMs: number;
  /** Whether per-connection vendor URLs may be plain http (tests; never in production). */
  allowHttp: boolean;
  /**
   * How old (WEBHOOK_MAX_AGE_MS) and how far off the clocks (WEBHOOK_CLOCK_LEEWAY_MS) a signed
   * webhook's own time may be; defaults in webhook-freshness.ts when absent.
   */
  webhookFreshness?: { maxAgeMs: number; leewayMs: number };
  /** The clock webhooks are judged by (tests inject one); Date.now when absent. */
  now?: () => number;
}

/** One tenant connection as a driver sees it: settings as stored, secrets decrypted. */
export interface PbxConnectionConfig<S = Record<string, unknown>, K = Record<string, unknown>> {
  id: string;
  companyId: string;
  provider: PbxProviderName;
  settings: S;
  secrets: K;
}

/** The agent a command is for, with its identity at this provider (user_mappings) if any. */
export interface PbxAgent {
  id: string;
  extension: string | null;
  /** The agent's user id (or extension, or phone) at this provider, from user_mappings. */
  externalId: string | null;
}

export interface OriginateRequest {
  /** Our call id: carried to the vendor where it allows (custom data, channel variable). */
  callId: string;
  /** The customer, E.164. */
  to: string;
  /** Caller id to present to the customer, E.164, when the caller chose one. */
  callerId?: string;
  agent: PbxAgent;
}

export interface OriginateResult {
  /**
   * The vendor's id of the call: the webhooks of this call must map to the same providerCallId,
   * so that the record made at originate and the webhook events are one call.
   */
  providerCallId: string;
  raw?: unknown;
}

export interface ProviderCallStatus {
  /** The vendor's state word, as it says it (e.g. "in-progress", "ringing"). */
  state: string;
  /** Whether the vendor considers the call over. */
  ended: boolean;
}

/** A webhook request as it reached us. */
export interface InboundWebhook {
  /** The path segment after the connection id: '' (Dialpad, NetSapiens), 'status' or 'sms' (Twilio). */
  route: string;
  /** The public URL the vendor called (PUBLIC_BASE_URL + path + query string). */
  url: string;
  /** Header names lower-case. */
  headers: Record<string, string | string[] | undefined>;
  contentType: string;
  /** The body bytes as received. */
  rawBody: Buffer;
  /**
   * The body as the HTTP layer parsed it: an object of strings for a form
   * (`application/x-www-form-urlencoded`, repeated keys as arrays), the JSON value for JSON,
   * the text for `application/jwt` and other text types.
   */
  body: unknown;
}

/** A webhook that passed verification: what the inbox stores. */
export interface VerifiedWebhook {
  /**
   * The vendor's id of this delivery's event; the same event redelivered has the same id. Where
   * the vendor sends none, a digest of the verified content.
   */
  eventId: string;
  /** A short word for the inbox listing: 'call', 'sms', 'voicemail', … */
  kind: string;
  /** The verified content as JSON (decoded JWT claims, form fields, JSON body). */
  payload: unknown;
  /**
   * What `parseWebhook` would make of it, when verifying already mapped it (so that the mapper
   * runs once per event: the inbox stores these records and processing does not map again).
   */
  records?: WebhookRecords;
}

/** A call event as a driver produces it; the processor adds the company, provider and connection. */
export type ProviderCallEvent = Omit<CallEvent, 'companyId' | 'connectionId' | 'provider'>;

export interface VoicemailRecord {
  /** Unique per connection; the same voicemail delivered twice has the same id. */
  providerVoicemailId: string;
  providerCallId?: string;
  at: Date;
  from?: string;
  to?: string;
  durationSeconds?: number;
  recordingUrl?: string;
  transcription?: string;
  agent?: AgentRef;
  raw?: unknown;
}

export interface MessageRecord {
  /** Unique per connection. */
  providerMessageId: string;
  direction: 'inbound' | 'outbound';
  at: Date;
  from?: string;
  to?: string;
  text: string;
  status?: string;
  agent?: AgentRef;
  raw?: unknown;
}

/** Our side of a call a command is about: its id (what `OriginateRequest.callId` was). */
export interface CallRef {
  id: string;
}

/** What one stored webhook means, in canonical terms. */
export interface WebhookRecords {
  calls: ProviderCallEvent[];
  voicemails: VoicemailRecord[];
  messages: MessageRecord[];
}

export const NO_RECORDS: WebhookRecords = Object.freeze({ calls: [], voicemails: [], messages: [] }) as WebhookRecords;

/**
 * A client bound to one connection. Commands a vendor lacks are not overridden: the defaults
 * throw UNSUPPORTED, and `capabilities` says which exist.
 */
export abstract class PbxProvider {
  abstract readonly capabilities: PbxCapabilities;

  /** Checks the connection's credentials against the vendor (a cheap authenticated read). */
  abstract testCredentials(): Promise<{ detail: string }>;

  /**
   * Verifies a webhook (signature, JWT, …) and extracts its event id. Throws PbxError AUTH when
   * it is not from the vendor (bad or missing signature, wrong secret), STALE when it is but its
   * own time is outside the freshness window (webhook-freshness.ts), and REJECTED when it verifies
   * but cannot be read. Nothing is stored before this passes.
   */
  abstract verifyWebhook(request: InboundWebhook): VerifiedWebhook | Promise<VerifiedWebhook>;

  /** Turns a stored, verified webhook into canonical records. Pure: no I/O. */
  abstract parseWebhook(webhook: VerifiedWebhook): WebhookRecords;

  originate(_request: OriginateRequest): Promise<OriginateResult> {
    return Promise.reject(new PbxError('UNSUPPORTED', 'This provider cannot place calls.'));
  }

  /**
   * Ends the call. `call.id` is our call id (the one originate was given), for drivers whose
   * click-to-call is keyed by it (Twilio's conference name).
   */
  hangup(_providerCallId: string, _call?: CallRef): Promise<void> {
    return Promise.reject(new PbxError('UNSUPPORTED', 'This provider cannot hang up calls.'));
  }

  /** Sends DTMF digits (already validated: 1–32 of 0-9*#ABCD) on the customer's leg; the call stays up. */
  sendDtmf(_providerCallId: string, _digits: string, _call?: CallRef): Promise<void> {
    return Promise.reject(new PbxError('UNSUPPORTED', 'This provider cannot send DTMF.'));
  }

  status(_providerCallId: string): Promise<ProviderCallStatus> {
    return Promise.reject(new PbxError('UNSUPPORTED', 'This provider cannot report call status.'));
  }
}

/** One vendor: its settings and secrets (validated on create/update) and its client factory. */
export abstract class PbxDriver<S = Record<string, unknown>, K = Record<string, unknown>> {
  abstract readonly provider: PbxProviderName;
  abstract readonly capabilities: PbxCapabilities;
  /** Non-secret settings of a connection (returned by the API). */
  abstract readonly settingsSchema: z.ZodType<S>;
  /**
   * Secrets of a connection (write-only, encrypted at rest). The schema validates what a user
   * sends; drivers may keep more keys (OAuth tokens) that users never send.
   */
  abstract readonly secretsSchema: z.ZodType<K>;
  /** Webhook routes after `/webhooks/<provider>/<connectionId>`: [''] or ['status', 'sms']. */
  abstract readonly webhookRoutes: readonly string[];

  abstract connect(connection: PbxConnectionConfig<S, K>, env: PbxEnvironment): PbxProvider;

  /**
   * The body of our 2xx answer to a webhook on a route, when the vendor expects one (Twilio's
   * messaging webhook expects TwiML); null answers `{ "received": true }` as JSON.
   */
  webhookAck(_route: string): { contentType: string; body: string } | null {
    return null;
  }

  /** The webhook URLs a user configures at the vendor for this connection. */
  webhookUrls(connectionId: string, env: PbxEnvironment): Record<string, string> {
    const base = `${env.publicBaseUrl}/webhooks/${this.provider}/${connectionId}`;
    return Object.fromEntries(
      this.webhookRoutes.map((r) => [r === '' ? 'events' : r, r === '' ? base : `${base}/${r}`]),
    );
  }
}
