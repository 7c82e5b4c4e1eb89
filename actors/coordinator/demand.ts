/**
 * What the autoscaler reads from the coordinator's live state (DemandView in
 * src/capacity/autoscaler.ts): FAST GPUs used and queued, warm GPUs outside
 * blocks, and the FLEX jobs that wait and whether they could backfill now.
 * Read every autoscaler pass (every SCALAR_AUTOSCALE_INTERVAL_SEC), so a
 * walk over the nodes and the waiting jobs is affordable.
 */
import type { DemandView } from '../../src/capacity/autoscaler.ts';
import { placeJob, type CapacitySnapshot } from '../../src/placement/index.ts';
import type { JobTable } from './live.ts';

/** Waiting FLEX jobs tried against free capacity for `canBackfill`; the first that fits answers. */
const BACKFILL_PROBES = 64;

export function demandView(jobs: JobTable, capacity: CapacitySnapshot, blockMarginSec: number, now = Date.now()): DemandView {
  let fastUsed = 0;
  let warmOutsideBlocks = 0;
  for (const node of capacity.states()) {
    for (const h of node.holds) if (h.tier === 'FAST') fastUsed += h.gpuIndices.length;
    if (node.pool === 'fast' && node.schedulable && node.blockId === null) warmOutsideBlocks += node.gpus.length;
  }
  const fast = { gpusUsed: fastUsed, gpusQueued: 0, warmGpusOutsideBlocks: warmOutsideBlocks, maxVramPerGpuGb: 0, maxGpusPerNode: 0, maxCpuPerNode: 0, maxRamPerNodeGb: 0, longestNeedSec: 0 };
  const flex = { waitingJobs: 0, waitingGpus: 0, oldestWaitSec: 0, canBackfill: false, maxVramPerGpuGb: 0, maxGpusPerNode: 0, maxCpuPerNode: 0, maxRamPerNodeGb: 0, longestNeedSec: 0 };
  let probes = 0;
  // With no free GPU nothing can backfill; and a shape that failed once fails again in this same snapshot.
  const anyFree = capacity.anyFreeGpu();
  const failedShapes = new Set<string>();
  for (const job of jobs.waiting.values()) {
    const r = job.request();
    const t = r.tier === 'FAST' ? fast : flex;
    t.maxVramPerGpuGb = Math.max(t.maxVramPerGpuGb, r.gpuCount > 0 ? r.vramPerGpuGb : 0);
    t.maxGpusPerNode = Math.max(t.maxGpusPerNode, r.gpuCount);
    t.longestNeedSec = Math.max(t.longestNeedSec, r.expectedDurationSec + blockMarginSec);
    t.maxCpuPerNode = Math.max(t.maxCpuPerNode, r.cpuCores);
    t.maxRamPerNodeGb = Math.max(t.maxRamPerNodeGb, r.ramGb);
    if (r.tier === 'FAST') {
      fast.gpusQueued += r.gpuCount * r.nodeCount;
      continue;
    }
    flex.waitingJobs++;
    flex.waitingGpus += r.gpuCount * r.nodeCount;
    flex.oldestWaitSec = Math.max(flex.oldestWaitSec, Math.max(0, (now - job.rec.createdAt) / 1000));
    if (anyFree && !flex.canBackfill && probes < BACKFILL_PROBES) {
      const shape = `${r.gpuCount}/${r.nodeCount}/${r.vramPerGpuGb}/${r.cpuCores}/${r.ramGb}/${r.expectedDurationSec}`;
      if (failedShapes.has(shape)) continue;
      probes++;
      flex.canBackfill = placeJob(capacity, r, { now, blockMarginSec }).kind === 'placed';
      if (!flex.canBackfill) failedShapes.add(shape);
    }
  }
  return { fast, flex };
}
