/**
 * One node as the snapshot keeps it (the live NodeView placement reads),
 * and the checks on what a node or a hold may be. Split from snapshot.ts to
 * keep each file readable; only the snapshot creates or mutates these.
 */
import { Pool } from '../domain/cluster.ts';
import { GROUP, type Group } from './free-index.ts';
import type { FreeGpu, GpuSlot, HoldView, JobRequest, NodeCapacity, NodeView } from './types.ts';

/**
 * Slack for float sums of CPU and RAM (fractional GB add up inexactly). A
 * request fits when it exceeds what is free by no more than this.
 */
export const EPSILON = 1e-9;

/** A copy of one node with its free resources. */
export interface NodeCopy extends NodeCapacity {
  blockId: string | null;
  endsAt: number | null;
  cpuFree: number;
  ramFree: number;
  fastJobs: number;
}

export type MutableHold = { -readonly [K in keyof HoldView]: HoldView[K] } & { gpuIndices: number[] };

export class NodeEntry implements NodeView {
  readonly nodeId: string;
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
  blockId: string | null;
  endsAt: number | null;
  holds: MutableHold[] = [];
  shapeKey: string;
  group: Group | null = null;
  counts: number[] = [];
  tight: number[] = [];

  constructor(node: NodeCapacity) {
    checkShape(node);
    this.nodeId = node.nodeId;
    this.pool = node.pool;
    this.schedulable = node.schedulable;
    this.cpuTotal = node.cpuTotal;
    this.ramTotal = node.ramTotal;
    this.blockId = node.blockId ?? null;
    this.endsAt = node.endsAt ?? null;
    this.gpus = node.gpus.map((g) => ({ index: g.index, vramGb: g.vramGb, heldBy: null }));
    this.byIndex = new Map(this.gpus.map((g) => [g.index, g]));
    const vrams = this.gpus.map((g) => g.vramGb).sort((a, b) => b - a);
    this.shapeKey = `${this.cpuTotal}|${this.ramTotal}|${vrams.join(',')}`;
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

  copy(): NodeCopy {
    return {
      nodeId: this.nodeId,
      pool: this.pool,
      schedulable: this.schedulable,
      cpuTotal: this.cpuTotal,
      ramTotal: this.ramTotal,
      gpus: this.gpus.map((g) => ({ ...g })),
      blockId: this.blockId,
      endsAt: this.endsAt,
      cpuFree: this.cpuFree,
      ramFree: this.ramFree,
      fastJobs: this.fastJobs,
    };
  }
}

export const isAmount = (x: number): boolean => Number.isFinite(x) && x >= 0;

function checkShape(node: NodeCapacity): void {
  const where = `node ${node.nodeId}`;
  if (node.pool !== Pool.fast && node.pool !== Pool.flex) throw new Error(`${where}: unknown pool ${String(node.pool)}`);
  if (!isAmount(node.cpuTotal)) throw new Error(`${where}: cpuTotal must be a number ≥ 0`);
  if (!isAmount(node.ramTotal)) throw new Error(`${where}: ramTotal must be a number ≥ 0`);
  if (node.endsAt != null && !Number.isFinite(node.endsAt)) throw new Error(`${where}: endsAt must be a finite time or null`);
  const seen = new Set<number>();
  for (const g of node.gpus) {
    if (!Number.isInteger(g.index) || g.index < 0) throw new Error(`${where}: GPU index ${g.index} is not an integer ≥ 0`);
    if (seen.has(g.index)) throw new Error(`${where}: GPU index ${g.index} appears twice`);
    if (!isAmount(g.vramGb)) throw new Error(`${where}: GPU ${g.index} VRAM must be a number ≥ 0`);
    seen.add(g.index);
  }
}

/** Where the index files a node: the tier rule, decided once per change instead of once per visit. */
export function groupOf(n: NodeEntry): Group | null {
  if (!n.schedulable) return null;
  if (n.pool === Pool.flex) return GROUP.flex;
  return n.fastJobs > 0 ? GROUP.fastBusy : GROUP.fastIdle;
}

/** Checks one slice as v1's hold() did; returns the GPU slots to take. */
export function checkSlice(job: JobRequest, entry: NodeEntry, gpuIndices: readonly number[]): GpuSlot[] {
  const jobId = job.jobId;
  if (gpuIndices.length !== job.gpuCount) {
    throw new Error(`job ${jobId} asks for ${job.gpuCount} GPUs per node, the slice on ${entry.nodeId} names ${gpuIndices.length}`);
  }
  const slots: GpuSlot[] = [];
  for (const i of gpuIndices) {
    const slot = entry.byIndex.get(i);
    if (!slot) throw new Error(`job ${jobId}: node ${entry.nodeId} has no GPU ${i}`);
    if (slots.includes(slot)) throw new Error(`job ${jobId}: GPU ${i} on ${entry.nodeId} listed twice`);
    if (slot.heldBy !== null) throw new Error(`job ${jobId}: GPU ${i} on ${entry.nodeId} is held by ${slot.heldBy}`);
    if (slot.vramGb < job.vramPerGpuGb) throw new Error(`job ${jobId}: GPU ${i} on ${entry.nodeId} has ${slot.vramGb} GB, needs ${job.vramPerGpuGb}`);
    slots.push(slot);
  }
  if (job.cpuCores > entry.cpuFree + EPSILON) {
    throw new Error(`job ${jobId}: needs ${job.cpuCores} CPU cores, ${entry.nodeId} has ${entry.cpuFree} free`);
  }
  if (job.ramGb > entry.ramFree + EPSILON) throw new Error(`job ${jobId}: needs ${job.ramGb} GB RAM, ${entry.nodeId} has ${entry.ramFree} free`);
  return slots;
}
