import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { FieldErrorDto, ProblemDto } from './api-problems.js';

export const API_KEY_SCHEME = 'api-key';
export const JWT_SCHEME = 'jwt';

export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Switchboard')
    .setDescription(
      'Multi-tenant CTI backend: click-to-call, live call events and screen pops, call history, ' +
        'CRM logging, webhooks. Every error is application/problem+json (RFC 9457) with a stable ' +
        '`type` (`urn:switchboard:problem:<code>`); every response carries `x-request-id`.\n\n' +
        'Live events: socket.io at `/socket.io`, `auth: { apiKey: "sbk_…" }` or `{ token }`, optional ' +
        '`lastSeq` to resume. Order on connect: the replayed events (`event`, by `seq`), then `ready` ' +
        '`{ companyId, agentId, seq }`, then live events — replayed events arrive before `ready`. ' +
        'Before a server stops, each socket gets `server.shutdown` `{ reconnect: true, lastSeq }` and ' +
        'the transport closes; clients reconnect by themselves (reason `transport close`).',
    )
    .setVersion('0.1.0')
    .addBearerAuth(
      { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'User session (access token)' },
      JWT_SCHEME,
    )
    .addApiKey(
      {
        type: 'apiKey',
        in: 'header',
        name: 'x-api-key',
        description: 'Company API key (`sbk_…`), shown once when created',
      },
      API_KEY_SCHEME,
    )
    .build();
  const document = SwaggerModule.createDocument(app, config, { extraModels: [ProblemDto, FieldErrorDto] });
  addRequestExamples(document);
  return document;
}

type Schema = Record<string, unknown> & {
  $ref?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  allOf?: Schema[];
};

/**
 * Swagger UI pre-fills "Try it out" with a request body's example. Each JSON body gets one, made
 * from the examples (else defaults, else the first enum value) its DTO declares per property:
 * every required property and every optional one that has an example of its own. A body already
 * carrying an example keeps it. (test/openapi-document.e2e-spec.ts checks that none is missing.)
 */
function addRequestExamples(document: OpenAPIObject): void {
  const schemas = (document.components?.schemas ?? {}) as Record<string, Schema>;
  const resolve = (schema: Schema | undefined): Schema | undefined =>
    schema?.$ref ? schemas[schema.$ref.split('/').pop() ?? ''] : schema;
  const exampleOf = (schema: Schema | undefined, depth: number): unknown => {
    const s = resolve(schema);
    if (!s || depth > 4) return undefined;
    if (s.example !== undefined) return s.example;
    if (s.default !== undefined) return s.default;
    if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
    if (s.allOf?.length === 1) return exampleOf(s.allOf[0], depth + 1);
    if (s.type === 'array') {
      const item = exampleOf(s.items, depth + 1);
      return item === undefined ? undefined : [item];
    }
    if (s.properties) {
      const out: Record<string, unknown> = {};
      for (const [name, property] of Object.entries(s.properties)) {
        const required = s.required?.includes(name) ?? false;
        const own = resolve(property)?.example !== undefined || property.example !== undefined;
        if (!required && !own) continue;
        const value = exampleOf(property, depth + 1);
        if (value !== undefined) out[name] = value;
      }
      return out;
    }
    return undefined;
  };
  for (const item of Object.values(document.paths)) {
    for (const operation of Object.values(item as Record<string, { requestBody?: unknown }>)) {
      const body = operation?.requestBody as
        { content?: Record<string, { schema?: Schema; example?: unknown; examples?: unknown }> } | undefined;
      for (const [type, media] of Object.entries(body?.content ?? {})) {
        if (!type.includes('json') || media.example !== undefined || media.examples !== undefined) continue;
        const example = exampleOf(media.schema, 0);
        if (example !== undefined) media.example = example;
      }
    }
  }
}

/** Swagger UI at `/docs`, the OpenAPI document at `/docs-json`. */
export function setupSwagger(app: INestApplication): OpenAPIObject {
  const document = buildOpenApiDocument(app);
  SwaggerModule.setup('docs', app, document, {
    jsonDocumentUrl: 'docs-json',
    yamlDocumentUrl: 'docs-yaml',
    customSiteTitle: 'Switchboard API',
  });
  return document;
}
