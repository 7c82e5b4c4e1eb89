/**
 * One failure vocabulary (machines/job.failure.ts), end to end through the
 * production coordinator in the harness: every way a job ends other than by
 * exiting 0 leaves its code on the job and on the transition that wrote it,
 * and a new attempt starts with none. The API serves the same column
 * (test/integration/jobs.test.ts, placement-flow.test.ts, coordinator.test.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SIGTERM_EXIT_SEC } from '../../../src/sim/adapters/agents.ts';
import { CoordinatorHarness, HEARTBEAT_MS, type HarnessOptions } from '../../harness/coordinator-harness.ts';
import { failureInfo, JOB_FAILURE_CODES, type JobFailureCode } from '../../../machines/job.failure.ts';

let h: CoordinatorHarness;
async function start(opts?: HarnessOptions): Promise<CoordinatorHarness> {
  h = await CoordinatorHarness.start(opts);
  return h;
}
afterEach(async () => {
  await h?.stop();
});

/** Long enough for a node that stopped heartbeating to be declared lost (3 missed intervals), and the next sweep. */
const LOST_SEC = (4 * HEARTBEAT_MS) / 1000 + 2;

describe('failure codes through the coordinator', () => {
  it('exit_nonzero: a single-node job that exits 3 fails with the code, on the row and its transition', async () => {
    await start();
    await h.addNodes({ id: 'fast-1', pool: 'fast' });
    await h.submit({ id: 'job', tier: 'FAST', gpuCount: 1 });
    expect(h.job('job')).toMatchObject({ status: 'running', failureCode: null });
    await h.crash('fast-1', 'job', 3);
    expect(h.job('job')).toMatchObject({ status: 'failed', exitCode: 3, statusReason: 'exited with code 3', failureCode: 'exit_nonzero' });
    expect(h.failureCodes('job')).toEqual([null, null, null, 'exit_nonzero']);
  });

  it('a clean exit completes with no code', async () => {
    await start();
    await h.addNodes({ id: 'fast-1', pool: 'fast' });
    await h.submit({ id: 'job', tier: 'FAST', gpuCount: 1, durationSec: 60 });
    await h.advance(60);
    expect(h.job('job')).toMatchObject({ status: 'completed', failureCode: null });
  });

  it('unschedulable: no node shape could hold it', async () => {
    await start();
    await h.addNodes({ id: 'fast-1', pool: 'fast' });
    await h.submit({ id: 'huge', tier: 'FAST', gpuCount: 16 });
    expect(h.job('huge')).toMatchObject({ status: 'failed', failureCode: 'unschedulable' });
    expect(h.failureCodes('huge')).toEqual(['unschedulable']);
  });

  it('cancelled_by_user: a queued job, and a running one (whose kill is then confirmed)', async () => {
    await start();
    await h.addNodes({ id: 'fast-1', pool: 'fast' });
    await h.submit({ id: 'runs', tier: 'FAST', gpuCount: 8 }, { id: 'waits', tier: 'FAST', gpuCount: 8 });
    expect([h.job('runs').status, h.job('waits').status]).toEqual(['running', 'queued']);

    expect(await h.cancel('waits')).toMatchObject({ status: 'cancelled' });
    expect(h.job('waits')).toMatchObject({ status: 'cancelled', failureCode: 'cancelled_by_user' });
    expect(await h.cancel('runs')).toMatchObject({ status: 'cancelled' });
    await h.advance(SIGTERM_EXIT_SEC);
    expect(h.job('runs')).toMatchObject({ status: 'cancelled', failureCode: 'cancelled_by_user' });
    expect(h.failureCodes('runs').slice(-1)).toEqual(['cancelled_by_user']);
  });

  it('preempted: the victim says so while it is stopped and once requeued; its next placement clears it', async () => {
    await start();
    await h.addNodes({ id: 'fast-1', pool: 'fast' });
    await h.submit({ id: 'flex', tier: 'FLEX', gpuCount: 8, durationSec: 3600 });
    await h.advance(60);
    await h.submit({ id: 'fast', tier: 'FAST', gpuCount: 8, durationSec: 60 });
    expect(h.job('flex')).toMatchObject({ status: 'running', failureCode: 'preempted' });

    await h.advance(SIGTERM_EXIT_SEC);
    expect(h.job('flex')).toMatchObject({ status: 'queued', attempt: 2, failureCode: 'preempted' });
    // The FAST job runs its 60 s; the FLEX job is placed again, with a clean slate.
    await h.advance(60 + 2);
    expect(h.job('flex')).toMatchObject({ status: 'running', attempt: 2, failureCode: null });
    expect(h.failureCodes('flex')).toEqual([null, null, null, 'preempted', null, null]);
  });

  it('gang_member_failed: the first failed member names the attempt while the others stop, and the failed gang keeps it', async () => {
    await start();
    await h.addNodes({ id: 'fast-1', pool: 'fast' }, { id: 'fast-2', pool: 'fast' });
    await h.submit({ id: 'gang', tier: 'FAST', gpuCount: 8, nodeCount: 2 });
    const rank1 = h.job('gang').placements![1]!.node_id;
    await h.crash(rank1, 'gang', 3);
    expect(h.job('gang')).toMatchObject({ status: 'running', failureCode: 'gang_member_failed' });
    await h.advance(SIGTERM_EXIT_SEC);
    expect(h.job('gang')).toMatchObject({ status: 'failed', exitCode: 3, failureCode: 'gang_member_failed' });
    expect(h.failureCodes('gang').slice(-1)).toEqual(['gang_member_failed']);
  });

  it('node_lost requeues; once lost nodes have used up max attempts, max_attempts fails it', async () => {
    await start();
    for (let attempt = 1; attempt <= 3; attempt++) {
      await h.addNodes({ id: `fast-${attempt}`, pool: 'fast' });
      if (attempt === 1) await h.submit({ id: 'job', tier: 'FAST', gpuCount: 1 });
      expect(h.job('job')).toMatchObject({ status: 'running', attempt, nodeId: `fast-${attempt}`, failureCode: null });
      h.kill(`fast-${attempt}`);
      await h.advance(LOST_SEC);
      if (attempt < 3) expect(h.job('job')).toMatchObject({ status: 'queued', attempt: attempt + 1, failureCode: 'node_lost' });
    }
    expect(h.job('job')).toMatchObject({ status: 'failed', failureCode: 'max_attempts' });
    expect(h.job('job').statusReason).toMatch(/lost.*gave up after 3 attempts/);
    expect(h.failureCodes('job').filter((c) => c !== null)).toEqual(['node_lost', 'node_lost', 'max_attempts']);
  });

  it('time_limit: under SCALAR_OVERRUN_POLICY=fail, a job past expected × factor is killed and failed', async () => {
    await start({ overrun: { factor: 2, policy: 'fail' } });
    await h.addNodes({ id: 'fast-1', pool: 'fast' });
    await h.submit({ id: 'slow', tier: 'FAST', gpuCount: 1, expectedDurationSec: 60 });
    await h.advance(125);
    expect(h.job('slow')).toMatchObject({ status: 'failed', failureCode: 'time_limit' });
    expect(h.job('slow').statusReason).toMatch(/^time limit: /);
  });
});

describe('failureInfo: the one switch', () => {
  // Written out, so a change of policy for any code is a deliberate edit here too.
  const expected: Record<JobFailureCode, ReturnType<typeof failureInfo>> = {
    exit_nonzero: { status: 'failed', retryable: false, fault: 'user' },
    gang_member_failed: { status: 'failed', retryable: false, fault: 'user' },
    time_limit: { status: 'failed', retryable: false, fault: 'user' },
    unschedulable: { status: 'failed', retryable: false, fault: 'user' },
    cancelled_by_user: { status: 'cancelled', retryable: false, fault: 'user' },
    launch_failed: { status: 'failed', retryable: true, fault: 'system' },
    max_attempts: { status: 'failed', retryable: true, fault: 'system' },
    node_lost: { status: 'queued', retryable: true, fault: 'system' },
    preempted: { status: 'queued', retryable: true, fault: 'system' },
  };
  it.each(JOB_FAILURE_CODES)('%s', (code) => {
    expect(failureInfo(code)).toEqual(expected[code]);
  });
  it('lists every code once', () => {
    expect([...JOB_FAILURE_CODES].sort()).toEqual(Object.keys(expected).sort());
  });
  it('refuses a code it does not know (a row written by a newer build is read, not trusted)', () => {
    expect(() => failureInfo('disk_full' as JobFailureCode)).toThrow(/unknown job failure code "disk_full"/);
  });
});
