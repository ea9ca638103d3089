import { JwtService } from '@nestjs/jwt';
import { expectProblem, json, PROBLEM } from './support/http.js';
import { call, createCompany, createOperatorUser, createUser, login, PASSWORD, unique } from './support/tenant.js';
import { startTestApp, type TestApp } from './support/test-app.js';

const JWT_SECRET = 'test-jwt-secret-of-at-least-32-characters!';

describe('auth: register, login, refresh, logout, me', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  describe('register', () => {
    it('creates a company and its owner, and signs in', async () => {
      const email = `${unique('reg')}@Example.com`;
      const res = await call(
        t,
        'POST',
        '/api/v1/auth/register',
        {},
        { companyName: 'Acme Dental', email, password: PASSWORD, displayName: 'Olivia' },
      );
      expect(res.status).toBe(201);
      const body = await json(res);
      expect(body).toMatchObject({
        tokenType: 'Bearer',
        expiresIn: 900,
        user: { email: email.toLowerCase(), role: 'owner', displayName: 'Olivia' },
      });
      expect(body.refreshToken).toMatch(/^[\w-]{43}$/);
      const me = await json(await call(t, 'GET', '/api/v1/auth/me', { token: body.accessToken }));
      expect(me.user.id).toBe(body.user.id);
      expect(me.company).toMatchObject({
        name: 'Acme Dental',
        status: 'active',
        slug: expect.stringMatching(/^acme-dental/),
      });
    });

    it('refuses a taken e-mail (any case) 409, and a short password 400', async () => {
      const email = `${unique('dup')}@example.com`;
      const first = await call(
        t,
        'POST',
        '/api/v1/auth/register',
        {},
        { companyName: 'One', email, password: PASSWORD, displayName: 'A' },
      );
      expect(first.status).toBe(201);
      const again = await call(
        t,
        'POST',
        '/api/v1/auth/register',
        {},
        { companyName: 'Two', email: email.toUpperCase(), password: PASSWORD, displayName: 'B' },
      );
      expect(again.status).toBe(409);
      expect((await json(again)).type).toBe('urn:switchboard:problem:email-taken');
      const short = await call(
        t,
        'POST',
        '/api/v1/auth/register',
        {},
        { companyName: 'Three', email: `${unique('s')}@example.com`, password: 'elevenchars', displayName: 'C' },
      );
      expect(short.status).toBe(400);
      expect((await json(short)).errors).toEqual([
        { field: 'password', messages: ['password must be longer than or equal to 12 characters'] },
      ]);
    });

    it('can be switched off by configuration', async () => {
      const off = await startTestApp({ env: { AUTH_REGISTRATION_ENABLED: 'false' } });
      try {
        const res = await call(
          off,
          'POST',
          '/api/v1/auth/register',
          {},
          { companyName: 'X', email: `${unique('off')}@example.com`, password: PASSWORD, displayName: 'X' },
        );
        expect(res.status).toBe(403);
        expect((await json(res)).type).toBe('urn:switchboard:problem:registration-disabled');
      } finally {
        await off.close();
      }
    });
  });

  describe('login', () => {
    it('signs in with any case of the e-mail, and answers unknown e-mail and wrong password alike', async () => {
      const co = await createCompany(t, 'login');
      const ok = await call(
        t,
        'POST',
        '/api/v1/auth/login',
        {},
        { email: co.owner.email.toUpperCase(), password: PASSWORD },
      );
      expect(ok.status).toBe(200);

      const wrong = await call(
        t,
        'POST',
        '/api/v1/auth/login',
        {},
        { email: co.owner.email, password: 'wrong-password-123' },
      );
      const unknown = await call(
        t,
        'POST',
        '/api/v1/auth/login',
        {},
        { email: `${unique('nobody')}@example.com`, password: 'wrong-password-123' },
      );
      expect([wrong.status, unknown.status]).toEqual([401, 401]);
      expect(wrong.headers.get('content-type')).toBe(PROBLEM);
      const strip = (b: Record<string, unknown>) => ({ ...b, requestId: undefined });
      expect(strip(await json(wrong))).toEqual(strip(await json(unknown)));
    });

    it('takes the same time for an unknown e-mail and a wrong password', async () => {
      // A realistic hash cost, so that the password check dominates the measurement.
      const slow = await startTestApp({ env: { PASSWORD_HASH_COST: '14', RATE_LIMIT_LOGIN_PER_MIN: '1000' } });
      try {
        const co = await createCompany(slow, 'timing');
        const time = async (email: string) => {
          const start = process.hrtime.bigint();
          const res = await call(slow, 'POST', '/api/v1/auth/login', {}, { email, password: 'wrong-password-123' });
          expect(res.status).toBe(401);
          return Number(process.hrtime.bigint() - start) / 1e6;
        };
        const known: number[] = [];
        const unknownTimes: number[] = [];
        for (let i = 0; i < 9; i++) {
          known.push(await time(co.owner.email));
          unknownTimes.push(await time(`${unique('ghost')}@example.com`));
        }
        const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
        const ratio = median(known) / median(unknownTimes);
        expect(median(known)).toBeGreaterThan(5); // the hash really ran
        expect(ratio).toBeGreaterThan(0.67);
        expect(ratio).toBeLessThan(1.5);
      } finally {
        await slow.close();
      }
    }, 60_000);

    it('records logins and failed logins in the audit log', async () => {
      const co = await createCompany(t, 'audit');
      await call(t, 'POST', '/api/v1/auth/login', {}, { email: co.owner.email, password: 'wrong-password-123' });
      const log = await json(await call(t, 'GET', '/api/v1/audit-log?limit=50', { token: co.owner.accessToken }));
      const actions = log.data.map((e: { action: string }) => e.action);
      expect(actions).toEqual(expect.arrayContaining(['auth.login', 'auth.login_failed']));
      const failed = log.data.find((e: { action: string }) => e.action === 'auth.login_failed');
      expect(failed).toMatchObject({ actorType: 'user', actorId: co.owner.id, companyId: co.id });
    });
  });

  describe('access tokens', () => {
    it('refuses a tampered, foreign, expired or unsigned token with 401 problem+json', async () => {
      const co = await createCompany(t, 'jwt');
      const [h, p, s] = co.owner.accessToken.split('.');
      const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
      const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, role: 'superadmin' })).toString('base64url')}.${s}`;
      const foreign = new JwtService({ secret: 'another-secret-of-at-least-32-characters' }).sign(claims);
      const { exp: _exp, iat: _iat, ...rest } = claims;
      const expired = new JwtService({ secret: JWT_SECRET }).sign({ ...rest, exp: Math.floor(Date.now() / 1000) - 5 });
      const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`;
      for (const token of [tampered, foreign, expired, unsigned, 'not-a-jwt']) {
        const res = await call(t, 'GET', '/api/v1/auth/me', { token });
        expect([token.slice(0, 12), res.status]).toEqual([token.slice(0, 12), 401]);
        expect(res.headers.get('content-type')).toBe(PROBLEM);
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
      }
      const malformed = await t.fetch('/api/v1/auth/me', { headers: { authorization: 'Basic abc' } });
      expect(malformed.status).toBe(401);
      const none = await t.fetch('/api/v1/auth/me');
      expect(none.status).toBe(401);
      expect((await json(none)).type).toBe('urn:switchboard:problem:unauthorized');
    });

    it('refuses an API key on a route that takes a user session', async () => {
      const co = await createCompany(t, 'sess');
      const res = await call(t, 'GET', '/api/v1/auth/me', { key: co.apiKey });
      expect(res.status).toBe(403);
    });
  });

  describe('refresh tokens', () => {
    it('rotate on every use; the old one no longer works', async () => {
      const co = await createCompany(t, 'refresh');
      const first = await json(
        await call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: co.owner.refreshToken }),
      );
      expect(first.refreshToken).not.toBe(co.owner.refreshToken);
      expect((await call(t, 'GET', '/api/v1/auth/me', { token: first.accessToken })).status).toBe(200);
      const second = await call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: first.refreshToken });
      expect(second.status).toBe(200);
    });

    it('revoke the whole family when a rotated token is presented again (theft detection)', async () => {
      const co = await createCompany(t, 'theft');
      const user = await createUser(t, co, 'agent');
      const rotated = await json(
        await call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: user.refreshToken }),
      );

      // The thief replays the first token: refused, and the family is ended.
      const replay = await call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: user.refreshToken });
      expect(replay.status).toBe(401);
      expect((await json(replay)).type).toBe('urn:switchboard:problem:refresh-token-reused');

      // The legitimate newest token and the access tokens of that session stop working too.
      const legit = await call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: rotated.refreshToken });
      expect(legit.status).toBe(401);
      expect((await call(t, 'GET', '/api/v1/auth/me', { token: rotated.accessToken })).status).toBe(401);
      expect((await call(t, 'GET', '/api/v1/auth/me', { token: user.accessToken })).status).toBe(401);

      // Another session of the same user is untouched.
      const other = await login(t, user.email);
      expect((await call(t, 'GET', '/api/v1/auth/me', { token: other.accessToken })).status).toBe(200);

      const log = await json(
        await call(t, 'GET', '/api/v1/audit-log?action=auth.refresh_token_reused', { token: co.owner.accessToken }),
      );
      expect(log.data).toEqual([
        expect.objectContaining({
          action: 'auth.refresh_token_reused',
          actorType: 'user',
          actorId: user.id,
          companyId: co.id,
        }),
      ]);
    });

    it('let only one of two simultaneous refreshes with the same token win', async () => {
      const co = await createCompany(t, 'race');
      const results = await Promise.all(
        [1, 2].map(() => call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: co.owner.refreshToken })),
      );
      expect(results.map((r) => r.status).sort()).toEqual([200, 401]);
    });

    it('refuse an unknown token 401 and a malformed body 400', async () => {
      const unknownToken = await call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: 'x'.repeat(43) });
      expect(unknownToken.status).toBe(401);
      expect((await json(unknownToken)).type).toBe('urn:switchboard:problem:invalid-refresh-token');
      expect((await call(t, 'POST', '/api/v1/auth/refresh', {}, {})).status).toBe(400);
    });
  });

  describe('logout', () => {
    it('ends the session of the access token: its access and refresh tokens stop working', async () => {
      const co = await createCompany(t, 'logout');
      const other = await login(t, co.owner.email);
      const res = await call(t, 'POST', '/api/v1/auth/logout', { token: co.owner.accessToken }, {});
      expect(res.status).toBe(204);
      expect((await call(t, 'GET', '/api/v1/auth/me', { token: co.owner.accessToken })).status).toBe(401);
      expect((await call(t, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: co.owner.refreshToken })).status).toBe(
        401,
      );
      expect((await call(t, 'GET', '/api/v1/auth/me', { token: other.accessToken })).status).toBe(200);
    });

    it('ends another of your sessions by its refresh token, never someone else’s', async () => {
      const co = await createCompany(t, 'logout2');
      const second = await login(t, co.owner.email);
      const agent = await createUser(t, co, 'agent');
      const foreign = await call(
        t,
        'POST',
        '/api/v1/auth/logout',
        { token: co.owner.accessToken },
        { refreshToken: agent.refreshToken },
      );
      expect(foreign.status).toBe(401);
      expect((await call(t, 'GET', '/api/v1/auth/me', { token: agent.accessToken })).status).toBe(200);
      const mine = await call(
        t,
        'POST',
        '/api/v1/auth/logout',
        { token: co.owner.accessToken },
        { refreshToken: second.refreshToken },
      );
      expect(mine.status).toBe(204);
      expect((await call(t, 'GET', '/api/v1/auth/me', { token: second.accessToken })).status).toBe(401);
      expect((await call(t, 'GET', '/api/v1/auth/me', { token: co.owner.accessToken })).status).toBe(200);
    });
  });

  describe('me', () => {
    it('changes name and preferences, and the password only with the current one', async () => {
      const co = await createCompany(t, 'me');
      const agent = await createUser(t, co, 'agent');
      const patched = await call(
        t,
        'PATCH',
        '/api/v1/auth/me',
        { token: agent.accessToken },
        { displayName: 'Ada', preferences: { theme: 'dark', language: 'fr-CA' } },
      );
      expect(patched.status).toBe(200);
      expect((await json(patched)).user).toMatchObject({
        displayName: 'Ada',
        preferences: { theme: 'dark', language: 'fr-CA' },
      });

      const bad = await call(
        t,
        'PATCH',
        '/api/v1/auth/me',
        { token: agent.accessToken },
        { newPassword: 'a-brand-new-password', currentPassword: 'wrong' },
      );
      // 400 on the field, not 401 `invalid-credentials`: the session itself is fine.
      const problem = await expectProblem(bad, 400, 'validation-failed');
      expect(problem.errors).toEqual([{ field: 'currentPassword', messages: ['currentPassword is wrong'] }]);
      const theme = await call(
        t,
        'PATCH',
        '/api/v1/auth/me',
        { token: agent.accessToken },
        { preferences: { theme: 'neon' } },
      );
      expect(theme.status).toBe(400);

      const good = await call(
        t,
        'PATCH',
        '/api/v1/auth/me',
        { token: agent.accessToken },
        { newPassword: 'a-brand-new-password', currentPassword: PASSWORD },
      );
      expect(good.status).toBe(200);
      expect((await call(t, 'POST', '/api/v1/auth/login', {}, { email: agent.email, password: PASSWORD })).status).toBe(
        401,
      );
      expect(
        (await call(t, 'POST', '/api/v1/auth/login', {}, { email: agent.email, password: 'a-brand-new-password' }))
          .status,
      ).toBe(200);
    });

    it('works for a platform operator, who has no company', async () => {
      const op = await createOperatorUser(t);
      const me = await json(await call(t, 'GET', '/api/v1/auth/me', { token: op.accessToken }));
      expect(me).toMatchObject({ user: { role: 'superadmin', companyId: null }, company: null });
    });
  });
});

describe('login rate limits: per client address and per e-mail', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_LOGIN_PER_MIN: '3', TRUST_PROXY: 'true' } });
  });
  afterAll(() => t.close());

  const attempt = (email: string, ip: string, password = 'wrong-password-123') =>
    t.fetch('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
      body: JSON.stringify({ email, password }),
    });

  it('limits one e-mail whatever the address, even with the right password', async () => {
    const co = await createCompany(t, 'rl-email'); // signs the owner in once: 1 of 3
    for (let i = 1; i <= 2; i++) expect((await attempt(co.owner.email, `10.0.1.${i}`)).status).toBe(401);
    const blocked = await attempt(co.owner.email, '10.0.1.99', PASSWORD);
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get('content-type')).toBe(PROBLEM);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(blocked.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect(await json(blocked)).toMatchObject({ type: 'urn:switchboard:problem:too-many-requests', status: 429 });
  });

  it('limits one address whatever the e-mail', async () => {
    for (let i = 1; i <= 3; i++) expect((await attempt(`${unique('ip')}@example.com`, '10.0.2.1')).status).toBe(401);
    const blocked = await attempt(`${unique('ip')}@example.com`, '10.0.2.1');
    expect(blocked.status).toBe(429);
    expect((await attempt(`${unique('ip')}@example.com`, '10.0.2.2')).status).toBe(401);
  });
});
