/** Builders for the queue tests: aNode().gpus(8, 80).pool('fast'), aJob('j').fast().gpus(2, 40). */
import { aJob as baseJob, aNode, type JobBuilder, type NodeBuilder } from '../placement/builders.ts';
import { CapacitySnapshot } from '../../../src/placement/snapshot.ts';
import type { JobRequest, Placement, QueueContext, QueuePolicy } from '../../../src/placement/types.ts';
import { SCALAR_POLICY } from '../../../src/placement/types.ts';

/** 2025-01-01 12:00:00 UTC: a readable clock for the reasons. */
export const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
export const sec = (s: number): number => T0 + s * 1000;

/** Queue tests' jobs belong to alice unless told otherwise (fair share reads the owner). */
export const aJob = (id: string): JobBuilder => baseJob(id).user('alice');
export { aNode };

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
      return { node_id: nodeId, gpu_indices: free.slice(0, job.gpuCount) };
    }),
  };
  snap.hold({ ...job, nodeCount: ids.length }, placement, { startedAt: sec(times.started ?? 0), endsAt: sec(times.ends) });
  return placement;
}

export function ctxOf(o: Partial<QueueContext> & { policy?: QueuePolicy } = {}): QueueContext {
  return { now: T0, blockMarginSec: 0, preemptGraceSec: 30, policy: SCALAR_POLICY, ...o };
}
