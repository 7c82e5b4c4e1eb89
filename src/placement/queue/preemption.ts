/**
 * Preemption: which FLEX holds to kill so that a blocked FAST job fits.
 *
 * Only FAST jobs preempt, only on schedulable fast nodes, and only holds the
 * snapshot marks preemptible (a FLEX job on a fast node) are victims; a FAST
 * hold never is. The cost of a victim is the work it loses: its GPUs on all
 * its nodes × the seconds it has run. A gang victim is killed as a whole
 * (a FLEX gang with one member on a fast node goes with its flex members).
 *
 * Per node the cheapest sufficient set is found exactly, by branch and bound
 * over the node's candidates (cheapest first, pruned on cost and on what the
 * remaining candidates could still free). A node holds at most a handful of
 * jobs (one per GPU, plus CPU-only ones); only candidates that free something
 * the job is short of count, and past MAX_CANDIDATES_PER_NODE only the
 * cheapest are searched, which bounds the search at 2^16 subsets per node.
 *
 * For a single-node job the per-node optimum is the global one (holds on
 * other nodes cannot help). A gang takes the nodeCount cheapest nodes, each
 * solved alone; a gang victim shared by two of them is counted once. That
 * may miss a cheaper combination, which is accepted (gangs that must preempt
 * are rare, and the answer is still sufficient).
 *
 * Holds already being killed (`preempting`) are never chosen again; those
 * killed for THIS job count as already free.
 *
 * Cost: a single-node job only visits the nodes that hold something
 * preemptible (`opts.nodes`; nowhere else can killing help it), and each
 * node's search starts bounded by the best node found so far, so most nodes
 * are given up at the root of their search.
 */
import { Pool } from '../../domain/cluster.ts';
import type { JobRequest, NodeView, Reservation, SnapshotReader } from '../types.ts';
import { EPS } from './reservations.ts';

/** See the module comment: bounds the exact search at 2^16 subsets per node. */
export const MAX_CANDIDATES_PER_NODE = 16;

export interface PreemptionOptions {
  now: number;
  /** The node's block must outlive now + grace + expected duration + this margin (seconds). */
  blockMarginSec: number;
  /** When the victims' GPUs are expected free: SIGTERM to SIGKILL. */
  graceSec: number;
  /** Reservations made so far, by node id; a node reserved by another job is not used. */
  reservations?: ReadonlyMap<string, Reservation>;
  /** Victims being killed → the FAST job each makes room for. */
  preempting?: ReadonlyMap<string, string>;
  /** GPUs per victim (all nodes), filled lazily; share one map across a pass. */
  gpuCache?: Map<string, number>;
  /**
   * Every fast node holding something preemptible (a superset is fine), to
   * search instead of the whole fast pool. Ignored for gangs: a gang may also
   * need nodes where it already fits.
   */
  nodes?: Iterable<NodeView>;
}

export interface PreemptionPlan {
  /** The nodes the job will take, rank order (cheapest first, ties by node id). */
  nodeIds: string[];
  /** New victims to kill, sorted by job id. Empty when holds already being killed suffice. */
  victims: string[];
  /** Victims already being killed for this job on the chosen nodes, sorted. */
  reused: string[];
  /** GPU-seconds the new victims lose. */
  lostGpuSeconds: number;
}

interface NodeChoice {
  nodeId: string;
  victims: VictimCandidate[];
  reused: string[];
  cost: number;
}

export interface VictimCandidate {
  jobId: string;
  /** GPUs freed with enough VRAM for the job. */
  gpus: number;
  cpu: number;
  ram: number;
  /** GPU-seconds lost: all its GPUs (every node) × seconds run. */
  cost: number;
}

/** What is still missing on a node; ≤ 0 means enough. */
export interface Shortfall {
  gpus: number;
  cpu: number;
  ram: number;
}

const byCost = (a: VictimCandidate, b: VictimCandidate): number => a.cost - b.cost || (a.jobId < b.jobId ? -1 : 1);
const byJobId = (a: VictimCandidate, b: VictimCandidate): number => (a.jobId < b.jobId ? -1 : 1);

function makeChoice(nodeId: string, victims: VictimCandidate[], reused: string[] | undefined, cost: number): NodeChoice {
  return { nodeId, victims: victims.sort(byJobId), reused: reused ? reused.sort() : [], cost };
}

const byNodeChoice = (a: NodeChoice, b: NodeChoice): number =>
  a.cost - b.cost || a.victims.length - b.victims.length || (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0);

/**
 * The cheapest way to make room for FAST `job`, or undefined when no set of
 * victims would do (or nothing would be killed: then the job does not need
 * preemption, or cannot be helped by it).
 */
export function planPreemption(snapshot: SnapshotReader, job: JobRequest, opts: PreemptionOptions): PreemptionPlan | undefined {
  if (job.tier !== 'FAST') return undefined;
  const count = Math.max(job.nodeCount, 1);
  const search = new NodeSearch(snapshot, job, opts);
  const choices: NodeChoice[] = [];
  let best: NodeChoice | undefined;
  for (const node of count === 1 && opts.nodes ? opts.nodes : snapshot.states(Pool.fast)) {
    // Single node: a node must beat the best so far (ties kept, for the node-id tie-break).
    const c = search.choose(node, count === 1 ? best : undefined);
    if (!c) continue;
    choices.push(c);
    if (!best || byNodeChoice(c, best) < 0) best = c;
  }
  if (choices.length < count) return undefined;
  const chosen = choices.sort(byNodeChoice).slice(0, count);
  const victims = new Map<string, number>();
  const reused = new Set<string>();
  for (const c of chosen) {
    for (const v of c.victims) victims.set(v.jobId, v.cost);
    for (const v of c.reused) reused.add(v);
  }
  if (victims.size + reused.size === 0) return undefined;
  let lostGpuSeconds = 0;
  for (const cost of victims.values()) lostGpuSeconds += cost;
  return {
    nodeIds: chosen.map((c) => c.nodeId),
    victims: [...victims.keys()].sort(),
    reused: [...reused].sort(),
    lostGpuSeconds,
  };
}

/** The VRAM of GPU `index` on `node` (GPUs are usually listed by index, so try that slot first). */
function vramAt(node: NodeView, index: number): number {
  const g = node.gpus[index];
  if (g && g.index === index) return g.vramGb;
  for (const x of node.gpus) if (x.index === index) return x.vramGb;
  return 0;
}

function usableGpus(node: NodeView, indices: readonly number[], vram: number): number {
  let n = 0;
  for (const i of indices) if (vramAt(node, i) >= vram) n++;
  return n;
}

/** One job's search, node by node. */
class NodeSearch {
  readonly #snapshot: SnapshotReader;
  readonly #job: JobRequest;
  readonly #opts: PreemptionOptions;
  readonly #gpuCache: Map<string, number>;
  readonly #vram: number;
  readonly #startAt: number;

  constructor(snapshot: SnapshotReader, job: JobRequest, opts: PreemptionOptions) {
    this.#snapshot = snapshot;
    this.#job = job;
    this.#opts = opts;
    this.#gpuCache = opts.gpuCache ?? new Map();
    this.#vram = job.gpuCount > 0 ? job.vramPerGpuGb : 0;
    this.#startAt = opts.now + opts.graceSec * 1000;
  }

  /** The cheapest victim set on one node, or undefined when the node cannot take the job even so (or cannot beat `bound`). */
  choose(node: NodeView, bound: NodeChoice | undefined): NodeChoice | undefined {
    const job = this.#job;
    const opts = this.#opts;
    if (!node.schedulable || node.pool !== Pool.fast) return undefined;
    const other = opts.reservations?.get(node.nodeId);
    if (other && other.jobId !== job.jobId) return undefined;
    if (node.endsAt != null && this.#startAt + (job.expectedDurationSec + opts.blockMarginSec) * 1000 > node.endsAt) return undefined;

    // What is free, plus what is already being killed for this job.
    const vram = this.#vram;
    let gpus = 0;
    for (const g of node.freeGpus) if (g.vramGb >= vram) gpus++;
    let cpu = node.cpuFree;
    let ram = node.ramFree;
    let reused: string[] | undefined;
    for (const h of node.holds) {
      if (opts.preempting?.get(h.jobId) !== job.jobId) continue;
      (reused ??= []).push(h.jobId);
      gpus += usableGpus(node, h.gpuIndices, vram);
      cpu += h.cpu;
      ram += h.ram;
    }
    const short: Shortfall = { gpus: job.gpuCount - gpus, cpu: job.cpuCores - cpu - EPS, ram: job.ramGb - ram - EPS };
    if (short.gpus <= 0 && short.cpu <= 0 && short.ram <= 0) return makeChoice(node.nodeId, [], reused, 0);

    // Candidates: preemptible FLEX holds not already being killed, that help a short dimension, and that
    // alone cost no more than the bound (costs are ≥ 0, so a dearer one is in no set that could beat it).
    const cands: VictimCandidate[] = [];
    let canGpus = 0;
    let canCpu = 0;
    let canRam = 0;
    for (const h of node.holds) {
      if (!h.preemptible || h.tier !== 'FLEX' || opts.preempting?.has(h.jobId)) continue;
      const g = short.gpus > 0 ? usableGpus(node, h.gpuIndices, vram) : 0;
      if (!(g > 0 || (short.cpu > 0 && h.cpu > 0) || (short.ram > 0 && h.ram > 0))) continue;
      const cost = this.#cost(h.jobId, h.startedAt);
      if (bound && cost > bound.cost) continue;
      cands.push({ jobId: h.jobId, gpus: g, cpu: h.cpu, ram: h.ram, cost });
      canGpus += g;
      canCpu += h.cpu;
      canRam += h.ram;
    }
    if (canGpus < short.gpus || canCpu < short.cpu || canRam < short.ram) return undefined;
    // Cheapest first, so the first solutions found bound the rest.
    cands.sort(byCost);
    if (cands.length > MAX_CANDIDATES_PER_NODE) cands.length = MAX_CANDIDATES_PER_NODE;
    const best = cheapestCover(cands, short, bound && { cost: bound.cost, count: bound.victims.length });
    return best && makeChoice(node.nodeId, best.victims, reused, best.cost);
  }

  /** GPU-seconds a victim loses: its GPUs on every node × the seconds it ran. */
  #cost(jobId: string, startedAt: number): number {
    let n = this.#gpuCache.get(jobId);
    if (n === undefined) {
      n = 0;
      for (const s of this.#snapshot.holding(jobId)?.nodes ?? []) n += s.gpu_indices.length;
      this.#gpuCache.set(jobId, n);
    }
    return (n * Math.max(0, this.#opts.now - startedAt)) / 1000;
  }
}

/**
 * Exact minimum-cost subset of `cands` (sorted by cost) covering `short` in
 * every dimension; ties by fewer victims, then the first found. Branch and
 * bound: a branch stops once it is worse than the best (or than `bound`: a
 * solution from elsewhere; equal ones are still returned), or once
 * everything left could not cover what is still short.
 */
export function cheapestCover(
  cands: readonly VictimCandidate[],
  short: Shortfall,
  bound?: { cost: number; count: number },
): { victims: VictimCandidate[]; cost: number } | undefined {
  return new Cover(cands, short, bound).run();
}

class Cover {
  readonly #cands: readonly VictimCandidate[];
  readonly #short: Shortfall;
  /** What the candidates from i on could free at most, for the feasibility bound. */
  readonly #rest: Shortfall[];
  #bestCost: number;
  #bestCount: number;
  #best: VictimCandidate[] | undefined;
  readonly #picked: VictimCandidate[] = [];

  constructor(cands: readonly VictimCandidate[], short: Shortfall, bound?: { cost: number; count: number }) {
    this.#cands = cands;
    this.#short = short;
    this.#bestCost = bound?.cost ?? Infinity;
    this.#bestCount = bound?.count ?? Infinity;
    const n = cands.length;
    this.#rest = new Array<Shortfall>(n + 1);
    this.#rest[n] = { gpus: 0, cpu: 0, ram: 0 };
    for (let i = n - 1; i >= 0; i--) {
      const c = cands[i]!;
      const r = this.#rest[i + 1]!;
      this.#rest[i] = { gpus: r.gpus + c.gpus, cpu: r.cpu + c.cpu, ram: r.ram + c.ram };
    }
  }

  run(): { victims: VictimCandidate[]; cost: number } | undefined {
    this.#visit(0, 0, 0, 0, 0);
    return this.#best && { victims: this.#best, cost: this.#bestCost };
  }

  #visit(i: number, gpus: number, cpu: number, ram: number, cost: number): void {
    const picked = this.#picked.length;
    // Strictly worse than the best (or the bound) is pruned; an equal one found first is kept.
    if (cost > this.#bestCost || (cost === this.#bestCost && picked > this.#bestCount)) return;
    if (this.#best && cost === this.#bestCost && picked === this.#bestCount) return;
    const short = this.#short;
    if (gpus >= short.gpus && cpu >= short.cpu && ram >= short.ram) {
      this.#bestCost = cost;
      this.#bestCount = picked;
      this.#best = [...this.#picked];
      return; // a superset only costs as much or more
    }
    if (i === this.#cands.length) return;
    const r = this.#rest[i]!;
    if (gpus + r.gpus < short.gpus || cpu + r.cpu < short.cpu || ram + r.ram < short.ram) return;
    const c = this.#cands[i]!;
    this.#picked.push(c);
    this.#visit(i + 1, gpus + c.gpus, cpu + c.cpu, ram + c.ram, cost + c.cost);
    this.#picked.pop();
    this.#visit(i + 1, gpus, cpu, ram, cost);
  }
}
