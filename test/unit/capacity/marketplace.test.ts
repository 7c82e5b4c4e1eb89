import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SIMULATED_CATALOGUE, SimulatedMarketplace, simulatedMarketplaceFromConfig, unitNoise } from '../../../src/capacity/marketplace.ts';
import { ProviderError } from '../../../src/capacity/provider.ts';
import { parseConfig } from '../../../src/config/index.ts';

const HOUR = 3600_000;
/** Monday 2026-01-05 00:00 UTC: the simulated day starts at its cheapest. */
const DAY = Date.UTC(2026, 0, 5);
const TYPES = SIMULATED_CATALOGUE.map((t) => t.name);

describe('SimulatedMarketplace: prices', () => {
  const m = new SimulatedMarketplace({ seed: 42 });

  it('is deterministic: the same seed and time give the same price, in any order of asking', () => {
    const other = new SimulatedMarketplace({ seed: 42 });
    const times = [5, 1, 17, 3].map((h) => DAY + h * HOUR + 123_456);
    for (const t of times) for (const name of TYPES) expect(m.pricePerGpuHour(name, 'flex', t)).toBe(other.pricePerGpuHour(name, 'flex', t));
    // Pinned, so a change to the curve is a visible decision, not an accident.
    expect(m.pricePerGpuHour('8xA100-80', 'flex', DAY)).toBe(0.5358);
    expect(m.pricePerGpuHour('8xA100-80', 'flex', DAY + 12 * HOUR)).toBe(1.0034);
  });

  it('another seed gives other noise', () => {
    const other = new SimulatedMarketplace({ seed: 7 });
    const differ = TYPES.filter((n) => other.pricePerGpuHour(n, 'flex', DAY) !== m.pricePerGpuHour(n, 'flex', DAY));
    expect(differ.length).toBeGreaterThan(0);
  });

  it('FLEX (spot) is cheaper than FAST (reserved) for every type at every hour of a week', () => {
    for (let h = 0; h < 7 * 24; h++) {
      for (const name of TYPES) expect(m.pricePerGpuHour(name, 'flex', DAY + h * HOUR)).toBeLessThan(m.pricePerGpuHour(name, 'fast', DAY + h * HOUR));
    }
  });

  it('follows a daily cycle: FLEX at 12:00 UTC is dearer than at 00:00 whatever the noise', () => {
    // Worst case: 1 + 0.30 at noon with noise −10 % (1.3 × 0.9 = 1.17) is
    // still above 1 − 0.30 at midnight with noise +10 % (0.7 × 1.1 = 0.77).
    for (let d = 0; d < 14; d++) {
      for (const name of TYPES) {
        const midnight = m.pricePerGpuHour(name, 'flex', DAY + d * 24 * HOUR);
        const noon = m.pricePerGpuHour(name, 'flex', DAY + d * 24 * HOUR + 12 * HOUR);
        expect(noon).toBeGreaterThan(midnight);
      }
    }
  });

  it('noise is fixed within an hour, lies in [−1, 1], and stays within ±10 % (FLEX) of the daily curve', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 0, max: 2_000_000 }), (seed, hour) => {
        const n = unitNoise(seed, '8xH100-80/flex', hour);
        return n >= -1 && n <= 1 && n === unitNoise(seed, '8xH100-80/flex', hour);
      }),
    );
    const a = m.pricePerGpuHour('8xH100-80', 'flex', DAY + 3 * HOUR + 1);
    const b = m.pricePerGpuHour('8xH100-80', 'flex', DAY + 3 * HOUR + 1000);
    // 999 ms apart: only the sinusoid moves, by far less than a cent.
    expect(Math.abs(a - b)).toBeLessThan(0.001);
  });
});

describe('SimulatedMarketplace: quote, buy, release', () => {
  it('quotes the whole block: price per hour = per GPU-hour × nodes × GPUs per node', () => {
    const m = new SimulatedMarketplace({ seed: 42, quoteTtlSec: 60 });
    const q = m.quote({ instanceType: '8xA100-80', nodes: 3, hours: 24, tier: 'flex' }, DAY);
    // 0.5358 × 3 × 8 = 12.8592
    expect(q).toEqual({
      provider: 'simulated',
      instanceType: '8xA100-80',
      tier: 'flex',
      nodes: 3,
      hours: 24,
      gpus: 24,
      pricePerHour: 12.8592,
      pricePerGpuHour: 0.5358,
      quotedAt: DAY,
      validUntil: DAY + 60_000,
    });
  });

  it('buys with a ready time of now + the provisioning delay, and honours the quote only until validUntil', async () => {
    const m = new SimulatedMarketplace({ seed: 42, provisionDelaySec: 20, quoteTtlSec: 60 });
    const q = m.quote({ instanceType: '8xH100-80', nodes: 1, hours: 1, tier: 'fast' }, DAY);
    const p = await m.buy(q, DAY + 5_000);
    expect(p.readyAt).toBe(DAY + 25_000);
    expect(m.purchases().map((x) => x.externalId)).toEqual([p.externalId]);
    const late = m.buy(q, DAY + 61_000);
    await expect(late).rejects.toBeInstanceOf(ProviderError);
    await expect(late).rejects.toMatchObject({ code: 'quote_expired', retryable: true });
  });

  it('refuses unknown types and out-of-range requests with a stable code', () => {
    const m = new SimulatedMarketplace();
    const codeOf = (f: () => unknown) => {
      try {
        f();
        return null;
      } catch (err) {
        return (err as ProviderError).code;
      }
    };
    expect(codeOf(() => m.quote({ instanceType: '1xTPU', nodes: 1, hours: 1, tier: 'fast' }, DAY))).toBe('unknown_instance_type');
    expect(codeOf(() => m.quote({ instanceType: '8xH100-80', nodes: 0, hours: 1, tier: 'fast' }, DAY))).toBe('invalid_request');
    expect(codeOf(() => m.quote({ instanceType: '8xH100-80', nodes: 65, hours: 1, tier: 'fast' }, DAY))).toBe('invalid_request');
    expect(codeOf(() => m.quote({ instanceType: '8xH100-80', nodes: 1, hours: 0, tier: 'fast' }, DAY))).toBe('invalid_request');
  });

  it('release is idempotent, including for ids it never sold', async () => {
    const m = new SimulatedMarketplace();
    const p = await m.buy(m.quote({ instanceType: '4xL40S-48', nodes: 2, hours: 1, tier: 'flex' }, DAY), DAY);
    await m.release(p.externalId, DAY);
    await m.release(p.externalId, DAY);
    await m.release('sim-unknown', DAY);
    expect(m.purchases()).toEqual([]);
  });

  it('takes its seed and delay from the config, and its catalogue lists cpu and ram', () => {
    const m = simulatedMarketplaceFromConfig(parseConfig({ SCALAR_SIM_PRICE_SEED: '9', SCALAR_SIM_PROVISION_DELAY_SEC: '3' }));
    expect([m.seed, m.provisionDelaySec]).toEqual([9, 3]);
    expect(m.instanceTypes().find((t) => t.name === '8xH100-80')).toEqual({ name: '8xH100-80', gpus: 8, vramPerGpuGb: 80, cpu: 192, ramGb: 2048, maxNodes: 64 });
  });
});
