import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { DomainError, type ErrorCode } from '../../domain/errors.ts';
import { ApiError } from '../common/errors.ts';

interface FieldError {
  field: string;
  location: string;
  message: string;
}

/** The part of the request a validation error is about, by fastify's validationContext. */
function validatedInput(request: FastifyRequest, location: string): unknown {
  switch (location) {
    case 'body':
      return request.body;
    case 'querystring':
      return request.query;
    case 'params':
      return request.params;
    case 'headers':
      return request.headers;
    default:
      return undefined;
  }
}

/** Whether the value at `segs` is absent from the input (a missing field, or no body at all). */
function isAbsent(input: unknown, segs: string[]): boolean {
  let cur = input;
  for (const s of segs) {
    if (cur === null || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, s)) return true;
    cur = (cur as Record<string, unknown>)[s];
  }
  return cur === undefined || (segs.length === 0 && cur === null);
}

function fieldErrors(err: FastifyError, request: FastifyRequest): FieldError[] {
  if (!hasZodFastifySchemaValidationErrors(err)) return [];
  const location: string = (err as { validationContext?: string }).validationContext ?? 'body';
  const input = validatedInput(request, location);
  const out: FieldError[] = [];
  for (const v of err.validation) {
    const segs = v.instancePath.replace(/^\//, '').split('/').filter(Boolean);
    const path = segs.join('.');
    if (v.keyword === 'unrecognized_keys') {
      // One entry per unknown field, each named, so a typo is easy to spot.
      for (const k of (v.params as { keys?: string[] }).keys ?? []) {
        out.push({ field: path ? `${path}.${k}` : k, location, message: 'is not a known field' });
      }
      continue;
    }
    // A field's own message (e.g. 'must be FAST or FLEX') would hide that it was simply left out.
    const message = isAbsent(input, segs) ? 'is required' : (v.message ?? 'is invalid');
    out.push({ field: path || location, location, message });
  }
  return out;
}

/**
 * Seconds a client should wait before it asks again (`Retry-After`), for the
 * errors a retry can cure. A coordinator that did not answer is usually back
 * (or replaced by a standby) within a few seconds, and the requests that ask
 * it are safe to repeat.
 */
export const RETRY_AFTER_SEC: Partial<Record<ErrorCode, number>> = { coordinator_unavailable: 2 };

const DB_DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '57P01', '57P03', '53300', '08006', '08001']);

/**
 * Turns every error into the one shape `{"error": {code, message, details}}`.
 * Expected failures carry a catalogued code; anything else is a bug or an
 * outage, logged in full and answered without internals.
 */
export function toErrorReply(err: FastifyError, request: FastifyRequest): ApiError {
  if (err instanceof DomainError) return ApiError.from(err);
  if (err.validation) {
    const fields = fieldErrors(err, request);
    const first = fields[0];
    const message = first ? fields.map((f) => `${f.field}: ${f.message}`).join('; ') : err.message;
    return new ApiError('validation_failed', message, { fields });
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('payload_too_large', 'request body is larger than 1 MiB', { limit_bytes: 1048576 });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('unsupported_media_type', 'send the body as application/json', {
        content_type: request.headers['content-type'] ?? null,
      });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError('invalid_json', 'request body is not valid JSON', {});
  }
  if (err instanceof SyntaxError || err.name === 'SyntaxError') {
    return new ApiError('invalid_json', `request body is not valid JSON: ${err.message}`, {});
  }
  if (err.statusCode === 413) return new ApiError('payload_too_large', 'request body is larger than 1 MiB', {});
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return new ApiError('bad_request', err.message, {});
  }
  if (DB_DOWN.has((err as { code?: string }).code ?? '')) {
    return new ApiError('unavailable', 'the database is unavailable; retry shortly', {});
  }
  return new ApiError('internal', `internal error; quote request id ${request.id} when reporting it`, {
    request_id: request.id,
  });
}

/**
 * Fastify's `frameworkErrors`: the router refuses some URLs before any route
 * or error handler runs (a path parameter over maxParamLength, malformed
 * percent-encoding) and would answer them in its own shape. A path id that
 * long cannot name anything, so it is a 404 like any other malformed id.
 */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const api =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new ApiError('not_found', 'not found: a path parameter is longer than any id', {})
      : err.code === 'FST_ERR_BAD_URL'
        ? new ApiError('bad_request', 'the URL is malformed (bad percent-encoding)', {})
        : toErrorReply(err, request);
  if (api.status >= 500) request.log.error({ err }, 'request failed');
  reply.header('x-request-id', request.id);
  void reply.status(api.status).send(api.toBody());
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const api = toErrorReply(err, request);
    if (api.status >= 500) request.log.error({ err }, 'request failed');
    else request.log.info({ code: api.code, reason: api.message }, 'request refused');
    if (api.code === 'unauthorized') reply.header('www-authenticate', 'Bearer');
    const retryAfter = RETRY_AFTER_SEC[api.code];
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    return reply.status(api.status).send(api.toBody());
  });

  app.setNotFoundHandler((request, reply) => {
    const api = new ApiError('route_not_found', `no route ${request.method} ${request.url.split('?')[0]}`, {
      method: request.method,
    });
    return reply.status(404).send(api.toBody());
  });
}
