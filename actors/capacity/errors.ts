/**
 * Expected failures of capacity requests (admin buy and release). They are
 * ApiErrors with codes from the one catalogue (src/domain/errors.ts), so the
 * API answers them as they are; anything else thrown is a bug.
 */
import { ApiError, type ErrorCode } from '../../src/domain/errors.ts';
import { ProviderError } from '../../src/capacity/provider.ts';

export type CapacityErrorCode = Extract<
  ErrorCode,
  'unknown_instance_type' | 'validation_failed' | 'block_not_found' | 'block_released' | 'invalid_state' | 'provider_unavailable'
>;

export class CapacityError extends ApiError {
  declare readonly code: CapacityErrorCode;

  constructor(code: CapacityErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = 'CapacityError';
  }

  static blockNotFound(blockId: string): CapacityError {
    return new CapacityError('block_not_found', `capacity block ${blockId} not found`, { block_id: blockId });
  }

  static blockReleased(blockId: string, releasedAt: Date | null): CapacityError {
    return new CapacityError('block_released', `capacity block ${blockId} is already released`, {
      block_id: blockId,
      released_at: releasedAt?.toISOString() ?? null,
    });
  }

  /**
   * A provider's refusal in the catalogue's terms: a bad request stays the
   * caller's fault (400); anything else means nothing was bought or released
   * and it may work later (503).
   */
  static fromProvider(err: ProviderError): CapacityError {
    switch (err.code) {
      case 'unknown_instance_type':
        return new CapacityError('unknown_instance_type', err.message, err.details);
      case 'invalid_request':
        return new CapacityError('validation_failed', err.message, err.details);
      case 'quote_expired':
      case 'unavailable':
        return new CapacityError('provider_unavailable', err.message, { ...err.details, provider_code: err.code });
    }
  }
}

/** `err` as a CapacityError when it is a ProviderError; otherwise unchanged (a bug, or the network). */
export function asCapacityError(err: unknown): unknown {
  return err instanceof ProviderError ? CapacityError.fromProvider(err) : err;
}
