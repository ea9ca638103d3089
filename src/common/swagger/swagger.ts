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
        '`type` (`urn:switchboard:problem:<code>`); every response carries `x-request-id`.',
    )
    .setVersion('0.1.0')
    .addBearerAuth(
      { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'User session (access token)' },
      JWT_SCHEME,
    )
    .addApiKey(
      { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'Company API key (sk_…)' },
      API_KEY_SCHEME,
    )
    .build();
  return SwaggerModule.createDocument(app, config, { extraModels: [ProblemDto, FieldErrorDto] });
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
