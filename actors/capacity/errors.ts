/**
 * Expected failures of capacity requests (admin buy and release). They are
 * DomainErrors with codes from the one catalogue (src/domain/errors.ts): the
 * coordinator answers the API with the code, and only the API's error plugin
 * knows what HTTP status it is. Anything else thrown is a bug.
 */
import { DomainError } from '../../src/domain/errors.ts';
import type { CAPACITY_REFUSALS } from '../../src/wire/messages.ts';
import { ProviderError } from '../../src/capacity/provider.ts';

/** The refusals the capacity actor answers the API with (the wire protocol's list; each is a catalogued ErrorCode). */
export type CapacityErrorCode = (typeof CAPACITY_REFUSALS)[number];

export class CapacityError extends DomainError {
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
   * caller's fault (validation_failed, unknown_instance_type); anything else
   * means nothing was bought or released and it may work later
   * (provider_unavailable).
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
