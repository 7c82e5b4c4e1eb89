/**
 * What capacity cost in a replay, and what a static fleet of the same peak
 * size would have cost.
 *
 * - The starting fleet is owned capacity, priced per GPU-hour at the
 *   simulated marketplace's base price (src/capacity/marketplace.ts) of the
 *   catalogue type closest to its nodes (same GPUs per node, the smallest
 *   VRAM that is at least the node's), in its pool's tier, for the whole
 *   makespan.
 * - A bought block costs its quoted price per hour from when its nodes are
 *   ready until it is released, ends, or the replay ends, whichever is first:
 *   the simulated provider bills held hours.
 * - The static peak fleet keeps, for the whole makespan, the most GPUs each
 *   pool ever had at once, at the starting fleet's price for that pool (or,
 *   for a pool that started empty, the mean price of its blocks).
 */
import type { BlockRow } from '../../actors/capacity/ports.ts';
import { SIMULATED_CATALOGUE } from '../capacity/marketplace.ts';
import type { FleetGroup } from './types.ts';
import { POOLS } from '../domain/cluster.ts';

/** USD per GPU-hour of an owned node like this group's. */
export function ownedGpuHourPrice(g: Pick<FleetGroup, 'pool' | 'gpusPerNode' | 'vramGb'>): number {
  const sameWidth = SIMULATED_CATALOGUE.filter((t) => t.gpus === g.gpusPerNode);
  const pool = sameWidth.length > 0 ? sameWidth : [...SIMULATED_CATALOGUE];
  const fits = pool.filter((t) => t.vramPerGpuGb >= g.vramGb).sort((a, b) => a.vramPerGpuGb - b.vramPerGpuGb);
  const type = fits[0] ?? pool.sort((a, b) => b.vramPerGpuGb - a.vramPerGpuGb)[0]!;
  return type.basePerGpuHour[g.pool];
}

export interface CapacityCost {
  startGpus: number;
  peakGpus: number;
  blocksBought: number;
  costUsd: number;
  staticPeakCostUsd: number;
}

export function fleetCost(fleet: FleetGroup[], blocks: BlockRow[], makespanSec: number, epochMs: number): CapacityCost {
  const hours = makespanSec / 3600;
  const end = epochMs + makespanSec * 1000;
  const pools = POOLS;
  const start = { fast: 0, flex: 0 };
  const startCost = { fast: 0, flex: 0 };
  for (const g of fleet) {
    const gpus = g.nodes * g.gpusPerNode;
    start[g.pool] += gpus;
    startCost[g.pool] += gpus * ownedGpuHourPrice(g);
  }
  let costUsd = (startCost.fast + startCost.flex) * hours;
  const blockPrice = { fast: [] as number[], flex: [] as number[] };
  const changes = { fast: [] as Array<[number, number]>, flex: [] as Array<[number, number]> };
  for (const b of blocks) {
    const from = b.startsAt.getTime();
    const until = Math.min(b.releasedAt?.getTime() ?? Infinity, b.endsAt?.getTime() ?? Infinity, end);
    const gpus = b.nodes * b.gpusPerNode;
    if (until > from) {
      costUsd += b.costPerHour * ((until - from) / 3600_000);
      changes[b.pool].push([from, gpus], [until, -gpus]);
    }
    blockPrice[b.pool].push(b.costPerHour / gpus);
  }
  let peakGpus = 0;
  let staticPeakCostUsd = 0;
  for (const p of pools) {
    // Ends before starts at the same instant: a block replaced at once is not counted twice.
    const ordered = changes[p].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let now = start[p];
    let peak = now;
    for (const [, d] of ordered) peak = Math.max(peak, (now += d));
    peakGpus += peak;
    const price = start[p] > 0 ? startCost[p] / start[p] : blockPrice[p].length > 0 ? blockPrice[p].reduce((s, x) => s + x, 0) / blockPrice[p].length : 0;
    staticPeakCostUsd += peak * price * hours;
  }
  return { startGpus: start.fast + start.flex, peakGpus, blocksBought: blocks.length, costUsd, staticPeakCostUsd };
}
