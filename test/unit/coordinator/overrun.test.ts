/**
 * Overruns (actors/coordinator/overrun.ts): what happens to a job that
 * outlives its expected_duration_sec, under each SCALAR_OVERRUN_POLICY.
 * Pure bookkeeping over a JobTable and a CapacitySnapshot; no I/O.
 */
import { describe, expect, it } from 'vitest';
import { JobTable, LiveJob } from '../../../actors/coordinator/live.ts';
import { overrunItems } from '../../../actors/coordinator/overrun.ts';
import type { JobRecord } from '../../../actors/coordinator/ports.ts';
import { CapacitySnapshot } from '../../../src/placement/index.ts';

const T0 = 1_700_000_000_000;
const MIN = 60_000;

function setup(status: 'running' | 'scheduled' = 'running', expectedSec = 600) {
  const rec: JobRecord = {
    id: 'job-1', seq: 1, userId: 'u1', tier: 'FAST', status, statusReason: null, failureCode: null, priority: 0,
    gpuCount: 1, vramPerGpuGb: 40, cpuCores: 1, ramGb: 1, expectedDurationSec: expectedSec,
    image: 'x', command: ['x'], env: {}, attempt: 1, maxAttempts: 3, nodeId: 'n1', gpuIndices: [0],
    exitCode: null, nodeCount: 1, placements: [{ node_id: 'n1', gpu_indices: [0] }], preemptedBy: null,
    preemptions: 0, memberFailure: null, createdAt: T0, scheduledAt: T0,
  };
  const jobs = new JobTable();
  const job = new LiveJob(rec);
  jobs.set(rec.id, job);
  const capacity = new CapacitySnapshot([
    { nodeId: 'n1', pool: 'fast', schedulable: true, cpuTotal: 8, ramTotal: 64, gpus: [{ index: 0, vramGb: 80, heldBy: null }] },
  ]);
  capacity.hold(job.request(), { jobId: rec.id, nodes: [{ node_id: 'n1', gpu_indices: [0] }] }, { startedAt: T0, endsAt: T0 + expectedSec * 1000 });
  return { jobs, capacity, job };
}

describe('overruns', () => {
  it('leaves a job alone before its expected end', () => {
    const { jobs, capacity } = setup();
    expect(overrunItems(jobs, capacity, { factor: 2, policy: 'fail' }, T0 + 599_000)).toEqual([]);
    expect(capacity.holdTimes('job-1')!.endsAt).toBe(T0 + 600_000);
  });

  it('extend: past its expected end, the hold is extended by expected × (factor − 1), and nothing is written', () => {
    const { jobs, capacity } = setup();
    // 600 s expected, factor 2: at 601 s the hold ends at 601 + 600 × (2 − 1) = 1,201 s.
    expect(overrunItems(jobs, capacity, { factor: 2, policy: 'extend' }, T0 + 601_000)).toEqual([]);
    expect(capacity.holdTimes('job-1')!.endsAt).toBe(T0 + 1_201_000);
    // Far past the limit it still runs; the hold keeps moving.
    expect(overrunItems(jobs, capacity, { factor: 2, policy: 'extend' }, T0 + 5_000_000)).toEqual([]);
    expect(capacity.holdTimes('job-1')!.endsAt).toBe(T0 + 5_600_000);
  });

  it('extend: a short job is extended by at least a minute', () => {
    const { jobs, capacity } = setup('running', 10);
    // 10 s × (1.5 − 1) = 5 s < 60 s, so the extension is 60 s.
    overrunItems(jobs, capacity, { factor: 1.5, policy: 'extend' }, T0 + 11_000);
    expect(capacity.holdTimes('job-1')!.endsAt).toBe(T0 + 11_000 + MIN);
  });

  it('fail: between the expected end and the limit, the hold is extended to the limit', () => {
    const { jobs, capacity } = setup();
    // Limit = 600 s × 2 = 1,200 s.
    expect(overrunItems(jobs, capacity, { factor: 2, policy: 'fail' }, T0 + 700_000)).toEqual([]);
    expect(capacity.holdTimes('job-1')!.endsAt).toBe(T0 + 1_200_000);
  });

  it('fail: past expected × factor, the running job gets a timeout with a reason', () => {
    const { jobs, capacity } = setup();
    expect(overrunItems(jobs, capacity, { factor: 2, policy: 'fail' }, T0 + 1_200_000)).toEqual([
      {
        jobId: 'job-1',
        attempt: 1,
        events: [{ type: 'timeout', reason: 'time limit: ran 1200 s, over expected_duration_sec 600 × 2' }],
      },
    ]);
  });

  it('fail: a job still scheduled (not started) or being preempted is not timed out', () => {
    const scheduled = setup('scheduled');
    expect(overrunItems(scheduled.jobs, scheduled.capacity, { factor: 2, policy: 'fail' }, T0 + 2_000_000)).toEqual([]);
    const preempted = setup();
    preempted.job.rec.preemptedBy = 'fast-9';
    expect(overrunItems(preempted.jobs, preempted.capacity, { factor: 2, policy: 'fail' }, T0 + 2_000_000)).toEqual([]);
  });
});
