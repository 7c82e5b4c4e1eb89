import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import { transition } from 'xstate';
import {
  JOB_EFFECTS,
  jobMachine,
  restoreJobSnapshot,
  type JobEffect,
  type JobEffectParams,
  type JobEvent,
  type JobStatus,
} from '../machines/job.machine.ts';
import { Job, JobEvent as JobEventRow } from '../src/db/entities.ts';

/** Real implementations of the machine's named effects, run after the commit. */
export type JobEffectHandlers = Partial<Record<JobEffect, (p: JobEffectParams) => void | Promise<void>>>;

export type TransitionOutcome =
  | { kind: 'applied'; job: Job; from: JobStatus; to: JobStatus; effects: { type: JobEffect; params: JobEffectParams }[] }
  /** The machine refuses this event in the job's current status: nothing was written. */
  | { kind: 'refused'; job: Job; status: JobStatus }
  /** The event names an attempt that is no longer current (a redelivery or a late report): ignored. */
  | { kind: 'stale'; job: Job; currentAttempt: number }
  | { kind: 'not_found' };

/** The timestamp column each status stamps when it is reached. */
const STAMP: Record<JobStatus, string[]> = {
  pending: [],
  queued: ['queuedAt'],
  scheduled: ['scheduledAt'],
  running: ['startedAt'],
  completed: ['completedAt', 'finishedAt'],
  failed: ['failedAt', 'finishedAt'],
  cancelled: ['cancelledAt', 'finishedAt'],
};

const EFFECTS = new Set<string>(JOB_EFFECTS);

/**
 * The one place a job's status changes. It locks the row, asks the pure job
 * machine for the next snapshot, writes the row and its job_events row in one
 * transaction, and only after the commit runs the effects the machine named.
 *
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
    const snapshot = restoreJobSnapshot(from, {
      jobId: job.id,
      attempt: job.attempt,
      maxAttempts: job.maxAttempts,
      nodeId: job.nodeId ?? null,
      gpuIndices: job.gpuIndices ?? [],
      exitCode: job.exitCode ?? null,
      statusReason: job.statusReason ?? null,
    });
    if (!snapshot.can(event)) return { kind: 'refused', job, status: from };

    const [next, actions] = transition(jobMachine, snapshot, event);
    const to = next.value as JobStatus;
    const now = opts.now ?? new Date();
    const ctx = next.context;
    job.status = to;
    job.statusReason = ctx.statusReason;
    job.attempt = ctx.attempt;
    job.nodeId = ctx.nodeId;
    job.gpuIndices = ctx.nodeId ? ctx.gpuIndices : null;
    job.exitCode = ctx.exitCode;
    job.updatedAt = now;
    for (const col of STAMP[to]) (job as unknown as Record<string, unknown>)[col as string] = now;
    tx.create(JobEventRow, {
      job,
      attempt: ctx.attempt,
      fromStatus: from,
      toStatus: to,
      event: event.type,
      reason: ctx.statusReason,
      createdAt: now,
    });
    const effects = actions
      .filter((a) => EFFECTS.has(a.type))
      .map((a) => ({ type: a.type as JobEffect, params: a.params as JobEffectParams }));
    return { kind: 'applied', job, from, to, effects };
  });

  if (outcome.kind === 'applied' && opts.effects) {
    for (const e of outcome.effects) await opts.effects[e.type]?.(e.params);
  }
  return outcome;
}
