/**
 * The built-in simulated marketplace (SCALAR_PROVIDER=simulated): a
 * CapacityProvider whose catalogue is fixed, whose prices follow a seeded,
 * deterministic curve of time, and whose nodes are "ready" a fixed delay
 * after the purchase (the capacity actor then starts simulated agents for
 * them).
 *
 * Determinism is the point: the same seed and the same `now` always give the
 * same price, so autoscaler tests can script hours of virtual time and assert
 * exact decisions, and `scalar dev` shows the same day twice.
 *
 * The price of one GPU-hour of a type in a tier at time t is
 *
 *   base[tier] × (1 + amplitude[tier] × sin(2π (hourOfDay(t) − 6) / 24))
 *              × (1 + noise[tier] × n(seed, type, tier, hour index of t))
 *
 * - The sinusoid is a daily cycle, peaking at 12:00 UTC and lowest at 00:00,
 *   the shape of a real spot market following daytime demand.
 * - n(...) ∈ [−1, 1] is a hash of the seed, the type, the tier and the hour, so
 *   the noise is fixed for a whole hour and changes from one hour to the next.
 * - FLEX (spot) is cheaper than FAST (reserved) and swings much more:
 *   amplitude 0.30 and noise 0.10, against 0.05 and 0.02 for FAST.
 */
import {
  ProviderError,
  validateQuoteRequest,
  type CapacityProvider,
  type CapacityTier,
  type InstanceType,
  type Purchase,
  type Quote,
  type QuoteRequest,
} from './provider.ts';

/** An instance type with its base prices (USD per GPU-hour, before the curve). */
export interface SimulatedInstanceType extends InstanceType {
  basePerGpuHour: Record<CapacityTier, number>;
}

/**
 * The catalogue. Prices sit around SCALAR_PRICE_* defaults on purpose: FAST
 * blocks cost less than the 2.5/GPU-hour users pay, and FLEX spot prices
 * cross the default SCALAR_FLEX_MAX_PRICE (1.2) during the day for the larger
 * GPUs, so the autoscaler's price rule has something to decide. maxNodes
 * is the API's bound on one buy (64).
 */
export const SIMULATED_CATALOGUE: readonly SimulatedInstanceType[] = Object.freeze([
  { name: '8xH100-80', gpus: 8, vramPerGpuGb: 80, cpu: 192, ramGb: 2048, maxNodes: 64, basePerGpuHour: { fast: 2.0, flex: 1.1 } },
  { name: '8xA100-80', gpus: 8, vramPerGpuGb: 80, cpu: 128, ramGb: 1024, maxNodes: 64, basePerGpuHour: { fast: 1.5, flex: 0.85 } },
  { name: '8xA100-40', gpus: 8, vramPerGpuGb: 40, cpu: 96, ramGb: 768, maxNodes: 64, basePerGpuHour: { fast: 1.1, flex: 0.6 } },
  { name: '4xL40S-48', gpus: 4, vramPerGpuGb: 48, cpu: 64, ramGb: 512, maxNodes: 64, basePerGpuHour: { fast: 0.9, flex: 0.5 } },
]);

const AMPLITUDE: Record<CapacityTier, number> = { fast: 0.05, flex: 0.3 };
const NOISE: Record<CapacityTier, number> = { fast: 0.02, flex: 0.1 };
const HOUR_MS = 3600_000;

export interface SimulatedMarketplaceOptions {
  /** Seed of the price noise (SCALAR_SIM_PRICE_SEED). Default 42. */
  seed?: number;
  /** Seconds from buy to readyAt (SCALAR_SIM_PROVISION_DELAY_SEC). Default 20. */
  provisionDelaySec?: number;
  /** How long a quote holds. Default 300 s. */
  quoteTtlSec?: number;
  /** Default catalogue: SIMULATED_CATALOGUE. */
  catalogue?: readonly SimulatedInstanceType[];
  /** The clock used when a caller omits `now`. Default Date.now. */
  clock?: () => number;
  /** Stored as the blocks' provider. Default `simulated`. */
  name?: string;
}

interface LivePurchase {
  quote: Quote;
  boughtAt: number;
  readyAt: number;
}

export class SimulatedMarketplace implements CapacityProvider {
  readonly name: string;
  readonly seed: number;
  readonly provisionDelaySec: number;
  private readonly quoteTtlMs: number;
  private readonly catalogue: readonly SimulatedInstanceType[];
  private readonly clock: () => number;
  private readonly live = new Map<string, LivePurchase>();
  private counter = 0;

  constructor(o: SimulatedMarketplaceOptions = {}) {
    this.name = o.name ?? 'simulated';
    this.seed = o.seed ?? 42;
    this.provisionDelaySec = o.provisionDelaySec ?? 20;
    if (!(this.provisionDelaySec >= 0)) throw new Error('provisionDelaySec must be ≥ 0');
    this.quoteTtlMs = (o.quoteTtlSec ?? 300) * 1000;
    this.catalogue = o.catalogue ?? SIMULATED_CATALOGUE;
    this.clock = o.clock ?? Date.now;
  }

  instanceTypes(): InstanceType[] {
    return this.catalogue.map(({ basePerGpuHour: _b, ...t }) => ({ ...t }));
  }

  /**
   * USD per GPU-hour of `instanceType` in `tier` at `now`, rounded to 1/10,000
   * of a dollar so decisions and their logged inputs show the same number.
   */
  pricePerGpuHour(instanceType: string, tier: CapacityTier, now: number = this.clock()): number {
    const type = this.catalogue.find((t) => t.name === instanceType);
    if (!type) throw new ProviderError('unknown_instance_type', `unknown instance type ${JSON.stringify(instanceType)}`);
    const hourOfDay = (((now % (24 * HOUR_MS)) + 24 * HOUR_MS) % (24 * HOUR_MS)) / HOUR_MS;
    const daily = 1 + AMPLITUDE[tier] * Math.sin((2 * Math.PI * (hourOfDay - 6)) / 24);
    const noise = 1 + NOISE[tier] * unitNoise(this.seed, `${type.name}/${tier}`, Math.floor(now / HOUR_MS));
    return round4(type.basePerGpuHour[tier] * daily * noise);
  }

  quote(req: QuoteRequest, now: number = this.clock()): Quote {
    const type = validateQuoteRequest(this.catalogue, req);
    const perGpu = this.pricePerGpuHour(type.name, req.tier, now);
    const gpus = type.gpus * req.nodes;
    return {
      provider: this.name,
      instanceType: type.name,
      tier: req.tier,
      nodes: req.nodes,
      hours: req.hours,
      gpus,
      pricePerHour: round4(perGpu * gpus),
      pricePerGpuHour: perGpu,
      quotedAt: now,
      validUntil: now + this.quoteTtlMs,
    };
  }

  async buy(quote: Quote, now: number = this.clock()): Promise<Purchase> {
    if (quote.provider !== this.name) {
      throw new ProviderError('invalid_request', `the quote is from provider ${quote.provider}, not ${this.name}`);
    }
    validateQuoteRequest(this.catalogue, quote);
    if (now > quote.validUntil) {
      throw new ProviderError('quote_expired', `the quote expired at ${new Date(quote.validUntil).toISOString()}`, {
        valid_until: new Date(quote.validUntil).toISOString(),
      });
    }
    // Time and a counter: unique within a process, and across restarts
    // (a restarted marketplace starts its counter again, but not its clock).
    const externalId = `sim-${now.toString(36)}-${++this.counter}`;
    const readyAt = now + this.provisionDelaySec * 1000;
    this.live.set(externalId, { quote, boughtAt: now, readyAt });
    return { externalId, readyAt };
  }

  async release(externalId: string, _now: number = this.clock()): Promise<void> {
    // Idempotent (see provider.ts): an id it does not know is already released.
    this.live.delete(externalId);
  }

  /** Purchases not yet released, for tests and `scalar dev` diagnostics. */
  purchases(): Array<{ externalId: string; quote: Quote; boughtAt: number; readyAt: number }> {
    return [...this.live].map(([externalId, p]) => ({ externalId, ...p }));
  }
}

/** The marketplace the config asks for (SCALAR_SIM_PRICE_SEED, SCALAR_SIM_PROVISION_DELAY_SEC). */
export function simulatedMarketplaceFromConfig(
  cfg: { SCALAR_SIM_PRICE_SEED: number; SCALAR_SIM_PROVISION_DELAY_SEC: number },
  clock?: () => number,
): SimulatedMarketplace {
  return new SimulatedMarketplace({ seed: cfg.SCALAR_SIM_PRICE_SEED, provisionDelaySec: cfg.SCALAR_SIM_PROVISION_DELAY_SEC, clock });
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}

/** FNV-1a of a string, 32 bits. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's 32-bit finaliser: every input bit flips about half the output bits. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A value in [−1, 1] fixed by (seed, key, hour): no state, so any hour can be asked in any order. */
export function unitNoise(seed: number, key: string, hourIndex: number): number {
  const h = fmix32(fmix32(fmix32(seed | 0) ^ fnv1a(key)) ^ (hourIndex | 0));
  return (h / 0xffffffff) * 2 - 1;
}
