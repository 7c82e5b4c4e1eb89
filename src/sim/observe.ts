/**
 * What the replay reads from the coordinator's live state while it runs:
 * the cluster at an instant (a Sample), fragmentation, and whether warm
 * capacity covers the FAST demand when a FAST job arrives.
 */
import type { Coordinator } from '../../actors/coordinator/coordinator.ts';
import type { Sample } from './types.ts';
import { POOLS } from '../domain/cluster.ts';

/** GPUs held, GPUs up, and free GPUs per node, from the capacity snapshot. */
export function gpuCounts(c: Coordinator): { used: number; total: number; free: number } {
  let used = 0;
  let total = 0;
  let free = 0;
  for (const n of c.capacity.states()) {
    let held = 0;
    for (const h of n.holds) held += h.gpuIndices.length;
    // A draining node still runs its jobs and is still paid for; one that holds nothing and takes nothing is out.
    if (!n.schedulable && held === 0) continue;
    used += held;
    total += n.gpus.length;
    if (n.schedulable) free += n.gpus.length - held;
  }
  return { used, total, free };
}

/**
 * Free GPUs that no waiting job can use because they are split across
 * nodes. Per pool, a free GPU is unusable when its node has fewer free GPUs
 * than the smallest per-node GPU count of any waiting job that may run in
 * that pool (FAST jobs on fast nodes; FLEX jobs on either) with VRAM the
 * node's GPUs have. Unusable GPUs count as fragmented only when the pool
 * holds at least that smallest count of them in all: gathered on one node,
 * a waiting job could use them. Fewer than that is a full pool, not a
 * fragmented one; a pool no waiting job may use counts nothing.
 */
export function fragmentation(c: Coordinator): { fragmentedGpus: number; waitingGpus: number } {
  // The smallest per-node request, per pool, per VRAM need (few distinct values).
  const need = { fast: new Map<number, number>(), flex: new Map<number, number>() };
  let waitingGpus = 0;
  for (const job of c.jobs.waiting.values()) {
    const r = job.request();
    if (r.gpuCount === 0) continue;
    waitingGpus += r.gpuCount * r.nodeCount;
    const pools = r.tier === 'FAST' ? [need.fast] : [need.fast, need.flex];
    for (const m of pools) m.set(r.vramPerGpuGb, Math.min(m.get(r.vramPerGpuGb) ?? Infinity, r.gpuCount));
  }
  const unusable = { fast: 0, flex: 0 };
  const smallestOfPool = { fast: Infinity, flex: Infinity };
  for (const n of c.capacity.states()) {
    if (!n.schedulable || n.freeGpus.length === 0) continue;
    let smallest = Infinity;
    for (const [vram, gpus] of need[n.pool]) {
      if (n.freeGpus.some((g) => g.vramGb >= vram)) smallest = Math.min(smallest, gpus);
    }
    if (smallest === Infinity || n.freeGpus.length >= smallest) continue;
    unusable[n.pool] += n.freeGpus.length;
    smallestOfPool[n.pool] = Math.min(smallestOfPool[n.pool], smallest);
  }
  let fragmentedGpus = 0;
  for (const p of POOLS) if (unusable[p] >= smallestOfPool[p]) fragmentedGpus += unusable[p];
  return { fragmentedGpus, waitingGpus };
}

/** FAST GPUs held and waiting, and the fast pool's GPUs up. */
export function fastDemand(c: Coordinator): { warm: number; demand: number } {
  let warm = 0;
  let demand = 0;
  for (const n of c.capacity.states('fast')) if (n.schedulable) warm += n.gpus.length;
  for (const n of c.capacity.states()) for (const h of n.holds) if (h.tier === 'FAST') demand += h.gpuIndices.length;
  for (const job of c.jobs.waiting.values()) {
    const r = job.request();
    if (r.tier === 'FAST') demand += r.gpuCount * r.nodeCount;
  }
  return { warm, demand };
}

/**
 * Records the cluster after every settled instant as a step function. The
 * counts are exact at every change; fragmentation walks every waiting job,
 * so it is recomputed when jobs start waiting and then at most every
 * `fragmentationEverySec` of virtual time, held in between; it is 0 while
 * nothing waits.
 */
export class Sampler {
  readonly samples: Sample[] = [];
  private lastFragAt = -Infinity;
  private frag = { fragmentedGpus: 0, waitingGpus: 0 };

  constructor(private readonly fragmentationEverySec = 300) {}

  observe(c: Coordinator, t: number): void {
    const { used, total, free } = gpuCounts(c);
    const waitingJobs = c.jobs.waiting.size;
    if (waitingJobs === 0) {
      // Nothing waits: nothing is fragmented, and the next wait is measured at once.
      this.frag = { fragmentedGpus: 0, waitingGpus: 0 };
      this.lastFragAt = -Infinity;
    } else if (t - this.lastFragAt >= this.fragmentationEverySec) {
      this.frag = fragmentation(c);
      this.lastFragAt = t;
    }
    const s: Sample = { t, totalGpus: total, usedGpus: used, waitingJobs, waitingGpus: this.frag.waitingGpus, fragmentedGpus: Math.min(this.frag.fragmentedGpus, free), freeGpus: free };
    const last = this.samples[this.samples.length - 1];
    if (last && last.t === t) this.samples[this.samples.length - 1] = s;
    else if (!last || !sameState(last, s)) this.samples.push(s);
  }
}

function sameState(a: Sample, b: Sample): boolean {
  return a.totalGpus === b.totalGpus && a.usedGpus === b.usedGpus && a.waitingJobs === b.waitingJobs && a.fragmentedGpus === b.fragmentedGpus && a.freeGpus === b.freeGpus;
}
