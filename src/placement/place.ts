/**
 * Placement v1: queue order, tier rules and best fit. Pure: no I/O, no clocks.
 *
 * Tier rules: FAST runs only on `fast` nodes. FLEX runs on `flex` nodes, or on
 * `fast` nodes that hold no FAST job (idle FAST capacity), preferring `flex`.
 * A FAST job may join a fast node that already runs FLEX work if it fits.
 */
import { Pool, type Tier } from '../domain/cluster.ts';
import { EPSILON, type CapacitySnapshot, type NodeState } from './snapshot.ts';
import type { JobRequest, Placement, PlacementDecision } from './types.ts';

/** Queue order: FAST before FLEX, then higher priority, then older (smaller seq), then jobId. */
export function compareJobs(a: JobRequest, b: JobRequest): number {
  if (a.tier !== b.tier) return a.tier === 'FAST' ? -1 : 1;
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.seq !== b.seq) return a.seq - b.seq;
  return a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0;
}

/**
 * The best node for `job` in `snapshot`, or why it waits. Does not mutate.
 *
 * Best fit, in order: (FLEX only) a flex node over a fast one; fewest free
 * GPUs left on the node; least VRAM left over on the chosen GPUs; least CPU
 * plus RAM left, as fractions of the node's totals; nodeId ascending. On the
 * node it takes the free GPUs with the smallest sufficient VRAM, ties by
 * lowest index.
 */
export function placeJob(snapshot: CapacitySnapshot, job: JobRequest): PlacementDecision {
  const r = scan(snapshot, job);
  if (r.kind === 'placed') return r;
  return { kind: 'waiting', reason: describe(needOf(job), job.tier, r.tally, r.largest) };
}

/** One pass over the allowed nodes: the best fit, or the counts that explain why none fits. */
function scan(
  snapshot: CapacitySnapshot,
  job: JobRequest,
): { kind: 'placed'; placement: Placement } | { kind: 'waiting'; tally: Tally; largest: Largest } {
  const need = needOf(job);
  const flex = job.tier === 'FLEX';
  const tally: Tally = { known: 0, largeEnough: 0, notReady: 0, ready: 0, busy: 0, gpus: 0, cpu: 0, ram: 0 };
  const largest: Largest = { fitGpus: 0, gpuVram: 0, cpu: 0, ram: 0 };
  let best: Candidate | undefined;

  for (const pool of POOLS_OF[job.tier]) {
    for (const node of snapshot.states(pool)) {
      tally.known++;
      // Could it hold the job when empty?
      let fitGpus = 0;
      for (const g of node.gpus) {
        if (g.vramGb >= need.vram) fitGpus++;
        if (g.vramGb > largest.gpuVram) largest.gpuVram = g.vramGb;
      }
      largest.fitGpus = Math.max(largest.fitGpus, fitGpus);
      largest.cpu = Math.max(largest.cpu, node.cpuTotal);
      largest.ram = Math.max(largest.ram, node.ramTotal);
      if (fitGpus >= need.gpus && need.cpu <= node.cpuTotal + EPSILON && need.ram <= node.ramTotal + EPSILON) tally.largeEnough++;

      if (!node.schedulable) {
        tally.notReady++;
        continue;
      }
      tally.ready++;
      if (flex && node.pool === Pool.fast && node.fastJobs > 0) {
        tally.busy++;
        continue;
      }
      const free = node.freeGpus;
      let start = 0;
      while (start < free.length && free[start]!.vramGb < need.vram) start++;
      if (free.length - start < need.gpus) {
        tally.gpus++;
        continue;
      }
      if (need.cpu > node.cpuFree + EPSILON) {
        tally.cpu++;
        continue;
      }
      if (need.ram > node.ramFree + EPSILON) {
        tally.ram++;
        continue;
      }

      let vramLeft = 0;
      for (let i = start; i < start + need.gpus; i++) vramLeft += free[i]!.vramGb - need.vram;
      const candidate: Candidate = {
        node,
        start,
        poolRank: flex && node.pool === Pool.fast ? 1 : 0,
        freeAfter: free.length - need.gpus,
        vramLeft,
        resLeft: fraction(node.cpuFree - need.cpu, node.cpuTotal) + fraction(node.ramFree - need.ram, node.ramTotal),
      };
      if (!best || better(candidate, best)) best = candidate;
    }
  }

  if (best) {
    const gpuIndices = best.node.freeGpus
      .slice(best.start, best.start + need.gpus)
      .map((g) => g.index)
      .sort((a, b) => a - b);
    return { kind: 'placed', placement: { jobId: job.jobId, nodeId: best.node.nodeId, gpuIndices } };
  }
  return { kind: 'waiting', tally, largest };
}

/**
 * Places `jobs` greedily in queue order (`compareJobs`), holding each
 * placement in `snapshot` as it goes: the snapshot is mutated, and the caller
 * releases a placement whose bind fails. A job that does not fit does not
 * block the ones behind it. Returns the placements in queue order and, for
 * every other job, why it waits.
 *
 * Within one call capacity only shrinks, so a request shape (tier, GPUs,
 * VRAM, CPU, RAM) that failed keeps failing, and so does any shape of the same
 * tier that needs as much or more in every dimension. Such jobs skip the node
 * scan. Their reason is rebuilt from the counts of the earlier failure with the
 * job's own numbers (each statement stays true: a node short of the smaller
 * need is short of the larger one; counts by first cause may be older than a
 * fresh scan's), and whether any node is large enough is checked afresh
 * against the (few) distinct node shapes, so a too-large job always gets the
 * "no … node is large enough" reason. Placements and the set of waiting jobs
 * are exactly those of placing one by one.
 *
 * Throws, before placing anything, when a jobId appears twice or a job
 * already holds capacity in the snapshot.
 */
export function placeQueue(
  snapshot: CapacitySnapshot,
  jobs: JobRequest[],
): { placed: Placement[]; waiting: Map<string, string> } {
  const ids = new Set<string>();
  for (const j of jobs) {
    if (ids.has(j.jobId)) throw new Error(`job ${j.jobId} is queued twice`);
    if (snapshot.holding(j.jobId)) throw new Error(`job ${j.jobId} already holds capacity`);
    ids.add(j.jobId);
  }

  const placed: Placement[] = [];
  const waiting = new Map<string, string>();
  /** Reason by exact shape. */
  const reasons = new Map<string, string>();
  /** Failed shapes per tier, none needing ≥ another in every dimension (kept minimal). */
  const failed: Record<Tier, Failure[]> = { FAST: [], FLEX: [] };
  const sizes: Partial<Record<Tier, NodeShape[]>> = {};

  for (const job of [...jobs].sort(compareJobs)) {
    const key = shapeKey(job);
    let reason = reasons.get(key);
    if (reason === undefined) {
      const need = needOf(job);
      const smaller = failed[job.tier].find((f) => covers(need, f.need));
      if (smaller) {
        const size = sizeCheck((sizes[job.tier] ??= nodeShapes(snapshot, job.tier)), need);
        reason = describe(need, job.tier, { ...smaller.tally, largeEnough: size.largeEnough }, size.largest);
      } else {
        const r = scan(snapshot, job);
        if (r.kind === 'placed') {
          snapshot.hold(job, r.placement);
          placed.push(r.placement);
          continue;
        }
        reason = describe(need, job.tier, r.tally, r.largest);
        const list = failed[job.tier].filter((f) => !covers(f.need, need));
        if (list.length < MAX_FAILED_SHAPES) list.push({ need, tally: r.tally });
        failed[job.tier] = list;
      }
      reasons.set(key, reason);
    }
    waiting.set(job.jobId, reason);
  }
  return { placed, waiting };
}

// ---------------------------------------------------------------------------

const POOLS_OF: Record<Tier, readonly Pool[]> = { FAST: [Pool.fast], FLEX: [Pool.flex, Pool.fast] };

/** Bounds the dominance check per job; past it, new failed shapes only get the exact-shape cache. */
const MAX_FAILED_SHAPES = 256;

interface Need {
  gpus: number;
  /** 0 when no GPU is asked for. */
  vram: number;
  cpu: number;
  ram: number;
}

const needOf = (job: JobRequest): Need => ({
  gpus: job.gpuCount,
  vram: job.gpuCount > 0 ? job.vramPerGpuGb : 0,
  cpu: job.cpuCores,
  ram: job.ramGb,
});

/** Needs at least as much as `b` in every dimension, so fails wherever `b` fails. */
const covers = (a: Need, b: Need): boolean => a.gpus >= b.gpus && a.vram >= b.vram && a.cpu >= b.cpu && a.ram >= b.ram;

interface Tally {
  /** Nodes of the allowed pools, ready or not. */
  known: number;
  /** Of those, how many could hold the job when empty. */
  largeEnough: number;
  notReady: number;
  ready: number;
  /** Ready nodes that fail, each counted once by its first cause in this order. */
  busy: number;
  gpus: number;
  cpu: number;
  ram: number;
}

/** The most any allowed node has in total, ready or not. */
interface Largest {
  /** GPUs with at least the VRAM asked for. */
  fitGpus: number;
  gpuVram: number;
  cpu: number;
  ram: number;
}

interface Failure {
  need: Need;
  tally: Tally;
}

/** Distinct node shapes of a tier's pools: totals never change within one placeQueue call. */
interface NodeShape {
  /** All GPUs' VRAM, descending. */
  vrams: number[];
  cpu: number;
  ram: number;
  count: number;
}

function nodeShapes(snapshot: CapacitySnapshot, tier: Tier): NodeShape[] {
  const shapes = new Map<string, NodeShape>();
  for (const pool of POOLS_OF[tier]) {
    for (const node of snapshot.states(pool)) {
      const vrams = node.gpus.map((g) => g.vramGb).sort((a, b) => b - a);
      const key = `${node.cpuTotal}|${node.ramTotal}|${vrams.join(',')}`;
      const known = shapes.get(key);
      if (known) known.count++;
      else shapes.set(key, { vrams, cpu: node.cpuTotal, ram: node.ramTotal, count: 1 });
    }
  }
  return [...shapes.values()];
}

/** The same answer as scan's "when empty" part, from the distinct shapes. */
function sizeCheck(shapes: NodeShape[], need: Need): { largeEnough: number; largest: Largest } {
  const largest: Largest = { fitGpus: 0, gpuVram: 0, cpu: 0, ram: 0 };
  let largeEnough = 0;
  for (const s of shapes) {
    let fitGpus = 0;
    while (fitGpus < s.vrams.length && s.vrams[fitGpus]! >= need.vram) fitGpus++;
    largest.fitGpus = Math.max(largest.fitGpus, fitGpus);
    largest.gpuVram = Math.max(largest.gpuVram, s.vrams[0] ?? 0);
    largest.cpu = Math.max(largest.cpu, s.cpu);
    largest.ram = Math.max(largest.ram, s.ram);
    if (fitGpus >= need.gpus && need.cpu <= s.cpu + EPSILON && need.ram <= s.ram + EPSILON) largeEnough += s.count;
  }
  return { largeEnough, largest };
}

function shapeKey(job: JobRequest): string {
  const n = needOf(job);
  return `${job.tier}|${n.gpus}|${n.vram}|${n.cpu}|${n.ram}`;
}

interface Candidate {
  node: NodeState;
  /** Position in node.freeGpus of the first chosen GPU. */
  start: number;
  poolRank: number;
  freeAfter: number;
  vramLeft: number;
  resLeft: number;
}

function better(a: Candidate, b: Candidate): boolean {
  if (a.poolRank !== b.poolRank) return a.poolRank < b.poolRank;
  if (a.freeAfter !== b.freeAfter) return a.freeAfter < b.freeAfter;
  if (a.vramLeft !== b.vramLeft) return a.vramLeft < b.vramLeft;
  if (a.resLeft !== b.resLeft) return a.resLeft < b.resLeft;
  return a.node.nodeId < b.node.nodeId;
}

const fraction = (left: number, total: number): number => (total > 0 ? left / total : 0);

// --- reasons ------------------------------------------------------------------

const plural = (n: number, one: string, many: string): string => (n === 1 ? one : many);

const cores = (n: number): string => `${n} CPU ${plural(n, 'core', 'cores')}`;

/** "2 GPUs with ≥ 80 GB", "1 GPU". */
function gpuPhrase(count: number, vram: number): string {
  return `${count} ${plural(count, 'GPU', 'GPUs')}${vram > 0 ? ` with ≥ ${vram} GB` : ''}`;
}

function describe(need: Need, tier: Tier, t: Tally, largest: Largest): string {
  const flex = tier === 'FLEX';
  const pools = flex ? 'flex or fast' : 'fast';
  if (t.known === 0) return `no ready ${pools} node`;

  if (t.largeEnough === 0) {
    const parts: string[] = [];
    if (largest.fitGpus < need.gpus) {
      if (largest.fitGpus > 0) parts.push(`needs ${gpuPhrase(need.gpus, need.vram)}, the largest has ${largest.fitGpus}`);
      else if (largest.gpuVram > 0) parts.push(`needs ${gpuPhrase(need.gpus, need.vram)}, the largest GPU has ${largest.gpuVram} GB`);
      else parts.push(`needs ${gpuPhrase(need.gpus, need.vram)}, none has a GPU`);
    }
    if (largest.cpu + EPSILON < need.cpu) parts.push(`needs ${cores(need.cpu)}, the largest has ${largest.cpu}`);
    if (largest.ram + EPSILON < need.ram) parts.push(`needs ${need.ram} GB RAM, the largest has ${largest.ram} GB`);
    if (parts.length === 0) {
      const all = [...(need.gpus > 0 ? [gpuPhrase(need.gpus, need.vram)] : []), cores(need.cpu), `${need.ram} GB RAM`];
      parts.push(`none has ${all.slice(0, -1).join(', ')} and ${all[all.length - 1]} together`);
    }
    return `no ${pools} node is large enough: ${parts.join('; ')}`;
  }

  if (t.ready === 0) {
    return `no ready ${pools} node (${t.notReady} ${plural(t.notReady, 'is', 'are')} registering, draining or lost)`;
  }

  const causes: string[] = [];
  if (t.busy > 0) causes.push(`${t.busy} ${plural(t.busy, 'is', 'are')} busy with FAST jobs`);
  if (t.gpus > 0) {
    const has = plural(t.gpus, 'has', 'have');
    const withVram = need.vram > 0 ? ` with ≥ ${need.vram} GB` : '';
    causes.push(
      need.gpus === 1
        ? `${t.gpus} ${has} no free GPU${withVram}`
        : `${t.gpus} ${has} fewer than ${need.gpus} free GPUs${withVram}`,
    );
  }
  if (t.cpu > 0) causes.push(`${t.cpu} ${plural(t.cpu, 'lacks', 'lack')} free CPU (needs ${need.cpu} ${plural(need.cpu, 'core', 'cores')})`);
  if (t.ram > 0) causes.push(`${t.ram} ${plural(t.ram, 'lacks', 'lack')} free RAM (needs ${need.ram} GB)`);
  return `0 of ${t.ready} ready ${pools} ${plural(t.ready, 'node', 'nodes')} can hold it: ${causes.join(', ')}`;
}
