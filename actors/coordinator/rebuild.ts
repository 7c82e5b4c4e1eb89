/**
 * After a start or a resync: every active allocation in Postgres becomes a
 * hold in the capacity snapshot again, one per job with every member's slice
 * still held, and each gang remembers which members had already ended.
 */
import type { Logger } from 'pino';
import type { AnyActorRef } from 'xstate';
import { isTerminal } from '../../machines/job.machine.ts';
import type { CapacitySnapshot } from '../../src/placement/index.ts';
import { LiveJob, type JobTable } from './live.ts';
import type { ActiveAllocation } from './ports.ts';

export function restoreHolds(
  allocations: ActiveAllocation[],
  o: { jobs: JobTable; capacity: CapacitySnapshot; root: AnyActorRef; log: Logger; /** ms: the start assumed for a hold whose job has no scheduled_at. */ now: number },
): void {
  const byJob = new Map<string, { job: LiveJob; slices: Map<string, number[]> }>();
  for (const a of allocations) {
    let job = o.jobs.get(a.job_id);
    if (!job) {
      // A finished job whose GPUs wait for the agent's kill confirmation.
      job = new LiveJob(a.job, o.root);
      o.jobs.set(a.job_id, job);
    }
    if (!o.capacity.node(a.nodeId)) {
      o.log.error({ job_id: a.job_id, node_id: a.nodeId }, 'allocation on an unknown node; ignoring it');
      continue;
    }
    const entry = byJob.get(a.job_id) ?? { job, slices: new Map() };
    entry.slices.set(a.nodeId, a.gpuIndices);
    byJob.set(a.job_id, entry);
  }
  for (const [id, { job, slices }] of byJob) {
    const order = job.nodes().filter((n) => slices.has(n));
    for (const n of slices.keys()) if (!order.includes(n)) order.push(n);
    // Members whose allocations were already released ended before this
    // start: the recorded failure first (it decides the attempt's end),
    // the others as clean exits.
    const failure = job.rec.memberFailure;
    if (failure && !isTerminal(job.status)) {
      job.endedMembers().set(failure.node_id, { code: failure.code, reason: failure.reason, ...(failure.lost ? { lost: true } : {}) });
    }
    for (const n of job.nodes()) if (!slices.has(n) && !job.endedMembers().has(n)) job.endedMembers().set(n, { code: 0, reason: null });
    const startedAt = job.rec.scheduledAt ?? o.now;
    try {
      o.capacity.hold(
        { ...job.request(), nodeCount: order.length },
        { jobId: id, nodes: order.map((n) => ({ node_id: n, gpu_indices: slices.get(n)! })) },
        { startedAt, endsAt: startedAt + job.rec.expectedDurationSec * 1000 },
      );
    } catch (err) {
      o.log.error({ err, job_id: id }, 'stored allocations over-commit a node; ignoring them');
    }
  }
}
