import { describe, expect, it } from 'vitest';
import { planPreemption, type PreemptionOptions } from '../../../src/placement/queue/index.ts';
import type { Reservation } from '../../../src/placement/types.ts';
import { T0, aJob, aNode, fleet, holdOn } from './builders.ts';

const opts: PreemptionOptions = { now: T0, blockMarginSec: 0, graceSec: 30 };

/**
 * fast-1 (8 × 80 GB), fully held by FLEX work (started is seconds before T0 when negative):
 *   v1: 4 GPUs, ran 100 s → 400 GPU-s
 *   v2: 2 GPUs, ran 300 s → 600 GPU-s
 *   v3: 2 GPUs, ran  50 s → 100 GPU-s
 */
function busyNode() {
  const snap = fleet(aNode('fast-1'), aNode('fast-2'));
  holdOn(snap, aJob('v1').flex().gpus(4).build(), 'fast-1', { started: -100, ends: 3600 });
  holdOn(snap, aJob('v2').flex().gpus(2).build(), 'fast-1', { started: -300, ends: 3600 });
  holdOn(snap, aJob('v3').flex().gpus(2).build(), 'fast-1', { started: -50, ends: 3600 });
  holdOn(snap, aJob('fast-owner').gpus(8).build(), 'fast-2', { started: -10, ends: 3600 }); // FAST: never a victim
  return snap;
}

describe('planPreemption: the cheapest sufficient set', () => {
  it.each([
    { gpus: 2, victims: ['v3'], lost: 100, why: 'v3 alone: 100 (v2: 600, v1: 400)' },
    { gpus: 4, victims: ['v1'], lost: 400, why: 'v1: 400 < v2+v3: 700' },
    { gpus: 6, victims: ['v1', 'v3'], lost: 500, why: 'v1+v3: 500 < v1+v2: 1000' },
    { gpus: 8, victims: ['v1', 'v2', 'v3'], lost: 1100, why: 'all: 400 + 600 + 100' },
  ])('$gpus GPUs → $victims ($why)', ({ gpus, victims, lost }) => {
    const plan = planPreemption(busyNode(), aJob('f').gpus(gpus).build(), opts);
    expect(plan).toEqual({ nodeIds: ['fast-1'], victims, reused: [], lostGpuSeconds: lost });
  });

  it('never a FAST victim; nothing when only FAST work could make room', () => {
    const snap = fleet(aNode('fast-1'));
    holdOn(snap, aJob('fast-owner').gpus(8).build(), 'fast-1', { started: -10, ends: 3600 });
    expect(planPreemption(snap, aJob('f').build(), opts)).toBeUndefined();
  });

  it('only FAST jobs preempt, and FLEX on flex nodes is not preemptible', () => {
    const snap = fleet(aNode('flex-1').pool('flex'));
    holdOn(snap, aJob('x').flex().gpus(8).build(), 'flex-1', { ends: 3600 });
    expect(planPreemption(snap, aJob('f').build(), opts)).toBeUndefined();
    expect(planPreemption(busyNode(), aJob('l').flex().build(), opts)).toBeUndefined();
  });

  it('not when the job already fits (nothing to kill)', () => {
    const snap = fleet(aNode('fast-1'));
    holdOn(snap, aJob('v').flex().gpus(4).build(), 'fast-1', { started: -10, ends: 3600 });
    expect(planPreemption(snap, aJob('f').gpus(4).build(), opts)).toBeUndefined();
  });

  it('the cheapest node wins; CPU shortage counts too', () => {
    const snap = fleet(aNode('fast-1'), aNode('fast-2').cpu(8));
    holdOn(snap, aJob('a').flex().gpus(8).build(), 'fast-1', { started: -100, ends: 3600 }); // 800 GPU-s
    holdOn(snap, aJob('b').flex().gpus(4).cpu(1).build(), 'fast-2', { started: -100, ends: 3600 }); // 400 GPU-s
    holdOn(snap, aJob('c').flex().gpus(0).cpu(7).build(), 'fast-2', { started: -9999, ends: 3600 }); // 0 GPUs → 0 GPU-s
    // The job needs 4 GPUs and 4 cores. fast-2 has 4 GPUs free but 0 cores: kill c (0 GPU-s) → 7 cores. fast-1: a (800).
    const plan = planPreemption(snap, aJob('f').gpus(4).cpu(4).build(), opts);
    expect(plan).toEqual({ nodeIds: ['fast-2'], victims: ['c'], reused: [], lostGpuSeconds: 0 });
  });

  it('a gang victim is killed whole: its GPU-seconds count on all its nodes', () => {
    const snap = fleet(aNode('fast-1'), aNode('fast-2'), aNode('fast-3'));
    holdOn(snap, aJob('gang').flex().gpus(8).build(), ['fast-1', 'fast-2'], { started: -100, ends: 3600 }); // 16 GPUs × 100 s = 1600
    holdOn(snap, aJob('solo').flex().gpus(8).build(), 'fast-3', { started: -150, ends: 3600 }); // 8 × 150 = 1200
    // Per node alone the gang would look like 800 < 1200; counted whole it is 1600 > 1200.
    expect(planPreemption(snap, aJob('f').gpus(8).build(), opts)?.victims).toEqual(['solo']);
  });

  it('a FAST gang takes the nodeCount cheapest nodes; a victim shared by two of them counts once', () => {
    const snap = fleet(aNode('fast-1'), aNode('fast-2'), aNode('fast-3'));
    holdOn(snap, aJob('gang').flex().gpus(8).build(), ['fast-1', 'fast-2'], { started: -10, ends: 3600 }); // 16 × 10 = 160
    holdOn(snap, aJob('solo').flex().gpus(8).build(), 'fast-3', { started: -100, ends: 3600 }); // 800
    const plan = planPreemption(snap, aJob('f').gpus(8).nodes(2).build(), opts);
    expect(plan).toEqual({ nodeIds: ['fast-1', 'fast-2'], victims: ['gang'], reused: [], lostGpuSeconds: 160 });
  });

  it('holds already being killed: free for their FAST job, never chosen for another', () => {
    const snap = busyNode();
    // v1 (4 GPUs) is being killed for f. f needs 4 → v1 suffices: no new victim.
    const mine = planPreemption(snap, aJob('f').gpus(4).build(), { ...opts, preempting: new Map([['v1', 'f']]) });
    expect(mine).toEqual({ nodeIds: ['fast-1'], victims: [], reused: ['v1'], lostGpuSeconds: 0 });
    // f needs 6: v1 frees 4, add the cheapest 2 more: v3 (100).
    expect(planPreemption(snap, aJob('f').gpus(6).build(), { ...opts, preempting: new Map([['v1', 'f']]) })?.victims).toEqual(['v3']);
    // For another job g, v1 is not free and not choosable: 4 GPUs only from v2 + v3 (700).
    const other = planPreemption(snap, aJob('g').gpus(4).build(), { ...opts, preempting: new Map([['v1', 'f']]) });
    expect(other).toEqual({ nodeIds: ['fast-1'], victims: ['v2', 'v3'], reused: [], lostGpuSeconds: 700 });
  });

  it('skips nodes reserved by another job, not-ready nodes and blocks that end too soon', () => {
    const reserved: Reservation = { jobId: 'x', tier: 'FAST', nodeIds: ['fast-1'], startAt: T0, strict: true };
    expect(planPreemption(busyNode(), aJob('f').build(), { ...opts, reservations: new Map([['fast-1', reserved]]) })).toBeUndefined();

    const down = fleet(aNode('fast-1').notReady());
    holdOn(down, aJob('v').flex().gpus(8).build(), 'fast-1', { ends: 3600 });
    expect(planPreemption(down, aJob('f').build(), opts)).toBeUndefined();

    // Block ends at +3600 s; the job would start at +30 s (grace) and run 3600 s.
    const block = fleet(aNode('fast-1').endsAt(T0 + 3600_000));
    holdOn(block, aJob('v').flex().gpus(8).build(), 'fast-1', { ends: 3600 });
    expect(planPreemption(block, aJob('f').duration(3600).build(), opts)).toBeUndefined();
    expect(planPreemption(block, aJob('f').duration(3570).build(), opts)?.victims).toEqual(['v']);
  });

  it('VRAM: only GPUs with enough memory count', () => {
    const snap = fleet(aNode('fast-1').gpus(8, 40), aNode('fast-2'));
    holdOn(snap, aJob('small').flex().gpus(8, 40).build(), 'fast-1', { started: -1, ends: 3600 }); // cheap but 40 GB GPUs
    holdOn(snap, aJob('big').flex().gpus(8, 80).build(), 'fast-2', { started: -100, ends: 3600 });
    expect(planPreemption(snap, aJob('f').gpus(1, 80).build(), opts)?.victims).toEqual(['big']);
  });
});
