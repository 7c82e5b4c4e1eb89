/**
 * Puts a job in a given state the way the coordinator would: lock the row,
 * step the machine (machines/job.step.ts), write the row and its job_events
 * row in one transaction, and only after the commit run the effects the
 * machine named. In production the coordinator is the only writer of job
 * status (it writes through its batched store, running the same `stepJob`);
 * tests use this to set up a job's state without running one.
 */
import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import type { JobEffect, JobEffectParams, JobEvent, JobStatus } from '../../machines/job.machine.ts';
import { jobStateOf, STAMP, stepJob } from '../../machines/job.step.ts';
import { Job, JobEvent as JobEventRow } from '../../src/db/entities.ts';

/** Real implementations of the machine's named effects, run after the commit. */
export type JobEffectHandlers = Partial<Record<JobEffect, (p: JobEffectParams) => void | Promise<void>>>;

export type TransitionOutcome =
  | { kind: 'applied'; job: Job; from: JobStatus; to: JobStatus; effects: { type: JobEffect; params: JobEffectParams }[] }
  /** The machine refuses this event in the job's current status: nothing was written. */
  | { kind: 'refused'; job: Job; status: JobStatus }
  /** The event names an attempt that is no longer current (a redelivery or a late report): ignored. */
  | { kind: 'stale'; job: Job; currentAttempt: number }
  | { kind: 'not_found' };

/**
 * `attempt`, when given, must match the job's current attempt: messages from
 * agents carry (job_id, attempt), and one for an earlier attempt is dropped.
 */
export async function applyJobEvent(
  em: EntityManager,
  jobId: string,
  event: JobEvent,
  opts: { attempt?: number; effects?: JobEffectHandlers; now?: Date } = {},
): Promise<TransitionOutcome> {
  const outcome = await em.fork().transactional(async (tx): Promise<TransitionOutcome> => {
    const job = await tx.findOne(Job, { id: jobId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!job) return { kind: 'not_found' };
    if (opts.attempt !== undefined && opts.attempt !== job.attempt) {
      return { kind: 'stale', job, currentAttempt: job.attempt };
    }
    const from = job.status as JobStatus;
    const step = stepJob(jobStateOf(job), event);
    if (step.kind === 'refused') return { kind: 'refused', job, status: from };

    const { status: to, context: ctx } = step.next;
    const now = opts.now ?? new Date();
    job.status = to;
    job.statusReason = ctx.statusReason;
    job.failureCode = ctx.failureCode;
    job.attempt = ctx.attempt;
    job.nodeId = ctx.nodeId;
    job.gpuIndices = ctx.nodeId ? ctx.gpuIndices : null;
    job.placements = ctx.placements.length > 0 ? ctx.placements : null;
    job.preemptedBy = ctx.preemptedBy;
    job.preemptions = ctx.preemptions;
    job.memberFailure = ctx.memberFailure;
    job.exitCode = ctx.exitCode;
    job.updatedAt = now;
    if (step.changedStatus) {
      for (const col of STAMP[to]) job[col] = now;
      tx.create(JobEventRow, {
        job,
        attempt: ctx.attempt,
        fromStatus: from,
        toStatus: to,
        event: event.type,
        reason: ctx.statusReason,
        failureCode: ctx.failureCode,
        createdAt: now,
      });
    }
    return { kind: 'applied', job, from, to, effects: step.effects };
  });

  if (outcome.kind === 'applied' && opts.effects) {
    for (const e of outcome.effects) await opts.effects[e.type]?.(e.params);
  }
  return outcome;
}
