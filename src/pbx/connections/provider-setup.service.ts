import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import type { Tenant } from '../../common/access/principal.js';
import { randomToken, sha256Hex } from '../../common/crypto/crypto.js';
import { SecretBox } from '../../common/crypto/secret-box.js';
import { type AppException, validationFailed } from '../../common/errors/common.errors.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ResolvedConfig } from '../../config/config.schema.js';
import {
  createPkceVerifier,
  deauthorizeDialpad,
  dialpadAuthorizeUrl,
  dialpadTokenNeedsRefresh,
  exchangeDialpadCode,
  pkceChallenge,
  refreshDialpadToken,
} from '../dialpad/dialpad.oauth.js';
import type { DialpadConnection } from '../dialpad/dialpad.settings.js';
import { subscribeDialpad, unsubscribeDialpad } from '../dialpad/dialpad.subscriptions.js';
import { subscribeNetsapiens } from '../netsapiens/netsapiens.driver.js';
import { viaPbx } from '../pbx-errors.js';
import { pbxError } from '../pbx.errors.js';
import { PbxError, type PbxConnectionConfig } from '../pbx-provider.js';
import { PbxRegistry } from '../pbx-registry.js';
import { type LoadedConnection, PbxConnectionsService } from './pbx-connections.service.js';

/** How long an OAuth authorization may take, from our redirect to Dialpad's callback. */
const OAUTH_STATE_TTL_MS = 10 * 60_000;
/** Tokens expiring within this are refreshed by the periodic sweep. */
const REFRESH_AHEAD_SECONDS = 5 * 60;
const REFRESH_SWEEP_MS = 60_000;

export interface AuthorizeResult {
  authorizeUrl: string;
  expiresAt: string;
}

/**
 * The provider-specific steps of setting a connection up: Dialpad OAuth 2.0 (authorization code
 * with PKCE; tokens sealed with the other secrets; refreshed before they expire, under the row
 * lock so two instances never spend the same refresh token; deauthorize), and the event
 * subscriptions of Dialpad and NetSapiens. A provider failure changes nothing here.
 */
@Injectable()
export class ProviderSetupService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(ProviderSetupService.name);
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connections: PbxConnectionsService,
    private readonly registry: PbxRegistry,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: ResolvedConfig,
    private readonly box: SecretBox,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.refreshDue(), REFRESH_SWEEP_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  // --- Dialpad OAuth ------------------------------------------------------------------------------

  get redirectUri(): string {
    return `${this.config.PUBLIC_BASE_URL}/oauth/dialpad/callback`;
  }

  async authorize(tenant: Tenant, id: string, returnTo?: string): Promise<AuthorizeResult> {
    const connection = await this.dialpad(tenant.companyId, id);
    if (
      returnTo !== undefined &&
      !this.config.CORS_ORIGINS.some((o) => returnTo === o || returnTo.startsWith(`${o}/`))
    ) {
      throw validationFailed([{ field: 'returnTo', messages: ['returnTo must be under one of the CORS_ORIGINS'] }]);
    }
    const state = randomToken(32);
    const verifier = createPkceVerifier();
    const url = await viaPbx('dialpad', async () =>
      dialpadAuthorizeUrl(this.registry.env, connection.settings, {
        state,
        codeChallenge: pkceChallenge(verifier),
        redirectUri: this.redirectUri,
      }),
    );
    const stateHash = sha256Hex(state);
    const expiresAt = new Date(Date.now() + OAUTH_STATE_TTL_MS);
    await this.dataSource.query(
      `INSERT INTO oauth_states (state_hash, company_id, connection_id, verifier_sealed, return_to, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [stateHash, tenant.companyId, id, this.box.seal(verifier, stateHash), returnTo ?? null, expiresAt],
    );
    await this.dataSource.query('DELETE FROM oauth_states WHERE expires_at < now()');
    return { authorizeUrl: url, expiresAt: expiresAt.toISOString() };
  }

  /** Dialpad's redirect back: the state is used once; the code becomes tokens. */
  async callback(query: {
    code?: string;
    state?: string;
    error?: string;
  }): Promise<{ connectionId: string; returnTo: string | null }> {
    if (!query.state) throw invalidState();
    const stateHash = sha256Hex(query.state);
    const [rows] = (await this.dataSource.query(
      `DELETE FROM oauth_states WHERE state_hash = $1 AND expires_at > now()
       RETURNING company_id, connection_id, verifier_sealed, return_to`,
      [stateHash],
    )) as [{ company_id: string; connection_id: string; verifier_sealed: string; return_to: string | null }[], number];
    const pending = rows[0];
    if (!pending) throw invalidState();
    if (query.error || !query.code) {
      throw pbxError('oauth-denied', `Dialpad did not authorize the connection (${query.error ?? 'no code'}).`);
    }
    const connection = await this.dialpad(pending.company_id, pending.connection_id);
    const tokens = await viaPbx('dialpad', () =>
      exchangeDialpadCode(this.registry.env, connection.settings, {
        code: query.code!,
        codeVerifier: this.box.open<string>(pending.verifier_sealed, stateHash),
        redirectUri: this.redirectUri,
      }),
    );
    await this.connections.patchInternal(
      pending.company_id,
      pending.connection_id,
      {
        secrets: {
          accessToken: tokens.accessToken,
          refreshToken: tokens.refreshToken ?? null,
          expiresAt: tokens.expiresAt.toISOString(),
        },
        settings: { auth: 'oauth' },
      },
      'pbx_connection.oauth_connected',
    );
    return { connectionId: pending.connection_id, returnTo: pending.return_to };
  }

  async deauthorize(tenant: Tenant, id: string): Promise<{ deauthorized: boolean }> {
    const connection = await this.dialpad(tenant.companyId, id);
    const token = connection.secrets.accessToken;
    if (token) await viaPbx('dialpad', () => deauthorizeDialpad(this.registry.env, connection.settings, token));
    await this.connections.patchInternal(
      tenant.companyId,
      id,
      { secrets: { accessToken: null, refreshToken: null, expiresAt: null } },
      'pbx_connection.oauth_deauthorized',
    );
    return { deauthorized: true };
  }

  /**
   * The connection with a usable access token: an OAuth token about to expire is refreshed first,
   * under the row lock (another instance may have just done it: then its token is used).
   */
  async fresh(connection: LoadedConnection, aheadSeconds = 60): Promise<LoadedConnection> {
    if (connection.provider !== 'dialpad' || connection.settings.auth !== 'oauth') return connection;
    if (!dialpadTokenNeedsRefresh(connection.secrets, Date.now(), aheadSeconds)) return connection;
    return this.connections.withLocked(connection.companyId, connection.id, async (locked) => {
      if (!dialpadTokenNeedsRefresh(locked.secrets, Date.now(), aheadSeconds)) return null;
      const refreshToken = locked.secrets.refreshToken;
      if (typeof refreshToken !== 'string') throw new PbxError('AUTH', 'The Dialpad authorization has expired.');
      const tokens = await refreshDialpadToken(this.registry.env, locked.settings, refreshToken);
      return {
        secrets: {
          accessToken: tokens.accessToken,
          refreshToken: tokens.refreshToken ?? refreshToken,
          expiresAt: tokens.expiresAt.toISOString(),
        },
      };
    });
  }

  /** Refreshes every Dialpad OAuth token expiring soon (the periodic sweep). */
  async refreshDue(): Promise<number> {
    let refreshed = 0;
    try {
      const rows = (await this.dataSource.query(
        `SELECT id, company_id FROM pbx_connections
         WHERE provider = 'dialpad' AND deleted_at IS NULL AND settings->>'auth' = 'oauth'`,
      )) as { id: string; company_id: string }[];
      for (const r of rows) {
        try {
          const before = await this.connections.load(r.company_id, r.id);
          const after = await this.fresh(before, REFRESH_AHEAD_SECONDS);
          if (after !== before) refreshed++;
        } catch (error) {
          this.logger.warn({ err: error, connectionId: r.id }, 'Dialpad token refresh failed');
        }
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'Dialpad token refresh sweep failed');
    }
    return refreshed;
  }

  // --- event subscriptions ------------------------------------------------------------------------

  async subscribeDialpad(tenant: Tenant, id: string): Promise<Record<string, string>> {
    const loaded = await this.dialpad(tenant.companyId, id);
    assertDialpadCredential(loaded, id);
    const connection = (await viaPbx('dialpad', async () => this.fresh(loaded))) as DialpadConnection &
      LoadedConnection;
    const secret = connection.secrets.webhookSecret ?? randomToken(32);
    const hookUrl = this.registry.driver(connection.provider).webhookUrls(id, this.registry.env).events!;
    const ids = await viaPbx('dialpad', () => subscribeDialpad(this.registry.env, connection, { hookUrl, secret }));
    const previous = connection.settings;
    await this.connections.patchInternal(
      tenant.companyId,
      id,
      { secrets: { webhookSecret: secret }, settings: { ...ids } },
      'pbx_connection.subscribed',
    );
    // The ones made before are replaced: remove them at Dialpad (best effort).
    if (previous.webhookId && previous.webhookId !== ids.webhookId) {
      await unsubscribeDialpad(this.registry.env, connection, previous).catch((error: unknown) =>
        this.logger.warn({ err: error, connectionId: id }, 'removing the previous Dialpad subscription failed'),
      );
    }
    return { ...ids, hookUrl };
  }

  async subscribeNetsapiens(tenant: Tenant, id: string): Promise<Record<string, string>> {
    const connection = await this.connections.load(tenant.companyId, id);
    if (connection.provider !== 'netsapiens') throw wrongProvider('netsapiens');
    const secret =
      typeof connection.secrets.webhookSecret === 'string' ? connection.secrets.webhookSecret : randomToken(32);
    const subscriptionId = await viaPbx('netsapiens', () =>
      subscribeNetsapiens(this.registry.env, {
        ...(connection as PbxConnectionConfig as Parameters<typeof subscribeNetsapiens>[1]),
        secrets: { ...(connection.secrets as { apiKey: string }), webhookSecret: secret },
      }),
    );
    await this.connections.patchInternal(
      tenant.companyId,
      id,
      { secrets: { webhookSecret: secret }, settings: { subscriptionId } },
      'pbx_connection.subscribed',
    );
    return { subscriptionId, hookUrl: `${this.registry.env.publicBaseUrl}/webhooks/netsapiens/${id}` };
  }

  private async dialpad(companyId: string, id: string): Promise<DialpadConnection & LoadedConnection> {
    const connection = await this.connections.load(companyId, id);
    if (connection.provider !== 'dialpad') throw wrongProvider('dialpad');
    return connection as DialpadConnection & LoadedConnection;
  }
}

/**
 * A missing credential is ours to report (409, what to do), not the provider's: without it no
 * request to Dialpad can succeed, and a 502 would blame Dialpad for our own setup.
 */
function assertDialpadCredential(connection: DialpadConnection & LoadedConnection, id: string): void {
  const has = (name: string) => typeof connection.secrets[name] === 'string' && connection.secrets[name] !== '';
  if (connection.settings.auth === 'oauth') {
    if (has('accessToken') || has('refreshToken')) return;
    throw pbxError(
      'connection-incomplete',
      `The Dialpad account is not connected yet: authorize it first (GET /api/v1/pbx-connections/${id}/dialpad/authorize).`,
      { missing: 'oauth' },
    );
  }
  if (has('apiKey')) return;
  throw pbxError(
    'connection-incomplete',
    `The Dialpad connection has no API key: set secrets.apiKey (PATCH /api/v1/pbx-connections/${id}) or connect it with OAuth.`,
    { missing: 'secrets.apiKey' },
  );
}

function invalidState(): AppException {
  return pbxError('invalid-oauth-state', 'The authorization is unknown, used already, or expired: start again.');
}

function wrongProvider(provider: string): AppException {
  return pbxError('wrong-provider', `This is not a ${provider} connection.`);
}
