import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';
import {
  type PbxConnectionConfig,
  type PbxDriver,
  type PbxEnvironment,
  PbxError,
  type PbxProvider,
  type PbxProviderName,
} from './pbx-provider.js';
import { PBX_DRIVERS } from './pbx.tokens.js';

/**
 * Picks the driver of a connection's provider and keeps one client per connection (until the
 * connection changes: the cache key holds its version). Never one client shared across tenants.
 */
@Injectable()
export class PbxRegistry {
  readonly env: PbxEnvironment;
  private readonly drivers = new Map<PbxProviderName, PbxDriver>();
  private readonly clients = new Map<string, { version: string; client: PbxProvider }>();

  constructor(@Inject(PBX_DRIVERS) drivers: PbxDriver[], @Inject(APP_CONFIG) config: ResolvedConfig) {
    for (const d of drivers) this.drivers.set(d.provider, d);
    this.env = {
      publicBaseUrl: config.PUBLIC_BASE_URL,
      baseUrls: {
        dialpadProduction: config.DIALPAD_BASE_URL,
        dialpadSandbox: config.DIALPAD_SANDBOX_BASE_URL,
        twilio: config.TWILIO_BASE_URL,
      },
      ...(config.DIALPAD_CLIENT_ID && config.DIALPAD_CLIENT_SECRET
        ? { dialpadOAuth: { clientId: config.DIALPAD_CLIENT_ID, clientSecret: config.DIALPAD_CLIENT_SECRET } }
        : {}),
      httpTimeoutMs: config.PBX_HTTP_TIMEOUT_MS,
      allowHttp: config.PBX_ALLOW_HTTP,
      webhookFreshness: { maxAgeMs: config.WEBHOOK_MAX_AGE_MS, leewayMs: config.WEBHOOK_CLOCK_LEEWAY_MS },
    };
  }

  get providers(): PbxProviderName[] {
    return [...this.drivers.keys()];
  }

  driver(provider: string): PbxDriver {
    const d = this.drivers.get(provider as PbxProviderName);
    if (!d) throw new PbxError('UNSUPPORTED', `No driver for provider ${provider}.`);
    return d;
  }

  /** The client of a connection; `version` changes whenever its settings or secrets do. */
  client(connection: PbxConnectionConfig, version: string): PbxProvider {
    const cached = this.clients.get(connection.id);
    if (cached && cached.version === version) return cached.client;
    const client = this.driver(connection.provider).connect(connection, this.env);
    this.clients.set(connection.id, { version, client });
    return client;
  }

  forget(connectionId: string): void {
    this.clients.delete(connectionId);
  }
}
