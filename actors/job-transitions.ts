import { LockMode, type EntityManager } from '@mikro-orm/postgresql';
import { createActor, type ActorScope, type ExecutableActionsFrom } from 'xstate';
import {
  JOB_EFFECTS,
  jobMachine,
  restoreJobSnapshot,
  type JobContext,
  type JobEffect,
  type JobEffectParams,
  type JobEvent,
  type JobSnapshot,
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

/** The timestamp column (camelCase property) each status stamps when it is reached. */
export const STAMP: Record<JobStatus, string[]> = {
  pending: [],
  queued: ['queuedAt'],
  scheduled: ['scheduledAt'],
  running: ['startedAt'],
  completed: ['completedAt', 'finishedAt'],
  failed: ['failedAt', 'finishedAt'],
  cancelled: ['cancelledAt', 'finishedAt'],
};

/** STAMP as snake_case column names, for writers that speak SQL. */
export const STAMP_COLUMNS = Object.fromEntries(
  Object.entries(STAMP).map(([status, cols]) => [status, cols.map((c) => c.replace(/[A-Z]/g, (x) => `_${x.toLowerCase()}`))]),
) as Record<JobStatus, string[]>;

const EFFECTS = new Set<string>(JOB_EFFECTS);

/** The part of a job row the machine reads and writes. */
export interface JobState {
  status: JobStatus;
  context: JobContext;
}

export type StepResult =
  | {
      kind: 'applied';
      next: JobState;
      /** The machine's snapshot after the event (to chain the next step without restoring). */
      snapshot: JobSnapshot;
      /** False for a targetless event (e.g. diagnose): the row changes, but no job_events row is due. */
      changedStatus: boolean;
      effects: { type: JobEffect; params: JobEffectParams }[];
    }
  | { kind: 'refused' };

type JobActions = ExecutableActionsFrom<typeof jobMachine>;
let scope: ActorScope<JobSnapshot, JobEvent> | undefined;
let collected: JobActions[] = [];

/**
 * xstate's pure `transition(machine, snapshot, event)`, with the inert actor
 * scope made once instead of per call. xstate builds that scope by creating
 * an actor, which computes the machine's initial snapshot every time: at
 * thousands of transitions a second that was a tenth of the coordinator's
 * CPU. The scope is safe to reuse: the job machine spawns, invokes and
 * raises nothing, and each call is synchronous (the action collector is
 * swapped per call). The result is the same as `transition()`'s, which
 * test/machine/job.machine.test.ts checks.
 */
export function pureTransition(snapshot: JobSnapshot, event: JobEvent): [JobSnapshot, JobActions[]] {
  if (!scope) {
    const self = createActor(jobMachine, { input: { jobId: 'inert', maxAttempts: 1 } });
    scope = {
      self,
      id: '',
      sessionId: '',
      logger: () => {},
      defer: () => {},
      emit: () => {},
      system: self.system,
      stopChild: () => {},
      actionExecutor: (a) => {
        collected.push(a as JobActions);
      },
    };
  }
  collected = [];
  const next = jobMachine.transition(snapshot, event, scope);
  return [next, collected];
}

/**
 * One pure step of the job machine from a stored state: what every writer
 * (the API's cancel, the coordinator's passes) runs before it writes.
 * `from` may pass the snapshot for `state` when the caller has it (the
 * coordinator's live actor, or the previous step), which saves restoring it.
 */
export function stepJob(state: JobState, event: JobEvent, from?: JobSnapshot): StepResult {
  const snapshot = from ?? restoreJobSnapshot(state.status, state.context);
  const [next, actions] = pureTransition(snapshot, event);
  // xstate returns the very same snapshot for an event no transition takes.
  if (next === snapshot) return { kind: 'refused' };
  const effects = actions
    .filter((a) => EFFECTS.has(a.type))
    .map((a) => ({ type: a.type as JobEffect, params: a.params as JobEffectParams }));
  const status = next.value as JobStatus;
  return { kind: 'applied', next: { status, context: next.context }, snapshot: next, changedStatus: status !== state.status, effects };
}

export function jobStateOf(
  job: Pick<Job, 'id' | 'status' | 'attempt' | 'maxAttempts' | 'nodeId' | 'gpuIndices' | 'exitCode' | 'statusReason'> &
    Partial<Pick<Job, 'placements' | 'preemptedBy' | 'preemptions' | 'memberFailure'>>,
): JobState {
  return {
    status: job.status as JobStatus,
    context: {
      jobId: job.id,
      attempt: job.attempt,
      maxAttempts: job.maxAttempts,
      nodeId: job.nodeId ?? null,
      gpuIndices: job.gpuIndices ?? [],
      placements: job.placements ?? (job.nodeId ? [{ node_id: job.nodeId, gpu_indices: job.gpuIndices ?? [] }] : []),
      exitCode: job.exitCode ?? null,
      statusReason: job.statusReason ?? null,
      preemptedBy: job.preemptedBy ?? null,
      preemptions: job.preemptions ?? 0,
      memberFailure: job.memberFailure ?? null,
    },
  };
}

/**
 * The one-job path: lock the row, step the machine, write the row and its
 * job_events row in one transaction, and only after the commit run the
 * effects the machine named. The coordinator uses the batched form in
 * actors/job-store.ts, which runs the same `stepJob`.
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
    const step = stepJob(jobStateOf(job), event);
    if (step.kind === 'refused') return { kind: 'refused', job, status: from };

    const { status: to, context: ctx } = step.next;
    const now = opts.now ?? new Date();
    job.status = to;
    job.statusReason = ctx.statusReason;
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
      for (const col of STAMP[to]) (job as unknown as Record<string, unknown>)[col] = now;
      tx.create(JobEventRow, {
        job,
        attempt: ctx.attempt,
        fromStatus: from,
        toStatus: to,
        event: event.type,
        reason: ctx.statusReason,
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
