import helmet from '@fastify/helmet';
import { NestFactory } from '@nestjs/core';
import { type FastifyError, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { AppModule } from './app.module.js';
import { PROBLEM_CONTENT_TYPE } from './common/errors/problem.js';
import { ProblemDetailsFilter } from './common/errors/problem.filter.js';
import { createValidationPipe } from './common/errors/validation.js';
import { findNul, jsonDepthExceeds, nulInBody, nulInUrl, tooDeep, urlHasNul } from './common/http/body-guards.js';
import { PinoNestLogger } from './common/logging/logger.js';
import { requestContext } from './common/request-context.js';
import { setupSwagger } from './common/swagger/swagger.js';
import type { ResolvedConfig } from './config/config.schema.js';
import { SwitchboardIoAdapter } from './gateway/socket-io.adapter.js';
import { MetricsService } from './health/metrics.service.js';

const REQUEST_ID = /^[\w.:-]{1,128}$/;

export interface CreateAppOptions {
  config: ResolvedConfig;
  databaseUrl: string;
  logger: Logger;
  /** Extra modules (tests add probe routes here). */
  imports?: ModuleImport[];
}

type ModuleImport = Parameters<typeof AppModule.forRoot>[0]['imports'] extends (infer T)[] | undefined ? T : never;

/**
 * Builds the application: Fastify with helmet, CORS, body limit and trust-proxy from
 * configuration; request ids; problem+json errors; global validation; metrics; Swagger. The
 * caller listens and closes. Used by `main.ts` and by the e2e tests, so tests run what ships.
 */
export async function createApp({
  config,
  databaseUrl,
  logger,
  imports,
}: CreateAppOptions): Promise<NestFastifyApplication> {
  const filter = new ProblemDetailsFilter(logger);
  const sendProblem = (error: unknown, request: FastifyRequest, reply: FastifyReply): void => {
    const { problem, headers } = filter.toProblem(error, request);
    void reply
      .status(problem.status)
      .headers({ ...headers, 'x-request-id': String(request.id) })
      .type(PROBLEM_CONTENT_TYPE)
      .send(problem);
  };
  // Node refuses a headers timeout longer than the request timeout.
  const headersTimeout =
    config.HTTP_REQUEST_TIMEOUT_MS > 0
      ? Math.min(config.HTTP_HEADERS_TIMEOUT_MS, config.HTTP_REQUEST_TIMEOUT_MS)
      : config.HTTP_HEADERS_TIMEOUT_MS;
  const adapter = new FastifyAdapter({
    loggerInstance: logger,
    // Requests are logged once, by our onResponse hook below.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Slow clients (slowloris): a socket that sends nothing, headers that never end, a body that
    // trickles, an idle keep-alive — each is closed after its own time.
    connectionTimeout: config.HTTP_CONNECTION_TIMEOUT_MS,
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    http: {
      maxHeaderSize: config.HTTP_MAX_HEADER_BYTES,
      headersTimeout,
      // Node checks the headers and request timeouts only on this interval (30 s by default), so
      // without it a slow client would hold its socket for up to 30 s more than configured.
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(headersTimeout / 4))),
    },
    // Fastify also takes a hop count here; its type does not say so.
    trustProxy: config.TRUST_PROXY as boolean | string[],
    requestIdHeader: false,
    genReqId: (req: IncomingMessage) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Identities at providers and CRM user ids (up to 254 characters) travel in paths.
    routerOptions: { maxParamLength: 1024 },
    // Errors of Fastify's router (before Nest runs) are problems too, with a request id.
    frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) =>
      sendProblem(error, request, reply),
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot({ config, databaseUrl, imports }),
    adapter,
    {
      logger: new PinoNestLogger(logger),
      abortOnError: false,
      // JSON and form bodies keep their bytes (`request.rawBody`): webhook signatures are over them.
      rawBody: true,
    },
  );
  const metrics = app.get(MetricsService);
  const fastify = adapter.getInstance();

  // Dialpad webhooks: a JWT as the body. Kept as text, with its bytes.
  fastify.addContentTypeParser('application/jwt', { parseAs: 'buffer' }, (request, body, done) => {
    (request as FastifyRequest & { rawBody?: Buffer }).rawBody = body as Buffer;
    done(null, (body as Buffer).toString('utf8'));
  });

  // JSON bodies: nesting deeper than JSON_MAX_DEPTH is refused before parsing (class-transformer
  // recurses and would overflow the stack). Nest keeps the bytes in `request.rawBody` as before.
  const maxDepth = config.JSON_MAX_DEPTH;
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  app.useBodyParser('application/json', { bodyLimit: config.BODY_LIMIT_BYTES }, (request, body, done) => {
    const text = body.toString('utf8');
    if (jsonDepthExceeds(text, maxDepth)) return done(tooDeep(maxDepth), undefined);
    parseJson(request as FastifyRequest, text, done);
  });

  // Hooks go on before Nest registers its routes (app.init), so that they cover every route.
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    requestContext.run({ requestId: String(request.id), ip: request.ip }, done);
  });
  // NUL characters are refused at the edge (PostgreSQL refuses them in text and jsonb): in the
  // path and query (raw or as %00) and in any string or key of a parsed body (JSON or form).
  fastify.addHook('preValidation', (request, reply, done) => {
    if (urlHasNul(request.url)) return sendProblem(nulInUrl(), request, reply);
    const at = findNul(request.body);
    if (at) return sendProblem(nulInBody(at), request, reply);
    done();
  });
  // Headers set where no reply is at hand (services: rate limits) reach the answer here.
  fastify.addHook('onSend', (request, reply, payload, done) => {
    const headers = requestContext.getStore()?.responseHeaders;
    if (headers) void reply.headers(headers);
    done(null, payload);
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observeHttp(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    requestContext.run({ requestId: String(request.id) }, () => {
      logger.info(
        {
          req: { method: request.method, url: request.url, ip: request.ip },
          res: { statusCode: reply.statusCode },
          responseTimeMs: Math.round(reply.elapsedTime * 10) / 10,
        },
        'request completed',
      );
    });
    done();
  });

  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: [`'self'`],
        styleSrc: [`'self'`, `'unsafe-inline'`],
        imgSrc: [`'self'`, 'data:'],
        scriptSrc: [`'self'`, `'unsafe-inline'`],
        // Served over plain HTTP in development: do not make browsers upgrade /docs assets.
        upgradeInsecureRequests: null,
      },
    },
  });
  app.enableCors({
    origin: config.CORS_ORIGINS.length > 0 ? config.CORS_ORIGINS : false,
    credentials: true,
    exposedHeaders: ['x-request-id', 'retry-after'],
  });
  app.useWebSocketAdapter(new SwitchboardIoAdapter(app, config));
  app.useGlobalPipes(createValidationPipe());
  app.useGlobalFilters(filter);
  setupSwagger(app);
  await app.init();
  await fastify.ready();
  return app;
}
