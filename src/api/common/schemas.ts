import { z } from 'zod';
import { ERROR_CODES } from '../../domain/errors.ts';
import { ApiError } from './errors.ts';

export const ErrorResponse = z
  .object({
    error: z.object({
      code: z.enum(ERROR_CODES as [string, ...string[]]).describe('Stable machine-readable code'),
      message: z.string().describe('Human-readable explanation'),
      details: z.record(z.string(), z.unknown()).describe('Structured context, e.g. the offending fields'),
    }),
  })
  .meta({ id: 'Error' });

/** Error responses every authenticated route can give. */
export const authErrors = { 400: ErrorResponse, 401: ErrorResponse, 500: ErrorResponse, 503: ErrorResponse } as const;

/** Further errors of routes that take a JSON body. */
export const bodyErrors = { 413: ErrorResponse, 415: ErrorResponse } as const;

/**
 * Path ids are UUIDs. A malformed id cannot name anything, so it is a 404
 * (not a 400, and never a 500 from Postgres refusing to cast it); routes
 * check with isUuid() and answer not_found themselves.
 */
export const IdParams = z.object({ id: z.string().describe('UUID') });

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

/** The id itself when it is a UUID; otherwise the 404 that an unknown id gets. */
export function existingId(what: string, id: string): string {
  if (!isUuid(id)) throw ApiError.notFound(what, id);
  return id;
}

/**
 * A string the database can store. PostgreSQL text and jsonb refuse the NUL
 * character; without this check it would surface as a 500 (and fail every
 * job group-committed with it), instead of a 400 naming the field.
 */
export function storableString(typeMessage?: string) {
  return z.string(typeMessage).regex(/^[^\u0000]*$/, 'must not contain NUL (\\u0000) characters');
}

export const Timestamp = z.string().describe('RFC 3339 timestamp (UTC)');

/** A date (UTC midnight) or a date-time with its offset; a time without an offset would depend on the server's zone. */
const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2})))?$/;
const ISO_MESSAGE = 'must be an ISO 8601 date or date-time with an offset, e.g. 2026-01-31 or 2026-01-31T12:00:00Z';

/** The instant an ISO_8601 string names, or null when a part is out of range (2026-02-30, 25:00). */
export function parseIsoTime(s: string): Date | null {
  const m = ISO_8601.exec(s);
  if (!m) return null;
  const [y, mo, d, h = '0', mi = '0', sec = '0', oh = '0', om = '0'] = m.slice(1);
  const day = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  if (day.getUTCFullYear() !== Number(y) || day.getUTCMonth() !== Number(mo) - 1 || day.getUTCDate() !== Number(d)) {
    return null;
  }
  if (Number(h) > 23 || Number(mi) > 59 || Number(sec) > 59 || Number(oh) > 23 || Number(om) > 59) return null;
  const t = Date.parse(s.length === 10 ? `${s}T00:00:00Z` : s);
  return Number.isNaN(t) ? null : new Date(t);
}

/** A query parameter holding an instant: validated here (400 naming it), a Date in the handler. */
export function isoTimeQuery() {
  return z
    .string()
    .max(64, ISO_MESSAGE)
    .refine((s) => parseIsoTime(s) !== null, ISO_MESSAGE)
    .transform((s) => parseIsoTime(s)!);
}
export const NullableTimestamp = Timestamp.nullable();

export const PageQuery = {
  limit: z.coerce
    .number({ error: 'must be an integer from 1 to 1000' })
    .int('must be an integer from 1 to 1000')
    .min(1, 'must be an integer from 1 to 1000')
    .max(1000, 'must be an integer from 1 to 1000')
    .default(100)
    .describe('Page size, 1..1000 (default 100)'),
  cursor: z.string().max(200).optional().describe('next_cursor from the previous page'),
};
