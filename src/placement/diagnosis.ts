/**
 * The why of a decision: the counts of rejected nodes (PlacementDiagnosis)
 * and the plain-words reason users read as their job's status_reason. The
 * style is v1's: a count, then every cause with its count, e.g.
 *   0 of 12 ready fast nodes can hold it: 3 have fewer than 2 free GPUs with ≥ 80 GB, 1 lacks free CPU (needs 8 cores)
 *
 * `describeWaiting` is the one function that words a diagnosis: the pipeline
 * uses it for the nodes it just looked at, and the queue for a job that
 * reuses the diagnosis of a smaller request that already failed (cache.ts).
 * Each cause is the filter plugin's own phrase (FilterPlugin.describe).
 */
import type { PlacementDiagnosis } from './decision.ts';
import { DEFAULT_FILTERS, type Ask, type CompiledFilters } from './filters.ts';
import { EPSILON as EPS } from './node-entry.ts';
import { cores, gpuPhrase, plural, poolsPhrase } from './words.ts';

/** A diagnosis with nothing rejected yet: every filter's count and every code at 0. */
export function emptyDiagnosis(nodes: number, filters: CompiledFilters = DEFAULT_FILTERS): PlacementDiagnosis {
  return { nodes, rejected: { ...filters.zeroRejected }, causes: { ...filters.zeroCauses }, best: [], step: null };
}

/**
 * Why a job that some node or offer could hold waits now, from its
 * diagnosis, with the job's own numbers. `node_ready` is not a cause: the
 * count is of the ready nodes (those it did not reject).
 */
export function describeWaiting(ask: Ask, d: PlacementDiagnosis, filters: CompiledFilters = DEFAULT_FILTERS): string {
  const pools = poolsPhrase(ask.tier);
  if (d.nodes === 0) return `no ready ${pools} node`;
  const notReady = d.rejected.node_ready;
  const ready = d.nodes - notReady;
  if (ready <= 0) return `no ready ${pools} node (${notReady} ${plural(notReady, 'is', 'are')} registering, draining or lost)`;
  const rejected: Readonly<Record<string, number>> = d.rejected;
  let causes = '';
  for (const f of filters.told) {
    const words = f.describe(rejected[f.name] ?? 0, d.causes, ask);
    if (words !== null) causes = causes === '' ? words : `${causes}, ${words}`;
  }
  return `0 of ${ready} ready ${pools} ${plural(ready, 'node', 'nodes')} can hold it: ${causes}`;
}

/** The most any node or offer of the allowed pools has, for the "can never hold it" reason. */
export interface Largest {
  /** GPUs with at least the VRAM asked for, on one node. */
  fitGpus: number;
  /** The largest GPU's VRAM, and how many GPUs of that VRAM its node has. */
  gpuVram: number;
  gpusAtVram: number;
  cpu: number;
  ram: number;
}

export const noLargest = (): Largest => ({ fitGpus: 0, gpuVram: 0, gpusAtVram: 0, cpu: 0, ram: 0 });

export function mergeLargest(into: Largest, vramsDesc: readonly number[], need: Ask, cpu: number, ram: number): void {
  let fit = 0;
  while (fit < vramsDesc.length && vramsDesc[fit]! >= need.vram) fit++;
  into.fitGpus = Math.max(into.fitGpus, fit);
  const top = vramsDesc[0] ?? 0;
  let atTop = 0;
  while (atTop < vramsDesc.length && vramsDesc[atTop] === top) atTop++;
  if (top > into.gpuVram || (top === into.gpuVram && atTop > into.gpusAtVram)) {
    into.gpuVram = top;
    into.gpusAtVram = top > 0 ? atTop : 0;
  }
  into.cpu = Math.max(into.cpu, cpu);
  into.ram = Math.max(into.ram, ram);
}

/**
 * Why no node shape nor offer could ever hold one member (or, for a gang,
 * enough of them). `withOffers`: offers of the allowed pools were considered.
 */
export function describeUnschedulable(need: Ask, largest: Largest, capable: number, withOffers: boolean): string {
  const pools = poolsPhrase(need.tier);
  if (capable > 0) {
    const head = withOffers ? `too few ${pools} nodes or offers can ever hold it` : `too few ${pools} nodes are large enough`;
    return `${head}: a gang of ${need.nodeCount} needs ${need.nodeCount} nodes that can each hold a member, ${capable} can`;
  }
  const parts: string[] = [];
  if (largest.fitGpus < need.gpus) {
    const asked = `needs ${gpuPhrase(need.gpus, need.vram)}`;
    if (largest.fitGpus > 0) {
      // A single-node request wider than any node: say how to ask for a gang instead.
      const per = largest.fitGpus;
      const hint = need.nodeCount === 1 && need.gpus % per === 0 ? ` (for a gang, ask node_count ${need.gpus / per} with gpu_count ${per})` : '';
      parts.push(`${asked}, the largest has ${largest.fitGpus}${hint}`);
    }
    else if (largest.gpuVram > 0) parts.push(`${asked}, the largest has ${largest.gpusAtVram} with ${largest.gpuVram} GB`);
    else parts.push(`${asked}, none has a GPU`);
  }
  if (largest.cpu < need.cpu - EPS) parts.push(`needs ${cores(need.cpu)}, the largest has ${largest.cpu}`);
  if (largest.ram < need.ram - EPS) parts.push(`needs ${need.ram} GB RAM, the largest has ${largest.ram} GB`);
  if (parts.length === 0) {
    const all = [...(need.gpus > 0 ? [gpuPhrase(need.gpus, need.vram)] : []), cores(need.cpu), `${need.ram} GB RAM`];
    parts.push(`none has ${all.slice(0, -1).join(', ')} and ${all[all.length - 1]} together`);
  }
  const head = withOffers ? `no ${pools} node or offer can ever hold it` : `no ${pools} node is large enough`;
  return `${head}: ${parts.join('; ')}`;
}
