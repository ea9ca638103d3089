import { createConnection } from 'node:net';
import { z } from 'zod';
import {
  type InboundWebhook,
  type OriginateRequest,
  type OriginateResult,
  type ProviderCallStatus,
  type PbxCapabilities,
  type PbxConnectionConfig,
  PbxDriver,
  type PbxEnvironment,
  PbxError,
  PbxProvider,
  type VerifiedWebhook,
  type WebhookRecords,
} from '../pbx-provider.js';
import { amiHeader, AmiParser } from './ami-parser.js';

/**
 * Asterisk / FreePBX over the Asterisk Manager Interface (AMI). A connection names the AMI
 * endpoint and user (manager.conf), the dialplan context used to originate, and how an agent's
 * channel is dialled. Its live events arrive over the AMI socket, not over webhooks.
 *
 * Credentials are checked with a Login / Logoff of its own. Events, originate, hangup, DTMF and
 * status go through the AMI connection the supervisor holds (asterisk-supervisor.service.ts).
 * AMI reference: https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/AMI_Actions/Login/
 */
/** A tenant's pattern: compiles, and has no constructs known for catastrophic backtracking. */
function isSafeRegExp(value: string): boolean {
  if (/\(\?[=!<]|\\[1-9]|\)[*+]|[*+]\)[*+{]/.test(value)) return false;
  try {
    new RegExp(value);
    return true;
  } catch {
    return false;
  }
}

/** AMI is line-based: a line break in a value would inject an action. */
const NO_NEWLINES = /^[^\r\n]*$/;
const NO_QUOTES = /^[^\r\n"<>]*$/;

export const asteriskSettingsSchema = z
  .object({
    host: z.string().trim().min(1).max(255),
    port: z.number().int().min(1).max(65535).default(5038),
    username: z.string().trim().min(1).max(80).regex(NO_NEWLINES, 'must be one line'),
    /** Dialplan context the customer's number is dialled in on originate (FreePBX: from-internal). */
    context: z.string().trim().min(1).max(80).default('from-internal'),
    /** The agent's channel to originate from; `{extension}` is replaced by the agent's extension. */
    agentChannel: z.string().trim().min(1).max(120).default('PJSIP/{extension}'),
    /**
     * How an agent is recognised from a channel: the peer of `PJSIP/<peer>-…`, `SIP/<peer>-…` or
     * `Local/<peer>@…` matching this pattern is an agent extension (matched to agents' extensions).
     */
    agentExtensionPattern: z
      .string()
      .max(200)
      .refine(
        isSafeRegExp,
        'must be a valid regular expression without nested quantifiers, look-around or back-references',
      )
      .default('^\\d{2,8}$'),
    /** How long the agent's phone rings on a click-to-call before Asterisk gives up (ms). */
    originateTimeoutMs: z.number().int().min(5_000).max(120_000).default(20_000),
    /** Caller id shown on the agent's phone while it rings for a click-to-call. */
    originateCallerName: z
      .string()
      .trim()
      .min(1)
      .max(40)
      .regex(NO_QUOTES, 'no quotes or line breaks')
      .default('Click to Call'),
    /** The company's number shown with it (E.164); the customer's number when unset. */
    originateCallerId: z
      .string()
      .regex(/^\+[1-9]\d{6,14}$/, 'must be E.164')
      .optional(),
    /** Dial the customer without the leading + (a dialplan that expects 1555… rather than +1555…). */
    stripPlus: z.boolean().default(false),
    /** The channel variable carrying our call id on an originate. */
    requestIdVariable: z
      .string()
      .regex(/^[A-Z][A-Z0-9_]{0,31}$/)
      .default('CTI_REQUEST_ID'),
  })
  .strict();
export type AsteriskSettings = z.output<typeof asteriskSettingsSchema>;

export const asteriskSecretsSchema = z.object({
  secret: z.string().min(1).max(255).regex(NO_NEWLINES, 'must be one line'),
});
export type AsteriskSecrets = z.output<typeof asteriskSecretsSchema>;

const CAPABILITIES: PbxCapabilities = {
  originate: true,
  hangup: true,
  dtmf: true,
  status: true,
  webhooks: { calls: false, sms: false, voicemail: false },
};

/**
 * The live AMI connections (the supervisor): commands reach the instance that holds the
 * connection. Set once the application is up; until then commands are TRANSIENT.
 */
export interface AmiGateway {
  originate(connectionId: string, request: OriginateRequest): Promise<OriginateResult>;
  hangup(connectionId: string, providerCallId: string): Promise<void>;
  sendDtmf(connectionId: string, providerCallId: string, digits: string): Promise<void>;
  callStatus(connectionId: string, providerCallId: string): Promise<ProviderCallStatus>;
}

/** Finds this application's AMI gateway when a command runs (undefined until the app is up). */
export type AmiGatewayLookup = () => AmiGateway | undefined;

export class AsteriskDriver extends PbxDriver<AsteriskSettings, AsteriskSecrets> {
  readonly provider = 'asterisk' as const;
  readonly capabilities = CAPABILITIES;
  readonly settingsSchema = asteriskSettingsSchema;
  readonly secretsSchema = asteriskSecretsSchema;
  readonly webhookRoutes: readonly string[] = [];

  constructor(readonly gateway: AmiGatewayLookup = () => undefined) {
    super();
  }

  connect(connection: PbxConnectionConfig<AsteriskSettings, AsteriskSecrets>, env: PbxEnvironment): PbxProvider {
    return new AsteriskProvider(connection, env, this.gateway);
  }
}

class AsteriskProvider extends PbxProvider {
  readonly capabilities = CAPABILITIES;

  constructor(
    private readonly connection: PbxConnectionConfig<AsteriskSettings, AsteriskSecrets>,
    private readonly env: PbxEnvironment,
    private readonly gateway: AmiGatewayLookup,
  ) {
    super();
  }

  private get ami(): AmiGateway {
    const gateway = this.gateway();
    if (!gateway) throw new PbxError('TRANSIENT', 'The AMI connections are not running here.');
    return gateway;
  }

  override originate(request: OriginateRequest): Promise<OriginateResult> {
    return Promise.resolve().then(() => this.ami.originate(this.connection.id, request));
  }

  override hangup(providerCallId: string): Promise<void> {
    return Promise.resolve().then(() => this.ami.hangup(this.connection.id, providerCallId));
  }

  override sendDtmf(providerCallId: string, digits: string): Promise<void> {
    return Promise.resolve().then(() => this.ami.sendDtmf(this.connection.id, providerCallId, digits));
  }

  override status(providerCallId: string): Promise<ProviderCallStatus> {
    return Promise.resolve().then(() => this.ami.callStatus(this.connection.id, providerCallId));
  }

  testCredentials(): Promise<{ detail: string }> {
    const { host, port, username } = this.connection.settings;
    return amiLogin(host, port ?? 5038, username, this.connection.secrets.secret, this.env.httpTimeoutMs);
  }

  verifyWebhook(_request: InboundWebhook): VerifiedWebhook {
    throw new PbxError('REJECTED', 'Asterisk delivers its events over AMI, not webhooks.');
  }

  parseWebhook(_webhook: VerifiedWebhook): WebhookRecords {
    throw new PbxError('REJECTED', 'Asterisk delivers its events over AMI, not webhooks.');
  }
}

/** Logs in to AMI and off again: AUTH on `Response: Error`, TRANSIENT when unreachable or silent. */
export function amiLogin(
  host: string,
  port: number,
  username: string,
  secret: string,
  timeoutMs: number,
): Promise<{ detail: string }> {
  return new Promise((resolve, reject) => {
    let banner = '';
    let settled = false;
    const socket = createConnection({ host, port });
    const finish = (error: PbxError | null, detail = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve({ detail });
    };
    const timer = setTimeout(() => finish(new PbxError('TRANSIENT', 'AMI did not answer in time')), timeoutMs);
    const parser = new AmiParser({
      skipEvents: [],
      onBanner: (b) => (banner = b.trim()),
      onMessage: (fields) => {
        if (amiHeader(fields, 'ActionID') !== 'sb-test-login') return;
        if (amiHeader(fields, 'Response') === 'Success') {
          socket.write('Action: Logoff\r\n\r\n');
          finish(null, `Logged in to ${banner || 'Asterisk Call Manager'} as ${username}`);
        } else {
          finish(new PbxError('AUTH', `AMI refused the login: ${amiHeader(fields, 'Message') ?? 'error'}`));
        }
      },
    });
    socket.on('connect', () => {
      // Events off: a credential check needs none.
      socket.write(
        `Action: Login\r\nActionID: sb-test-login\r\nUsername: ${username}\r\nSecret: ${secret}\r\nEvents: off\r\n\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => parser.push(chunk));
    socket.on('error', (error) => finish(new PbxError('TRANSIENT', `AMI unreachable: ${error.message}`)));
    socket.on('close', () => finish(new PbxError('TRANSIENT', 'AMI closed the connection')));
  });
}
