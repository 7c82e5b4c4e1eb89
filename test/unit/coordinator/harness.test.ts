/**
 * The coordinator's pass loop in the harness (test/harness/coordinator-harness.ts):
 * placement, preemption and gang flows with the production Coordinator over
 * in-memory store and agents, in virtual time. Times below are virtual
 * seconds since the harness started; every node has 8 GPUs of 80 GB unless
 * said otherwise.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SCHEDULING } from '../../../actors/coordinator/settings.ts';
import { SIGTERM_EXIT_SEC } from '../../../src/sim/adapters/agents.ts';
import { CoordinatorHarness, KILL_GRACE_SEC } from '../../harness/coordinator-harness.ts';

let h: CoordinatorHarness;
beforeEach(async () => {
  h = await CoordinatorHarness.start();
});
afterEach(async () => {
  await h.stop();
});

/** A command as `type@node t=… gpus=…` (run) or `type@node t=… grace=…` (kill). */
const show = (jobId: string) =>
  h.commandsFor(jobId).map(({ t, nodeId, cmd }) => `${cmd.type}@${nodeId} t=${t} ${cmd.type === 'run' ? `gpus=${cmd.gpu_indices.join(',')}` : `grace=${cmd.grace_sec}`}`);

describe('placement', () => {
  it('a FAST job lands on a fast node: GPUs bound, run sent, running once the agent starts it', async () => {
    await h.addNodes({ id: 'flex-1', pool: 'flex' }, { id: 'fast-1', pool: 'fast' });
    await h.submit({ id: 'train', tier: 'FAST', gpuCount: 2, durationSec: 600 });

    expect(h.job('train')).toMatchObject({ status: 'running', nodeId: 'fast-1', gpuIndices: [0, 1], placements: [{ node_id: 'fast-1', gpu_indices: [0, 1] }], attempt: 1 });
    expect(await h.held('train')).toEqual(['fast-1: 0,1']);
    expect(show('train')).toEqual(['run@fast-1 t=0 gpus=0,1']);
    const run = h.commandsFor('train')[0]!.cmd;
    expect(run.type === 'run' && run.env).toMatchObject({ RUN: '0', SCALAR_NODE_RANK: '0', SCALAR_NODE_COUNT: '1', SCALAR_MASTER_ADDR: 'fast-1' });
    expect(h.transitions('train')).toEqual(['pending→queued (admit)', 'queued→scheduled (place)', 'scheduled→running (start)']);

    // It exits 0 after its 600 s: completed, GPUs released.
    await h.advance(600);
    expect(h.job('train')).toMatchObject({ status: 'completed', exitCode: 0 });
    expect(await h.held('train')).toEqual([]);
  });

  it('a job that does not fit now stays queued with its reason, and is placed when room frees', async () => {
    await h.addNodes({ id: 'fast-1', pool: 'fast' });
    await h.submit({ id: 'small', tier: 'FAST', gpuCount: 2, durationSec: 600 });
    await h.submit({ id: 'big', tier: 'FAST', gpuCount: 8, durationSec: 60 });

    // 6 GPUs are free; `small` ends at 600 s (10 min past 12:00 UTC), so `big` reserves the node from then.
    expect(h.job('big')).toMatchObject({
      status: 'queued',
      nodeId: null,
      statusReason: '0 of 1 ready fast node can hold it: 1 has fewer than 8 free GPUs with ≥ 40 GB; expected to start by 12:10 UTC (reserved)',
    });
    expect(show('big')).toEqual([]);
    expect(await h.held('big')).toEqual([]);

    await h.advance(600);
    expect(h.job('big')).toMatchObject({ status: 'running', nodeId: 'fast-1', gpuIndices: [0, 1, 2, 3, 4, 5, 6, 7] });
    expect(show('big')).toEqual(['run@fast-1 t=600 gpus=0,1,2,3,4,5,6,7']);
  });

  it('a job no node shape could hold fails at once as unschedulable', async () => {
    await h.addNodes({ id: 'fast-1', pool: 'fast' });
    await h.submit({ id: 'huge', tier: 'FAST', gpuCount: 16 });
    expect(h.job('huge').status).toBe('failed');
    expect(h.job('huge').statusReason).toMatch(/^unschedulable/);
    expect(h.transitions('huge')).toEqual(['pending→failed (fail)']);
    expect(h.sent).toEqual([]);
  });
});

describe('preemption', () => {
  it('FLEX work backfilled on a fast node makes room for a FAST job: the cheapest victim is killed with grace, requeued, and the FAST job placed once it exits', async () => {
    const grace = DEFAULT_SCHEDULING.preemptGraceSec;
    await h.addNodes({ id: 'fast-1', pool: 'fast' });
    // No flex node: both FLEX jobs are backfilled on the fast node.
    await h.submit({ id: 'flex-old', tier: 'FLEX', gpuCount: 4 });
    await h.advance(60);
    await h.submit({ id: 'flex-new', tier: 'FLEX', gpuCount: 4 });
    expect([h.job('flex-old'), h.job('flex-new')].map((j) => [j.status, j.nodeId, j.gpuIndices])).toEqual([
      ['running', 'fast-1', [0, 1, 2, 3]],
      ['running', 'fast-1', [4, 5, 6, 7]],
    ]);

    await h.advance(60);
    await h.submit({ id: 'urgent', tier: 'FAST', gpuCount: 4 });
    // flex-new has run 60 s × 4 GPUs, flex-old 120 s × 4: flex-new is the cheaper loss.
    expect(h.job('flex-new')).toMatchObject({ status: 'running', preemptedBy: 'urgent', statusReason: 'preempted by FAST job urgent; stopping' });
    expect(show('flex-new')).toEqual(['run@fast-1 t=60 gpus=4,5,6,7', `kill@fast-1 t=120 grace=${grace}`]);
    expect(h.job('urgent')).toMatchObject({ status: 'queued', statusReason: `preempting 1 FLEX job on fast-1 (GPUs free within ${grace} s)` });
    expect(h.job('flex-old')).toMatchObject({ status: 'running', preemptedBy: null });
    expect(show('flex-old')).toEqual(['run@fast-1 t=0 gpus=0,1,2,3']);

    // The victim checkpoints and exits 143 SIGTERM_EXIT_SEC later; only then is the FAST job placed on its GPUs.
    await h.advance(SIGTERM_EXIT_SEC - 1);
    expect(h.job('urgent').status).toBe('queued');
    await h.advance(1);
    expect(h.job('flex-new')).toMatchObject({ status: 'queued', attempt: 2, preemptions: 1, preemptedBy: null, nodeId: null, statusReason: 'preempted by FAST job urgent' });
    expect(h.transitions('flex-new').slice(-1)).toEqual(['running→queued (exit)']);
    expect(await h.held('flex-new')).toEqual([]);
    expect(h.job('urgent')).toMatchObject({ status: 'running', nodeId: 'fast-1', gpuIndices: [4, 5, 6, 7] });
    expect(show('urgent')).toEqual([`run@fast-1 t=${120 + SIGTERM_EXIT_SEC} gpus=4,5,6,7`]);
    // The preempted attempt paid for the work it lost: 4 GPUs × 65 s.
    expect(h.store.usage.filter((u) => u.jobId === 'flex-new')).toMatchObject([{ attempt: 1, gpus: 4, gpuSeconds: 4 * (60 + SIGTERM_EXIT_SEC) }]);
  });
});

describe('gangs', () => {
  it('all or nothing: a 2-node gang waits while only one node can hold a member, then both members run together', async () => {
    await h.addNodes({ id: 'fast-1', pool: 'fast' }, { id: 'fast-2', pool: 'fast' });
    await h.submit({ id: 'blocker', tier: 'FAST', gpuCount: 4, durationSec: 300 });
    await h.submit({ id: 'gang', tier: 'FAST', gpuCount: 8, nodeCount: 2 });
    // One node has 8 free GPUs, the other 4: no member is placed.
    expect(h.job('gang')).toMatchObject({ status: 'queued', placements: null, nodeId: null });
    expect(h.job('gang').statusReason).toBe(
      '0 of 2 ready fast nodes can hold it: 1 has fewer than 8 free GPUs with ≥ 40 GB, a gang of 2 needs 2 nodes, 1 can hold a member now; expected to start by 12:05 UTC (reserved)',
    );
    expect(show('gang')).toEqual([]);
    expect(await h.held('gang')).toEqual([]);

    // The blocker ends at 300 s: both members are placed in one pass and run.
    await h.advance(300);
    const { placements } = h.job('gang');
    expect(placements?.map((p) => p.node_id).sort()).toEqual(['fast-1', 'fast-2']);
    expect(h.job('gang').status).toBe('running');
    expect(await h.held('gang')).toEqual(['fast-1: 0,1,2,3,4,5,6,7', 'fast-2: 0,1,2,3,4,5,6,7']);
    const runs = h.commandsFor('gang').map(({ t, nodeId, cmd }) => [t, nodeId, cmd.type === 'run' && cmd.env.SCALAR_NODE_RANK, cmd.type === 'run' && cmd.env.SCALAR_MASTER_ADDR]);
    const master = placements![0]!.node_id;
    expect(runs).toEqual([
      [300, master, '0', master],
      [300, placements![1]!.node_id, '1', master],
    ]);
  });

  it('a member that fails gets the others killed, and the attempt ends (failed with its code) once they have exited', async () => {
    await h.addNodes({ id: 'fast-1', pool: 'fast' }, { id: 'fast-2', pool: 'fast' });
    await h.submit({ id: 'gang', tier: 'FAST', gpuCount: 8, nodeCount: 2 });
    const [rank0, rank1] = h.job('gang').placements!.map((p) => p.node_id);

    await h.advance(30);
    await h.crash(rank1!, 'gang', 3);
    // The failure is recorded first; the survivor is told to stop with the kill grace; the failed member's GPUs are free.
    expect(h.job('gang')).toMatchObject({ status: 'running', memberFailure: { node_id: rank1, code: 3 }, statusReason: `gang member on ${rank1} exited with code 3; stopping the other members` });
    expect(show('gang').slice(2)).toEqual([`kill@${rank0} t=30 grace=${KILL_GRACE_SEC}`]);
    expect(await h.held('gang')).toEqual([`${rank0}: 0,1,2,3,4,5,6,7`]);

    // The survivor exits 143 after SIGTERM: the attempt ends, failed with the first failure's code, every GPU free.
    await h.advance(SIGTERM_EXIT_SEC);
    expect(h.job('gang')).toMatchObject({ status: 'failed', exitCode: 3, attempt: 1 });
    expect(await h.held('gang')).toEqual([]);
    expect(h.transitions('gang').slice(-1)).toEqual(['running→failed (exit)']);
    // No new attempt was placed.
    expect(h.commandsFor('gang').filter((c) => c.cmd.type === 'run')).toHaveLength(2);
  });
});
