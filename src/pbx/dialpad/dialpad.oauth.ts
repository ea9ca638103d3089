import { createHash, randomBytes } from 'node:crypto';
import { PbxError, type PbxEnvironment } from '../pbx-provider.js';
import { dialpadBaseUrl, dialpadRequest, type DialpadEnvironmentName } from './dialpad.http.js';
import { isRecord, text } from './dialpad.wire.js';

/**
 * Dialpad OAuth 2.0 (authorization code with PKCE), on the connection's Dialpad base URL
 * (production or sandbox). From the OpenAPI document of https://github.com/dialpad/dialpad-python-sdk
 * (`dialpad_api_spec.json`, tag `oauth2`; `src/dialpad/schemas/oauth.py`) and
 * https://developers.dialpad.com/docs/oauth (flow, redirect URIs, scopes):
 * - GET /oauth2/authorize?response_type=code&client_id&redirect_uri&state&scope (space-separated)
 *   &code_challenge&code_challenge_method=S256 (in the browser).
 * - POST /oauth2/token, JSON body: {grant_type: "authorization_code", code, code_verifier,
 *   client_id, client_secret} or {grant_type: "refresh_token", refresh_token, client_id,
 *   client_secret} → {access_token, refresh_token, expires_in, token_type, id_token}.
 *   (client_id / client_secret "must either be provided in the request body, or in a basic
 *   authorization header": we use the body.) We also send redirect_uri with the code, as RFC 6749
 *   §4.1.3 requires; the schema does not list it.
 * - POST /oauth2/deauthorize with the access token as bearer: "Revokes oauth2 tokens for a given
 *   oauth app" (204).
 * The client id and secret are the deployment's (DIALPAD_CLIENT_ID / DIALPAD_CLIENT_SECRET).
 */

export interface DialpadTokens {
  accessToken: string;
  refreshToken?: string;
  expiresAt: Date;
}

/** The connection settings OAuth needs: which Dialpad it talks to. */
export interface DialpadOAuthSettings {
  environment?: DialpadEnvironmentName;
}

/**
 * Scopes worth asking for: `recordings_export` puts recording URLs in call events,
 * `message_content_export` the text in SMS events (https://developers.dialpad.com/docs/oauth).
 * Not asked by default: the OAuth app must have been registered with them.
 */
export const DIALPAD_OAUTH_SCOPES = ['recordings_export', 'message_content_export'] as const;

/** When Dialpad's token response has no expires_in (the schema makes it optional). */
export const DIALPAD_DEFAULT_TOKEN_SECONDS = 3600;

function client(env: PbxEnvironment): { clientId: string; clientSecret: string } {
  const c = env.dialpadOAuth;
  if (!c?.clientId || !c.clientSecret) throw new PbxError('REJECTED', 'Dialpad OAuth is not configured');
  return c;
}

/** A PKCE code verifier (RFC 7636 §4.1: 43–128 characters of the unreserved set). */
export function createPkceVerifier(): string {
  return randomBytes(48).toString('base64url');
}

/** The S256 code challenge of a verifier. */
export function pkceChallenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** The URL to send the user's browser to. */
export function dialpadAuthorizeUrl(
  env: PbxEnvironment,
  settings: DialpadOAuthSettings,
  request: { state: string; codeChallenge: string; redirectUri: string; scopes?: readonly string[] },
): string {
  const { clientId } = client(env);
  const url = new URL(`${dialpadBaseUrl(env, settings.environment)}/oauth2/authorize`);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', clientId);
  url.searchParams.set('redirect_uri', request.redirectUri);
  url.searchParams.set('state', request.state);
  url.searchParams.set('code_challenge', request.codeChallenge);
  url.searchParams.set('code_challenge_method', 'S256');
  if (request.scopes?.length) url.searchParams.set('scope', request.scopes.join(' '));
  return url.toString();
}

async function token(env: PbxEnvironment, settings: DialpadOAuthSettings, body: Record<string, string>) {
  const { clientId, clientSecret } = client(env);
  const res = await dialpadRequest(env, `${dialpadBaseUrl(env, settings.environment)}/oauth2/token`, {
    method: 'POST',
    body: { ...body, client_id: clientId, client_secret: clientSecret },
    errors: 'oauth',
    what: `POST /oauth2/token (${body.grant_type})`,
  });
  const json = isRecord(res.json) ? res.json : {};
  const accessToken = text(json.access_token);
  if (!accessToken) throw new PbxError('REJECTED', 'Dialpad token response has no access_token');
  const expiresIn = Number(json.expires_in);
  const seconds = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : DIALPAD_DEFAULT_TOKEN_SECONDS;
  const tokens: DialpadTokens = { accessToken, expiresAt: new Date(Date.now() + seconds * 1000) };
  const refreshToken = text(json.refresh_token);
  if (refreshToken) tokens.refreshToken = refreshToken;
  return tokens;
}

/** Exchanges the code of the redirect for tokens. */
export function exchangeDialpadCode(
  env: PbxEnvironment,
  settings: DialpadOAuthSettings,
  request: { code: string; codeVerifier: string; redirectUri: string },
): Promise<DialpadTokens> {
  return token(env, settings, {
    grant_type: 'authorization_code',
    code: request.code,
    code_verifier: request.codeVerifier,
    redirect_uri: request.redirectUri,
  });
}

/**
 * New tokens for a refresh token. Dialpad rotates refresh tokens ("a new token pair"): store the
 * new one when it comes; an `invalid_grant` answer is AUTH (the user must connect again).
 */
export function refreshDialpadToken(
  env: PbxEnvironment,
  settings: DialpadOAuthSettings,
  refreshToken: string,
): Promise<DialpadTokens> {
  return token(env, settings, { grant_type: 'refresh_token', refresh_token: refreshToken });
}

/**
 * Revokes the app's tokens. A 401 means the token is already unusable, which is what was asked:
 * it is not an error here.
 */
export async function deauthorizeDialpad(
  env: PbxEnvironment,
  settings: DialpadOAuthSettings,
  accessToken: string,
): Promise<void> {
  await dialpadRequest(env, `${dialpadBaseUrl(env, settings.environment)}/oauth2/deauthorize`, {
    method: 'POST',
    token: accessToken,
    accept: [401],
    what: 'POST /oauth2/deauthorize',
  });
}

/** Whether stored OAuth secrets should be refreshed before use (expired, or within `skewSeconds`). */
export function dialpadTokenNeedsRefresh(secrets: { expiresAt?: unknown }, nowMs: number, skewSeconds = 60): boolean {
  if (typeof secrets.expiresAt !== 'string') return false;
  const at = Date.parse(secrets.expiresAt);
  return Number.isFinite(at) && at - skewSeconds * 1000 <= nowMs;
}
