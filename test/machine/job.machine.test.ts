import { describe, it, expect, vi } from 'vitest';
import { createActor, initialTransition, transition } from 'xstate';
import {
  JOB_EFFECTS,
  JOB_EVENT_TYPES,
  JOB_STATUSES,
  JobStatus,
  TERMINAL_STATUSES,
  isTerminal,
  jobMachine,
  restoreJobSnapshot,
} from '../../machines/job.machine.ts';
import type { JobContext, JobEvent, JobEventType } from '../../machines/job.machine.ts';
import { pureTransition } from '../../machines/job.step.ts';

// A context that is plausible for each status, as a job row would hold it.
// Placed statuses carry node-a/[0,1]; the `place` sample below uses node-b/[2,3]
// so a test can tell old placement from new.
function aJob(status: JobStatus, overrides: Partial<JobContext> = {}): JobContext {
  const base: JobContext = {
    jobId: 'job-1',
    attempt: 1,
    maxAttempts: 3,
    nodeId: null,
    gpuIndices: [],
    placements: [],
    exitCode: null,
    statusReason: null,
    failureCode: null,
    preemptedBy: null,
    preemptions: 0,
    memberFailure: null,
  };
  const onA = { nodeId: 'node-a', gpuIndices: [0, 1], placements: [{ node_id: 'node-a', gpu_indices: [0, 1] }] };
  const byStatus: Record<JobStatus, Partial<JobContext>> = {
    pending: {},
    queued: { statusReason: 'waiting for capacity' },
    scheduled: onA,
    running: onA,
    completed: { ...onA, exitCode: 0 },
    failed: { ...onA, exitCode: 3, statusReason: 'exited with code 3', failureCode: 'exit_nonzero' },
    cancelled: { statusReason: 'cancelled by user', failureCode: 'cancelled_by_user' },
  };
  return { ...base, ...byStatus[status], ...overrides };
}

// One representative event of each type, for the refusal checks.
const sample: Record<JobEventType, JobEvent> = {
  admit: { type: 'admit' },
  place: { type: 'place', node_id: 'node-b', gpu_indices: [2, 3] },
  start: { type: 'start' },
  exit: { type: 'exit', code: 0 },
  fail: { type: 'fail', code: 'unschedulable', reason: 'unresolvable: no node has 16 GPUs' },
  requeue: { type: 'requeue', code: 'node_lost', reason: 'node lost' },
  cancel: { type: 'cancel' },
  diagnose: { type: 'diagnose', reason: '0 of 2 ready fast nodes can hold it' },
  preempt: { type: 'preempt', by: 'fast-job-9' },
  timeout: { type: 'timeout', reason: 'ran 7200 s, over its 3600 s × 2 limit' },
  member_failed: { type: 'member_failed', node_id: 'node-c', code: 3, reason: 'gang member on node-c exited with code 3' },
};
const memberFailed = {
  memberFailure: { node_id: 'node-c', code: 3, reason: 'gang member on node-c exited with code 3' },
  statusReason: 'gang member on node-c exited with code 3; stopping the other members',
  failureCode: 'gang_member_failed' as const,
};

interface Allowed {
  from: JobStatus;
  /** Overrides on aJob(from), e.g. to sit on the last attempt. */
  given?: Partial<JobContext>;
  event: JobEvent;
  to: JobStatus;
  /** Fields that change; every other field must stay as it was. */
  changes: Partial<JobContext>;
  /** Action types transition() returns, in order. Assigns never appear. */
  actions: string[];
}

const gaveUp = 'node lost; gave up after 3 attempts';
const requeued = { nodeId: null, gpuIndices: [], placements: [], exitCode: null, statusReason: 'node lost', failureCode: 'node_lost' as const };
// An attempt ended while a FAST job's preemption was in flight: back to the
// queue, the attempt not counted (preemptions + 1), whatever the end was.
const preempted = (attempt: number) => ({
  attempt,
  preemptions: 1,
  nodeId: null,
  gpuIndices: [],
  placements: [],
  exitCode: null,
  preemptedBy: null,
  statusReason: 'preempted by FAST job fast-job-9',
  failureCode: 'preempted' as const,
});

const allowed: Allowed[] = [
  // pending: nothing reserved yet, so no effects.
  { from: 'pending', event: { type: 'admit' }, to: 'queued', changes: { statusReason: 'waiting for capacity' }, actions: [] },
  {
    from: 'pending',
    event: { type: 'admit', reason: 'waiting for the coordinator' },
    to: 'queued',
    changes: { statusReason: 'waiting for the coordinator' },
    actions: [],
  },
  { from: 'pending', event: sample.fail, to: 'failed', changes: { statusReason: 'unresolvable: no node has 16 GPUs', failureCode: 'unschedulable' }, actions: [] },
  { from: 'pending', event: { type: 'cancel' }, to: 'cancelled', changes: { statusReason: 'cancelled by user', failureCode: 'cancelled_by_user' }, actions: [] },
  {
    from: 'pending',
    event: { type: 'cancel', reason: 'duplicate submission' },
    to: 'cancelled',
    changes: { statusReason: 'duplicate submission', failureCode: 'cancelled_by_user' },
    actions: [],
  },

  // queued
  {
    from: 'queued',
    event: sample.place,
    to: 'scheduled',
    changes: {
      nodeId: 'node-b',
      gpuIndices: [2, 3],
      placements: [{ node_id: 'node-b', gpu_indices: [2, 3] }],
      statusReason: 'starting on node-b (GPUs 2, 3)',
    },
    actions: ['dispatchRun'],
  },
  // A gang: node_id/gpu_indices name rank 0, placements every member.
  {
    from: 'queued',
    event: {
      type: 'place',
      node_id: 'node-b',
      gpu_indices: [0, 1],
      placements: [
        { node_id: 'node-b', gpu_indices: [0, 1] },
        { node_id: 'node-c', gpu_indices: [4, 5] },
      ],
    },
    to: 'scheduled',
    changes: {
      nodeId: 'node-b',
      gpuIndices: [0, 1],
      placements: [
        { node_id: 'node-b', gpu_indices: [0, 1] },
        { node_id: 'node-c', gpu_indices: [4, 5] },
      ],
      statusReason: 'starting on 2 nodes (node-b, node-c)',
    },
    actions: ['dispatchRun'],
  },
  { from: 'queued', event: sample.fail, to: 'failed', changes: { statusReason: 'unresolvable: no node has 16 GPUs', failureCode: 'unschedulable' }, actions: [] },
  { from: 'queued', event: { type: 'cancel' }, to: 'cancelled', changes: { statusReason: 'cancelled by user', failureCode: 'cancelled_by_user' }, actions: [] },
  // diagnose is targetless: still queued, only the reason changes, no effect.
  { from: 'queued', event: sample.diagnose, to: 'queued', changes: { statusReason: '0 of 2 ready fast nodes can hold it' }, actions: [] },

  // scheduled
  { from: 'scheduled', event: { type: 'start' }, to: 'running', changes: {}, actions: [] },
  // guard exitedCleanly: code 0 completes, anything else fails.
  { from: 'scheduled', event: { type: 'exit', code: 0 }, to: 'completed', changes: { exitCode: 0 }, actions: ['releaseGpus'] },
  {
    from: 'scheduled',
    event: { type: 'exit', code: 3 },
    to: 'failed',
    changes: { exitCode: 3, statusReason: 'exited with code 3', failureCode: 'exit_nonzero' },
    actions: ['releaseGpus'],
  },
  {
    from: 'scheduled',
    event: sample.fail,
    to: 'failed',
    changes: { statusReason: 'unresolvable: no node has 16 GPUs', failureCode: 'unschedulable' },
    actions: ['releaseGpus'],
  },
  // guard canRetry: attempt 1 < 3 retries as attempt 2; attempt 3 == 3 gives up.
  { from: 'scheduled', event: sample.requeue, to: 'queued', changes: { attempt: 2, ...requeued }, actions: ['releaseGpus'] },
  {
    from: 'scheduled',
    given: { attempt: 3 },
    event: sample.requeue,
    to: 'failed',
    changes: { statusReason: gaveUp, failureCode: 'max_attempts' },
    actions: ['releaseGpus'],
  },
  // cancel kills but does not release: the GPUs are freed when the kill is confirmed.
  { from: 'scheduled', event: { type: 'cancel' }, to: 'cancelled', changes: { statusReason: 'cancelled by user', failureCode: 'cancelled_by_user' }, actions: ['dispatchKill'] },
  // preempt is targetless: the attempt keeps its GPUs until the agent reports the exit.
  {
    from: 'scheduled',
    event: sample.preempt,
    to: 'scheduled',
    changes: { preemptedBy: 'fast-job-9', statusReason: 'preempted by FAST job fast-job-9; stopping', failureCode: 'preempted' },
    actions: ['dispatchKill'],
  },
  {
    from: 'scheduled',
    event: sample.timeout,
    to: 'failed',
    changes: { statusReason: 'ran 7200 s, over its 3600 s × 2 limit', failureCode: 'time_limit' },
    actions: ['dispatchKill'],
  },
  // member_failed is targetless: the attempt ends once every member has.
  { from: 'scheduled', event: sample.member_failed, to: 'scheduled', changes: memberFailed, actions: [] },
  // Being preempted, the launch failed: still requeued uncounted.
  { from: 'scheduled', given: { preemptedBy: 'fast-job-9' }, event: sample.fail, to: 'queued', changes: preempted(2), actions: ['releaseGpus'] },

  // running
  { from: 'running', event: { type: 'exit', code: 0 }, to: 'completed', changes: { exitCode: 0 }, actions: ['releaseGpus'] },
  {
    from: 'running',
    event: { type: 'exit', code: 3 },
    to: 'failed',
    changes: { exitCode: 3, statusReason: 'exited with code 3', failureCode: 'exit_nonzero' },
    actions: ['releaseGpus'],
  },
  // Killed by a signal: runtimes report it as a negative code, still not clean.
  {
    from: 'running',
    event: { type: 'exit', code: -9 },
    to: 'failed',
    changes: { exitCode: -9, statusReason: 'exited with code -9', failureCode: 'exit_nonzero' },
    actions: ['releaseGpus'],
  },
  {
    from: 'running',
    event: { type: 'fail', code: 'time_limit', reason: 'timed out after 3600 s' },
    to: 'failed',
    changes: { statusReason: 'timed out after 3600 s', failureCode: 'time_limit' },
    actions: ['releaseGpus'],
  },
  // canRetry: attempt 2 < 3 retries as attempt 3 (the last one).
  {
    from: 'running',
    given: { attempt: 2 },
    event: sample.requeue,
    to: 'queued',
    changes: { attempt: 3, ...requeued },
    actions: ['releaseGpus'],
  },
  { from: 'running', given: { attempt: 3 }, event: sample.requeue, to: 'failed', changes: { statusReason: gaveUp, failureCode: 'max_attempts' }, actions: ['releaseGpus'] },
  // maxAttempts 1 means no retry at all.
  {
    from: 'running',
    given: { maxAttempts: 1 },
    event: { type: 'requeue', code: 'node_lost', reason: 'preempted' },
    to: 'failed',
    changes: { statusReason: 'preempted; gave up after 1 attempts', failureCode: 'max_attempts' },
    actions: ['releaseGpus'],
  },
  {
    from: 'running',
    event: { type: 'cancel', reason: 'deadline passed' },
    to: 'cancelled',
    changes: { statusReason: 'deadline passed', failureCode: 'cancelled_by_user' },
    actions: ['dispatchKill'],
  },
  {
    from: 'running',
    event: sample.preempt,
    to: 'running',
    changes: { preemptedBy: 'fast-job-9', statusReason: 'preempted by FAST job fast-job-9; stopping', failureCode: 'preempted' },
    actions: ['dispatchKill'],
  },
  { from: 'running', event: sample.member_failed, to: 'running', changes: memberFailed, actions: [] },
  // A lost member is remembered as lost: after a restart the attempt is still requeued, not failed.
  {
    from: 'running',
    event: { type: 'member_failed', node_id: 'node-c', code: null, reason: 'gang member on node-c lost', lost: true },
    to: 'running',
    changes: {
      memberFailure: { node_id: 'node-c', code: null, reason: 'gang member on node-c lost', lost: true },
      statusReason: 'gang member on node-c lost; stopping the other members',
      failureCode: 'node_lost',
    },
    actions: [],
  },
  // A requeue (the last member's node lost) clears the failure with the attempt.
  {
    from: 'running',
    given: { memberFailure: memberFailed.memberFailure },
    event: sample.requeue,
    to: 'queued',
    changes: { attempt: 2, ...requeued, memberFailure: null },
    actions: ['releaseGpus'],
  },
  // The SIGTERM exit of a preempted attempt: requeued, attempt 2, and it does not count.
  { from: 'running', given: { preemptedBy: 'fast-job-9' }, event: { type: 'exit', code: 143 }, to: 'queued', changes: preempted(2), actions: ['releaseGpus'] },
  // Even on its last attempt: 3 - 0 preemptions = 3 would give up, but a preemption never does.
  { from: 'running', given: { attempt: 3, preemptedBy: 'fast-job-9' }, event: sample.requeue, to: 'queued', changes: preempted(4), actions: ['releaseGpus'] },
  // canRetry subtracts preemptions: attempt 3 with 1 preemption counts as 2 < 3, so it retries.
  {
    from: 'running',
    given: { attempt: 3, preemptions: 1 },
    event: sample.requeue,
    to: 'queued',
    changes: { attempt: 4, ...requeued },
    actions: ['releaseGpus'],
  },
  // Like cancel, a timeout kills first and frees the GPUs when the kill is confirmed.
  {
    from: 'running',
    event: sample.timeout,
    to: 'failed',
    changes: { statusReason: 'ran 7200 s, over its 3600 s × 2 limit', failureCode: 'time_limit' },
    actions: ['dispatchKill'],
  },
];

// Written out in full rather than derived, so that accepting a new event in a
// state is a deliberate edit here too.
const refused: Record<JobStatus, JobEventType[]> = {
  pending: ['place', 'start', 'exit', 'requeue', 'diagnose', 'preempt', 'timeout', 'member_failed'],
  queued: ['admit', 'start', 'exit', 'requeue', 'preempt', 'timeout', 'member_failed'],
  scheduled: ['admit', 'place', 'diagnose'],
  running: ['admit', 'place', 'start', 'diagnose'],
  completed: ['admit', 'place', 'start', 'exit', 'fail', 'requeue', 'cancel', 'diagnose', 'preempt', 'timeout', 'member_failed'],
  failed: ['admit', 'place', 'start', 'exit', 'fail', 'requeue', 'cancel', 'diagnose', 'preempt', 'timeout', 'member_failed'],
  cancelled: ['admit', 'place', 'start', 'exit', 'fail', 'requeue', 'cancel', 'diagnose', 'preempt', 'timeout', 'member_failed'],
};

function label(row: Allowed): string {
  const { type, ...rest } = row.event;
  const args = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
  const given = row.given ? ` given ${JSON.stringify(row.given)}` : '';
  return `${row.from}${given} --${type}${args}--> ${row.to} [${row.actions.join(', ')}]`;
}

describe('job machine: shape', () => {
  it('has exactly the seven statuses as states, in lifecycle order', () => {
    expect(Object.keys(jobMachine.root.states)).toEqual([...JOB_STATUSES]);
    expect(JOB_STATUSES).toEqual(['pending', 'queued', 'scheduled', 'running', 'completed', 'failed', 'cancelled']);
    expect(Object.values(JobStatus)).toEqual([...JOB_STATUSES]);
  });

  it('marks exactly the terminal statuses final', () => {
    for (const status of JOB_STATUSES) {
      const node = jobMachine.root.states[status];
      expect(node?.type === 'final', status).toBe(TERMINAL_STATUSES.has(status));
      expect(isTerminal(status), status).toBe(TERMINAL_STATUSES.has(status));
    }
    expect([...TERMINAL_STATUSES].sort()).toEqual(['cancelled', 'completed', 'failed']);
  });

  it('lists every event type once', () => {
    expect([...JOB_EVENT_TYPES].sort()).toEqual(['admit', 'cancel', 'diagnose', 'exit', 'fail', 'member_failed', 'place', 'preempt', 'requeue', 'start', 'timeout']);
  });
});

describe('job machine: initial snapshot', () => {
  it('starts pending with attempt 1 and nothing placed, and runs no effect', () => {
    const [snapshot, actions] = initialTransition(jobMachine, { jobId: 'job-1', maxAttempts: 3 });
    expect(snapshot.value).toBe('pending');
    expect(snapshot.status).toBe('active');
    expect(snapshot.context).toEqual(aJob('pending'));
    expect(actions).toEqual([]);
  });

  it('takes an explicit attempt', () => {
    const [snapshot] = initialTransition(jobMachine, { jobId: 'job-1', maxAttempts: 3, attempt: 2 });
    expect(snapshot.context.attempt).toBe(2);
  });
});

describe('job machine: allowed transitions', () => {
  it.each(allowed.map((row) => [label(row), row] as const))('%s', (_, row) => {
    const before = aJob(row.from, row.given);
    const [next, actions] = transition(jobMachine, restoreJobSnapshot(row.from, before), row.event);

    expect(next.value).toBe(row.to);
    expect(next.context).toEqual({ ...before, ...row.changes });
    expect(next.status).toBe(isTerminal(row.to) ? 'done' : 'active');
    expect(actions.map((a) => a.type)).toEqual(row.actions);
    // Everything returned is an effect the runtime knows how to run.
    for (const a of actions) expect(JOB_EFFECTS).toContain(a.type);
  });

  it('covers every (state, event) pair the machine accepts', () => {
    for (const status of JOB_STATUSES) {
      for (const type of JOB_EVENT_TYPES) {
        const accepts = restoreJobSnapshot(status, aJob(status)).can(sample[type]);
        const tabled = allowed.some((row) => row.from === status && row.event.type === type);
        expect(tabled, `${status} + ${type}`).toBe(accepts);
      }
    }
  });
});

describe('pureTransition (the coordinator\'s cached-scope transition)', () => {
  it('gives exactly what xstate\'s transition() gives, for every allowed and refused (state, event)', () => {
    const cases = [
      ...allowed.map((row) => [row.from, aJob(row.from, row.given), row.event] as const),
      ...JOB_STATUSES.flatMap((status) => refused[status].map((type) => [status, aJob(status), sample[type]] as const)),
    ];
    for (const [status, ctx, event] of cases) {
      const snapshot = restoreJobSnapshot(status, ctx);
      const [want, wantActions] = transition(jobMachine, snapshot, event);
      const [got, gotActions] = pureTransition(snapshot, event);
      expect(got.value, `${status} + ${event.type}`).toEqual(want.value);
      expect(got.context).toEqual(want.context);
      expect(got.status).toBe(want.status);
      expect(gotActions.map((a) => [a.type, a.params])).toEqual(wantActions.map((a) => [a.type, a.params]));
      // A refused event returns the very same snapshot, as transition() does.
      expect(got === snapshot).toBe(want === snapshot);
    }
  });
});

describe('job machine: refused events', () => {
  it.each(JOB_STATUSES.map((s) => [s] as const))('%s refuses exactly the events not in the allowed table', (status) => {
    const accepted = new Set(allowed.filter((r) => r.from === status).map((r) => r.event.type));
    const expectedRefused = JOB_EVENT_TYPES.filter((t) => !accepted.has(t));
    expect([...refused[status]].sort()).toEqual([...expectedRefused].sort());
  });

  const cases = JOB_STATUSES.flatMap((status) => refused[status].map((type) => [status, type] as const));
  it.each(cases)('%s refuses %s: same snapshot, no actions', (status, type) => {
    const before = aJob(status);
    const snapshot = restoreJobSnapshot(status, before);
    const [next, actions] = transition(jobMachine, snapshot, sample[type]);

    expect(next.value).toBe(status);
    expect(next.context).toEqual(before);
    expect(actions).toEqual([]);
    // The runtime relies on this identity to skip the write.
    expect(next).toBe(snapshot);
  });

  it('a terminal job refuses even the events that would be valid otherwise', () => {
    for (const status of TERMINAL_STATUSES) {
      const snapshot = restoreJobSnapshot(status, aJob(status));
      expect(snapshot.status).toBe('done');
      for (const event of [{ type: 'exit', code: 1 }, { type: 'cancel', reason: 'late' }] as const) {
        expect(transition(jobMachine, snapshot, event)[0]).toBe(snapshot);
      }
    }
  });
});

describe('job machine: effect params', () => {
  it('dispatchRun names the new placement and the current attempt', () => {
    const [, [run]] = transition(jobMachine, restoreJobSnapshot('queued', aJob('queued')), sample.place);
    expect(run?.params).toEqual({ jobId: 'job-1', attempt: 1, nodeId: 'node-b', gpuIndices: [2, 3] });
  });

  it('releaseGpus on requeue names the attempt and node being given up, not the next ones', () => {
    const before = aJob('running', { attempt: 2 });
    const [next, [release]] = transition(jobMachine, restoreJobSnapshot('running', before), sample.requeue);
    expect(release?.params).toEqual({ jobId: 'job-1', attempt: 2, nodeId: 'node-a', gpuIndices: [0, 1] });
    expect(next.context).toMatchObject({ attempt: 3, nodeId: null, gpuIndices: [] });
  });

  it('dispatchKill names the node the process runs on', () => {
    const [, [kill]] = transition(jobMachine, restoreJobSnapshot('running', aJob('running')), sample.cancel);
    expect(kill?.params).toEqual({ jobId: 'job-1', attempt: 1, nodeId: 'node-a', gpuIndices: [0, 1] });
  });

  it('params are copies: mutating them cannot change the snapshot', () => {
    const [next, [run]] = transition(jobMachine, restoreJobSnapshot('queued', aJob('queued')), sample.place);
    (run?.params as { gpuIndices: number[] }).gpuIndices.push(7);
    expect(next.context.gpuIndices).toEqual([2, 3]);
  });
});

describe('job machine: provide() swaps the effects', () => {
  it('runs the provided dispatchRun with the placement when a live actor is placed', () => {
    const dispatchRun = vi.fn();
    const releaseGpus = vi.fn();
    const actor = createActor(jobMachine.provide({ actions: { dispatchRun, releaseGpus } }), {
      input: { jobId: 'job-7', maxAttempts: 2 },
    });
    actor.start();

    actor.send({ type: 'admit' });
    expect(dispatchRun).not.toHaveBeenCalled();
    actor.send({ type: 'place', node_id: 'node-c', gpu_indices: [4] });
    expect(actor.getSnapshot().value).toBe('scheduled');
    expect(dispatchRun).toHaveBeenCalledTimes(1);
    expect(dispatchRun.mock.calls[0]?.[1]).toEqual({ jobId: 'job-7', attempt: 1, nodeId: 'node-c', gpuIndices: [4] });

    actor.send({ type: 'start' });
    actor.send({ type: 'exit', code: 0 });
    expect(actor.getSnapshot().value).toBe('completed');
    expect(actor.getSnapshot().status).toBe('done');
    expect(releaseGpus).toHaveBeenCalledTimes(1);
    actor.stop();
  });
});
