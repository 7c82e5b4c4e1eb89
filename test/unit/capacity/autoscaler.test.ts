import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  autoscalerConfig,
  decide,
  ewmaStep,
  initialAutoscalerState,
  type AutoscalerConfig,
  type AutoscalerState,
  type BlockView,
  type CapacityDecision,
  type DemandView,
} from '../../../src/capacity/autoscaler.ts';
import { SimulatedMarketplace } from '../../../src/capacity/marketplace.ts';
import { parseConfig } from '../../../src/config/index.ts';

const HOUR = 3600_000;
/** 2026-01-05 00:00 UTC: the simulated market's cheapest hour of the day. */
const MIDNIGHT = Date.UTC(2026, 0, 5);
const NOON = MIDNIGHT + 12 * HOUR;

// --- builders --------------------------------------------------------------------

/** The config defaults, with FLEX_MAX_PRICE at 0.9 so that the seeded market crosses it within a day. */
function aConfig(over: Partial<AutoscalerConfig> = {}): AutoscalerConfig {
  return { ...autoscalerConfig(parseConfig({})), flexMaxPrice: 0.9, ...over };
}

function aDemand(over: { fast?: Partial<DemandView['fast']>; flex?: Partial<DemandView['flex']> } = {}): DemandView {
  return {
    fast: { gpusUsed: 0, gpusQueued: 0, warmGpusOutsideBlocks: 0, ...over.fast },
    flex: { waitingJobs: 0, waitingGpus: 0, oldestWaitSec: 0, canBackfill: false, ...over.flex },
  };
}

function aBlock(id: string, over: Partial<BlockView> = {}): BlockView {
  return { id, tier: 'fast', status: 'active', instanceType: '8xA100-80', nodes: 1, gpusPerNode: 8, vramPerGpuGb: 80, busy: false, endsAt: null, ...over };
}

/** A state whose EWMA already sits at `ewma` (as of 10 s ago) and with the given last buy / change. */
function aState(now: number, o: { ewma?: number; lastBuy?: Partial<AutoscalerState['lastBuyAt']>; lastChange?: Partial<AutoscalerState['lastChangeAt']> } = {}): AutoscalerState {
  return {
    fastDemandEwma: o.ewma ?? null,
    ewmaAt: o.ewma === undefined ? null : now - 10_000,
    lastBuyAt: { fast: null, flex: null, ...o.lastBuy },
    lastChangeAt: { fast: null, flex: null, ...o.lastChange },
  };
}

const market = new SimulatedMarketplace({ seed: 42, provisionDelaySec: 20 });
const marketAt = (now: number) => ({ instanceTypes: market.instanceTypes(), quote: (r: Parameters<typeof market.quote>[0]) => market.quote(r, now) });

function run(now: number, o: { demand?: DemandView; blocks?: BlockView[]; state?: AutoscalerState; config?: AutoscalerConfig } = {}) {
  return decide(
    { demand: o.demand ?? aDemand(), blocks: o.blocks ?? [], market: marketAt(now), config: o.config ?? aConfig() },
    o.state ?? initialAutoscalerState(),
    now,
  );
}

const brief = (d: CapacityDecision) => [d.action, d.tier, d.rule, d.blockId ?? d.instanceType, d.nodes].filter((x) => x !== undefined).join(' ');

// --- EWMA ------------------------------------------------------------------------------

describe('ewmaStep: time-weighted EWMA', () => {
  it('takes the first sample as is', () => {
    expect(ewmaStep(null, null, 12, 0, 600)).toBe(12);
  });

  it('moves half way to the sample in one half-life, three quarters in two', () => {
    // keep = 2^(−600/600) = 0.5: 0 + (16 − 0) × 0.5 = 8
    expect(ewmaStep(0, 0, 16, 600_000, 600)).toBe(8);
    // then keep 0.5 again: 16 + (8 − 16) × 0.5 = 12
    expect(ewmaStep(8, 600_000, 16, 1_200_000, 600)).toBe(12);
  });

  it('irregular intervals compose: two steps of 300 s equal one of 600 s (same sample)', () => {
    const two = ewmaStep(ewmaStep(4, 0, 20, 300_000, 600), 300_000, 20, 600_000, 600);
    expect(two).toBeCloseTo(ewmaStep(4, 0, 20, 600_000, 600), 12);
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1000, noNaN: true }), fc.double({ min: 0, max: 1000, noNaN: true }), fc.integer({ min: 0, max: 3600_000 }), fc.integer({ min: 0, max: 3600_000 }), (prev, sample, a, b) => {
        const split = ewmaStep(ewmaStep(prev, 0, sample, a, 600), a, sample, a + b, 600);
        const whole = ewmaStep(prev, 0, sample, a + b, 600);
        return Math.abs(split - whole) < 1e-9 * Math.max(1, prev, sample);
      }),
    );
  });

  it('stays between the old value and the sample; no time passed changes nothing', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e4, noNaN: true }), fc.double({ min: 0, max: 1e4, noNaN: true }), fc.integer({ min: 0, max: 1e8 }), (prev, sample, dt) => {
        const v = ewmaStep(prev, 0, sample, dt, 600);
        return v >= Math.min(prev, sample) - 1e-9 && v <= Math.max(prev, sample) + 1e-9;
      }),
    );
    expect(ewmaStep(5, 1000, 50, 1000, 600)).toBe(5);
  });
});

// --- FAST -----------------------------------------------------------------------------

describe('decide: FAST', () => {
  it('an empty fleet with no demand buys the minimum: 8 GPUs, the most capable type at the cheapest price', () => {
    const { decisions, state } = run(MIDNIGHT);
    // target = max(min 8, ceil(1.25 × 0)) = 8; supply 0; deficit 8 → ceil(8/8) = 1 node.
    // 80 GB types: 8xA100-80 (1.4195/GPU-hour) beats 8xH100-80 (1.8717).
    expect(decisions.map(brief)).toEqual(['buy fast fast_deficit 8xA100-80 1']);
    expect(decisions[0]!.inputs).toMatchObject({ demand_gpus: 0, target_gpus: 8, supply_gpus: 0, deficit_gpus: 8, block_gpus: 8, price_per_gpu_hour: 1.4195, hours: 24 });
    expect(decisions[0]!.quote).toMatchObject({ instanceType: '8xA100-80', nodes: 1, tier: 'fast', pricePerHour: 11.356 });
    expect(state.lastBuyAt.fast).toBe(MIDNIGHT);
    expect(state.lastChangeAt.fast).toBe(MIDNIGHT);
  });

  it('counts warm nodes outside blocks and pending blocks as supply: nothing to buy', () => {
    expect(run(MIDNIGHT, { demand: aDemand({ fast: { warmGpusOutsideBlocks: 8 } }) }).decisions).toEqual([]);
    // The pending block is coming: buying again would double it.
    expect(run(MIDNIGHT, { blocks: [aBlock('blk_p', { status: 'pending' })] }).decisions).toEqual([]);
  });

  it('does not count draining blocks nor blocks past their end', () => {
    const blocks = [aBlock('blk_d', { status: 'draining', busy: true }), aBlock('blk_e', { endsAt: MIDNIGHT - 1 })];
    const [d] = run(MIDNIGHT, { blocks }).decisions;
    expect(d).toMatchObject({ action: 'buy', inputs: { supply_gpus: 0, active_block_gpus: 0 } });
  });

  it('keeps the safety factor over the EWMA of used + queued GPUs', () => {
    // EWMA 20 (10 s ago) and demand 20 now: stays 20. target = ceil(1.25 × 20) = 25.
    // supply 16 outside blocks → deficit 9 → ceil(9/8) = 2 nodes = 16 GPUs.
    const { decisions } = run(MIDNIGHT, {
      demand: aDemand({ fast: { gpusUsed: 12, gpusQueued: 8, warmGpusOutsideBlocks: 16 } }),
      state: aState(MIDNIGHT, { ewma: 20 }),
    });
    expect(decisions.map(brief)).toEqual(['buy fast fast_deficit 8xA100-80 2']);
    expect(decisions[0]!.inputs).toMatchObject({ gpus_used: 12, gpus_queued: 8, demand_ewma: 20, target_gpus: 25, supply_gpus: 16, deficit_gpus: 9 });
  });

  it('buys for a burst at once: 40 queued GPUs 10 s after a quiet EWMA of 0', () => {
    // keep = 2^(−10/600) = 0.98851; EWMA = 40 × (1 − 0.98851) = 0.4596, so the
    // smoothed target stays max(8, ceil(0.574)) = 8; but buying looks at
    // max(EWMA, demand now): buy target = ceil(1.25 × 40) = 50, supply 8 →
    // deficit 42 → 6 × 8-GPU nodes (48 GPUs).
    const { decisions, state } = run(MIDNIGHT, {
      demand: aDemand({ fast: { gpusQueued: 40, warmGpusOutsideBlocks: 8 } }),
      state: aState(MIDNIGHT, { ewma: 0 }),
    });
    expect(decisions.map(brief)).toEqual(['buy fast fast_deficit 8xA100-80 6']);
    expect(decisions[0]!.inputs).toMatchObject({ target_gpus: 8, buy_target_gpus: 50, deficit_gpus: 42 });
    expect(state.fastDemandEwma).toBeCloseTo(40 * (1 - Math.pow(2, -10 / 600)), 10);
  });

  it('shrinks slowly: once the burst is gone, the EWMA (not demand now) decides what is excess', () => {
    // EWMA 40 a tick ago, demand now 0: EWMA = 40 × 0.98851 = 39.54 → target
    // ceil(1.25 × 39.54) = 50; supply 8 + 48 = 56 → excess 6 < the 48-GPU block: kept.
    const { decisions } = run(MIDNIGHT, {
      demand: aDemand({ fast: { gpusQueued: 0, warmGpusOutsideBlocks: 8 } }),
      blocks: [aBlock('blk_burst', { nodes: 6 })],
      state: aState(MIDNIGHT, { ewma: 40 }),
    });
    expect(decisions.map(brief)).toEqual(['hold fast fast_excess_below_block']);
  });

  it('sizes to the queued jobs: no instance type with 8 GPUs of 96 GB → hold, with the reason', () => {
    const { decisions } = run(MIDNIGHT, { demand: aDemand({ fast: { gpusQueued: 8, maxVramPerGpuGb: 96, maxGpusPerNode: 8 } }) });
    expect(decisions.map(brief)).toEqual(['hold fast fast_no_instance_type']);
    expect(decisions[0]!.reason).toMatch(/no instance type has 8 GPUs of 96 GB/);
  });

  it('buy cooldown: a deficit 30 s after a FAST buy is a hold that says so; after 60 s it buys', () => {
    const state = aState(MIDNIGHT, { ewma: 0, lastBuy: { fast: MIDNIGHT - 30_000 } });
    const held = run(MIDNIGHT, { state }).decisions;
    expect(held.map(brief)).toEqual(['hold fast fast_buy_cooldown']);
    expect(held[0]!.inputs).toMatchObject({ since_last_buy_sec: 30, buy_cooldown_sec: 60, deficit_gpus: 8 });
    expect(held[0]!.reason).toBe('8 more FAST GPUs needed (target 8, have 0), but the last FAST buy was 30 s ago (cooldown 60 s)');
    const later = run(MIDNIGHT + 30_000, { state }).decisions;
    expect(later.map(brief)).toEqual(['buy fast fast_deficit 8xA100-80 1']);
  });

  it('releases excess idle blocks first, largest first, and never below the target', () => {
    // EWMA 0 → target = min 8. supply = 8 + 8 + 16 = 32 → excess 24.
    // idle first: C (16) → 8 left; A (8) → 0 left; B (busy) no longer fits.
    const blocks = [aBlock('blk_a'), aBlock('blk_b', { busy: true }), aBlock('blk_c', { nodes: 2 })];
    const { decisions, state } = run(MIDNIGHT, { blocks, state: aState(MIDNIGHT, { ewma: 0 }) });
    expect(decisions.map(brief)).toEqual(['release fast fast_excess blk_c', 'release fast fast_excess blk_a']);
    expect(decisions[1]!.inputs).toMatchObject({ target_gpus: 8, supply_gpus: 32, excess_gpus: 24, block_gpus: 8, excess_left_gpus: 0 });
    expect(state.lastChangeAt.fast).toBe(MIDNIGHT);
    expect(state.lastBuyAt.fast).toBeNull();
  });

  it('drains a busy block chosen for release instead of releasing it', () => {
    // target 8, supply 16, excess 8: both blocks busy; by id, blk_a is drained.
    const blocks = [aBlock('blk_b', { busy: true }), aBlock('blk_a', { busy: true })];
    const { decisions } = run(MIDNIGHT, { blocks, state: aState(MIDNIGHT, { ewma: 0 }) });
    expect(decisions.map(brief)).toEqual(['drain fast fast_excess blk_a']);
    expect(decisions[0]!.reason).toMatch(/draining busy block blk_a .* released when its jobs end/);
  });

  it('never releases below the minimum, even with no demand at all', () => {
    expect(run(MIDNIGHT, { blocks: [aBlock('blk_a')], state: aState(MIDNIGHT, { ewma: 0 }) }).decisions).toEqual([]);
  });

  it('an excess smaller than any block is a hold, not a release', () => {
    // target 8, supply 8 + 4 outside = 12, excess 4 < 8.
    const { decisions } = run(MIDNIGHT, { demand: aDemand({ fast: { warmGpusOutsideBlocks: 4 } }), blocks: [aBlock('blk_a')], state: aState(MIDNIGHT, { ewma: 0 }) });
    expect(decisions.map(brief)).toEqual(['hold fast fast_excess_below_block']);
    expect(decisions[0]!.inputs).toMatchObject({ excess_gpus: 4, smallest_block_gpus: 8 });
  });

  it('release cooldown counts from any buy or release of the tier', () => {
    const blocks = [aBlock('blk_a'), aBlock('blk_b')];
    const state = aState(MIDNIGHT, { ewma: 0, lastChange: { fast: MIDNIGHT - 599_000 } });
    const held = run(MIDNIGHT, { blocks, state }).decisions;
    expect(held.map(brief)).toEqual(['hold fast fast_release_cooldown']);
    expect(held[0]!.inputs).toMatchObject({ since_last_change_sec: 599, release_cooldown_sec: 600 });
    expect(run(MIDNIGHT + 1000, { blocks, state }).decisions.map(brief)).toEqual(['release fast fast_excess blk_a']);
  });
});

// --- FLEX -----------------------------------------------------------------------------

describe('decide: FLEX', () => {
  // The fast tier is kept quiet (8 warm GPUs outside blocks = the minimum).
  const flexDemand = (flex: Partial<DemandView['flex']>) => aDemand({ fast: { warmGpusOutsideBlocks: 8 }, flex });
  const waiting = { waitingJobs: 3, waitingGpus: 12, oldestWaitSec: 600, maxVramPerGpuGb: 80 };

  it('buys when the price per GPU-hour is at most FLEX_MAX_PRICE, sized to the waiting GPUs in whole nodes', () => {
    // At midnight the cheapest 80 GB type is 8xA100-80 at 0.5358 ≤ 0.9; 12 GPUs → ceil(12/8) = 2 nodes.
    const { decisions, state } = run(MIDNIGHT, { demand: flexDemand(waiting) });
    expect(decisions.map(brief)).toEqual(['buy flex flex_price_ok 8xA100-80 2']);
    expect(decisions[0]!.inputs).toMatchObject({ waiting_jobs: 3, waiting_gpus: 12, need_gpus: 12, price_per_gpu_hour: 0.5358, max_price: 0.9 });
    expect(state.lastBuyAt.flex).toBe(MIDNIGHT);
    expect(state.lastBuyAt.fast).toBeNull();
  });

  it('picks the cheapest type that fits: without a VRAM need, 4xL40S-48 at 0.3606 → ceil(12/4) = 3 nodes', () => {
    const { decisions } = run(MIDNIGHT, { demand: flexDemand({ ...waiting, maxVramPerGpuGb: 0 }) });
    expect(decisions.map(brief)).toEqual(['buy flex flex_price_ok 4xL40S-48 3']);
  });

  it('holds while the price is above the maximum, and says when it will buy anyway', () => {
    // At noon 8xA100-80 costs 1.0034 > 0.9; the oldest has waited 600 s of 14400.
    const { decisions, state } = run(NOON, { demand: flexDemand(waiting) });
    expect(decisions.map(brief)).toEqual(['hold flex flex_price_above_max']);
    expect(decisions[0]!.inputs).toMatchObject({ price_per_gpu_hour: 1.0034, max_price: 0.9, oldest_wait_sec: 600, max_wait_sec: 14400 });
    expect(decisions[0]!.reason).toBe(
      '3 FLEX jobs wait, but the cheapest fitting price 1.0034/GPU-hour (8xA100-80) is above 0.9; buying at market once the oldest has waited 14400 s (now 600 s)',
    );
    // A hold starts no cooldown.
    expect(state.lastBuyAt.flex).toBeNull();
  });

  it('buys at market once the oldest FLEX job has waited longer than FLEX_MAX_WAIT_SEC', () => {
    expect(run(NOON, { demand: flexDemand({ ...waiting, oldestWaitSec: 14400 }) }).decisions.map(brief)).toEqual(['hold flex flex_price_above_max']);
    const { decisions } = run(NOON, { demand: flexDemand({ ...waiting, oldestWaitSec: 14401 }) });
    expect(decisions.map(brief)).toEqual(['buy flex flex_max_wait 8xA100-80 2']);
    expect(decisions[0]!.reason).toMatch(/waited 14401 s, more than 14400 s: buying .* at market, 1.0034\/GPU-hour \(above 0.9\)/);
  });

  it('does not buy when the waiting jobs can backfill, or pending FLEX blocks already cover them', () => {
    expect(run(MIDNIGHT, { demand: flexDemand({ ...waiting, canBackfill: true }) }).decisions.map(brief)).toEqual(['hold flex flex_can_backfill']);
    const pending = [aBlock('blk_f', { tier: 'flex', status: 'pending', nodes: 2 })];
    expect(run(MIDNIGHT, { demand: flexDemand(waiting), blocks: pending }).decisions.map(brief)).toEqual(['hold flex flex_capacity_coming']);
    // Only part covered: buys the rest. 20 waiting − 16 coming = 4 → 1 node.
    const { decisions } = run(MIDNIGHT, { demand: flexDemand({ ...waiting, waitingGpus: 20 }), blocks: pending });
    expect(decisions.map(brief)).toEqual(['buy flex flex_price_ok 8xA100-80 1']);
    expect(decisions[0]!.inputs).toMatchObject({ pending_block_gpus: 16, need_gpus: 4 });
  });

  it('buys blocks long enough for the longest waiting job: a 35 h need on 24 h blocks buys 35 h', () => {
    // longestNeedSec = expected + block margin = 125,700 s + 300 s = 126,000 s = 35 h exactly.
    const { decisions } = run(MIDNIGHT, { demand: flexDemand({ ...waiting, longestNeedSec: 126_000 }) });
    expect(decisions.map(brief)).toEqual(['buy flex flex_price_ok 8xA100-80 2']);
    expect(decisions[0]!.hours).toBe(35);
    // One second more rounds up to 36 h; a short need keeps SCALAR_BLOCK_HOURS (24).
    expect(run(MIDNIGHT, { demand: flexDemand({ ...waiting, longestNeedSec: 126_001 }) }).decisions[0]!.hours).toBe(36);
    expect(run(MIDNIGHT, { demand: flexDemand({ ...waiting, longestNeedSec: 3600 }) }).decisions[0]!.hours).toBe(24);
  });

  it('counts idle active FLEX blocks that could hold the waiting jobs, and only those, as theirs', () => {
    // A FLEX gang of 32 GPUs waits for 35 h of capacity; an idle 16-GPU block ends in 48 h: 16 more are bought, not 32.
    const gang = { waitingJobs: 1, waitingGpus: 32, oldestWaitSec: 60, maxVramPerGpuGb: 80, maxGpusPerNode: 8, longestNeedSec: 35 * 3600 };
    const idle = aBlock('blk_i', { tier: 'flex', nodes: 2, endsAt: MIDNIGHT + 48 * HOUR });
    const { decisions } = run(MIDNIGHT, { demand: flexDemand(gang), blocks: [idle] });
    expect(decisions.map(brief)).toEqual(['buy flex flex_price_ok 8xA100-80 2']);
    expect(decisions[0]!.inputs).toMatchObject({ idle_block_gpus: 16, need_gpus: 16 });
    // 32 idle GPUs cover it: nothing to buy (the gang is placed there next pass).
    const enough = aBlock('blk_i', { tier: 'flex', nodes: 4, endsAt: MIDNIGHT + 48 * HOUR });
    expect(run(MIDNIGHT, { demand: flexDemand(gang), blocks: [enough] }).decisions.map(brief)).toEqual(['hold flex flex_capacity_coming']);
    // Idle blocks that end too soon, have smaller GPUs, or are busy hold nothing for it: 32 GPUs are bought.
    const useless = [
      aBlock('blk_soon', { tier: 'flex', nodes: 4, endsAt: MIDNIGHT + 34 * HOUR }),
      aBlock('blk_small', { tier: 'flex', nodes: 4, vramPerGpuGb: 40 }),
      aBlock('blk_busy', { tier: 'flex', nodes: 4, busy: true }),
    ];
    const bought = run(MIDNIGHT, { demand: flexDemand(gang), blocks: useless }).decisions;
    expect(bought.map(brief)).toEqual(['buy flex flex_price_ok 8xA100-80 4']);
    expect(bought[0]!.inputs).toMatchObject({ idle_block_gpus: 0, need_gpus: 32 });
  });

  it('buys only types whose nodes have the cores and RAM the waiting jobs ask for, and counts only such idle blocks', () => {
    // 8 GPUs of 40 GB but 150 cores per node: 8xA100-40 (96 cores) and 8xA100-80 (128) cannot hold it; 8xH100-80 (192) can.
    const big = { waitingJobs: 1, waitingGpus: 8, oldestWaitSec: 60, maxVramPerGpuGb: 40, maxGpusPerNode: 8, maxCpuPerNode: 150 };
    const { decisions } = run(MIDNIGHT, { demand: flexDemand(big) });
    expect(decisions.map(brief)).toEqual(['buy flex flex_price_ok 8xH100-80 1']);
    // An idle 96-core block is no help to it: it is not counted, and the right type is bought.
    const small = aBlock('blk_96', { tier: 'flex', instanceType: '8xA100-40', vramPerGpuGb: 40, cpuPerNode: 96, ramPerNodeGb: 768 });
    const again = run(MIDNIGHT, { demand: flexDemand(big), blocks: [small] }).decisions;
    expect(again.map(brief)).toEqual(['buy flex flex_price_ok 8xH100-80 1']);
    expect(again[0]!.inputs).toMatchObject({ idle_block_gpus: 0 });
    // More RAM than any type has: a hold that names it.
    const none = run(MIDNIGHT, { demand: flexDemand({ ...big, maxCpuPerNode: 0, maxRamPerNodeGb: 4096 }) }).decisions;
    expect(none.map(brief)).toEqual(['hold flex flex_no_instance_type']);
    expect(none[0]!.reason).toBe('8 FLEX GPUs needed, but no instance type has 8 GPUs of 40 GB and 4096 GB RAM');
  });

  it('caps one buy at maxNodesPerBuy nodes', () => {
    const { decisions } = run(MIDNIGHT, { demand: flexDemand({ ...waiting, waitingGpus: 1000 }) });
    expect(decisions.map(brief)).toEqual(['buy flex flex_price_ok 8xA100-80 8']);
  });

  it('respects the buy cooldown per tier: a recent FAST buy does not hold FLEX back', () => {
    const state = aState(MIDNIGHT, { lastBuy: { fast: MIDNIGHT - 1000, flex: MIDNIGHT - 59_000 } });
    expect(run(MIDNIGHT, { demand: flexDemand(waiting), state }).decisions.map(brief)).toEqual(['hold flex flex_buy_cooldown']);
    const ok = aState(MIDNIGHT, { lastBuy: { fast: MIDNIGHT - 1000 } });
    expect(run(MIDNIGHT, { demand: flexDemand(waiting), state: ok }).decisions.map(brief)).toEqual(['buy flex flex_price_ok 8xA100-80 2']);
  });

  it('releases idle FLEX blocks when no FLEX job waits, after the cooldown; never a busy one', () => {
    const blocks = [aBlock('blk_f1', { tier: 'flex' }), aBlock('blk_f2', { tier: 'flex', busy: true }), aBlock('blk_f3', { tier: 'flex', status: 'pending' })];
    expect(run(MIDNIGHT, { demand: flexDemand({}), blocks }).decisions.map(brief)).toEqual(['release flex flex_idle blk_f1']);
    const recent = aState(MIDNIGHT, { lastChange: { flex: MIDNIGHT - 60_000 } });
    expect(run(MIDNIGHT, { demand: flexDemand({}), blocks, state: recent }).decisions.map(brief)).toEqual(['hold flex flex_release_cooldown']);
    // A waiting FLEX job keeps idle blocks (it may be placed there next pass).
    expect(run(MIDNIGHT, { demand: flexDemand({ ...waiting, canBackfill: true }), blocks }).decisions.map(brief)).toEqual(['hold flex flex_can_backfill']);
  });
});

// --- a scripted day in simulated time ----------------------------------------------------

interface SimBlock extends BlockView {
  readyAt: number;
  drainingSince?: number;
}

/**
 * Plays the capacity actor's part in virtual time: executes the decisions
 * (a buy is pending until readyAt = now + 20 s, a release removes the block,
 * a drain removes it once it is idle), and decides every 10 s. FAST jobs are
 * packed onto active blocks in purchase order, which makes the oldest blocks
 * the busy ones; a draining block's jobs end 30 min after the drain.
 */
function simulate(script: (tSec: number) => { fast: number; flexWaitingGpus?: number; flexOldestWaitSec?: number; flexVram?: number }, hours: number, config = aConfig()) {
  const start = MIDNIGHT;
  let state = initialAutoscalerState();
  let blocks: SimBlock[] = [];
  let seq = 0;
  const log: Array<{ t: number; d: CapacityDecision; busyAtDecision?: boolean }> = [];
  const supplyAt: Array<{ t: number; supply: number; target: number }> = [];
  const m = new SimulatedMarketplace({ seed: 42, provisionDelaySec: 20 });
  for (let t = 0; t <= hours * 3600; t += 10) {
    const now = start + t * 1000;
    const s = script(t);
    for (const b of blocks) if (b.status === 'pending' && b.readyAt <= now) b.status = 'active';
    // Pack FAST usage onto active blocks in purchase order.
    let left = Math.max(0, s.fast);
    for (const b of blocks.filter((x) => x.tier === 'fast' && x.status === 'active')) {
      b.busy = left > 0;
      left -= Math.min(b.nodes * b.gpusPerNode, left);
    }
    for (const b of blocks) if (b.status === 'draining') b.busy = now - b.drainingSince! < 1800_000;
    blocks = blocks.filter((b) => !(b.status === 'draining' && !b.busy));
    const demand = aDemand({
      fast: { gpusUsed: s.fast, gpusQueued: 0 },
      flex: { waitingJobs: s.flexWaitingGpus ? 1 : 0, waitingGpus: s.flexWaitingGpus ?? 0, oldestWaitSec: s.flexOldestWaitSec ?? 0, maxVramPerGpuGb: s.flexVram },
    });
    const out = decide({ demand, blocks, market: { instanceTypes: m.instanceTypes(), quote: (r) => m.quote(r, now) }, config }, state, now);
    state = out.state;
    for (const d of out.decisions) {
      const target = d.blockId === undefined ? undefined : blocks.find((b) => b.id === d.blockId);
      log.push({ t, d, busyAtDecision: target?.busy });
      if (d.action === 'buy') {
        const q = d.quote!;
        blocks.push({ ...aBlock(`blk_${String(++seq).padStart(3, '0')}`), tier: d.tier, status: 'pending', instanceType: q.instanceType, nodes: q.nodes, gpusPerNode: q.gpus / q.nodes, readyAt: now + 20_000 });
      } else if (d.action === 'release') blocks = blocks.filter((b) => b !== target);
      else if (d.action === 'drain') Object.assign(target!, { status: 'draining', drainingSince: now });
    }
    const fast = blocks.filter((b) => b.tier === 'fast' && b.status !== 'draining');
    const target = Math.max(config.fastMinGpus, Math.ceil(config.fastSafetyFactor * state.fastDemandEwma! - 1e-9));
    supplyAt.push({ t, supply: fast.reduce((a, b) => a + b.nodes * b.gpusPerNode, 0), target });
  }
  return { log, blocks, state, supplyAt };
}

describe('decide over a scripted day (simulated time, seeded market)', () => {
  // 1 h quiet, 2 h at 40 FAST GPUs, 3 h back at 4.
  const day = (t: number) => ({ fast: t < 3600 ? 0 : t < 3 * 3600 ? 40 : 4 });

  it('buys up for the peak, sheds it afterwards, and keeps every rule on the way', () => {
    const { log, blocks, supplyAt } = simulate(day, 6);
    const acts = log.filter((e) => e.d.action !== 'hold');
    // It starts by buying the minimum.
    expect(acts[0]).toMatchObject({ t: 0, d: { action: 'buy', tier: 'fast', nodes: 1 } });

    // Buys of a tier are at least the buy cooldown apart.
    const buys = acts.filter((e) => e.d.action === 'buy').map((e) => e.t);
    for (let i = 1; i < buys.length; i++) expect(buys[i]! - buys[i - 1]!).toBeGreaterThanOrEqual(60);
    // A release or drain comes at least the release cooldown after any earlier change.
    const changes = acts.map((e) => ({ t: e.t, a: e.d.action }));
    for (let i = 1; i < changes.length; i++) {
      if (changes[i]!.a === 'buy' || changes[i]!.t === changes[i - 1]!.t) continue;
      expect(changes[i]!.t - changes[i - 1]!.t).toBeGreaterThanOrEqual(600);
    }
    // Never a busy block released: busy ones are drained.
    for (const e of acts.filter((x) => x.d.action === 'release')) expect(e.busyAtDecision).toBe(false);
    for (const e of acts.filter((x) => x.d.action === 'drain')) expect(e.busyAtDecision).toBe(true);

    // At the end of the peak, supply covers 1.25 × 40 = 50 GPUs.
    const endOfPeak = supplyAt.find((s) => s.t === 3 * 3600 - 10)!;
    expect(endOfPeak.supply).toBeGreaterThanOrEqual(50);
    // Three hours later it is back near the minimum: no releasable excess is left.
    const end = supplyAt[supplyAt.length - 1]!;
    expect(end.target).toBe(8);
    const fastBlocks = blocks.filter((b) => b.tier === 'fast');
    expect(fastBlocks.every((b) => b.nodes * b.gpusPerNode > end.supply - end.target)).toBe(true);
    // Supply (active + pending FAST blocks) never fell below the minimum.
    expect(supplyAt.every((s) => s.supply >= 8)).toBe(true);
  });

  it('is deterministic: the same script and seed give the same decisions', () => {
    const a = simulate(day, 6).log.map((e) => [e.t, brief(e.d), e.d.reason]);
    const b = simulate(day, 6).log.map((e) => [e.t, brief(e.d), e.d.reason]);
    expect(a).toEqual(b);
  });

  it('FLEX: holds through the expensive hours and buys at market after the max wait', () => {
    // A FLEX job of 8 × 80 GB GPUs appears at 10:00 and waits (nothing places it in
    // this script). From 07:00 to 16:00 the cheapest 80 GB price (8xA100-80)
    // stays above 0.9, so the policy holds until the wait passes 1 h (max wait
    // lowered to 3600 s) and buys at market on the next pass.
    const cfg = aConfig({ flexMaxWaitSec: 3600 });
    const script = (t: number) => ({ fast: 0, flexVram: 80, flexWaitingGpus: t >= 10 * 3600 ? 8 : 0, flexOldestWaitSec: Math.max(0, t - 10 * 3600) });
    const prices = [10, 10.5, 11, 11.5].map((h) => market.quote({ instanceType: '8xA100-80', nodes: 1, hours: 24, tier: 'flex' }, MIDNIGHT + h * HOUR).pricePerGpuHour);
    expect(prices).toEqual([1.0093, 1.0232, 1.1337, 1.1404]);
    const { log } = simulate(script, 12, cfg);
    const flex = log.filter((e) => e.d.tier === 'flex');
    const firstBuy = flex.find((e) => e.d.action === 'buy')!;
    expect(firstBuy.d.rule).toBe('flex_max_wait');
    expect(firstBuy.t).toBe(11 * 3600 + 10);
    expect(flex.filter((e) => e.t < firstBuy.t).every((e) => e.d.rule === 'flex_price_above_max')).toBe(true);
  });
});
