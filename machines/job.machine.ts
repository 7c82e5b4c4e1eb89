/**
 * The job lifecycle as a pure xstate machine.
 *
 * This file decides *what* happens to a job; it never does anything. It has no
 * I/O imports on purpose: the job actor (actors/) loads a job row, restores a
 * snapshot with `restoreJobSnapshot`, asks xstate's pure `transition()` for
 * the next snapshot and the effects it implies, writes the row and its
 * job_events row in one transaction, and only after the commit executes the
 * effects. Because effects run only after the commit, no agent is ever told
 * about a transition that the database does not hold. See machines/README.md.
 */
import { assertEvent, assign, setup } from 'xstate';
import type { SnapshotFrom } from 'xstate';
import type { JobFailureCode } from './job.failure.ts';
import type { NodeSlice } from '../src/domain/cluster.ts';

// The statuses live in job.status.ts, which imports no xstate: the wire
// protocol validates them, and the agent, which loads the protocol, never
// loads the machine.
export { JobStatus, JOB_STATUSES, TERMINAL_STATUSES, isTerminal } from './job.status.ts';
import type { JobStatus } from './job.status.ts';

/** The part of a job row the lifecycle reads and writes. Field names mirror the columns in camelCase. */
export interface JobContext {
  jobId: string;
  /** 1-based; a requeue starts the next attempt. Messages for another attempt are stale. */
  attempt: number;
  maxAttempts: number;
  /** Set while GPUs are reserved (scheduled/running); kept on a terminal job as a record of where it last ran. */
  nodeId: string | null;
  gpuIndices: number[];
  /**
   * Every member's node and GPUs, rank order (a gang has one per node;
   * placements[0] is nodeId/gpuIndices). Empty until placed; kept on a
   * terminal job like nodeId.
   */
  placements: NodeSlice[];
  exitCode: number | null;
  /** Plain-words answer to "why is my job in this status?". */
  statusReason: string | null;
  /**
   * The same answer as a code (machines/job.failure.ts) when the job failed,
   * was cancelled, or is being (or was) requeued or stopped; null while it
   * waits for a first placement, is placed, runs, or completed.
   */
  failureCode: JobFailureCode | null;
  /** The FAST job this attempt is being preempted for, while its kill is in flight. */
  preemptedBy: string | null;
  /** Attempts that ended by preemption: they do not count against maxAttempts. */
  preemptions: number;
  /**
   * The first member of a gang's attempt to fail, while the others are being
   * killed. Kept in the row so a restarted coordinator still knows the gang
   * failed (and why) when the surviving members' exits arrive.
   */
  memberFailure: MemberFailure | null;
}

export interface MemberFailure {
  node_id: string;
  /** The member's exit code; null for a launch failure or a lost node. */
  code: number | null;
  reason: string;
  /** Its node was lost: once every member has ended, the attempt is requeued rather than failed. */
  lost?: boolean;
}

export interface JobInput {
  jobId: string;
  maxAttempts: number;
  /** Defaults to 1. */
  attempt?: number;
}

export type JobEvent =
  /** pending -> queued. `reason` says why it waits, e.g. 'waiting for the coordinator'. */
  | { type: 'admit'; reason?: string }
  /** queued -> scheduled: the coordinator reserved these GPUs (node_id/gpu_indices: rank 0; placements: every member of a gang). */
  | { type: 'place'; node_id: string; gpu_indices: number[]; placements?: NodeSlice[] }
  /** scheduled -> running: the agent started the process. */
  | { type: 'start' }
  /** scheduled|running -> completed (code 0) or failed. Scheduled is allowed because a short process can exit before its start report arrives. */
  | { type: 'exit'; code: number }
  /** Any live state -> failed, e.g. unresolvable placement or a launch failure. */
  | { type: 'fail'; code: JobFailureCode; reason: string }
  /** scheduled|running -> queued for another attempt (e.g. node_lost), or failed (max_attempts) once attempts run out. */
  | { type: 'requeue'; code: JobFailureCode; reason: string }
  /** Any live state -> cancelled. */
  | { type: 'cancel'; reason?: string }
  /** scheduled|running -> (same): a FAST job needs these GPUs; the attempt is killed with a grace and then requeued, uncounted. */
  | { type: 'preempt'; by: string }
  /** scheduled|running -> failed: it outlived its time limit. The process is killed; GPUs are freed once the kill is confirmed. */
  | { type: 'timeout'; reason: string }
  /** scheduled|running -> (same): one gang member failed while others still run; they are being killed. */
  | ({ type: 'member_failed' } & MemberFailure)
  /** queued -> queued: the coordinator's latest answer to "why does it wait?" (no status change). */
  | { type: 'diagnose'; reason: string };
export type JobEventType = JobEvent['type'];

// A record rather than a bare array so that adding an event to JobEvent fails
// to compile until it is listed here (and so in the refusal tests).
const jobEventTypes: Record<JobEventType, true> = {
  admit: true,
  place: true,
  start: true,
  exit: true,
  fail: true,
  requeue: true,
  cancel: true,
  diagnose: true,
  preempt: true,
  timeout: true,
  member_failed: true,
};
export const JOB_EVENT_TYPES: readonly JobEventType[] = Object.freeze(
  Object.keys(jobEventTypes) as JobEventType[],
);

/**
 * What every effect is told. Effects are computed now and executed later
 * (after the commit), so they carry the values they need instead of reading
 * the job row again: after a requeue the row already holds the next attempt
 * and no node, but the release must name the old ones.
 */
export interface JobEffectParams {
  jobId: string;
  attempt: number;
  nodeId: string | null;
  gpuIndices: number[];
}

/** The effect actions, the only actions `transition()` returns for this machine (assigns are folded into the snapshot). */
export const JOB_EFFECTS = ['dispatchRun', 'dispatchKill', 'releaseGpus'] as const;
export type JobEffect = (typeof JOB_EFFECTS)[number];

function effectParams({ context }: { context: JobContext }): JobEffectParams {
  return {
    jobId: context.jobId,
    attempt: context.attempt,
    nodeId: context.nodeId,
    gpuIndices: [...context.gpuIndices],
  };
}

// Action lists below are ordered with care: params are resolved with the
// context as it stands at that point in the list. dispatchRun comes after
// recordPlacement so it sees the node; releaseGpus comes before
// recordRequeue so it names the attempt and node being given up.
const releaseGpus = { type: 'releaseGpus', params: effectParams } as const;
const dispatchRun = { type: 'dispatchRun', params: effectParams } as const;
const dispatchKill = { type: 'dispatchKill', params: effectParams } as const;

/**
 * How an attempt that holds GPUs (scheduled or running) can end. Scheduled
 * accepts an exit too, because a short process can exit before its start
 * report arrives.
 */
const requeuePreempted = { guard: 'beingPreempted', target: 'queued', actions: [releaseGpus, 'recordPreempted'] } as const;
const attemptEnds = {
  // Once a preemption is in flight, however the attempt ends (the SIGTERM
  // exit, a launch failure, the node lost), it goes back to the queue
  // without counting against maxAttempts.
  exit: [
    requeuePreempted,
    { guard: 'exitedCleanly', target: 'completed', actions: ['recordExit', releaseGpus] },
    { target: 'failed', actions: ['recordExit', releaseGpus] },
  ],
  fail: [requeuePreempted, { target: 'failed', actions: ['recordFailure', releaseGpus] }],
  requeue: [
    requeuePreempted,
    { guard: 'canRetry', target: 'queued', actions: [releaseGpus, 'recordRequeue'] },
    { target: 'failed', actions: ['recordGiveUp', releaseGpus] },
  ],
  // Targetless: the attempt keeps its GPUs until the agent reports the exit.
  preempt: { guard: 'notBeingPreempted', actions: ['recordPreemption', dispatchKill] },
  // Like cancel: the GPUs stay held until the agent confirms the kill.
  timeout: { target: 'failed', actions: ['recordTimeout', dispatchKill] },
  // Targetless: the attempt ends once every member has (the coordinator kills the others).
  member_failed: { guard: 'noMemberFailure', actions: 'recordMemberFailure' },
  // No releaseGpus here: the process may still hold the GPUs until the agent
  // confirms the kill, and freeing them now could place another job on a
  // busy GPU. The allocation is freed when that confirmation arrives,
  // outside this (by then final) machine.
  cancel: { target: 'cancelled', actions: ['recordCancel', dispatchKill] },
} as const;

export const jobMachine = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
    input: {} as JobInput,
  },
  actions: {
    // Effects. Empty on purpose: the machine only names them. The runtime
    // either supplies real ones with `.provide()` or, with the pure
    // `transition()`, reads them from the returned actions and runs them after
    // the commit.
    /** Send the run command for this attempt to the node's agent. */
    dispatchRun: (_, _params: JobEffectParams) => {},
    /** Ask the node's agent to kill this attempt's process. */
    dispatchKill: (_, _params: JobEffectParams) => {},
    /** Free this attempt's allocation rows so the GPUs can be placed again. */
    releaseGpus: (_, _params: JobEffectParams) => {},

    // Context updates. Named (rather than inline) so every transition reads as
    // a list of names; assertEvent narrows the event union and turns a wiring
    // mistake into a loud bug instead of a silently wrong row.
    recordAdmission: assign(({ event }) => {
      assertEvent(event, 'admit');
      return { statusReason: event.reason ?? 'waiting for capacity' };
    }),
    recordPlacement: assign(({ event }) => {
      assertEvent(event, 'place');
      const placements = event.placements ?? [{ node_id: event.node_id, gpu_indices: event.gpu_indices }];
      return {
        nodeId: event.node_id,
        gpuIndices: [...event.gpu_indices],
        placements: placements.map((p) => ({ node_id: p.node_id, gpu_indices: [...p.gpu_indices] })),
        memberFailure: null,
        // A new attempt: what ended the last one is in job_events.
        failureCode: null,
        statusReason:
          placements.length > 1
            ? `starting on ${placements.length} nodes (${placements.map((p) => p.node_id).join(', ')})`
            : `starting on ${event.node_id} (GPUs ${event.gpu_indices.join(', ')})`,
      };
    }),
    // Running needs no explanation.
    recordStart: assign({ statusReason: null }),
    recordExit: assign(({ context, event }) => {
      assertEvent(event, 'exit');
      if (event.code === 0) return { exitCode: event.code };
      // A gang's attempt ends with the exit of its first failed member.
      const failureCode: JobFailureCode = context.placements.length > 1 ? 'gang_member_failed' : 'exit_nonzero';
      return { exitCode: event.code, statusReason: `exited with code ${event.code}`, failureCode };
    }),
    recordFailure: assign(({ event }) => {
      assertEvent(event, 'fail');
      return { statusReason: event.reason, failureCode: event.code };
    }),
    recordRequeue: assign(({ context, event }) => {
      assertEvent(event, 'requeue');
      // A new attempt starts with a clean slate; the old placement lives on
      // in job_events and in the releaseGpus params.
      return {
        attempt: context.attempt + 1,
        nodeId: null,
        gpuIndices: [],
        placements: [],
        exitCode: null,
        memberFailure: null,
        statusReason: event.reason,
        failureCode: event.code,
      };
    }),
    recordPreemption: assign(({ event }) => {
      assertEvent(event, 'preempt');
      return { preemptedBy: event.by, statusReason: `preempted by FAST job ${event.by}; stopping`, failureCode: 'preempted' as const };
    }),
    recordPreempted: assign(({ context }) => ({
      attempt: context.attempt + 1,
      preemptions: context.preemptions + 1,
      nodeId: null,
      gpuIndices: [],
      placements: [],
      exitCode: null,
      preemptedBy: null,
      memberFailure: null,
      statusReason: `preempted by FAST job ${context.preemptedBy}`,
      failureCode: 'preempted' as const,
    })),
    recordMemberFailure: assign(({ event }) => {
      assertEvent(event, 'member_failed');
      return {
        memberFailure: { node_id: event.node_id, code: event.code, reason: event.reason, ...(event.lost ? { lost: true } : {}) },
        statusReason: `${event.reason}; stopping the other members`,
        // The attempt's end once every member has: a lost member requeues it, any other failure fails it.
        failureCode: event.lost ? ('node_lost' as const) : ('gang_member_failed' as const),
      };
    }),
    recordTimeout: assign(({ event }) => {
      assertEvent(event, 'timeout');
      return { statusReason: event.reason, failureCode: 'time_limit' as const };
    }),
    recordGiveUp: assign(({ context, event }) => {
      assertEvent(event, 'requeue');
      // attempt stays: no new attempt started. The placement is kept as the
      // record of where the last attempt ran, as for any other failure.
      return { statusReason: `${event.reason}; gave up after ${context.maxAttempts} attempts`, failureCode: 'max_attempts' as const };
    }),
    recordDiagnosis: assign(({ event }) => {
      assertEvent(event, 'diagnose');
      return { statusReason: event.reason };
    }),
    recordCancel: assign(({ event }) => {
      assertEvent(event, 'cancel');
      return { statusReason: event.reason ?? 'cancelled by user', failureCode: 'cancelled_by_user' as const };
    }),
  },
  guards: {
    exitedCleanly: ({ event }) => event.type === 'exit' && event.code === 0,
    // Preempted attempts are not the job's fault: they do not count.
    canRetry: ({ context }) => context.attempt - context.preemptions < context.maxAttempts,
    beingPreempted: ({ context }) => context.preemptedBy !== null,
    notBeingPreempted: ({ context }) => context.preemptedBy === null,
    noMemberFailure: ({ context }) => context.memberFailure === null,
  },
}).createMachine({
  id: 'job',
  context: ({ input }) => ({
    jobId: input.jobId,
    attempt: input.attempt ?? 1,
    maxAttempts: input.maxAttempts,
    nodeId: null,
    gpuIndices: [],
    placements: [],
    exitCode: null,
    statusReason: null,
    failureCode: null,
    preemptedBy: null,
    preemptions: 0,
    memberFailure: null,
  }),
  initial: 'pending',
  // Each state lists only the events it accepts; xstate ignores any other
  // event (same snapshot, no actions), which is how an out-of-order or
  // redelivered message becomes harmless.
  states: {
    pending: {
      on: {
        admit: { target: 'queued', actions: 'recordAdmission' },
        fail: { target: 'failed', actions: 'recordFailure' },
        // Nothing is reserved yet, so there is nothing to kill or release.
        cancel: { target: 'cancelled', actions: 'recordCancel' },
      },
    },
    queued: {
      on: {
        place: { target: 'scheduled', actions: ['recordPlacement', dispatchRun] },
        // Targetless: the job stays queued; only its status_reason changes.
        diagnose: { actions: 'recordDiagnosis' },
        fail: { target: 'failed', actions: 'recordFailure' },
        cancel: { target: 'cancelled', actions: 'recordCancel' },
      },
    },
    scheduled: {
      on: {
        start: { target: 'running', actions: 'recordStart' },
        ...attemptEnds,
      },
    },
    running: { on: attemptEnds },
    // Final: a terminal job accepts no event, so a late exit or a duplicate
    // cancel cannot resurrect it or overwrite its reason.
    completed: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
  },
});

export type JobSnapshot = SnapshotFrom<typeof jobMachine>;

/**
 * Rebuild a snapshot from a stored job row. The row is the truth (the machine
 * keeps no state of its own), so this is how every transition starts.
 * A terminal status yields a snapshot with `status: 'done'`.
 */
export function restoreJobSnapshot(status: JobStatus, context: JobContext): JobSnapshot {
  return jobMachine.resolveState({ value: status, context });
}
