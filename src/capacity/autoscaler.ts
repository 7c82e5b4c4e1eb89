/**
 * The autoscaler's policy: pure. Given what the fleet needs (DemandView), the
 * live blocks, the market's prices and the policy's own memory (EWMA,
 * cooldowns), it says which blocks to buy, release or drain, and why. It
 * buys nothing itself: the capacity actor (actors/capacity/actor.ts) executes
 * the decisions, records each one with its inputs in capacity_events, and
 * feeds the next state back in.
 *
 * Rules (defaults from src/config, SCALAR_*):
 *
 * FAST (warm, pre-bought; FAST jobs must start within seconds)
 *   demand  = FAST GPUs in use + FAST GPUs queued, smoothed by a time-weighted
 *             EWMA with half-life FAST_EWMA_HALF_LIFE_SEC (600)
 *   target  = max(FAST_MIN_GPUS (8), ceil(FAST_SAFETY_FACTOR (1.25) × EWMA))
 *   buying looks at max(EWMA, demand now) instead: the EWMA is slow by design
 *             (it keeps a passing dip from releasing warm capacity), and a
 *             burst of queued FAST jobs must not wait for it to catch up.
 *             Releasing looks at the EWMA only, so the fleet grows fast and
 *             shrinks slowly (the same asymmetry as Kubernetes' HPA).
 *   supply  = warm FAST GPUs outside blocks + GPUs of active and pending FAST
 *             blocks (pending ones are coming, so they are not bought twice)
 *   supply < target: buy whole nodes covering the deficit, unless a FAST buy
 *             happened less than AUTOSCALE_BUY_COOLDOWN_SEC (60) ago.
 *   supply > target: release active FAST blocks that fit in the excess (so
 *             supply never drops below target), idle ones first; a busy one is
 *             drained instead (it is released when its jobs end). Not within
 *             AUTOSCALE_RELEASE_COOLDOWN_SEC (600) of any FAST buy or release.
 *
 * FLEX (cheap, just in time; FLEX jobs accept delays)
 *   while FLEX jobs wait and cannot backfill idle capacity, and pending FLEX
 *   blocks do not already cover them: quote every instance type that fits
 *   them, take the cheapest per GPU-hour, and buy it if that price is at most
 *   FLEX_MAX_PRICE (1.2), or at market once the oldest waiting FLEX job has
 *   waited more than FLEX_MAX_WAIT_SEC (4 h). Sized to the waiting GPUs, in
 *   whole nodes, at most maxNodesPerBuy (8). Same buy cooldown.
 *   no FLEX job waits: release every idle active FLEX block, outside the
 *   release cooldown.
 *
 * Every decision carries the rule that made it, a reason in plain words and
 * every number it was decided on, including the holds: something was
 * considered and not done (a cooldown, a price above the maximum).
 */
import type { CapacityTier, InstanceType, Quote, QuoteRequest } from './provider.ts';

/**
 * What the coordinator knows about demand, from its live state. Filled on
 * every autoscaler pass (`CapacityActorOptions.demand`).
 */
export interface DemandView {
  fast: {
    /** GPUs held by FAST jobs now. */
    gpusUsed: number;
    /** GPUs asked for by the FAST jobs waiting in the queue. */
    gpusQueued: number;
    /**
     * GPUs on schedulable fast nodes that belong to no capacity block (static
     * nodes, such as `scalar dev`'s fast-1 and fast-2). Block GPUs are counted
     * from the blocks themselves, from the moment they are bought, so a block
     * whose agents have not registered yet is not bought twice.
     */
    warmGpusOutsideBlocks: number;
    /** Largest vram_per_gpu_gb among queued FAST jobs; 0 or absent: no constraint. */
    maxVramPerGpuGb?: number;
    /** Largest gpu_count (per node) among queued FAST jobs; 0 or absent: no constraint. */
    maxGpusPerNode?: number;
    /** Largest cpu_cores and ram_gb (per node) among queued FAST jobs; 0 or absent: no constraint. */
    maxCpuPerNode?: number;
    maxRamPerNodeGb?: number;
    /**
     * How long a block must last to run the longest queued FAST job (its
     * expected_duration_sec plus the block margin), in seconds; 0 or absent:
     * no constraint. Placement keeps a job off a block that ends sooner.
     */
    longestNeedSec?: number;
  };
  flex: {
    /** FLEX jobs waiting in the queue. */
    waitingJobs: number;
    /** GPUs they ask for, all nodes. */
    waitingGpus: number;
    /** How long the oldest of them has waited, in seconds (0 when none waits). */
    oldestWaitSec: number;
    /** They could be placed on idle capacity that exists (free flex GPUs, idle fast nodes): no need to buy. */
    canBackfill: boolean;
    /** Largest vram_per_gpu_gb among waiting FLEX jobs; 0 or absent: no constraint. */
    maxVramPerGpuGb?: number;
    /** Largest gpu_count (per node) among waiting FLEX jobs; 0 or absent: no constraint. */
    maxGpusPerNode?: number;
    /** As fast.maxCpuPerNode and fast.maxRamPerNodeGb, for the waiting FLEX jobs. */
    maxCpuPerNode?: number;
    maxRamPerNodeGb?: number;
    /** As fast.longestNeedSec, for the waiting FLEX jobs. */
    longestNeedSec?: number;
  };
}

/** A live block as the policy sees it. */
export interface BlockView {
  id: string;
  tier: CapacityTier;
  status: 'pending' | 'active' | 'draining';
  instanceType: string;
  nodes: number;
  gpusPerNode: number;
  vramPerGpuGb: number;
  /** Per node; absent: not known (not checked). */
  cpuPerNode?: number;
  ramPerNodeGb?: number;
  /** Some node of the block holds a job. */
  busy: boolean;
  /** ms since the epoch; null: held until released. */
  endsAt: number | null;
}

export interface AutoscalerConfig {
  fastMinGpus: number;
  fastSafetyFactor: number;
  fastEwmaHalfLifeSec: number;
  buyCooldownSec: number;
  releaseCooldownSec: number;
  flexMaxPrice: number;
  flexMaxWaitSec: number;
  blockHours: number;
  /** Most nodes one automatic buy may hold (a manual buy is limited only by the instance type). */
  maxNodesPerBuy: number;
}

/** The policy's settings from the process config. maxNodesPerBuy has no variable yet: 8. */
export function autoscalerConfig(cfg: {
  SCALAR_FAST_MIN_GPUS: number;
  SCALAR_FAST_SAFETY_FACTOR: number;
  SCALAR_FAST_EWMA_HALF_LIFE_SEC: number;
  SCALAR_AUTOSCALE_BUY_COOLDOWN_SEC: number;
  SCALAR_AUTOSCALE_RELEASE_COOLDOWN_SEC: number;
  SCALAR_FLEX_MAX_PRICE: number;
  SCALAR_FLEX_MAX_WAIT_SEC: number;
  SCALAR_BLOCK_HOURS: number;
}): AutoscalerConfig {
  return {
    fastMinGpus: cfg.SCALAR_FAST_MIN_GPUS,
    fastSafetyFactor: cfg.SCALAR_FAST_SAFETY_FACTOR,
    fastEwmaHalfLifeSec: cfg.SCALAR_FAST_EWMA_HALF_LIFE_SEC,
    buyCooldownSec: cfg.SCALAR_AUTOSCALE_BUY_COOLDOWN_SEC,
    releaseCooldownSec: cfg.SCALAR_AUTOSCALE_RELEASE_COOLDOWN_SEC,
    flexMaxPrice: cfg.SCALAR_FLEX_MAX_PRICE,
    flexMaxWaitSec: cfg.SCALAR_FLEX_MAX_WAIT_SEC,
    blockHours: cfg.SCALAR_BLOCK_HOURS,
    maxNodesPerBuy: 8,
  };
}

/** The market as of this pass: its catalogue and a quote at the pass's `now`. */
export interface MarketView {
  instanceTypes: readonly InstanceType[];
  quote(req: QuoteRequest): Quote;
}

export interface AutoscalerInput {
  demand: DemandView;
  /** Live blocks (pending, active, draining). */
  blocks: readonly BlockView[];
  market: MarketView;
  config: AutoscalerConfig;
}

/** What the policy remembers between passes. Rebuilt fresh (EWMA) or from capacity_events (cooldowns) on restart. */
export interface AutoscalerState {
  /** EWMA of FAST demand in GPUs; null before the first pass. */
  fastDemandEwma: number | null;
  /** When the EWMA was last updated (ms). */
  ewmaAt: number | null;
  /** Last buy of each tier (ms): the buy cooldown counts from here. */
  lastBuyAt: Record<CapacityTier, number | null>;
  /** Last buy, release or drain of each tier (ms): the release cooldown counts from here. */
  lastChangeAt: Record<CapacityTier, number | null>;
}

export const initialAutoscalerState = (): AutoscalerState => ({
  fastDemandEwma: null,
  ewmaAt: null,
  lastBuyAt: { fast: null, flex: null },
  lastChangeAt: { fast: null, flex: null },
});

export const DecisionAction = { buy: 'buy', release: 'release', drain: 'drain', hold: 'hold' } as const;
export type DecisionAction = (typeof DecisionAction)[keyof typeof DecisionAction];

/** Stable names of the rules, so holds can be grouped and repeated ones told apart from new ones. */
export const DecisionRule = {
  fastDeficit: 'fast_deficit',
  fastBuyCooldown: 'fast_buy_cooldown',
  fastNoInstanceType: 'fast_no_instance_type',
  fastExcess: 'fast_excess',
  fastReleaseCooldown: 'fast_release_cooldown',
  fastExcessBelowBlock: 'fast_excess_below_block',
  flexPriceOk: 'flex_price_ok',
  flexMaxWait: 'flex_max_wait',
  flexPriceAboveMax: 'flex_price_above_max',
  flexCanBackfill: 'flex_can_backfill',
  flexCapacityComing: 'flex_capacity_coming',
  flexBuyCooldown: 'flex_buy_cooldown',
  flexNoInstanceType: 'flex_no_instance_type',
  flexIdle: 'flex_idle',
  flexReleaseCooldown: 'flex_release_cooldown',
} as const;
export type DecisionRule = (typeof DecisionRule)[keyof typeof DecisionRule];

export type DecisionInputs = Record<string, number | string | boolean | null>;

export interface CapacityDecision {
  action: DecisionAction;
  tier: CapacityTier;
  rule: DecisionRule;
  /** release and drain: the block. */
  blockId?: string;
  /** buy: what to buy. */
  instanceType?: string;
  nodes?: number;
  hours?: number;
  /** buy: the quote the decision was made on; the actor buys with it. */
  quote?: Quote;
  reason: string;
  inputs: DecisionInputs;
}

/**
 * One EWMA step, weighted by elapsed time so irregular intervals work: the
 * old value keeps the weight 2^(−Δt / halfLife), the new sample gets the rest.
 * Two steps of 300 s with the same sample land where one step of 600 s does.
 * The first sample is taken as is.
 */
export function ewmaStep(prev: number | null, prevAt: number | null, sample: number, now: number, halfLifeSec: number): number {
  if (prev === null || prevAt === null) return sample;
  const dtSec = Math.max(0, now - prevAt) / 1000;
  const keep = Math.pow(2, -dtSec / halfLifeSec);
  return sample + (prev - sample) * keep;
}

const blockGpus = (b: Pick<BlockView, 'nodes' | 'gpusPerNode'>) => b.nodes * b.gpusPerNode;
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;
/** Seconds since `at`, or null if never. */
const since = (now: number, at: number | null) => (at === null ? null : (now - at) / 1000);

export function decide(input: AutoscalerInput, state: AutoscalerState, now: number): { decisions: CapacityDecision[]; state: AutoscalerState } {
  const next: AutoscalerState = {
    fastDemandEwma: state.fastDemandEwma,
    ewmaAt: state.ewmaAt,
    lastBuyAt: { ...state.lastBuyAt },
    lastChangeAt: { ...state.lastChangeAt },
  };
  // A block past its end is on its way out (the actor expires it): not supply.
  const live = input.blocks.filter((b) => b.endsAt === null || b.endsAt > now);
  const decisions = [...decideFast(input, live, next, now), ...decideFlex(input, live, next, now)];
  for (const d of decisions) {
    if (d.action === 'buy') next.lastBuyAt[d.tier] = now;
    if (d.action !== 'hold') next.lastChangeAt[d.tier] = now;
  }
  return { decisions, state: next };
}

function decideFast(input: AutoscalerInput, blocks: readonly BlockView[], state: AutoscalerState, now: number): CapacityDecision[] {
  const { demand, config: c } = input;
  const demandNow = demand.fast.gpusUsed + demand.fast.gpusQueued;
  const ewma = ewmaStep(state.fastDemandEwma, state.ewmaAt, demandNow, now, c.fastEwmaHalfLifeSec);
  state.fastDemandEwma = ewma;
  state.ewmaAt = now;
  // The epsilon keeps 1.25 × 6.4 = 8.000000001 from asking for a 9th GPU.
  const target = Math.max(c.fastMinGpus, Math.ceil(c.fastSafetyFactor * ewma - 1e-9));
  // Scale up on a burst at once; scale down on the smoothed demand only.
  const buyTarget = Math.max(target, Math.ceil(c.fastSafetyFactor * demandNow - 1e-9));
  const fast = blocks.filter((b) => b.tier === 'fast');
  const activeGpus = sum(fast.filter((b) => b.status === 'active').map(blockGpus));
  const pendingGpus = sum(fast.filter((b) => b.status === 'pending').map(blockGpus));
  const supply = demand.fast.warmGpusOutsideBlocks + activeGpus + pendingGpus;
  const inputs: DecisionInputs = {
    gpus_used: demand.fast.gpusUsed,
    gpus_queued: demand.fast.gpusQueued,
    demand_gpus: demandNow,
    demand_ewma: round(ewma),
    half_life_sec: c.fastEwmaHalfLifeSec,
    safety_factor: c.fastSafetyFactor,
    min_gpus: c.fastMinGpus,
    target_gpus: target,
    buy_target_gpus: buyTarget,
    warm_gpus_outside_blocks: demand.fast.warmGpusOutsideBlocks,
    active_block_gpus: activeGpus,
    pending_block_gpus: pendingGpus,
    supply_gpus: supply,
  };

  if (supply < buyTarget) {
    const deficit = buyTarget - supply;
    const sinceBuy = since(now, state.lastBuyAt.fast);
    const withDeficit = { ...inputs, deficit_gpus: deficit, since_last_buy_sec: sinceBuy, buy_cooldown_sec: c.buyCooldownSec };
    if (sinceBuy !== null && sinceBuy < c.buyCooldownSec) {
      return [hold('fast', DecisionRule.fastBuyCooldown, `${deficit} more FAST GPUs needed (target ${buyTarget}, have ${supply}), but the last FAST buy was ${round(sinceBuy, 1)} s ago (cooldown ${c.buyCooldownSec} s)`, withDeficit)];
    }
    // FAST promises any shape a quick start, so with no queued job to size
    // for it buys the most capable nodes: the largest GPUs, then the cheapest
    // per GPU-hour among those.
    const fits = eligibleTypes(input.market.instanceTypes, demand.fast);
    const offers = fits.map((t) => offer(input, t, 'fast', deficit));
    offers.sort((a, b) => b.type.vramPerGpuGb - a.type.vramPerGpuGb || a.quote.pricePerGpuHour - b.quote.pricePerGpuHour || a.type.name.localeCompare(b.type.name));
    const best = offers[0];
    if (!best) {
      return [hold('fast', DecisionRule.fastNoInstanceType, `${deficit} more FAST GPUs needed, but no instance type has ${shapeText(demand.fast)}`, withDeficit)];
    }
    return [buy('fast', DecisionRule.fastDeficit, best.quote, `FAST target ${buyTarget} GPUs (max(min ${c.fastMinGpus}, ${c.fastSafetyFactor} × max(EWMA ${round(ewma, 2)}, demand now ${demandNow}))) exceeds supply ${supply}: buying ${best.quote.nodes} × ${best.type.name} (${best.quote.gpus} GPUs at ${best.quote.pricePerGpuHour}/GPU-hour)`, { ...withDeficit, ...quoteInputs(best.quote) })];
  }

  if (supply > target) {
    const excess = supply - target;
    const active = fast.filter((b) => b.status === 'active');
    const fitting = active.filter((b) => blockGpus(b) <= excess);
    if (fitting.length === 0) {
      if (active.length === 0) return [];
      const smallest = Math.min(...active.map(blockGpus));
      return [hold('fast', DecisionRule.fastExcessBelowBlock, `${excess} FAST GPUs above target ${target}, fewer than the smallest active FAST block (${smallest} GPUs): keeping it`, { ...inputs, excess_gpus: excess, smallest_block_gpus: smallest })];
    }
    const sinceChange = since(now, state.lastChangeAt.fast);
    const withExcess = { ...inputs, excess_gpus: excess, since_last_change_sec: sinceChange, release_cooldown_sec: c.releaseCooldownSec };
    if (sinceChange !== null && sinceChange < c.releaseCooldownSec) {
      return [hold('fast', DecisionRule.fastReleaseCooldown, `${excess} FAST GPUs above target ${target}, but the last FAST buy or release was ${round(sinceChange, 1)} s ago (cooldown ${c.releaseCooldownSec} s)`, withExcess)];
    }
    // Idle blocks first (they go at once); then the largest, to shed the most
    // per decision; then the one ending soonest; then by id, for determinism.
    fitting.sort((a, b) => Number(a.busy) - Number(b.busy) || blockGpus(b) - blockGpus(a) || (a.endsAt ?? Infinity) - (b.endsAt ?? Infinity) || a.id.localeCompare(b.id));
    const out: CapacityDecision[] = [];
    let left = excess;
    for (const b of fitting) {
      const gpus = blockGpus(b);
      if (gpus > left) continue;
      left -= gpus;
      const why = `FAST supply ${supply} GPUs exceeds target ${target} by ${excess}`;
      out.push({
        action: b.busy ? 'drain' : 'release',
        tier: 'fast',
        rule: DecisionRule.fastExcess,
        blockId: b.id,
        reason: b.busy ? `${why}: draining busy block ${b.id} (${gpus} GPUs); it is released when its jobs end` : `${why}: releasing idle block ${b.id} (${gpus} GPUs)`,
        inputs: { ...withExcess, block_gpus: gpus, block_busy: b.busy, excess_left_gpus: left },
      });
    }
    return out;
  }
  return [];
}

function decideFlex(input: AutoscalerInput, blocks: readonly BlockView[], state: AutoscalerState, now: number): CapacityDecision[] {
  const { demand, config: c } = input;
  const f = demand.flex;
  const flex = blocks.filter((b) => b.tier === 'flex');
  const pendingGpus = sum(flex.filter((b) => b.status === 'pending').map(blockGpus));
  const inputs: DecisionInputs = {
    waiting_jobs: f.waitingJobs,
    waiting_gpus: f.waitingGpus,
    oldest_wait_sec: f.oldestWaitSec,
    can_backfill: f.canBackfill,
    pending_block_gpus: pendingGpus,
    max_price: c.flexMaxPrice,
    max_wait_sec: c.flexMaxWaitSec,
  };

  if (f.waitingJobs > 0) {
    if (f.canBackfill) {
      return [hold('flex', DecisionRule.flexCanBackfill, `${f.waitingJobs} FLEX jobs wait, but idle capacity can take them: not buying`, inputs)];
    }
    // GPUs of idle active FLEX blocks that could hold the waiting jobs
    // (shape, and time left) are theirs already: a gang wider than the idle
    // block gets only the difference bought, not a whole new block again.
    const longest = (f.longestNeedSec ?? 0) * 1000;
    const usable = flex.filter(
      (b) =>
        b.status === 'active' &&
        !b.busy &&
        holds({ gpus: b.gpusPerNode, vramPerGpuGb: b.vramPerGpuGb, cpu: b.cpuPerNode ?? Infinity, ramGb: b.ramPerNodeGb ?? Infinity }, f) &&
        (b.endsAt === null || b.endsAt - now >= longest),
    );
    const idleGpus = sum(usable.map(blockGpus));
    const need = f.waitingGpus - pendingGpus - idleGpus;
    if (need <= 0) {
      return [hold('flex', DecisionRule.flexCapacityComing, `${f.waitingJobs} FLEX jobs wait for ${f.waitingGpus} GPUs; ${pendingGpus} GPUs of FLEX blocks are being provisioned and ${idleGpus} are idle in active ones`, { ...inputs, idle_block_gpus: idleGpus })];
    }
    const sinceBuy = since(now, state.lastBuyAt.flex);
    const withNeed = { ...inputs, idle_block_gpus: idleGpus, need_gpus: need, since_last_buy_sec: sinceBuy, buy_cooldown_sec: c.buyCooldownSec };
    if (sinceBuy !== null && sinceBuy < c.buyCooldownSec) {
      return [hold('flex', DecisionRule.flexBuyCooldown, `${need} FLEX GPUs needed, but the last FLEX buy was ${round(sinceBuy, 1)} s ago (cooldown ${c.buyCooldownSec} s)`, withNeed)];
    }
    const fits = eligibleTypes(input.market.instanceTypes, f);
    const offers = fits.map((t) => offer(input, t, 'flex', need));
    // Cheapest per GPU-hour; then the least idle GPUs bought; then by name.
    offers.sort((a, b) => a.quote.pricePerGpuHour - b.quote.pricePerGpuHour || a.quote.gpus - b.quote.gpus || a.type.name.localeCompare(b.type.name));
    const best = offers[0];
    if (!best) {
      return [hold('flex', DecisionRule.flexNoInstanceType, `${need} FLEX GPUs needed, but no instance type has ${shapeText(f)}`, withNeed)];
    }
    const price = best.quote.pricePerGpuHour;
    const withQuote = { ...withNeed, ...quoteInputs(best.quote) };
    const what = `${best.quote.nodes} × ${best.type.name} (${best.quote.gpus} GPUs)`;
    if (price <= c.flexMaxPrice) {
      return [buy('flex', DecisionRule.flexPriceOk, best.quote, `${f.waitingJobs} FLEX jobs wait for ${need} GPUs and the price ${price}/GPU-hour is at most ${c.flexMaxPrice}: buying ${what}`, withQuote)];
    }
    if (f.oldestWaitSec > c.flexMaxWaitSec) {
      return [buy('flex', DecisionRule.flexMaxWait, best.quote, `the oldest FLEX job has waited ${round(f.oldestWaitSec, 0)} s, more than ${c.flexMaxWaitSec} s: buying ${what} at market, ${price}/GPU-hour (above ${c.flexMaxPrice})`, withQuote)];
    }
    return [hold('flex', DecisionRule.flexPriceAboveMax, `${f.waitingJobs} FLEX jobs wait, but the cheapest fitting price ${price}/GPU-hour (${best.type.name}) is above ${c.flexMaxPrice}; buying at market once the oldest has waited ${c.flexMaxWaitSec} s (now ${round(f.oldestWaitSec, 0)} s)`, withQuote)];
  }

  const idle = flex.filter((b) => b.status === 'active' && !b.busy).sort((a, b) => a.id.localeCompare(b.id));
  if (idle.length === 0) return [];
  const sinceChange = since(now, state.lastChangeAt.flex);
  const withIdle = { ...inputs, idle_blocks: idle.length, since_last_change_sec: sinceChange, release_cooldown_sec: c.releaseCooldownSec };
  if (sinceChange !== null && sinceChange < c.releaseCooldownSec) {
    return [hold('flex', DecisionRule.flexReleaseCooldown, `${idle.length} FLEX ${idle.length === 1 ? 'block is' : 'blocks are'} idle and no FLEX job waits, but the last FLEX buy or release was ${round(sinceChange, 1)} s ago (cooldown ${c.releaseCooldownSec} s)`, withIdle)];
  }
  return idle.map((b) => ({
    action: 'release' as const,
    tier: 'flex' as const,
    rule: DecisionRule.flexIdle,
    blockId: b.id,
    reason: `FLEX block ${b.id} runs no job and no FLEX job waits: releasing it`,
    inputs: { ...withIdle, block_gpus: blockGpus(b) },
  }));
}

/** The largest per-node request of the waiting jobs of a tier (0 or absent: any). */
type NodeNeed = Pick<DemandView['flex'], 'maxVramPerGpuGb' | 'maxGpusPerNode' | 'maxCpuPerNode' | 'maxRamPerNodeGb'>;

/** "8 GPUs of 96 GB", with cores and RAM when asked for. */
function shapeText(need: NodeNeed): string {
  const extra = [need.maxCpuPerNode ? `${need.maxCpuPerNode} cores` : '', need.maxRamPerNodeGb ? `${need.maxRamPerNodeGb} GB RAM` : ''].filter(Boolean);
  return `${need.maxGpusPerNode ?? 0} GPUs of ${need.maxVramPerGpuGb ?? 0} GB${extra.length > 0 ? ` and ${extra.join(' and ')}` : ''}`;
}

/** Whether a node of this shape holds the largest request in every dimension: GPUs, VRAM, cores, RAM. */
function holds(node: { gpus: number; vramPerGpuGb: number; cpu: number; ramGb: number }, need: NodeNeed): boolean {
  return (
    node.vramPerGpuGb >= (need.maxVramPerGpuGb ?? 0) &&
    node.gpus >= (need.maxGpusPerNode ?? 0) &&
    node.cpu >= (need.maxCpuPerNode ?? 0) &&
    node.ramGb >= (need.maxRamPerNodeGb ?? 0)
  );
}

/** Instance types whose nodes can hold the largest job asked for. */
function eligibleTypes(types: readonly InstanceType[], need: NodeNeed): InstanceType[] {
  return types.filter((t) => holds(t, need));
}

/**
 * The quote for enough whole nodes of `type` to cover `gpus`, capped by the
 * type and maxNodesPerBuy, for SCALAR_BLOCK_HOURS, or longer when a waiting
 * job of the tier needs longer: a block that ends before the job would is
 * one placement never uses.
 */
function offer(input: AutoscalerInput, type: InstanceType, tier: CapacityTier, gpus: number): { type: InstanceType; quote: Quote } {
  const nodes = Math.max(1, Math.min(Math.ceil(gpus / type.gpus), type.maxNodes, input.config.maxNodesPerBuy));
  return { type, quote: input.market.quote({ instanceType: type.name, nodes, hours: blockHoursFor(input, tier), tier }) };
}

/** SCALAR_BLOCK_HOURS, or the whole hours the tier's longest waiting job needs, whichever is more. */
export function blockHoursFor(input: Pick<AutoscalerInput, 'config' | 'demand'>, tier: CapacityTier): number {
  const need = input.demand[tier].longestNeedSec ?? 0;
  return Math.max(input.config.blockHours, Math.ceil(need / 3600));
}

function quoteInputs(q: Quote): DecisionInputs {
  return {
    instance_type: q.instanceType,
    nodes: q.nodes,
    hours: q.hours,
    block_gpus: q.gpus,
    price_per_gpu_hour: q.pricePerGpuHour,
    price_per_hour: q.pricePerHour,
  };
}

function buy(tier: CapacityTier, rule: DecisionRule, quote: Quote, reason: string, inputs: DecisionInputs): CapacityDecision {
  return { action: 'buy', tier, rule, instanceType: quote.instanceType, nodes: quote.nodes, hours: quote.hours, quote, reason, inputs };
}

function hold(tier: CapacityTier, rule: DecisionRule, reason: string, inputs: DecisionInputs): CapacityDecision {
  return { action: 'hold', tier, rule, reason, inputs };
}
