/** The parsed JSON body of a response, loosely typed for assertions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function json(res: Response): Promise<any> {
  return res.json();
}

export const PROBLEM = 'application/problem+json; charset=utf-8';

/** A credential for a test request: a user's access token or an API key. */
export type Auth = { token?: string; key?: string };

/** Asserts a problem+json answer with the status and the stable type of `code`; returns its body. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function expectProblem(res: Response, status: number, code: string): Promise<any> {
  const body = await json(res);
  expect({ status: res.status, type: body.type }).toEqual({ status, type: `urn:switchboard:problem:${code}` });
  expect(res.headers.get('content-type')).toBe(PROBLEM);
  return body;
}
