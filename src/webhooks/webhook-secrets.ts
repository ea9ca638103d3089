import type { Provider } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { SecretBox } from '../common/crypto/secret-box.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ResolvedConfig } from '../config/config.schema.js';

/** The Standard Webhooks secret prefix. */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';

/** A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes (outbound endpoints, generic incoming). */
export function newWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + randomBytes(32).toString('base64');
}

/**
 * The SecretBox webhook secrets are sealed with: the same key ring as other secrets at rest
 * (PBX_SECRETS_KEY, PBX_SECRETS_KEYS_PREVIOUS).
 */
export const webhookSecretBox: Provider = {
  provide: SecretBox,
  useFactory: (config: ResolvedConfig) => new SecretBox(config.PBX_SECRETS_KEY, config.PBX_SECRETS_KEYS_PREVIOUS),
  inject: [APP_CONFIG],
};
