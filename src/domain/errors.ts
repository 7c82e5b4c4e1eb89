/**
 * The one catalogue of error codes, and the error every expected failure is
 * thrown as. Codes are stable (clients switch on them); the message is for
 * people. This file knows nothing of HTTP: what status each code is answered
 * with is the API's business (src/api/common/errors.ts), so the coordinator,
 * the capacity actor and the key store can throw a catalogued failure
 * without an HTTP status reaching them.
 */
export const ErrorCode = {
  validation_failed: 'validation_failed',
  bad_request: 'bad_request',
  invalid_json: 'invalid_json',
  unauthorized: 'unauthorized',
  forbidden: 'forbidden',
  not_found: 'not_found',
  node_not_found: 'node_not_found',
  /** GET/release of a capacity block that does not exist (capacity_blocks). */
  block_not_found: 'block_not_found',
  route_not_found: 'route_not_found',
  method_not_allowed: 'method_not_allowed',
  job_already_finished: 'job_already_finished',
  conflict: 'conflict',
  /**
   * The coordinator refused an action in the current state of its subject: a node action (e.g. resume a
   * node that is not draining) or a capacity block action.
   */
  invalid_state: 'invalid_state',
  /** Releasing a capacity block that is already released. */
  block_released: 'block_released',
  /** Buying a block of an instance type the provider does not sell. */
  unknown_instance_type: 'unknown_instance_type',
  idempotency_key_reused: 'idempotency_key_reused',
  payload_too_large: 'payload_too_large',
  unsupported_media_type: 'unsupported_media_type',
  internal: 'internal',
  unavailable: 'unavailable',
  /** A cancel, node or capacity action needs the coordinator, and none answered in time (sent with Retry-After). */
  coordinator_unavailable: 'coordinator_unavailable',
  /** The capacity provider refused or could not be reached; nothing was bought or released. */
  provider_unavailable: 'provider_unavailable',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(Object.values(ErrorCode));

/** An expected failure with a catalogued code; anything else thrown is a bug (answered as `internal`). */
export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }

  static notFound(what: string, id: string): DomainError {
    return new DomainError('not_found', `${what} ${id} not found`, { [`${what}_id`]: id });
  }
}
