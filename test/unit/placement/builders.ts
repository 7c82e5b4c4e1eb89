/**
 * Builders for placement tests (kube-scheduler style):
 *   aNode('n1').gpus(8, 80).pool('fast').cpu(64).ram(512).endsAt(t)
 *   aJob('j1').fast().gpus(2, 40).cpu(8).ram(64).nodes(2).duration(3600)
 * Defaults: a ready fast node with 8×80 GB, 64 cores, 512 GB; a FAST job of
 * one 40 GB GPU, 4 cores, 16 GB, one node, one hour, user u1.
 */
import type { Pool } from '../../../src/domain/cluster.ts';
import {
  CapacitySnapshot,
  expectedHoldTimes,
  placeJob,
  type JobRequest,
  type NodeCapacity,
  type Placement,
  type PlacementContext,
  type PlacementDecision,
} from '../../../src/placement/index.ts';

/** A fixed "now" (2023-11-14T22:13:20Z), so times in tests read as offsets. */
export const NOW = 1_700_000_000_000;
export const MIN = 60_000;
export const HOUR = 60 * MIN;

export class NodeBuilder {
  readonly #n: NodeCapacity;
  constructor(nodeId: string) {
    this.#n = { nodeId, pool: 'fast', schedulable: true, cpuTotal: 64, ramTotal: 512, gpus: gpuList([80, 80, 80, 80, 80, 80, 80, 80]) };
  }
  /** `count` GPUs of `vram` GB, indices 0… */
  gpus(count: number, vram: number): this {
    this.#n.gpus = gpuList(Array<number>(count).fill(vram));
    return this;
  }
  /** One GPU per VRAM value; indices 0… unless given. */
  gpuVrams(vrams: number[], indices?: number[]): this {
    this.#n.gpus = gpuList(vrams, indices);
    return this;
  }
  pool(p: Pool): this {
    this.#n.pool = p;
    return this;
  }
  fast(): this {
    return this.pool('fast');
  }
  flex(): this {
    return this.pool('flex');
  }
  cpu(n: number): this {
    this.#n.cpuTotal = n;
    return this;
  }
  ram(n: number): this {
    this.#n.ramTotal = n;
    return this;
  }
  notReady(): this {
    this.#n.schedulable = false;
    return this;
  }
  endsAt(t: number | null, blockId = 'b1'): this {
    this.#n.endsAt = t;
    this.#n.blockId = t === null ? null : blockId;
    return this;
  }
  build(): NodeCapacity {
    return structuredClone(this.#n);
  }
}

function gpuList(vrams: number[], indices?: number[]): NodeCapacity['gpus'] {
  return vrams.map((vramGb, i) => ({ index: indices?.[i] ?? i, vramGb, heldBy: null }));
}

let seq = 0;

export class JobBuilder {
  readonly #j: JobRequest;
  constructor(jobId: string) {
    this.#j = {
      jobId,
      tier: 'FAST',
      priority: 0,
      seq: ++seq,
      userId: 'u1',
      gpuCount: 1,
      vramPerGpuGb: 40,
      cpuCores: 4,
      ramGb: 16,
      nodeCount: 1,
      expectedDurationSec: 3600,
    };
  }
  tier(t: JobRequest['tier']): this {
    this.#j.tier = t;
    return this;
  }
  fast(): this {
    return this.tier('FAST');
  }
  flex(): this {
    return this.tier('FLEX');
  }
  /** Arrival order (smaller is older). Default: the order the builders were made in. */
  seq(s: number): this {
    this.#j.seq = s;
    return this;
  }
  gpus(count: number, vram = this.#j.vramPerGpuGb): this {
    this.#j.gpuCount = count;
    this.#j.vramPerGpuGb = vram;
    return this;
  }
  cpu(n: number): this {
    this.#j.cpuCores = n;
    return this;
  }
  ram(n: number): this {
    this.#j.ramGb = n;
    return this;
  }
  /** A gang of `n` nodes, each with the per-node request. */
  nodes(n: number): this {
    this.#j.nodeCount = n;
    return this;
  }
  duration(sec: number): this {
    this.#j.expectedDurationSec = sec;
    return this;
  }
  priority(p: number): this {
    this.#j.priority = p;
    return this;
  }
  user(u: string): this {
    this.#j.userId = u;
    return this;
  }
  with(o: Partial<JobRequest>): this {
    Object.assign(this.#j, o);
    return this;
  }
  build(): JobRequest {
    return { ...this.#j };
  }
}

export const aNode = (nodeId: string): NodeBuilder => new NodeBuilder(nodeId);
export const aJob = (jobId: string): JobBuilder => new JobBuilder(jobId);

type NodeLike = NodeBuilder | NodeCapacity;
type JobLike = JobBuilder | JobRequest;
export const nodeOf = (n: NodeLike): NodeCapacity => (n instanceof NodeBuilder ? n.build() : n);
export const jobOf = (j: JobLike): JobRequest => (j instanceof JobBuilder ? j.build() : j);

export const snapshotOf = (...nodes: NodeLike[]): CapacitySnapshot => new CapacitySnapshot(nodes.map(nodeOf));

/** The default context: NOW, a 10-minute block margin. */
export const ctxOf = (o: Partial<PlacementContext> = {}): PlacementContext => ({ now: NOW, blockMarginSec: 600, ...o });

export const decide = (snap: CapacitySnapshot, job: JobLike, ctx: Partial<PlacementContext> = {}): PlacementDecision =>
  placeJob(snap, jobOf(job), ctxOf(ctx));

export function placed(snap: CapacitySnapshot, job: JobLike, ctx: Partial<PlacementContext> = {}): Placement {
  const d = decide(snap, job, ctx);
  if (d.kind !== 'placed') throw new Error(`expected a placement, got ${d.kind}: ${d.reason}`);
  return d.placement;
}

export function reasonOf(snap: CapacitySnapshot, job: JobLike, ctx: Partial<PlacementContext> = {}, kind: 'waiting' | 'unschedulable' = 'waiting'): string {
  const d = decide(snap, job, ctx);
  if (d.kind !== kind) throw new Error(`expected ${kind}, got ${d.kind}: ${JSON.stringify(d)}`);
  return (d as { reason: string }).reason;
}

/** Places `job` wherever placeJob puts it and holds it from NOW. */
export function put(snap: CapacitySnapshot, job: JobLike, ctx: Partial<PlacementContext> = {}): Placement {
  const j = jobOf(job);
  const p = placed(snap, j, ctx);
  snap.hold(j, p, expectedHoldTimes(j, ctx.now ?? NOW));
  return p;
}

/** Holds `job` on given GPUs of one node, bypassing placement. */
export function holdOn(snap: CapacitySnapshot, job: JobLike, nodeId: string, gpuIndices: number[]): void {
  const j = jobOf(job);
  snap.hold(j, { jobId: j.jobId, nodes: [{ node_id: nodeId, gpu_indices: gpuIndices }] }, expectedHoldTimes(j, NOW));
}

/** Where a single-node placement landed: "node:gpu,gpu". */
export const where = (p: Placement): string => p.nodes.map((s) => `${s.node_id}:${s.gpu_indices.join(',')}`).join(' ');
