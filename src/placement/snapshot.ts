/**
 * The coordinator's in-memory view of free capacity. Pure: no I/O, no clocks.
 *
 * Holds come only from `hold()`: the `heldBy` fields of the `NodeCapacity`
 * objects given to the constructor or `upsertNode()` are ignored (they describe
 * a node's shape). To rebuild after a restart, upsert the nodes, then `hold()`
 * every bound job.
 *
 * Kept per node, so placement never scans jobs: the free GPUs sorted by VRAM
 * then index, the CPU and RAM held, how many FAST jobs hold something there
 * (the FLEX rule), and the holds. Across nodes: the free-GPU index
 * (free-index.ts), per-pool counters, a census of node shapes (for the
 * unschedulable check) and the GPUs held per user (fair share), so every
 * question the pipeline and the queue ask is O(1) or walks only the nodes
 * that can matter.
 */
import { Pool, type Tier } from '../domain/cluster.ts';
import { FreeIndex, type Filed, type FreeIndexReader } from './free-index.ts';
import { checkSlice, groupOf, isAmount, NodeEntry, type MutableHold, type NodeCopy } from './node-entry.ts';
import type { GpuSlot, HoldTimes, HoldView, JobRequest, NodeCapacity, NodeView, Placement, SnapshotReader } from './types.ts';

export { EPSILON, type NodeCopy } from './node-entry.ts';

export type { FreeGpu, NodeView } from './types.ts';

/** A distinct node shape of a pool and how many nodes have it (any state). */
export interface ShapeCount {
  /** Every GPU's VRAM, descending. */
  readonly vrams: readonly number[];
  readonly cpu: number;
  readonly ram: number;
  readonly count: number;
}

interface HoldRecord {
  jobId: string;
  tier: Tier;
  userId: string;
  times: HoldTimes;
  /** Rank order; a slice leaves when released or its node is removed. */
  slices: { node: NodeEntry; view: MutableHold }[];
}

interface PoolCounters {
  nodes: number;
  ready: number;
  /** GPUs on ready nodes. */
  readyGpus: number;
}

export class CapacitySnapshot implements SnapshotReader {
  readonly #nodes = new Map<string, NodeEntry>();
  readonly #byPool: Record<Pool, Map<string, NodeEntry>> = { fast: new Map(), flex: new Map() };
  readonly #holds = new Map<string, HoldRecord>();
  readonly #userGpus = new Map<string, number>();
  readonly #pools: Record<Pool, PoolCounters> = { fast: { nodes: 0, ready: 0, readyGpus: 0 }, flex: { nodes: 0, ready: 0, readyGpus: 0 } };
  readonly #shapes: Record<Pool, Map<string, ShapeCount & { count: number }>> = { fast: new Map(), flex: new Map() };
  #shapeVersion = 0;
  readonly #index = new FreeIndex<NodeEntry>();

  constructor(nodes: NodeCapacity[] = []) {
    for (const n of nodes) this.upsertNode(n);
  }

  /**
   * Adds a node, or replaces a known node's pool, schedulable flag, totals,
   * GPUs, block and end. Holds on GPUs that still exist (same index) are kept;
   * a GPU that is gone leaves its job's slice. CPU and RAM held stay held
   * (free may go negative if the node shrank under its jobs).
   */
  upsertNode(node: NodeCapacity): void {
    const old = this.#nodes.get(node.nodeId);
    const next = new NodeEntry(node);
    // A re-registration with the same shape leaves the census (and the shape cache built on it) alone.
    const sameShape = old !== undefined && old.shapeKey === next.shapeKey && old.pool === next.pool;
    if (old) {
      // Not #forget: the maps keep the node's place (nodes() lists in order of first registration).
      this.#index.file(old, null);
      this.#count(old, -1, !sameShape);
      if (old.pool !== next.pool) this.#byPool[old.pool].delete(old.nodeId);
      for (const g of next.gpus) g.heldBy = old.byIndex.get(g.index)?.heldBy ?? null;
      for (const h of old.holds) {
        const kept = h.gpuIndices.filter((i) => next.byIndex.get(i)?.heldBy === h.jobId);
        this.#addUserGpus(h.userId, kept.length - h.gpuIndices.length);
        h.gpuIndices = kept;
        h.preemptible = h.tier === 'FLEX' && next.pool === Pool.fast;
        const rec = this.#holds.get(h.jobId);
        for (const s of rec?.slices ?? []) if (s.node === old) s.node = next;
      }
      next.holds = old.holds;
      next.cpuHeld = old.cpuHeld;
      next.ramHeld = old.ramHeld;
      next.fastJobs = old.fastJobs;
      next.refreshFree();
    }
    this.#nodes.set(next.nodeId, next);
    this.#byPool[next.pool].set(next.nodeId, next);
    this.#count(next, +1, !sameShape);
    if (this.#index.learnLevels(next)) this.#index.rebuild(this.#nodes.values(), groupOf);
    else this.#index.file(next, groupOf(next));
  }

  /** Forgets a node and every slice held on it (a gang keeps its other slices). False when unknown. */
  removeNode(nodeId: string): boolean {
    const entry = this.#nodes.get(nodeId);
    if (!entry) return false;
    for (const h of [...entry.holds]) this.#dropSlice(h.jobId, entry);
    this.#forget(entry);
    return true;
  }

  /** True when the flag changed; false when it already had that value or the node is unknown. */
  setSchedulable(nodeId: string, schedulable: boolean): boolean {
    const entry = this.#nodes.get(nodeId);
    if (!entry || entry.schedulable === schedulable) return false;
    this.#count(entry, -1, false);
    entry.schedulable = schedulable;
    this.#count(entry, +1, false);
    this.#index.file(entry, groupOf(entry));
    return true;
  }

  /** Sets when the node's block ends (null: never). False when the node is unknown. */
  setEndsAt(nodeId: string, endsAt: number | null): boolean {
    const entry = this.#nodes.get(nodeId);
    if (!entry) return false;
    if (endsAt !== null && !Number.isFinite(endsAt)) throw new Error(`node ${nodeId}: endsAt must be a finite time or null`);
    entry.endsAt = endsAt;
    return true;
  }

  /** A copy of the node with its free resources, or undefined. */
  node(nodeId: string): NodeCopy | undefined {
    return this.#nodes.get(nodeId)?.copy();
  }

  /** Copies of every node, in the order they were first added. */
  nodes(): NodeCopy[] {
    return [...this.#nodes.values()].map((n) => n.copy());
  }

  /** Live read-only views for placement, of one pool or all; see `NodeView`. */
  states(pool?: Pool): IterableIterator<NodeView> {
    return (pool ? this.#byPool[pool] : this.#nodes).values();
  }

  state(nodeId: string): NodeView | undefined {
    return this.#nodes.get(nodeId);
  }

  /**
   * Holds `placement` for `job`: on each node, marks the slice's GPUs held and
   * subtracts the job's CPU and RAM. All or nothing: throws, changing nothing,
   * when the placement is not for this job, the job already holds something,
   * the slice count differs from nodeCount, a node appears twice or is
   * unknown, a GPU is unknown, listed twice, not free or has less VRAM than
   * asked, a slice's GPU count differs from gpuCount, or CPU or RAM would be
   * over-committed. Pool and schedulable are not checked: rebuilding holds of
   * jobs already bound to a draining node must work.
   */
  hold(job: JobRequest, placement: Placement, times: HoldTimes): void {
    const jobId = job.jobId;
    if (placement.jobId !== jobId) throw new Error(`placement is for job ${placement.jobId}, not ${jobId}`);
    if (this.#holds.has(jobId)) throw new Error(`job ${jobId} already holds capacity`);
    if (!isAmount(job.cpuCores) || !isAmount(job.ramGb)) throw new Error(`job ${jobId}: CPU and RAM must be numbers ≥ 0`);
    if (!Number.isFinite(times.startedAt) || !Number.isFinite(times.endsAt)) throw new Error(`job ${jobId}: hold times must be finite`);
    if (placement.nodes.length !== job.nodeCount) {
      throw new Error(`job ${jobId} asks for ${job.nodeCount} nodes, the placement names ${placement.nodes.length}`);
    }
    const checked: { entry: NodeEntry; slots: GpuSlot[] }[] = [];
    for (const slice of placement.nodes) {
      const entry = this.#nodes.get(slice.node_id);
      if (!entry) throw new Error(`job ${jobId}: unknown node ${slice.node_id}`);
      if (checked.some((c) => c.entry === entry)) throw new Error(`job ${jobId}: node ${slice.node_id} listed twice`);
      checked.push({ entry, slots: checkSlice(job, entry, slice.gpu_indices) });
    }

    const rec: HoldRecord = { jobId, tier: job.tier, userId: job.userId, times: { ...times }, slices: [] };
    for (const { entry, slots } of checked) {
      for (const s of slots) s.heldBy = jobId;
      entry.cpuHeld += job.cpuCores;
      entry.ramHeld += job.ramGb;
      if (job.tier === 'FAST') entry.fastJobs++;
      const view: MutableHold = {
        jobId,
        tier: job.tier,
        userId: job.userId,
        priority: job.priority,
        gpuIndices: slots.map((s) => s.index).sort((a, b) => a - b),
        cpu: job.cpuCores,
        ram: job.ramGb,
        preemptible: job.tier === 'FLEX' && entry.pool === Pool.fast,
        startedAt: times.startedAt,
        endsAt: times.endsAt,
      };
      entry.holds.push(view);
      rec.slices.push({ node: entry, view });
      entry.refreshFree();
      this.#index.file(entry, groupOf(entry));
      this.#addUserGpus(job.userId, slots.length);
    }
    this.#holds.set(jobId, rec);
  }

  /** Frees every slice the job holds. False when it held nothing. */
  release(jobId: string): boolean {
    const rec = this.#holds.get(jobId);
    if (!rec) return false;
    for (const s of [...rec.slices]) this.#dropSlice(jobId, s.node);
    return true;
  }

  /** Frees one gang member's slice; the hold goes with its last slice. False when the job holds nothing there. */
  releaseSlice(jobId: string, nodeId: string): boolean {
    const entry = this.#nodes.get(nodeId);
    const rec = this.#holds.get(jobId);
    if (!entry || !rec?.slices.some((s) => s.node === entry)) return false;
    this.#dropSlice(jobId, entry);
    return true;
  }

  /** A copy of the slices the job still holds, rank order, or undefined. */
  holding(jobId: string): Placement | undefined {
    const rec = this.#holds.get(jobId);
    return rec && { jobId, nodes: rec.slices.map((s) => ({ node_id: s.node.nodeId, gpu_indices: [...s.view.gpuIndices] })) };
  }

  /** Live read-only views of the job's slices, rank order (empty when it holds nothing). */
  holdsOf(jobId: string): readonly HoldView[] {
    return this.#holds.get(jobId)?.slices.map((s) => s.view) ?? [];
  }

  holdTimes(jobId: string): HoldTimes | undefined {
    const t = this.#holds.get(jobId)?.times;
    return t && { ...t };
  }

  /** Moves the job's expected end (it outlived its estimate). False when it holds nothing. */
  extendHold(jobId: string, endsAt: number): boolean {
    const rec = this.#holds.get(jobId);
    if (!rec) return false;
    if (!Number.isFinite(endsAt)) throw new Error(`job ${jobId}: endsAt must be finite`);
    rec.times.endsAt = endsAt;
    for (const s of rec.slices) s.view.endsAt = endsAt;
    return true;
  }

  /** Ids of every job holding something. */
  heldJobs(): IterableIterator<string> {
    return this.#holds.keys();
  }

  userGpus(userId: string): number {
    return this.#userGpus.get(userId) ?? 0;
  }

  totalGpus(pool?: Pool): number {
    return pool ? this.#pools[pool].readyGpus : this.#pools.fast.readyGpus + this.#pools.flex.readyGpus;
  }

  /** Nodes in a pool (or all), any state. */
  nodeCount(pool?: Pool): number {
    return pool ? this.#pools[pool].nodes : this.#pools.fast.nodes + this.#pools.flex.nodes;
  }

  /** Schedulable nodes in a pool (or all). */
  readyCount(pool?: Pool): number {
    return pool ? this.#pools[pool].ready : this.#pools.fast.ready + this.#pools.flex.ready;
  }

  /** The distinct node shapes of a pool, any state; changes only when `shapeVersion` does. */
  shapes(pool: Pool): Iterable<ShapeCount> {
    return this.#shapes[pool].values();
  }

  /** Bumped whenever a node is added, removed or changes shape or pool. */
  get shapeVersion(): number {
    return this.#shapeVersion;
  }

  /** Whether any schedulable node has a free GPU (from the index; no node is visited). */
  anyFreeGpu(): boolean {
    return this.#index.anyFree();
  }

  /** The free-GPU index, for the pipeline (free-index.ts). */
  get index(): FreeIndexReader<NodeView & Filed> {
    return this.#index;
  }

  /** A node with where the index files it, for the pipeline. */
  indexed(nodeId: string): (NodeView & Filed) | undefined {
    return this.#nodes.get(nodeId);
  }

  // --- internals ------------------------------------------------------------------

  /** Takes a node out of every structure except its holds (upsert moves those, removeNode drops them first). */
  #forget(entry: NodeEntry): void {
    this.#index.file(entry, null);
    this.#count(entry, -1);
    this.#nodes.delete(entry.nodeId);
    this.#byPool[entry.pool].delete(entry.nodeId);
  }

  /** Pool counters; the shape census too unless only the schedulable flag moves (the census counts any state). */
  #count(entry: NodeEntry, sign: 1 | -1, census = true): void {
    const c = this.#pools[entry.pool];
    c.nodes += sign;
    if (entry.schedulable) {
      c.ready += sign;
      c.readyGpus += sign * entry.gpus.length;
    }
    if (!census) return;
    this.#shapeVersion++;
    const shapes = this.#shapes[entry.pool];
    const s = shapes.get(entry.shapeKey);
    if (!s) {
      const vrams = entry.gpus.map((g) => g.vramGb).sort((a, b) => b - a);
      shapes.set(entry.shapeKey, { vrams, cpu: entry.cpuTotal, ram: entry.ramTotal, count: 1 });
    } else if (sign < 0 && s.count === 1) shapes.delete(entry.shapeKey);
    else s.count += sign;
  }

  #addUserGpus(userId: string, delta: number): void {
    if (delta === 0) return;
    const n = (this.#userGpus.get(userId) ?? 0) + delta;
    if (n === 0) this.#userGpus.delete(userId);
    else this.#userGpus.set(userId, n);
  }

  /** Frees the job's slice on `entry`; drops the hold when it was the last. */
  #dropSlice(jobId: string, entry: NodeEntry): void {
    const rec = this.#holds.get(jobId);
    const at = entry.holds.findIndex((h) => h.jobId === jobId);
    if (!rec || at < 0) return;
    const view = entry.holds[at]!;
    entry.holds.splice(at, 1);
    for (const i of view.gpuIndices) {
      const slot = entry.byIndex.get(i);
      if (slot?.heldBy === jobId) slot.heldBy = null;
    }
    if (view.tier === 'FAST') entry.fastJobs--;
    if (entry.holds.length === 0) {
      // Exact zero, so float sums cannot drift over many hold/release rounds.
      entry.cpuHeld = 0;
      entry.ramHeld = 0;
    } else {
      entry.cpuHeld -= view.cpu;
      entry.ramHeld -= view.ram;
    }
    this.#addUserGpus(view.userId, -view.gpuIndices.length);
    entry.refreshFree();
    if (this.#nodes.get(entry.nodeId) === entry) this.#index.file(entry, groupOf(entry));
    rec.slices = rec.slices.filter((s) => s.node !== entry);
    if (rec.slices.length === 0) this.#holds.delete(jobId);
  }
}
