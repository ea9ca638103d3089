import { z } from 'zod';
import { PbxError, type PbxCapabilities, type PbxConnectionConfig, type PbxEnvironment } from '../pbx-provider.js';
import { dialpadBaseUrl, dialpadToken } from './dialpad.http.js';

/** Dialpad int64 ids as the API gives them (digit strings). */
const dialpadIdString = z.string().regex(/^\d{1,20}$/, 'must be a Dialpad id (digits)');

/** Non-secret settings of a Dialpad connection. */
export const dialpadSettingsSchema = z
  .object({
    /** https://dialpad.com or https://sandbox.dialpad.com (the deployment's base URLs). */
    environment: z.enum(['production', 'sandbox']).default('production'),
    /** `api_key`: secrets.apiKey; `oauth`: the access token from the OAuth flow. */
    auth: z.enum(['api_key', 'oauth']).default('api_key'),
    /** Set by subscribeDialpad: what Dialpad created for this connection. */
    webhookId: dialpadIdString.optional(),
    callSubscriptionId: dialpadIdString.optional(),
    smsSubscriptionId: dialpadIdString.optional(),
  })
  .strict();
export type DialpadSettings = z.output<typeof dialpadSettingsSchema>;

const singleLine = (min: number) =>
  z
    .string()
    .min(min)
    .max(4096)
    .regex(/^[^\r\n]*$/, 'must be a single line');

/**
 * Secrets a user sends: `apiKey`, and `webhookSecret` (the `secret` of the Dialpad webhook, which
 * signs the events; [single-line only] in Dialpad's schema). Strict: any other key is refused.
 * The OAuth tokens (`accessToken`, `refreshToken`, `expiresAt`) are written by the service after
 * the OAuth flow, never accepted from a user; the connections service keeps such stored keys
 * outside this validation.
 */
export const dialpadSecretsSchema = z
  .object({
    apiKey: singleLine(10).optional(),
    webhookSecret: singleLine(16).optional(),
  })
  .strict();

/**
 * Secrets as stored: what users send, plus what the OAuth flow wrote. (A type, not an interface,
 * so that a DialpadDriver is a PbxDriver of plain records too.)
 */
export type DialpadSecrets = {
  apiKey?: string;
  webhookSecret?: string;
  accessToken?: string;
  refreshToken?: string;
  /** ISO time the access token expires. */
  expiresAt?: string;
};

export type DialpadConnection = PbxConnectionConfig<DialpadSettings, DialpadSecrets>;

/** A connection as loaded (settings and secrets not narrowed yet): what the helpers accept. */
export interface DialpadConnectionLike {
  settings: unknown;
  secrets: Record<string, unknown> | null | undefined;
}

export const DIALPAD_CAPABILITIES: PbxCapabilities = Object.freeze({
  originate: true,
  hangup: true,
  // Dialpad API v2 has no DTMF operation (call: get, list, initiate via ring, initiate IVR call,
  // hangup, transfer, unpark, participants/add, labels, callback; see the OpenAPI document).
  dtmf: false,
  status: true,
  webhooks: Object.freeze({ calls: true, sms: true, voicemail: true }),
}) as PbxCapabilities;

/** The settings of a connection with defaults applied (REJECTED when they are not Dialpad's). */
export function readDialpadSettings(settings: unknown): DialpadSettings {
  const parsed = dialpadSettingsSchema.safeParse(settings ?? {});
  if (!parsed.success)
    throw new PbxError('REJECTED', `Dialpad connection settings are invalid: ${parsed.error.message}`);
  return parsed.data;
}

/** What a request to Dialpad for a connection needs: its base URL and its bearer token. */
export function dialpadTarget(env: PbxEnvironment, connection: DialpadConnectionLike): { base: string; token: string } {
  const settings = readDialpadSettings(connection.settings);
  const secrets = connection.secrets ?? {};
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  const token = dialpadToken(settings.auth, { apiKey: str(secrets.apiKey), accessToken: str(secrets.accessToken) });
  return { base: dialpadBaseUrl(env, settings.environment), token };
}
