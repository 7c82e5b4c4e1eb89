/**
 * Turns a pass's inputs into conditional writes: each job's machine is
 * stepped from the state held in memory (its live actor's snapshot), in
 * input order, and the result becomes one JobWrite per job.
 */
import type { JobEffect, JobEffectParams, JobEvent, JobSnapshot } from '../../machines/job.machine.ts';
import { jobStateOf, STAMP_COLUMNS, stepJob, type JobState } from '../../machines/job.step.ts';
import type { JobTable } from './live.ts';
import type { Batch, JobWrite } from './ports.ts';

export interface Plan {
  write: JobWrite;
  applied: JobEvent[];
  effects: { type: JobEffect; params: JobEffectParams }[];
  after: JobState;
  snapshot: JobSnapshot;
}

/**
 * Steps each job's machine from the state held in memory, in input order
 * (a job may get several events in one pass), and turns the result into
 * conditional writes. Events the machine refuses, or that name an attempt
 * that is not current, are dropped here.
 */
export function planWrites(batch: Batch, jobs: JobTable): Map<string, Plan> {
  const plans = new Map<string, Plan>();
  for (const item of batch.items) {
    const job = jobs.get(item.jobId);
    if (!job) continue;
    let plan = plans.get(item.jobId);
    const cur = plan?.after ?? jobStateOf(job.rec);
    if (item.attempt !== undefined && item.attempt !== cur.context.attempt) continue;
    let state = cur;
    // The live actor holds this very state: start from its snapshot instead of restoring one.
    let snapshot = plan?.snapshot ?? job.actor.getSnapshot();
    for (const ev of item.events) {
      const step = stepJob(state, ev, snapshot);
      if (step.kind === 'refused') break;
      plan ??= {
        write: {
          jobId: item.jobId,
          expect: { status: job.rec.status, attempt: job.rec.attempt },
          after: state,
          stamps: [],
          events: [],
          allocations: [],
          releases: [],
        },
        applied: [],
        effects: [],
        after: state,
        snapshot,
      };
      const w = plan.write;
      plan.applied.push(ev);
      plan.effects.push(...step.effects);
      if (step.changedStatus) {
        w.stamps.push(...STAMP_COLUMNS[step.next.status]);
        w.events.push({
          attempt: step.next.context.attempt,
          from_status: state.status,
          to_status: step.next.status,
          event: ev.type,
          reason: step.next.context.statusReason,
          failure_code: step.next.context.failureCode,
        });
      }
      if (ev.type === 'place') {
        for (const slice of step.next.context.placements) {
          for (const g of slice.gpu_indices) w.allocations.push({ attempt: step.next.context.attempt, node_id: slice.node_id, gpu_index: g });
        }
      }
      for (const e of step.effects) if (e.type === 'releaseGpus') w.releases.push({ job_id: e.params.jobId, attempt: e.params.attempt });
      state = step.next;
      snapshot = step.snapshot;
      plan.after = state;
      plan.snapshot = snapshot;
      w.after = state;
    }
    if (plan) {
      if (item.placement !== undefined && plan.applied.length > 0) plan.write.placement = item.placement;
      plans.set(item.jobId, plan);
    }
  }
  batch.writes = [...plans.values()].map((p) => p.write);
  return plans;
}

