/**
 * One pure step of the job machine from a stored state, shared by every
 * writer of job status (the coordinator's passes, and the test helper that
 * writes a transition straight to Postgres). Typed on the machine's own
 * context, never on a store's rows: the Postgres adapter, the coordinator's
 * records and the simulator all map their rows to `JobState` first.
 */
import { createActor, type ActorScope, type ExecutableActionsFrom } from 'xstate';
import type { NodeSlice } from '../src/domain/cluster.ts';
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
  type MemberFailure,
} from './job.machine.ts';
import { isJobFailureCode } from './job.failure.ts';

/** The timestamp fields (camelCase) each status stamps when it is reached; every store keeps these. */
export type StampField = 'queuedAt' | 'scheduledAt' | 'startedAt' | 'completedAt' | 'failedAt' | 'cancelledAt' | 'finishedAt';

export const STAMP: Record<JobStatus, StampField[]> = {
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
 * (the coordinator's passes; the tests' one-job helper) runs before it writes.
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

/**
 * The machine's view of a stored job: the fields every store keeps (the
 * Postgres row, the coordinator's JobRecord, the simulator's record) under
 * the same camelCase names.
 */
export interface StoredJobFields {
  id: string;
  status: string;
  attempt: number;
  maxAttempts: number;
  nodeId?: string | null;
  gpuIndices?: number[] | null;
  exitCode?: number | null;
  statusReason?: string | null;
  failureCode?: string | null;
  placements?: NodeSlice[] | null;
  preemptedBy?: string | null;
  preemptions?: number;
  memberFailure?: MemberFailure | null;
}

export function jobStateOf(job: StoredJobFields): JobState {
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
      failureCode: isJobFailureCode(job.failureCode) ? job.failureCode : null,
      preemptedBy: job.preemptedBy ?? null,
      preemptions: job.preemptions ?? 0,
      memberFailure: job.memberFailure ?? null,
    },
  };
}
