import { randomBytes } from 'node:crypto';
import type { CompanyRole } from '../../src/common/access/roles.js';
import { json } from './http.js';
import { TEST_INTERNAL_SECRET, type TestApp } from './test-app.js';

export interface TestUser {
  id: string;
  email: string;
  password: string;
  role: CompanyRole | 'superadmin';
  accessToken: string;
  refreshToken: string;
}

export interface TestCompany {
  id: string;
  name: string;
  /** The primary API key (scope `*`), from the operator API. */
  apiKey: string;
  apiKeyId: string;
  owner: TestUser;
}

export const PASSWORD = 'correct-horse-battery-staple';

export function unique(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** fetch with JSON body and a credential: `{ token }` (Bearer) or `{ key }` (x-api-key). */
export async function call(
  t: TestApp,
  method: string,
  path: string,
  auth: { token?: string; key?: string } = {},
  body?: unknown,
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (auth.key) headers['x-api-key'] = auth.key;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return t.fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

export const operator = { token: TEST_INTERNAL_SECRET };

async function expectStatus(res: Response, status: number, what: string): Promise<unknown> {
  const body = await json(res).catch(() => undefined);
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status} ${JSON.stringify(body)}`);
  return body;
}

export async function login(
  t: TestApp,
  email: string,
  password = PASSWORD,
): Promise<{ accessToken: string; refreshToken: string; user: { id: string } }> {
  const res = await call(t, 'POST', '/api/v1/auth/login', {}, { email, password });
  return (await expectStatus(res, 200, `login ${email}`)) as {
    accessToken: string;
    refreshToken: string;
    user: { id: string };
  };
}

/** A company made through the operator API, with its owner signed in. */
export async function createCompany(t: TestApp, label = 'co'): Promise<TestCompany> {
  const name = unique(label);
  const email = `${name}-owner@example.com`;
  const res = await call(t, 'POST', '/internal/apps', operator, {
    name,
    owner: { email, password: PASSWORD, displayName: `${name} owner` },
  });
  const created = (await expectStatus(res, 201, 'create company')) as {
    appId: string;
    apiKey: string;
    apiKeyId: string;
  };
  const session = await login(t, email);
  return {
    id: created.appId,
    name,
    apiKey: created.apiKey,
    apiKeyId: created.apiKeyId,
    owner: { id: session.user.id, email, password: PASSWORD, role: 'owner', ...session },
  };
}

/** A user of the company with a role, created by its owner and signed in. */
export async function createUser(t: TestApp, company: TestCompany, role: CompanyRole): Promise<TestUser> {
  const email = `${unique(role)}@example.com`;
  const res = await call(
    t,
    'POST',
    '/api/v1/users',
    { token: company.owner.accessToken },
    {
      email,
      password: PASSWORD,
      displayName: `A ${role}`,
      role,
    },
  );
  const user = (await expectStatus(res, 201, `create ${role}`)) as { id: string };
  const session = await login(t, email);
  return { id: user.id, email, password: PASSWORD, role, ...session };
}

/** An API key of the company with given scopes, created by its owner. */
export async function createApiKey(
  t: TestApp,
  company: TestCompany,
  scopes: string[],
  extra: Record<string, unknown> = {},
): Promise<{ id: string; key: string }> {
  const res = await call(
    t,
    'POST',
    '/api/v1/api-keys',
    { token: company.owner.accessToken },
    { name: unique('key'), scopes, ...extra },
  );
  const body = (await expectStatus(res, 201, 'create api key')) as { key: string; apiKey: { id: string } };
  return { id: body.apiKey.id, key: body.key };
}

/** A platform operator (superadmin) signed in. */
export async function createOperatorUser(t: TestApp): Promise<TestUser> {
  const email = `${unique('operator')}@example.com`;
  const res = await call(t, 'POST', '/internal/operators', operator, { email, password: PASSWORD, displayName: 'Op' });
  const user = (await expectStatus(res, 201, 'create operator')) as { id: string };
  const session = await login(t, email);
  return { id: user.id, email, password: PASSWORD, role: 'superadmin', ...session };
}

export interface TestAgent {
  id: string;
  companyId: string;
  userId: string | null;
  displayName: string;
  extension: string | null;
  skills: string[];
  status: string;
  statusChangedAt: string;
  createdAt: string;
  updatedAt: string;
}

/** An agent of the company, created by its owner; `body` overrides the default fields. */
export async function createAgent(
  t: TestApp,
  company: TestCompany,
  body: Record<string, unknown> = {},
): Promise<TestAgent> {
  const res = await call(
    t,
    'POST',
    '/api/v1/agents',
    { token: company.owner.accessToken },
    { displayName: unique('Agent'), ...body },
  );
  return (await expectStatus(res, 201, 'create agent')) as TestAgent;
}
