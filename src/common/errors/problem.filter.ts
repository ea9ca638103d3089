import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, HttpStatus } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { AppException } from './app-exception.js';
import { codeFor, PROBLEM_CONTENT_TYPE, problemType, type ProblemDetails, titleFor } from './problem.js';

/** Fastify errors raised before our handlers run (body parsing, content type), by code. */
const FASTIFY_ERRORS: Record<string, { status: number; code: string; detail: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: {
    status: 413,
    code: 'payload-too-large',
    detail: 'The request body is larger than this service accepts.',
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'unsupported-media-type',
    detail: 'The Content-Type of the request is not accepted here; send application/json.',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: 'bad-request',
    detail: 'The Content-Length header does not match the body.',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    status: 400,
    code: 'malformed-json',
    detail: 'The body is empty but the Content-Type says JSON.',
  },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'malformed-json', detail: 'The body is not valid JSON.' },
  FST_ERR_CTP_INVALID_TYPE: { status: 400, code: 'bad-request', detail: 'The Content-Type header is not valid.' },
  FST_ERR_MAX_PARAM_LENGTH: {
    status: 414,
    code: 'uri-too-long',
    detail: 'A path segment is longer than 1024 characters.',
  },
  FST_ERR_BAD_URL: { status: 400, code: 'bad-request', detail: 'The URL is malformed.' },
};

interface FastifyishError {
  code?: string;
  statusCode?: number;
  name?: string;
  message?: string;
}

/**
 * The one place errors become responses: every error is `application/problem+json`
 * (RFC 9457) with a stable `type`. A 5xx never carries a stack, SQL or vendor text: it carries the
 * request id, and the error itself goes to the log.
 */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const reply = http.getResponse<FastifyReply>();
    const request = http.getRequest<FastifyRequest>();
    if (!reply || typeof reply.status !== 'function') throw exception; // not HTTP (e.g. socket.io)
    const { problem, headers } = this.toProblem(exception, request);
    if (problem.status === 503 && exception instanceof AppException) {
      // Unavailable on purpose (not ready, stopping): a state of the service, not a failed request.
      this.logger.warn({ code: exception.code, status: 503, url: request?.url }, exception.detail);
    } else if (problem.status >= 500) {
      this.logger.error({ err: exception, status: problem.status, url: request?.url }, 'request failed');
    }
    if (reply.sent) return;
    reply.status(problem.status).headers(headers).header('content-type', PROBLEM_CONTENT_TYPE).send(problem);
  }

  toProblem(
    exception: unknown,
    request?: FastifyRequest,
  ): { problem: ProblemDetails; headers: Record<string, string> } {
    const requestId = request?.id ? String(request.id) : undefined;
    const instance = request?.url?.split('?')[0];
    const base = (status: number, code: string, detail: string, ext: Record<string, unknown> = {}): ProblemDetails => ({
      type: problemType(code),
      title: titleFor(status),
      status,
      detail,
      ...(instance ? { instance } : {}),
      ...(requestId ? { requestId } : {}),
      ...ext,
    });

    if (exception instanceof AppException) {
      return {
        problem: base(exception.status, exception.code, exception.detail, exception.extensions),
        headers: exception.headers,
      };
    }
    // Nest hands Fastify's own 4xx errors (body parsing, content type) over as an HttpException
    // whose cause is the Fastify error: answer those by their Fastify code.
    const fastifyCode = (
      exception instanceof HttpException
        ? (exception.cause as FastifyishError | undefined)
        : (exception as FastifyishError | undefined)
    )?.code;
    const known = fastifyCode ? FASTIFY_ERRORS[fastifyCode] : undefined;
    if (known) return { problem: base(known.status, known.code, known.detail), headers: {} };
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      if (status >= 500) {
        return { problem: base(status, codeFor(status), 'The service could not complete the request.'), headers: {} };
      }
      return { problem: base(status, codeFor(status), httpDetail(exception, request)), headers: {} };
    }
    const err = (exception ?? {}) as FastifyishError;
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return {
        problem: base(err.statusCode, codeFor(err.statusCode), titleFor(err.statusCode) + '.'),
        headers: {},
      };
    }
    return {
      problem: base(
        HttpStatus.INTERNAL_SERVER_ERROR,
        'internal-error',
        'An unexpected error occurred. Quote the requestId when reporting it.',
      ),
      headers: {},
    };
  }
}

function httpDetail(exception: HttpException, request?: FastifyRequest): string {
  const status = exception.getStatus();
  if (status === 404 && /^Cannot (GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)/.test(exception.message)) {
    return `No route ${request?.method ?? ''} ${request?.url?.split('?')[0] ?? ''}`.replace(/\s+/g, ' ').trim() + '.';
  }
  const body = exception.getResponse();
  if (typeof body === 'string') return body;
  const message = (body as { message?: unknown }).message;
  if (Array.isArray(message)) return message.join('; ');
  if (typeof message === 'string') return message;
  return exception.message;
}
