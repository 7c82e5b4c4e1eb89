/**
 * The why of a decision: the counts of rejected nodes (PlacementDiagnosis)
 * and the plain-words reason users read as their job's status_reason. The
 * style is v1's: a count, then every cause with its count, e.g.
 *   0 of 12 ready fast nodes can hold it: 3 have fewer than 2 free GPUs with ≥ 80 GB, 1 lacks free CPU (needs 8 cores)
 */
import type { Tier } from '../domain/cluster.ts';
import type { Need } from './filters.ts';
import { EPSILON as EPS } from './node-entry.ts';
import { FILTERS, type FilterName, type PlacementDiagnosis } from './types.ts';

export function emptyRejected(): Record<FilterName, number> {
  const r = {} as Record<FilterName, number>;
  for (const f of FILTERS) r[f] = 0;
  return r;
}

export function emptyDiagnosis(nodes: number): PlacementDiagnosis {
  return { nodes, rejected: emptyRejected(), best: [], step: null };
}

/** What the reason needs beyond the diagnosis counts. */
export interface WaitingFacts {
  /** Ready nodes in the allowed pools. */
  ready: number;
  /** Of the nodes rejected by cpu_ram, those short of CPU (the rest are short of RAM only). */
  cpuShort: number;
}

export const plural = (n: number, one: string, many: string): string => (n === 1 ? one : many);
export const cores = (n: number): string => `${n} CPU ${plural(n, 'core', 'cores')}`;

/** "2 GPUs with ≥ 80 GB", "1 GPU". */
export function gpuPhrase(count: number, vram: number): string {
  return `${count} ${plural(count, 'GPU', 'GPUs')}${vram > 0 ? ` with ≥ ${vram} GB` : ''}`;
}

/** "fast" or "flex or fast": the pools a tier may use, as the reasons name them. */
export const poolsPhrase = (tier: Tier): string => (tier === 'FLEX' ? 'flex or fast' : 'fast');

/** Why a job that some node or offer could hold waits now. */
export function describeWaiting(need: Need, d: PlacementDiagnosis, facts: WaitingFacts): string {
  const pools = poolsPhrase(need.tier);
  if (d.nodes === 0) return `no ready ${pools} node`;
  const notReady = d.rejected.node_ready;
  if (facts.ready === 0) return `no ready ${pools} node (${notReady} ${plural(notReady, 'is', 'are')} registering, draining or lost)`;

  const r = d.rejected;
  const causes: string[] = [];
  if (r.pool > 0) causes.push(`${r.pool} ${plural(r.pool, 'is', 'are')} busy with FAST jobs`);
  if (r.reservation > 0) causes.push(`${r.reservation} ${plural(r.reservation, 'is', 'are')} reserved for a higher job`);
  if (r.gpus > 0) {
    const has = plural(r.gpus, 'has', 'have');
    const withVram = need.vram > 0 ? ` with ≥ ${need.vram} GB` : '';
    causes.push(need.gpus === 1 ? `${r.gpus} ${has} no free GPU${withVram}` : `${r.gpus} ${has} fewer than ${need.gpus} free GPUs${withVram}`);
  }
  const cpu = facts.cpuShort;
  const ram = r.cpu_ram - cpu;
  if (cpu > 0) causes.push(`${cpu} ${plural(cpu, 'lacks', 'lack')} free CPU (needs ${need.cpu} ${plural(need.cpu, 'core', 'cores')})`);
  if (ram > 0) causes.push(`${ram} ${plural(ram, 'lacks', 'lack')} free RAM (needs ${need.ram} GB)`);
  if (r.block_time > 0) {
    causes.push(r.block_time === 1 ? '1 belongs to a block that ends too soon' : `${r.block_time} belong to blocks that end too soon`);
  }
  if (need.nodeCount > 1) causes.push(`a gang of ${need.nodeCount} needs ${need.nodeCount} nodes, ${r.gang} can hold a member now`);
  return `0 of ${facts.ready} ready ${pools} ${plural(facts.ready, 'node', 'nodes')} can hold it: ${causes.join(', ')}`;
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

export function mergeLargest(into: Largest, vramsDesc: readonly number[], need: Need, cpu: number, ram: number): void {
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
export function describeUnschedulable(need: Need, largest: Largest, capable: number, withOffers: boolean): string {
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
