import { describe, expect, it } from 'vitest';
import { compareQueue, queueOrder } from '../../../src/placement/queue/index.ts';
import { FIFO_FIRST_FIT_POLICY, SCALAR_POLICY, type JobRequest, type QueuePolicy } from '../../../src/placement/types.ts';
import { aJob, aNode, fleet, holdOn } from './builders.ts';

const NO_FAIR: QueuePolicy = { ...SCALAR_POLICY, fairShare: false };

/** Runs the order to the end; `placed` says which jobs the pass places (each grows its user's share). */
function drain(jobs: JobRequest[], policy: QueuePolicy, o: { held?: Record<string, number>; weights?: Record<string, number>; placed?: (j: JobRequest) => boolean } = {}): string[] {
  // 4 nodes × 8 GPUs = 32 GPUs in total; `held` GPUs per user are held on them.
  const snap = fleet(aNode('fast-1'), aNode('fast-2'), aNode('fast-3'), aNode('fast-4'));
  let n = 0;
  for (const [user, gpus] of Object.entries(o.held ?? {})) {
    holdOn(snap, aJob(`held-${user}`).user(user).gpus(gpus).build(), `fast-${++n}`, { ends: 3600 });
  }
  const order = queueOrder(jobs, snap, policy, o.weights && new Map(Object.entries(o.weights)));
  const seen: string[] = [];
  for (let j = order.next(); j; j = order.next()) {
    seen.push(j.jobId);
    if (o.placed?.(j) ?? true) order.placed(j);
  }
  return seen;
}

describe('queue order without fair share', () => {
  it.each([
    {
      name: 'FAST before FLEX, then higher priority, then seq',
      jobs: [
        aJob('flex-hi').flex().priority(9).seq(1).build(),
        aJob('fast-lo').priority(0).seq(2).build(),
        aJob('fast-hi-late').priority(5).seq(4).build(),
        aJob('fast-hi').priority(5).seq(3).build(),
      ],
      want: ['fast-hi', 'fast-hi-late', 'fast-lo', 'flex-hi'],
    },
    {
      name: 'equal seq: by jobId, so the order is total',
      jobs: [aJob('b').seq(1).build(), aJob('a').seq(1).build()],
      want: ['a', 'b'],
    },
  ])('$name', ({ jobs, want }) => {
    expect(drain(jobs, NO_FAIR)).toEqual(want);
    expect([...jobs].sort(compareQueue).map((j) => j.jobId)).toEqual(want);
  });

  it('strict arrival: seq only, tier and priority ignored', () => {
    const jobs = [aJob('flex-1').flex().seq(1).build(), aJob('fast-2').priority(9).seq(2).build(), aJob('flex-3').flex().seq(3).build()];
    expect(drain(jobs, FIFO_FIRST_FIT_POLICY)).toEqual(['flex-1', 'fast-2', 'flex-3']);
  });
});

describe('weighted DRF within a (tier, priority) group', () => {
  it('the user with the smallest share goes next; shares grow as jobs are placed', () => {
    // Total 32 GPUs. alice holds 8 (share 8/32 = 0.25), carol holds 8 with weight 2 (8/32/2 = 0.125), bob 0.
    const jobs = [
      aJob('a1').user('alice').gpus(4).seq(1).build(),
      aJob('a2').user('alice').gpus(1).seq(2).build(),
      aJob('b1').user('bob').gpus(4).seq(3).build(),
      aJob('b2').user('bob').gpus(4).seq(4).build(),
      aJob('c1').user('carol').gpus(2).seq(5).build(),
      aJob('c2').user('carol').gpus(1).seq(6).build(),
    ];
    // bob 0 → b1 (bob 4/32 = .125); tie bob .125 / carol .125 → b2 (seq 4 < 5; bob 8/32 = .25);
    // carol .125 → c1 (10/32/2 = .156); carol .156 → c2 (11/64 = .172); then alice .25 vs bob (done): a1, a2.
    expect(drain(jobs, SCALAR_POLICY, { held: { alice: 8, carol: 8 }, weights: { carol: 2 } })).toEqual(['b1', 'b2', 'c1', 'c2', 'a1', 'a2']);
  });

  it('a job that waits does not raise its user’s share', () => {
    const jobs = [aJob('a1').user('alice').seq(1).build(), aJob('a2').user('alice').seq(2).build(), aJob('b1').user('bob').seq(3).build()];
    // Placed: a1 (tie 0/0 by seq) → alice 1/32; bob 0 → b1; then a2.
    expect(drain(jobs, SCALAR_POLICY)).toEqual(['a1', 'b1', 'a2']);
    // Nothing placed: alice stays at 0 and a2 (seq 2) beats b1 (seq 3).
    expect(drain(jobs, SCALAR_POLICY, { placed: () => false })).toEqual(['a1', 'a2', 'b1']);
  });

  it('a gang counts all its GPUs: nodeCount × gpuCount', () => {
    const jobs = [
      aJob('a-gang').user('alice').gpus(2).nodes(2).seq(1).build(),
      aJob('a2').user('alice').seq(2).build(),
      aJob('b1').user('bob').gpus(3).seq(3).build(),
      aJob('b2').user('bob').seq(4).build(),
    ];
    // a-gang first (tie, seq) → alice 4; bob 0 → b1 → bob 3; bob 3 < alice 4 → b2; then a2.
    expect(drain(jobs, SCALAR_POLICY)).toEqual(['a-gang', 'b1', 'b2', 'a2']);
  });

  it('groups stay in tier and priority order; shares carry over between groups', () => {
    const jobs = [
      aJob('flex-b').flex().user('bob').seq(1).build(),
      aJob('flex-a').flex().user('alice').seq(2).build(),
      aJob('hi-a').user('alice').priority(1).seq(3).build(),
      aJob('lo-b').user('bob').seq(4).build(),
    ];
    // FAST prio 1: hi-a (alice → 1). FAST prio 0: lo-b (bob → 1). FLEX: tie 1/1 → flex-b by seq.
    expect(drain(jobs, SCALAR_POLICY)).toEqual(['hi-a', 'lo-b', 'flex-b', 'flex-a']);
    // Only bob's jobs placed: alice stays at 0 (bob 1), so she leads the FLEX group.
    expect(drain(jobs, SCALAR_POLICY, { placed: (j) => j.userId === 'bob' })).toEqual(['hi-a', 'lo-b', 'flex-a', 'flex-b']);
  });

  it('fair share off: seq order within the group', () => {
    const jobs = [aJob('a1').user('alice').seq(1).build(), aJob('a2').user('alice').seq(2).build(), aJob('b1').user('bob').seq(3).build()];
    expect(drain(jobs, NO_FAIR)).toEqual(['a1', 'a2', 'b1']);
  });

  it('rejects a weight that is not a positive number', () => {
    const snap = fleet(aNode('fast-1'));
    expect(() => queueOrder([aJob('j').build()], snap, SCALAR_POLICY, new Map([['bob', 0]]))).toThrow(/weight of user bob/);
  });
});
