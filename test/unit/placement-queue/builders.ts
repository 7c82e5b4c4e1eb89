/** Builders for the queue tests: aNode().gpus(8, 80).pool('fast'), aJob('j').fast().gpus(2, 40). */
import type { Pool, Tier } from '../../../src/domain/cluster.ts';
import { CapacitySnapshot } from '../../../src/placement/snapshot.ts';
import type { JobRequest, NodeCapacity, Placement, QueueContext, QueuePolicy } from '../../../src/placement/types.ts';
import { SCALAR_POLICY } from '../../../src/placement/types.ts';

/** 2025-01-01 12:00:00 UTC: a readable clock for the reasons. */
export const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
export const sec = (s: number): number => T0 + s * 1000;

class NodeBuilder {
  #n: NodeCapacity;
  constructor(id: string) {
    this.#n = { nodeId: id, pool: 'fast', schedulable: true, cpuTotal: 64, ramTotal: 512, gpus: [], blockId: null, endsAt: null };
    this.gpus(8, 80);
  }
  pool(p: Pool): this {
    this.#n.pool = p;
    return this;
  }
  gpus(count: number, vramGb: number): this {
    this.#n.gpus = Array.from({ length: count }, (_, i) => ({ index: i, vramGb, heldBy: null }));
    return this;
  }
  cpu(n: number): this {
    this.#n.cpuTotal = n;
    return this;
  }
  ram(n: number): this {
    this.#n.ramTotal = n;
    return this;
  }
  down(): this {
    this.#n.schedulable = false;
    return this;
  }
  /** In a capacity block that ends at `t` (ms). */
  endsAt(t: number): this {
    this.#n.blockId = 'block-1';
    this.#n.endsAt = t;
    return this;
  }
  build(): NodeCapacity {
    return structuredClone(this.#n);
  }
}
export const aNode = (id: string): NodeBuilder => new NodeBuilder(id);

let seq = 0;
class JobBuilder {
  #j: JobRequest;
  constructor(id: string) {
    this.#j = {
      jobId: id,
      tier: 'FAST',
      priority: 0,
      seq: ++seq,
      userId: 'alice',
      gpuCount: 1,
      vramPerGpuGb: 40,
      cpuCores: 4,
      ramGb: 16,
      nodeCount: 1,
      expectedDurationSec: 3600,
    };
  }
  tier(t: Tier): this {
    this.#j.tier = t;
    return this;
  }
  fast(): this {
    return this.tier('FAST');
  }
  flex(): this {
    return this.tier('FLEX');
  }
  gpus(count: number, vramGb = 40): this {
    this.#j.gpuCount = count;
    this.#j.vramPerGpuGb = vramGb;
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
  user(u: string): this {
    this.#j.userId = u;
    return this;
  }
  priority(p: number): this {
    this.#j.priority = p;
    return this;
  }
  seq(s: number): this {
    this.#j.seq = s;
    return this;
  }
  nodes(n: number): this {
    this.#j.nodeCount = n;
    return this;
  }
  /** Expected duration in seconds. */
  runs(s: number): this {
    this.#j.expectedDurationSec = s;
    return this;
  }
  build(): JobRequest {
    return { ...this.#j };
  }
}
export const aJob = (id: string): JobBuilder => new JobBuilder(id);

export const fleet = (...nodes: NodeBuilder[]): CapacitySnapshot => new CapacitySnapshot(nodes.map((n) => n.build()));

/**
 * Holds `job` on the given nodes (one per gang member), on the lowest free
 * GPU indices with enough VRAM, from `startedAt` to `endsAt` (seconds after T0).
 */
export function holdOn(
  snap: CapacitySnapshot,
  job: JobRequest,
  nodeIds: string | string[],
  times: { started?: number; ends: number },
): Placement {
  const ids = typeof nodeIds === 'string' ? [nodeIds] : nodeIds;
  const placement: Placement = {
    jobId: job.jobId,
    nodes: ids.map((nodeId) => {
      const s = snap.state(nodeId);
      if (!s) throw new Error(`no node ${nodeId}`);
      const free = s.freeGpus.filter((g) => g.vramGb >= job.vramPerGpuGb).map((g) => g.index).sort((a, b) => a - b);
      if (free.length < job.gpuCount) throw new Error(`node ${nodeId} lacks GPUs for ${job.jobId}`);
      return { nodeId, gpuIndices: free.slice(0, job.gpuCount) };
    }),
  };
  snap.hold({ ...job, nodeCount: ids.length }, placement, { startedAt: sec(times.started ?? 0), endsAt: sec(times.ends) });
  return placement;
}

export function ctxOf(o: Partial<QueueContext> & { policy?: QueuePolicy } = {}): QueueContext {
  return { now: T0, blockMarginSec: 0, preemptGraceSec: 30, policy: SCALAR_POLICY, ...o };
}
