import {
  DIALPAD_FAKE_CLIENT_ID,
  DIALPAD_FAKE_CLIENT_SECRET,
  startDialpadFake,
  type DialpadFake,
} from '../../../test/fakes/dialpad-fake.js';
import { PbxError, type PbxEnvironment } from '../pbx-provider.js';
import { DialpadDriver } from './dialpad.driver.js';
import {
  createPkceVerifier,
  deauthorizeDialpad,
  dialpadAuthorizeUrl,
  dialpadTokenNeedsRefresh,
  exchangeDialpadCode,
  pkceChallenge,
  refreshDialpadToken,
} from './dialpad.oauth.js';

const REDIRECT = 'https://switchboard.example.test/pbx/oauth/dialpad/callback';
let fake: DialpadFake;
let env: PbxEnvironment;

beforeAll(async () => {
  fake = await startDialpadFake();
  env = {
    publicBaseUrl: 'https://switchboard.example.test',
    baseUrls: {
      dialpadProduction: fake.baseUrl,
      dialpadSandbox: 'https://sandbox.dialpad.example.test',
      twilio: 'http://127.0.0.1:9',
    },
    dialpadOAuth: { clientId: DIALPAD_FAKE_CLIENT_ID, clientSecret: DIALPAD_FAKE_CLIENT_SECRET },
    httpTimeoutMs: 2000,
    allowHttp: true,
  };
});
afterAll(() => fake.close());
beforeEach(() => fake.reset());

async function failure(p: Promise<unknown>): Promise<PbxError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PbxError);
  return error as PbxError;
}

async function authorized(code = 'code-1') {
  const verifier = createPkceVerifier();
  fake.issueCode({ code, codeChallenge: pkceChallenge(verifier), redirectUri: REDIRECT });
  return exchangeDialpadCode(env, {}, { code, codeVerifier: verifier, redirectUri: REDIRECT });
}

describe('Dialpad OAuth', () => {
  it('builds the authorize URL with PKCE S256 on the connection environment', () => {
    const url = new URL(
      dialpadAuthorizeUrl(
        env,
        { environment: 'sandbox' },
        {
          state: 'st-1',
          codeChallenge: 'challenge',
          redirectUri: REDIRECT,
          scopes: ['recordings_export', 'message_content_export'],
        },
      ),
    );
    expect(url.origin + url.pathname).toBe('https://sandbox.dialpad.example.test/oauth2/authorize');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      response_type: 'code',
      client_id: DIALPAD_FAKE_CLIENT_ID,
      redirect_uri: REDIRECT,
      state: 'st-1',
      code_challenge: 'challenge',
      code_challenge_method: 'S256',
      scope: 'recordings_export message_content_export',
    });
  });

  it('PKCE: a fresh verifier of 64 url-safe characters; its S256 challenge (43 characters)', () => {
    const v = createPkceVerifier();
    expect(v).toMatch(/^[A-Za-z0-9_-]{64}$/);
    expect(createPkceVerifier()).not.toBe(v);
    expect(pkceChallenge(v)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(pkceChallenge(v)).toBe(pkceChallenge(v));
  });

  it('is REJECTED when the deployment has no OAuth app', async () => {
    const bare = { ...env, dialpadOAuth: undefined };
    expect(() => dialpadAuthorizeUrl(bare, {}, { state: 's', codeChallenge: 'c', redirectUri: REDIRECT })).toThrow(
      'Dialpad OAuth is not configured',
    );
    const error = await failure(refreshDialpadToken(bare, {}, 'rt'));
    expect(error.code).toBe('REJECTED');
  });

  it('exchanges the code (PKCE verified) for tokens that work on the API', async () => {
    const before = Date.now();
    const tokens = await authorized();
    expect(tokens.accessToken).toMatch(/^at-/);
    expect(tokens.refreshToken).toMatch(/^rt-/);
    expect(tokens.expiresAt.getTime()).toBeGreaterThanOrEqual(before + 3600_000 - 1000);
    const sent = fake.requests.find((r) => r.path === '/oauth2/token')!;
    expect(sent.body).toMatchObject({
      grant_type: 'authorization_code',
      code: 'code-1',
      client_id: DIALPAD_FAKE_CLIENT_ID,
      redirect_uri: REDIRECT,
    });
    const provider = new DialpadDriver().connect(
      {
        id: 'c',
        companyId: 'co',
        provider: 'dialpad',
        settings: { environment: 'production', auth: 'oauth' },
        secrets: { accessToken: tokens.accessToken },
      },
      env,
    );
    await expect(provider.testCredentials()).resolves.toHaveProperty('detail');
  });

  it('a wrong verifier, a reused code, a wrong client are AUTH', async () => {
    fake.issueCode({ code: 'code-2', codeChallenge: pkceChallenge(createPkceVerifier()), redirectUri: REDIRECT });
    expect(
      (
        await failure(
          exchangeDialpadCode(env, {}, { code: 'code-2', codeVerifier: createPkceVerifier(), redirectUri: REDIRECT }),
        )
      ).code,
    ).toBe('AUTH');
    await authorized('code-3');
    const reused = await failure(
      exchangeDialpadCode(env, {}, { code: 'code-3', codeVerifier: 'x'.repeat(43), redirectUri: REDIRECT }),
    );
    expect(reused.code).toBe('AUTH');
    const wrongClient = {
      ...env,
      dialpadOAuth: { clientId: DIALPAD_FAKE_CLIENT_ID, clientSecret: 'wrong-secret-0123456789' },
    };
    expect((await failure(refreshDialpadToken(wrongClient, {}, 'rt'))).code).toBe('AUTH');
  });

  it('refresh rotates the pair; the old refresh token is then refused (AUTH)', async () => {
    const first = await authorized();
    const second = await refreshDialpadToken(env, {}, first.refreshToken!);
    expect(second.accessToken).not.toBe(first.accessToken);
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(fake.validTokens.has(first.accessToken)).toBe(false);
    expect((await failure(refreshDialpadToken(env, {}, first.refreshToken!))).code).toBe('AUTH');
  });

  it('deauthorize revokes the access token; again is fine', async () => {
    const tokens = await authorized();
    await deauthorizeDialpad(env, {}, tokens.accessToken);
    expect(fake.validTokens.has(tokens.accessToken)).toBe(false);
    expect(fake.requests.at(-1)).toMatchObject({ method: 'POST', path: '/oauth2/deauthorize' });
    await expect(deauthorizeDialpad(env, {}, tokens.accessToken)).resolves.toBeUndefined();
  });

  it('says when stored tokens need a refresh', () => {
    const now = Date.parse('2026-11-21T10:00:00.000Z');
    expect(dialpadTokenNeedsRefresh({ expiresAt: '2026-11-21T10:00:30.000Z' }, now)).toBe(true);
    expect(dialpadTokenNeedsRefresh({ expiresAt: '2026-11-21T10:05:00.000Z' }, now)).toBe(false);
    expect(dialpadTokenNeedsRefresh({}, now)).toBe(false);
  });
});
