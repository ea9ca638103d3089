import { createConnection } from 'node:net';
import { z } from 'zod';
import {
  type InboundWebhook,
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
 * This driver checks credentials (AMI Login / Logoff). The AMI session (events, originate,
 * hangup, DTMF) is the Asterisk issue's work; until then the capabilities say none.
 * AMI reference: https://docs.asterisk.org/Asterisk_22_Documentation/API_Documentation/AMI_Actions/Login/
 */
/** AMI is line-based: a line break in a value would inject an action. */
const NO_NEWLINES = /^[^\r\n]*$/;

export const asteriskSettingsSchema = z
  .object({
    host: z.string().trim().min(1).max(255),
    port: z.number().int().min(1).max(65535).default(5038),
    username: z.string().trim().min(1).max(80).regex(NO_NEWLINES, 'must be one line'),
    /** Dialplan context the customer's number is dialled in on originate (FreePBX: from-internal). */
    context: z.string().trim().min(1).max(80).default('from-internal'),
    /** The agent's channel to originate from; `{extension}` is replaced by the agent's extension. */
    agentChannel: z.string().trim().min(1).max(120).default('PJSIP/{extension}'),
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
  originate: false,
  hangup: false,
  dtmf: false,
  status: false,
  webhooks: { calls: false, sms: false, voicemail: false },
};

export class AsteriskDriver extends PbxDriver<AsteriskSettings, AsteriskSecrets> {
  readonly provider = 'asterisk' as const;
  readonly capabilities = CAPABILITIES;
  readonly settingsSchema = asteriskSettingsSchema;
  readonly secretsSchema = asteriskSecretsSchema;
  readonly webhookRoutes: readonly string[] = [];

  connect(connection: PbxConnectionConfig<AsteriskSettings, AsteriskSecrets>, env: PbxEnvironment): PbxProvider {
    return new AsteriskProvider(connection, env);
  }
}

class AsteriskProvider extends PbxProvider {
  readonly capabilities = CAPABILITIES;

  constructor(
    private readonly connection: PbxConnectionConfig<AsteriskSettings, AsteriskSecrets>,
    private readonly env: PbxEnvironment,
  ) {
    super();
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
