/**
 * Where a catalogued failure (src/domain/errors.ts) becomes HTTP: the status
 * each code is answered with, and the one error body
 * `{"error": {"code", "message", "details"}}`. Only the API imports this; the
 * error plugin (plugins/errors.ts) answers every DomainError through it.
 */
import { DomainError, type ErrorCode } from '../../domain/errors.ts';

/** A Record, so a new code fails to compile until it has a status. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  validation_failed: 400,
  bad_request: 400,
  invalid_json: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  node_not_found: 404,
  block_not_found: 404,
  route_not_found: 404,
  method_not_allowed: 405,
  job_already_finished: 409,
  conflict: 409,
  invalid_state: 409,
  block_released: 409,
  unknown_instance_type: 400,
  idempotency_key_reused: 422,
  payload_too_large: 413,
  unsupported_media_type: 415,
  internal: 500,
  unavailable: 503,
  coordinator_unavailable: 503,
  provider_unavailable: 503,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: Record<string, unknown> };
}

/** A catalogued failure raised by the HTTP layer itself, with its status and body. */
export class ApiError extends DomainError {
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = 'ApiError';
  }

  get status(): number {
    return HTTP_STATUS[this.code];
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }

  /** A failure thrown below the API (the key store, a coordinator's refusal), as the API answers it. */
  static from(err: DomainError): ApiError {
    return err instanceof ApiError ? err : new ApiError(err.code, err.message, err.details);
  }

  static override notFound(what: string, id: string): ApiError {
    return ApiError.from(DomainError.notFound(what, id));
  }
}
