import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';

export interface FieldError {
  field: string;
  location: string;
  message: string;
}

/**
 * Asserts the one error shape `{"error": {"code", "message", "details"}}`:
 * exactly those keys, the given status and code, a non-empty message.
 * Returns the error object for further checks.
 */
export function expectError(
  res: LightMyRequestResponse,
  status: number,
  code: string,
): { code: string; message: string; details: Record<string, unknown> } {
  expect(res.statusCode, `${res.statusCode} ${res.body}`).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = res.json();
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'details', 'message']);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(body.error.details).toBeTypeOf('object');
  expect(body.error.details).not.toBeNull();
  return body.error;
}

/** A 400 validation_failed whose details.fields name `field` (or a path under it); returns those entries. */
export function expectFieldError(res: LightMyRequestResponse, field: string): FieldError[] {
  const err = expectError(res, 400, 'validation_failed');
  const fields = err.details.fields as FieldError[];
  expect(Array.isArray(fields)).toBe(true);
  const named = fields.filter((f) => f.field === field || f.field.startsWith(`${field}.`));
  expect(named, `fields ${JSON.stringify(fields)} should name ${field}`).not.toHaveLength(0);
  for (const f of named) {
    expect(typeof f.message).toBe('string');
    expect(f.message.length).toBeGreaterThan(0);
  }
  return named;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
