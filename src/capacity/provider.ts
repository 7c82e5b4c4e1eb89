/**
 * The contract between Scalar and whoever sells it capacity.
 *
 * A provider sells blocks: `nodes` machines of one instance type, for some
 * hours, in a tier. The autoscaler (src/capacity/autoscaler.ts) and the admin
 * API quote and buy through this interface only, so a real adapter (a cloud's
 * reserved-instance API, a GPU marketplace) plugs in behind it later;
 * src/capacity/marketplace.ts is the built-in simulated one.
 *
 * Rules every adapter follows:
 * - `quote` is synchronous and side-effect free: the autoscaler calls it on
 *   every pass, for every instance type, as part of a pure decision. An
 *   adapter whose prices live behind a network call keeps a price list it
 *   refreshes in the background and quotes from that.
 * - `buy` honours a quote until its `validUntil`, and fails with
 *   `ProviderError('quote_expired')` after it.
 * - `release` is idempotent: releasing an id twice, or one the provider no
 *   longer knows (it expired, or a simulated provider restarted), succeeds.
 *   Callers retry it freely.
 * - Time is always passed in (`now`, ms since the epoch), never read from a
 *   clock inside, so simulated time drives everything in tests.
 */

/** The pool a block's nodes join: `fast` = reserved, warm; `flex` = spot, just in time. */
export const CapacityTier = { fast: 'fast', flex: 'flex' } as const;
export type CapacityTier = (typeof CapacityTier)[keyof typeof CapacityTier];
export const CAPACITY_TIERS: readonly CapacityTier[] = Object.freeze(Object.values(CapacityTier));

/** One machine shape a provider sells. All of a block's nodes are of one type. */
export interface InstanceType {
  /** e.g. `8xH100-80`: GPUs × model - VRAM per GPU. Unique per provider. */
  name: string;
  /** GPUs per node. */
  gpus: number;
  vramPerGpuGb: number;
  /** CPU cores per node. */
  cpu: number;
  ramGb: number;
  /** Most nodes of this type one purchase may hold. */
  maxNodes: number;
}

export interface QuoteRequest {
  instanceType: string;
  /** Whole nodes, 1..maxNodes. */
  nodes: number;
  /** Length of the block; > 0. */
  hours: number;
  tier: CapacityTier;
}

/** A price offer for one block. Every price is in USD. */
export interface Quote {
  provider: string;
  instanceType: string;
  tier: CapacityTier;
  nodes: number;
  hours: number;
  /** GPUs in the whole block (nodes × GPUs per node). */
  gpus: number;
  /** For the whole block (all nodes), per hour. */
  pricePerHour: number;
  /** pricePerHour / gpus: what the autoscaler compares with SCALAR_FLEX_MAX_PRICE. */
  pricePerGpuHour: number;
  /** When the quote was made (ms since the epoch). */
  quotedAt: number;
  /** `buy` honours the quote until then (ms since the epoch). */
  validUntil: number;
}

/** What a successful `buy` returns. */
export interface Purchase {
  /** The provider's id of the purchase; what `release` takes. */
  externalId: string;
  /** When the nodes are expected to be up (ms since the epoch). */
  readyAt: number;
}

export interface CapacityProvider {
  /** Stored in `capacity_blocks.provider`. */
  readonly name: string;
  /** The catalogue. Stable for the life of the provider object. */
  instanceTypes(): InstanceType[];
  /** Price of a block now. Throws ProviderError for an unknown type or a request outside its limits. */
  quote(req: QuoteRequest, now: number): Quote;
  /** Buy what the quote offered. Throws ProviderError('quote_expired') past `validUntil`. */
  buy(quote: Quote, now: number): Promise<Purchase>;
  /** Hand a purchase back; billing stops. Idempotent. */
  release(externalId: string, now: number): Promise<void>;
}

/** Why a provider refused. Stable codes: callers switch on them; the message is for people. */
export const ProviderErrorCode = {
  unknown_instance_type: 'unknown_instance_type',
  invalid_request: 'invalid_request',
  quote_expired: 'quote_expired',
  /** The provider has no capacity right now. Worth retrying later. */
  unavailable: 'unavailable',
} as const;
export type ProviderErrorCode = (typeof ProviderErrorCode)[keyof typeof ProviderErrorCode];

export class ProviderError extends Error {
  constructor(
    readonly code: ProviderErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ProviderError';
  }

  /** Worth trying again later with the same request (a fresh quote for an expired one). */
  get retryable(): boolean {
    return this.code === 'unavailable' || this.code === 'quote_expired';
  }
}

/**
 * Checks a request against the catalogue, as every adapter must before
 * quoting. Returns the instance type, or throws ProviderError naming the field.
 */
export function validateQuoteRequest(types: readonly InstanceType[], req: QuoteRequest): InstanceType {
  const type = types.find((t) => t.name === req.instanceType);
  if (!type) {
    throw new ProviderError('unknown_instance_type', `unknown instance type ${JSON.stringify(req.instanceType)}; known: ${types.map((t) => t.name).join(', ')}`, {
      instance_type: req.instanceType,
      known: types.map((t) => t.name),
    });
  }
  if (!Number.isInteger(req.nodes) || req.nodes < 1 || req.nodes > type.maxNodes) {
    throw new ProviderError('invalid_request', `nodes: must be a whole number from 1 to ${type.maxNodes} for ${type.name}`, {
      field: 'nodes',
      max: type.maxNodes,
    });
  }
  if (!(req.hours > 0) || !Number.isFinite(req.hours)) {
    throw new ProviderError('invalid_request', 'hours: must be a positive number', { field: 'hours' });
  }
  if (req.tier !== 'fast' && req.tier !== 'flex') {
    throw new ProviderError('invalid_request', "tier: must be 'fast' or 'flex'", { field: 'tier' });
  }
  return type;
}
