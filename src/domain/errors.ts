/**
 * The one catalogue of API error codes. Every 4xx/5xx the API sends is
 * `{"error": {"code", "message", "details"}}` with a code from here; the code
 * is stable (clients switch on it), the message is for people.
 */
export const ErrorCode = {
  validation_failed: 400,
  bad_request: 400,
  invalid_json: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  node_not_found: 404,
  /** GET/release of a capacity block that does not exist (capacity_blocks). */
  block_not_found: 404,
  route_not_found: 404,
  method_not_allowed: 405,
  job_already_finished: 409,
  conflict: 409,
  /**
   * The coordinator refused an action in the current state of its subject: a node action (e.g. resume a
   * node that is not draining) or a capacity block action.
   */
  invalid_state: 409,
  /** Releasing a capacity block that is already released. */
  block_released: 409,
  /** Buying a block of an instance type the provider does not sell. */
  unknown_instance_type: 400,
  idempotency_key_reused: 422,
  payload_too_large: 413,
  unsupported_media_type: 415,
  internal: 500,
  unavailable: 503,
  /** A cancel, node or capacity action needs the coordinator, and none answered in time (sent with Retry-After). */
  coordinator_unavailable: 503,
  /** The capacity provider refused or could not be reached; nothing was bought or released. */
  provider_unavailable: 503,
} as const;
export type ErrorCode = keyof typeof ErrorCode;
export const ERROR_CODES = Object.keys(ErrorCode) as ErrorCode[];

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: Record<string, unknown> };
}

/** An expected failure with a catalogued code; anything else thrown is a bug and becomes `internal`. */
export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = ErrorCode[code];
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }

  static notFound(what: string, id: string): ApiError {
    return new ApiError('not_found', `${what} ${id} not found`, { [`${what}_id`]: id });
  }
}
