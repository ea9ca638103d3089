import { SCOPES } from '../src/common/access/principal.js';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * The OpenAPI document (/docs-json) as a newcomer uses it in Swagger UI: every request body comes
 * with an example that has its required fields, no field is a bare `object` where it holds a
 * string or a number, and the credentials are described as they really are.
 */

type Schema = Record<string, unknown> & {
  $ref?: string;
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: unknown;
  required?: string[];
  items?: Schema;
  allOf?: Schema[];
  oneOf?: Schema[];
  anyOf?: Schema[];
};

interface Document {
  paths: Record<
    string,
    Record<
      string,
      {
        requestBody?: { content: Record<string, { schema?: Schema; example?: unknown }> };
        parameters?: { name: string; schema?: Schema }[];
      }
    >
  >;
  components: { schemas: Record<string, Schema>; securitySchemes: Record<string, { description?: string }> };
}

/** `object` with nothing saying what is inside: how an untyped `string | null` property shows up. */
function bareObjects(schema: Schema | undefined, at: string, out: string[]): void {
  if (!schema || typeof schema !== 'object') return;
  const composed = schema.allOf ?? schema.oneOf ?? schema.anyOf;
  if (schema.type === 'object' && !schema.properties && schema.additionalProperties === undefined && !composed) {
    out.push(at);
  }
  if (schema.$ref === '#/components/schemas/Object') out.push(`${at} ($ref Object)`);
  for (const [name, property] of Object.entries(schema.properties ?? {})) bareObjects(property, `${at}.${name}`, out);
  if (schema.items) bareObjects(schema.items, `${at}[]`, out);
  for (const [i, part] of (composed ?? []).entries()) bareObjects(part, `${at}<${i}>`, out);
}

describe('OpenAPI document', () => {
  let t: TestApp;
  let doc: Document;

  beforeAll(async () => {
    t = await startTestApp();
    const res = await t.fetch('/docs-json');
    expect(res.status).toBe(200);
    doc = (await res.json()) as Document;
  });
  afterAll(async () => {
    await t?.close();
  });

  const resolve = (schema: Schema | undefined) =>
    schema?.$ref ? doc.components.schemas[schema.$ref.split('/').pop() ?? ''] : schema;

  it('has an example for every JSON request body, with every required field', () => {
    const missing: string[] = [];
    let bodies = 0;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        for (const [type, media] of Object.entries(operation.requestBody?.content ?? {})) {
          if (!type.includes('json')) continue;
          bodies++;
          const where = `${method.toUpperCase()} ${path}`;
          if (media.example === undefined) {
            missing.push(`${where}: no example`);
            continue;
          }
          const schema = resolve(media.schema);
          const example = media.example as Record<string, unknown>;
          for (const field of schema?.required ?? []) {
            if (!(field in example)) missing.push(`${where}: example lacks required ${field}`);
          }
        }
      }
    }
    expect(bodies).toBeGreaterThan(20);
    expect(missing).toEqual([]);
  });

  it('types every field (no bare `object` for strings, numbers or dates)', () => {
    const bare: string[] = [];
    for (const [name, schema] of Object.entries(doc.components.schemas)) bareObjects(schema, name, bare);
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        for (const p of operation.parameters ?? [])
          bareObjects(p.schema, `${method.toUpperCase()} ${path} ?${p.name}`, bare);
      }
    }
    expect(bare).toEqual([]);
    const call = doc.components.schemas.CallDto.properties!;
    expect(call.notes).toMatchObject({ type: 'string', nullable: true });
    expect(call.disposition).toMatchObject({ type: 'string', nullable: true });
    const agent = doc.components.schemas.AgentDto.properties!;
    expect(agent.userId).toMatchObject({ type: 'string', format: 'uuid', nullable: true });
    expect(agent.extension).toMatchObject({ type: 'string', nullable: true });
  });

  it('describes API keys as they are (sbk_…) and lists every scope', () => {
    const description = doc.components.securitySchemes['api-key'].description ?? '';
    expect(description).toContain('sbk_');
    expect(description).not.toMatch(/\bsk_/);
    const scopes = doc.components.schemas.CreateApiKeyDto.properties!.scopes.items as Schema;
    expect(scopes.enum).toEqual(expect.arrayContaining([...SCOPES, '*']));
    expect(SCOPES).toContain('pbx:manage');
  });
});
