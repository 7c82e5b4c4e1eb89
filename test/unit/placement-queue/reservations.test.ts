import { describe, expect, it } from 'vitest';
import { earliestStart } from '../../../src/placement/queue/index.ts';
import type { Reservation } from '../../../src/placement/types.ts';
import { T0, aJob, aNode, fleet, holdOn, sec } from './builders.ts';

const opts = { now: T0, blockMarginSec: 0 };

describe('earliestStart: one node', () => {
  // fast-1: 8 × 80 GB. h1 holds 4 GPUs until +600 s, h2 holds 4 GPUs until +1800 s.
  const snap = fleet(aNode('fast-1'));
  holdOn(snap, aJob('h1').gpus(4).build(), 'fast-1', { ends: 600 });
  holdOn(snap, aJob('h2').gpus(4).build(), 'fast-1', { ends: 1800 });

  it.each([
    { gpus: 4, want: 600, why: 'h1 ends: 4 free' },
    { gpus: 6, want: 1800, why: 'after h1 only 4 are free; after h2 all 8' },
    { gpus: 8, want: 1800, why: 'both must end' },
  ])('$gpus GPUs → +$want s ($why)', ({ gpus, want }) => {
    expect(earliestStart(snap, aJob('j').gpus(gpus).build(), opts)).toEqual({ startAt: sec(want), nodeIds: ['fast-1'] });
  });

  it('never when the node is too small', () => {
    expect(earliestStart(snap, aJob('j').gpus(9).build(), opts)).toBeUndefined();
  });

  it('CPU counts too: the CPU frees with the hold that holds it', () => {
    const s = fleet(aNode('fast-1').cpu(16));
    holdOn(s, aJob('cpu-hog').gpus(0).cpu(12).build(), 'fast-1', { ends: 900 });
    holdOn(s, aJob('gpu').gpus(7).cpu(1).build(), 'fast-1', { ends: 100 });
    // 16 cores: 3 free now, 4 at +100 s (gpu ends), 16 at +900 s (cpu-hog ends); the job needs 8.
    expect(earliestStart(s, aJob('j').gpus(1).cpu(8).build(), opts)?.startAt).toBe(sec(900));
  });

  it('a hold past its endsAt is expected to end now, not in the past', () => {
    const s = fleet(aNode('fast-1'));
    holdOn(s, aJob('late').gpus(8).build(), 'fast-1', { started: -7200, ends: -60 });
    expect(earliestStart(s, aJob('j').gpus(1).build(), opts)?.startAt).toBe(T0);
  });

  it('endsBy: a hold being preempted ends when its grace runs out', () => {
    const s = fleet(aNode('fast-1'));
    holdOn(s, aJob('victim').flex().gpus(8).build(), 'fast-1', { ends: 7200 });
    const at = earliestStart(s, aJob('j').gpus(1).build(), { ...opts, endsBy: new Map([['victim', sec(30)]]) });
    expect(at?.startAt).toBe(sec(30));
  });
});

describe('earliestStart: choosing among nodes', () => {
  it('the earliest node; ties by node id; not-ready nodes and other jobs’ reservations are skipped', () => {
    const snap = fleet(aNode('fast-1'), aNode('fast-2'), aNode('fast-3'), aNode('fast-0').notReady());
    holdOn(snap, aJob('a').gpus(8).build(), 'fast-1', { ends: 300 });
    holdOn(snap, aJob('b').gpus(8).build(), 'fast-2', { ends: 300 });
    holdOn(snap, aJob('c').gpus(8).build(), 'fast-3', { ends: 100 });
    const job = aJob('j').gpus(2).build();
    // fast-0 is free but not ready; fast-3 frees first (+100 s).
    expect(earliestStart(snap, job, opts)).toEqual({ startAt: sec(100), nodeIds: ['fast-3'] });
    // fast-3 reserved by another job: fast-1 and fast-2 tie at +300 s → fast-1.
    const r: Reservation = { jobId: 'other', tier: 'FAST', nodeIds: ['fast-3'], startAt: sec(100), strict: false };
    expect(earliestStart(snap, job, { ...opts, reservations: new Map([['fast-3', r]]) })).toEqual({ startAt: sec(300), nodeIds: ['fast-1'] });
  });

  it('FLEX on a fast node only once no FAST job holds there', () => {
    const snap = fleet(aNode('fast-1'), aNode('flex-1').pool('flex'));
    holdOn(snap, aJob('fast-job').gpus(1).build(), 'fast-1', { ends: 500 }); // 7 GPUs free, but FAST work there until +500 s
    holdOn(snap, aJob('flex-job').flex().gpus(8).build(), 'flex-1', { ends: 900 });
    expect(earliestStart(snap, aJob('j').flex().gpus(1).build(), opts)).toEqual({ startAt: sec(500), nodeIds: ['fast-1'] });
    // A FAST job may join now.
    expect(earliestStart(snap, aJob('k').gpus(1).build(), opts)).toEqual({ startAt: T0, nodeIds: ['fast-1'] });
  });

  it('block end: a start must leave the job (+ margin) inside the block', () => {
    // fast-1 frees at +100 s but its block ends at +3000 s; the job runs 3600 s → never there.
    const snap = fleet(aNode('fast-1').endsAt(sec(3000)), aNode('fast-2'));
    holdOn(snap, aJob('a').gpus(8).build(), 'fast-1', { ends: 100 });
    holdOn(snap, aJob('b').gpus(8).build(), 'fast-2', { ends: 900 });
    expect(earliestStart(snap, aJob('j').duration(3600).build(), opts)).toEqual({ startAt: sec(900), nodeIds: ['fast-2'] });
    // A 600 s job fits fast-1 at +100 s with a 2000 s margin (100 + 600 + 2000 ≤ 3000) but not a 2400 s one.
    expect(earliestStart(snap, aJob('j').duration(600).build(), { ...opts, blockMarginSec: 2000 })?.nodeIds).toEqual(['fast-1']);
    expect(earliestStart(snap, aJob('j').duration(600).build(), { ...opts, blockMarginSec: 2400 })?.nodeIds).toEqual(['fast-2']);
  });
});

describe('earliestStart: gangs', () => {
  it('nodeCount distinct nodes: the nodeCount-th earliest', () => {
    const snap = fleet(aNode('fast-1'), aNode('fast-2'), aNode('fast-3'));
    holdOn(snap, aJob('a').gpus(8).build(), 'fast-1', { ends: 100 });
    holdOn(snap, aJob('b').gpus(8).build(), 'fast-2', { ends: 200 });
    holdOn(snap, aJob('c').gpus(8).build(), 'fast-3', { ends: 300 });
    // Member per node frees at +100, +200, +300 s: 2 nodes by +200 s, 3 by +300 s.
    expect(earliestStart(snap, aJob('g').gpus(4).nodes(2).build(), opts)).toEqual({ startAt: sec(200), nodeIds: ['fast-1', 'fast-2'] });
    expect(earliestStart(snap, aJob('g').gpus(4).nodes(3).build(), opts)?.startAt).toBe(sec(300));
    expect(earliestStart(snap, aJob('g').gpus(4).nodes(4).build(), opts)).toBeUndefined();
  });

  it('a node whose block closes before the others free is not part of the gang', () => {
    // Job runs 1000 s. fast-1 frees at +100 s, block ends +1200 s → latest start +200 s.
    // fast-2 frees at +300 s, fast-3 at +400 s. At +300 s fast-1's window is closed → start +400 s on fast-2, fast-3.
    const snap = fleet(aNode('fast-1').endsAt(sec(1200)), aNode('fast-2'), aNode('fast-3'));
    holdOn(snap, aJob('a').gpus(8).build(), 'fast-1', { ends: 100 });
    holdOn(snap, aJob('b').gpus(8).build(), 'fast-2', { ends: 300 });
    holdOn(snap, aJob('c').gpus(8).build(), 'fast-3', { ends: 400 });
    expect(earliestStart(snap, aJob('g').nodes(2).duration(1000).build(), opts)).toEqual({ startAt: sec(400), nodeIds: ['fast-2', 'fast-3'] });
  });

  it('one gang hold frees on all its nodes at once', () => {
    const snap = fleet(aNode('fast-1'), aNode('fast-2'));
    holdOn(snap, aJob('gang').gpus(8).build(), ['fast-1', 'fast-2'], { ends: 700 });
    expect(earliestStart(snap, aJob('g').gpus(8).nodes(2).build(), opts)).toEqual({ startAt: sec(700), nodeIds: ['fast-1', 'fast-2'] });
  });
});
