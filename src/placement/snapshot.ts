/**
 * The coordinator's in-memory view of free capacity. Pure: no I/O, no clocks.
 *
 * Holds come only from `hold()`: the `heldBy` fields of the `NodeCapacity`
 * objects given to the constructor or `upsertNode()` are ignored (they describe
 * a node's shape). To rebuild after a restart, upsert the nodes, then `hold()`
 * every bound job.
 *
 * Index kept per node, so a placement never scans jobs: the free GPUs sorted
 * by VRAM then index, the CPU and RAM held, and how many FAST jobs hold
 * something there (the FLEX rule). Nodes are also kept per pool.
 */
import { Pool, type Tier } from '../domain/cluster.ts';
import type { GpuSlot, JobRequest, NodeCapacity, Placement } from './types.ts';

/**
 * Slack for float sums of CPU and RAM (fractional GB add up inexactly). A
 * request fits when it exceeds what is free by no more than this.
 */
export const EPSILON = 1e-9;

export interface FreeGpu {
  readonly index: number;
  readonly vramGb: number;
}

/**
 * Read-only live view of one node, for placement. Never mutate it; it
 * changes with the snapshot. Use `node()` / `nodes()` for copies.
 */
export interface NodeState {
  readonly nodeId: string;
  readonly pool: Pool;
  readonly schedulable: boolean;
  readonly cpuTotal: number;
  readonly ramTotal: number;
  /** Total minus held. Negative only if the node shrank under running jobs. */
  readonly cpuFree: number;
  readonly ramFree: number;
  /** Every GPU, in the order the node reported them. */
  readonly gpus: readonly Readonly<GpuSlot>[];
  /** The free GPUs, VRAM ascending, then index ascending. */
  readonly freeGpus: readonly FreeGpu[];
  /** How many FAST jobs hold something on this node. */
  readonly fastJobs: number;
}

/** A copy of one node with its free resources. */
export interface NodeView extends NodeCapacity {
  cpuFree: number;
  ramFree: number;
  fastJobs: number;
}

interface HoldRecord {
  jobId: string;
  tier: Tier;
  nodeId: string;
  /** Ascending. */
  gpuIndices: number[];
  cpu: number;
  ram: number;
}

class NodeEntry implements NodeState {
  nodeId: string;
  pool: Pool;
  schedulable: boolean;
  cpuTotal: number;
  ramTotal: number;
  cpuHeld = 0;
  ramHeld = 0;
  gpus: GpuSlot[];
  byIndex: Map<number, GpuSlot>;
  freeGpus: FreeGpu[] = [];
  fastJobs = 0;
  /** Jobs holding something here. */
  readonly jobs = new Set<string>();

  constructor(node: NodeCapacity) {
    checkShape(node);
    this.nodeId = node.nodeId;
    this.pool = node.pool;
    this.schedulable = node.schedulable;
    this.cpuTotal = node.cpuTotal;
    this.ramTotal = node.ramTotal;
    this.gpus = node.gpus.map((g) => ({ index: g.index, vramGb: g.vramGb, heldBy: null }));
    this.byIndex = new Map(this.gpus.map((g) => [g.index, g]));
    this.refreshFree();
  }

  get cpuFree(): number {
    return this.cpuTotal - this.cpuHeld;
  }

  get ramFree(): number {
    return this.ramTotal - this.ramHeld;
  }

  refreshFree(): void {
    this.freeGpus = this.gpus
      .filter((g) => g.heldBy === null)
      .map((g) => ({ index: g.index, vramGb: g.vramGb }))
      .sort((a, b) => a.vramGb - b.vramGb || a.index - b.index);
  }

  view(): NodeView {
    return {
      nodeId: this.nodeId,
      pool: this.pool,
      schedulable: this.schedulable,
      cpuTotal: this.cpuTotal,
      ramTotal: this.ramTotal,
      gpus: this.gpus.map((g) => ({ ...g })),
      cpuFree: this.cpuFree,
      ramFree: this.ramFree,
      fastJobs: this.fastJobs,
    };
  }
}

const isAmount = (x: number): boolean => Number.isFinite(x) && x >= 0;

function checkShape(node: NodeCapacity): void {
  const where = `node ${node.nodeId}`;
  if (node.pool !== Pool.fast && node.pool !== Pool.flex) throw new Error(`${where}: unknown pool ${String(node.pool)}`);
  if (!isAmount(node.cpuTotal)) throw new Error(`${where}: cpuTotal must be a number ≥ 0`);
  if (!isAmount(node.ramTotal)) throw new Error(`${where}: ramTotal must be a number ≥ 0`);
  const seen = new Set<number>();
  for (const g of node.gpus) {
    if (!Number.isInteger(g.index) || g.index < 0) throw new Error(`${where}: GPU index ${g.index} is not an integer ≥ 0`);
    if (seen.has(g.index)) throw new Error(`${where}: GPU index ${g.index} appears twice`);
    if (!isAmount(g.vramGb)) throw new Error(`${where}: GPU ${g.index} VRAM must be a number ≥ 0`);
    seen.add(g.index);
  }
}

export class CapacitySnapshot {
  readonly #nodes = new Map<string, NodeEntry>();
  readonly #byPool: Record<Pool, Map<string, NodeEntry>> = { fast: new Map(), flex: new Map() };
  readonly #holds = new Map<string, HoldRecord>();

  constructor(nodes: NodeCapacity[] = []) {
    for (const n of nodes) this.upsertNode(n);
  }

  /**
   * Adds a node, or replaces a known node's pool, schedulable flag, totals and
   * GPUs. Holds on GPUs that still exist (same index) are kept; a hold on a GPU
   * that is gone is dropped from that job's placement. CPU and RAM held stay
   * held (free may go negative if the node shrank under its jobs).
   */
  upsertNode(node: NodeCapacity): void {
    const old = this.#nodes.get(node.nodeId);
    const next = new NodeEntry(node);
    if (old) {
      for (const g of next.gpus) g.heldBy = old.byIndex.get(g.index)?.heldBy ?? null;
      for (const jobId of old.jobs) {
        const rec = this.#holds.get(jobId);
        if (rec) rec.gpuIndices = rec.gpuIndices.filter((i) => next.byIndex.get(i)?.heldBy === jobId);
        next.jobs.add(jobId);
      }
      next.cpuHeld = old.cpuHeld;
      next.ramHeld = old.ramHeld;
      next.fastJobs = old.fastJobs;
      next.refreshFree();
      this.#byPool[old.pool].delete(old.nodeId);
    }
    this.#nodes.set(next.nodeId, next);
    this.#byPool[next.pool].set(next.nodeId, next);
  }

  /** Forgets a node and every hold on it. False when unknown. */
  removeNode(nodeId: string): boolean {
    const entry = this.#nodes.get(nodeId);
    if (!entry) return false;
    for (const jobId of entry.jobs) this.#holds.delete(jobId);
    this.#nodes.delete(nodeId);
    this.#byPool[entry.pool].delete(nodeId);
    return true;
  }

  /** True when the flag changed; false when it already had that value or the node is unknown. */
  setSchedulable(nodeId: string, schedulable: boolean): boolean {
    const entry = this.#nodes.get(nodeId);
    if (!entry || entry.schedulable === schedulable) return false;
    entry.schedulable = schedulable;
    return true;
  }

  /** A copy of the node with its free resources, or undefined. */
  node(nodeId: string): NodeView | undefined {
    return this.#nodes.get(nodeId)?.view();
  }

  /** Copies of every node, in the order they were first added. */
  nodes(): NodeView[] {
    return [...this.#nodes.values()].map((n) => n.view());
  }

  /** Live read-only views for placement, of one pool or all; see `NodeState`. */
  states(pool?: Pool): IterableIterator<NodeState> {
    return (pool ? this.#byPool[pool] : this.#nodes).values();
  }

  /**
   * Marks `placement`'s GPUs held by `job.jobId` and subtracts its CPU and RAM.
   * Throws, changing nothing, when the placement is not for this job, the job
   * already holds something, the node or a GPU is unknown, a GPU is listed
   * twice, not free or has less VRAM than asked, the GPU count differs from
   * the request, or CPU or RAM would be over-committed. It does not check the
   * pool or schedulable flag: rebuilding holds for jobs already bound to a
   * draining node must work.
   */
  hold(job: JobRequest, placement: Placement): void {
    const jobId = job.jobId;
    if (placement.jobId !== jobId) throw new Error(`placement is for job ${placement.jobId}, not ${jobId}`);
    if (this.#holds.has(jobId)) throw new Error(`job ${jobId} already holds capacity on ${this.#holds.get(jobId)?.nodeId}`);
    const entry = this.#nodes.get(placement.nodeId);
    if (!entry) throw new Error(`job ${jobId}: unknown node ${placement.nodeId}`);
    if (!isAmount(job.cpuCores) || !isAmount(job.ramGb)) throw new Error(`job ${jobId}: CPU and RAM must be numbers ≥ 0`);
    if (placement.gpuIndices.length !== job.gpuCount) {
      throw new Error(`job ${jobId} asks for ${job.gpuCount} GPUs, the placement names ${placement.gpuIndices.length}`);
    }
    const slots: GpuSlot[] = [];
    for (const i of placement.gpuIndices) {
      const slot = entry.byIndex.get(i);
      if (!slot) throw new Error(`job ${jobId}: node ${entry.nodeId} has no GPU ${i}`);
      if (slots.includes(slot)) throw new Error(`job ${jobId}: GPU ${i} listed twice`);
      if (slot.heldBy !== null) throw new Error(`job ${jobId}: GPU ${i} on ${entry.nodeId} is held by ${slot.heldBy}`);
      if (slot.vramGb < job.vramPerGpuGb) {
        throw new Error(`job ${jobId}: GPU ${i} on ${entry.nodeId} has ${slot.vramGb} GB, needs ${job.vramPerGpuGb}`);
      }
      slots.push(slot);
    }
    if (job.cpuCores > entry.cpuFree + EPSILON) {
      throw new Error(`job ${jobId}: needs ${job.cpuCores} CPU cores, ${entry.nodeId} has ${entry.cpuFree} free`);
    }
    if (job.ramGb > entry.ramFree + EPSILON) {
      throw new Error(`job ${jobId}: needs ${job.ramGb} GB RAM, ${entry.nodeId} has ${entry.ramFree} free`);
    }

    for (const s of slots) s.heldBy = jobId;
    entry.cpuHeld += job.cpuCores;
    entry.ramHeld += job.ramGb;
    if (job.tier === 'FAST') entry.fastJobs++;
    entry.jobs.add(jobId);
    entry.refreshFree();
    this.#holds.set(jobId, {
      jobId,
      tier: job.tier,
      nodeId: entry.nodeId,
      gpuIndices: slots.map((s) => s.index).sort((a, b) => a - b),
      cpu: job.cpuCores,
      ram: job.ramGb,
    });
  }

  /** Frees whatever the job holds. False when it held nothing. */
  release(jobId: string): boolean {
    const rec = this.#holds.get(jobId);
    if (!rec) return false;
    this.#holds.delete(jobId);
    const entry = this.#nodes.get(rec.nodeId);
    if (!entry) return true;
    for (const i of rec.gpuIndices) {
      const slot = entry.byIndex.get(i);
      if (slot?.heldBy === jobId) slot.heldBy = null;
    }
    entry.jobs.delete(jobId);
    if (rec.tier === 'FAST') entry.fastJobs--;
    if (entry.jobs.size === 0) {
      // Exact zero, so float sums cannot drift over many hold/release rounds.
      entry.cpuHeld = 0;
      entry.ramHeld = 0;
    } else {
      entry.cpuHeld -= rec.cpu;
      entry.ramHeld -= rec.ram;
    }
    entry.refreshFree();
    return true;
  }

  /** A copy of what the job holds, or undefined. */
  holding(jobId: string): Placement | undefined {
    const rec = this.#holds.get(jobId);
    return rec && { jobId: rec.jobId, nodeId: rec.nodeId, gpuIndices: [...rec.gpuIndices] };
  }
}
