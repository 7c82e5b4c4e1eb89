import { describe, expect, it } from 'vitest';
import { placeJob } from '../../../src/placement/pipeline.ts';
import { runQueue, scheduleQueue } from '../../../src/placement/queue/index.ts';
import type { CapacitySnapshot } from '../../../src/placement/snapshot.ts';
import type { QueueOutcome } from '../../../src/placement/decision.ts';
import { FIFO_FIRST_FIT_POLICY, SCALAR_POLICY, type JobRequest } from '../../../src/placement/types.ts';
import { T0, aJob, aNode, ctxOf, fleet, holdOn, sec } from './builders.ts';

const NO_BACKFILL = { ...SCALAR_POLICY, backfill: false };
const NO_PREEMPTION = { ...SCALAR_POLICY, preemption: false };

const placedIds = (o: QueueOutcome): string[] => o.placed.map((p) => p.placement.jobId);
const waitingIds = (o: QueueOutcome): string[] => [...o.waiting.keys()];

/**
 * fast-1 (8 GPUs): a FAST job holds 4 GPUs until +1800 s (FAST: never preempted).
 * fast-2 (8 GPUs): a FAST job holds 6 GPUs until +7200 s, so 2 GPUs are free there.
 */
function backfillFleet(): CapacitySnapshot {
  const snap = fleet(aNode('fast-1'), aNode('fast-2'));
  holdOn(snap, aJob('running-1').gpus(4).build(), 'fast-1', { ends: 1800 });
  holdOn(snap, aJob('running-2').gpus(6).build(), 'fast-2', { ends: 7200 });
  return snap;
}

describe('scheduleQueue: placement and bookkeeping', () => {
  it('holds each placement from now until now + expected duration, in queue order', () => {
    const snap = fleet(aNode('fast-1'));
    const out = scheduleQueue(snap, [aJob('b').seq(2).duration(60).build(), aJob('a').seq(1).duration(120).build()], ctxOf());
    expect(placedIds(out)).toEqual(['a', 'b']);
    expect(snap.holdTimes('a')).toEqual({ startedAt: T0, endsAt: sec(120) });
    expect(snap.holdTimes('b')).toEqual({ startedAt: T0, endsAt: sec(60) });
    expect(out.placed[0]!.diagnosis.step).toBe('fit');
  });

  it('throws before doing anything on a repeated job or one that already holds capacity', () => {
    const snap = fleet(aNode('fast-1'));
    const a = aJob('a').build();
    expect(() => scheduleQueue(snap, [aJob('x').build(), a, a], ctxOf())).toThrow(/a is queued twice/);
    expect(snap.holding('x')).toBeUndefined();
    holdOn(snap, a, 'fast-1', { ends: 60 });
    expect(() => scheduleQueue(snap, [aJob('y').build(), a], ctxOf())).toThrow(/a already holds capacity/);
    expect(snap.holding('y')).toBeUndefined();
  });

  it('unschedulable jobs pass through, without a position', () => {
    const snap = fleet(aNode('fast-1'));
    holdOn(snap, aJob('h').gpus(8).build(), 'fast-1', { ends: 600 });
    const out = scheduleQueue(snap, [aJob('w1').seq(1).build(), aJob('never').gpus(16).seq(2).build(), aJob('w2').seq(3).build()], ctxOf({ policy: NO_PREEMPTION }));
    expect([...out.unschedulable.keys()]).toEqual(['never']);
    expect(out.unschedulable.get('never')!.reason).toMatch(/no fast node is large enough/);
    expect(out.waiting.get('w1')!.position).toBe(1);
    expect(out.waiting.get('w2')!.position).toBe(2);
  });

  it('positions follow the order the pass considered the waiting jobs (DRF included)', () => {
    const snap = fleet(aNode('fast-1').gpus(1, 80));
    const jobs = [
      aJob('a1').user('alice').seq(1).build(),
      aJob('a2').user('alice').seq(2).build(),
      aJob('b1').user('bob').seq(3).build(),
      aJob('b2').user('bob').seq(4).build(),
    ];
    // a1 placed (alice 1 GPU); bob 0 → b1 waits, b2 waits (bob still 0); then a2.
    const out = scheduleQueue(snap, jobs, ctxOf({ policy: NO_PREEMPTION }));
    expect(placedIds(out)).toEqual(['a1']);
    expect([...out.waiting].map(([id, w]) => [id, w.position])).toEqual([['b1', 1], ['b2', 2], ['a2', 3]]);
  });
});

describe('scheduleQueue: EASY backfill', () => {
  it('a later job starts ahead of a blocked one only if it ends before the reservation', () => {
    const jobs = [
      aJob('big').gpus(6).priority(1).build(), // blocked: fast-1 has 4 free until +1800 s → reserved fast-1 at +1800 s
      aJob('long').gpus(4).duration(3600).build(), // fast-1 would hold it until +3600 s > +1800 s: waits
      aJob('short').gpus(4).duration(1200).build(), // ends at +1200 s ≤ +1800 s: backfilled on fast-1
    ];
    const out = scheduleQueue(backfillFleet(), jobs, ctxOf());
    expect(out.reservations).toEqual([{ jobId: 'big', tier: 'FAST', nodeIds: ['fast-1'], startAt: sec(1800), strict: false }]);
    expect(placedIds(out)).toEqual(['short']);
    expect(out.placed[0]!.diagnosis.step).toBe('backfill');
    expect(out.waiting.get('big')!.reason).toMatch(/; expected to start by 12:30 UTC \(reserved\)$/);
    expect(out.waiting.get('long')!.reason).toMatch(/reserved for a higher job/);
  });

  it('capacity the blocked job cannot use stays usable', () => {
    // fast-2 has 2 free GPUs; big needs 6 and is reserved on fast-1 only, so a long 2-GPU job takes fast-2.
    const jobs = [aJob('big').gpus(6).priority(1).build(), aJob('long2').gpus(2).duration(99_999).build()];
    const out = scheduleQueue(backfillFleet(), jobs, ctxOf());
    expect(out.placed.map((p) => [p.placement.jobId, p.placement.nodes[0]!.node_id, p.diagnosis.step])).toEqual([['long2', 'fast-2', 'backfill']]);
  });

  it('only the first blocked job of each tier is reserved', () => {
    const jobs = [aJob('big').gpus(6).priority(1).build(), aJob('bigger').gpus(8).build(), aJob('flexy').flex().gpus(8).build()];
    const out = scheduleQueue(backfillFleet(), jobs, ctxOf({ policy: NO_PREEMPTION }));
    // big: fast-1 at +1800 s. bigger: no reservation. flexy (FLEX): fast-1 is reserved, fast-2 frees at +7200 s.
    expect(out.reservations.map((r) => [r.jobId, r.nodeIds, (r.startAt - T0) / 1000])).toEqual([
      ['big', ['fast-1'], 1800],
      ['flexy', ['fast-2'], 7200],
    ]);
    expect(out.waiting.get('bigger')!.reason).not.toMatch(/reserved\)/);
  });

  it('a job that can never get enough gets no reservation; the next blocked one may', () => {
    const snap = fleet(aNode('fast-1'), aNode('fast-2').notReady());
    holdOn(snap, aJob('h').gpus(8).build(), 'fast-1', { ends: 600 });
    // nodes2 needs 2 nodes, only fast-1 is ready: no reservation. one waits for fast-1 at +600 s.
    const out = scheduleQueue(snap, [aJob('nodes2').nodes(2).priority(1).build(), aJob('one').build()], ctxOf());
    expect(out.reservations.map((r) => r.jobId)).toEqual(['one']);
  });

  it('backfill off: a blocked job makes the rest of its tier wait, not the other tier', () => {
    const snap = backfillFleet();
    const jobs = [aJob('big').gpus(6).priority(1).build(), aJob('short').gpus(2).duration(60).build(), aJob('flexy').flex().gpus(0).build()];
    const out = scheduleQueue(snap, jobs, ctxOf({ policy: NO_BACKFILL }));
    expect(out.reservations).toEqual([]);
    expect(out.waiting.get('short')!.reason).toBe('waiting behind job big (queue order)');
    // FLEX may not use a fast node busy with FAST work, and there is no flex node: it waits, but on its own account.
    expect(out.waiting.get('flexy')!.reason).toMatch(/busy with FAST jobs/);
  });

  it('strict arrival (the fifo baseline): the first blocked job blocks every later job of any tier', () => {
    const snap = fleet(aNode('fast-1'), aNode('flex-1').pool('flex'));
    holdOn(snap, aJob('h').gpus(8).build(), 'fast-1', { ends: 600 });
    const jobs = [aJob('flex-first').flex().seq(1).build(), aJob('fast-blocked').seq(2).build(), aJob('flex-later').flex().seq(3).build()];
    const out = scheduleQueue(snap, jobs, ctxOf({ policy: FIFO_FIRST_FIT_POLICY }));
    expect(placedIds(out)).toEqual(['flex-first']);
    expect(out.waiting.get('flex-later')!.reason).toBe('waiting behind job fast-blocked (arrival order)');
    expect(out.waiting.get('flex-later')!.diagnosis.nodes).toBe(2);
  });
});

describe('scheduleQueue: preemption', () => {
  /** fast-1: FLEX v-old (4 GPUs, ran 600 s) and v-new (4 GPUs, ran 60 s); flex-1: full. */
  function preemptFleet(): CapacitySnapshot {
    const snap = fleet(aNode('fast-1'), aNode('flex-1').pool('flex'));
    holdOn(snap, aJob('v-old').flex().gpus(4).build(), 'fast-1', { started: -600, ends: 3600 });
    holdOn(snap, aJob('v-new').flex().gpus(4).build(), 'fast-1', { started: -60, ends: 3600 });
    holdOn(snap, aJob('x').flex().gpus(8).build(), 'flex-1', { ends: 3600 });
    return snap;
  }

  it('a blocked FAST job kills the cheapest FLEX set and gets a strict reservation', () => {
    const out = scheduleQueue(preemptFleet(), [aJob('f').gpus(4).build()], ctxOf());
    // v-new: 4 GPUs × 60 s = 240 GPU-s < v-old: 4 × 600 = 2400.
    expect(out.preemptions).toEqual([{ forJobId: 'f', victims: ['v-new'], lostGpuSeconds: 240 }]);
    expect(out.reservations).toEqual([{ jobId: 'f', tier: 'FAST', nodeIds: ['fast-1'], startAt: sec(30), strict: true }]);
    const w = out.waiting.get('f')!;
    expect(w.reason).toBe('preempting 1 FLEX job on fast-1 (GPUs free within 30 s)');
    expect(w.diagnosis.step).toBe('preempt');
  });

  it('nobody else takes the GPUs being freed, however short', () => {
    const out = scheduleQueue(preemptFleet(), [aJob('f').gpus(4).priority(1).build(), aJob('tiny').gpus(0).cpu(1).duration(1).build()], ctxOf());
    expect(placedIds(out)).toEqual([]);
    expect(out.waiting.get('tiny')!.reason).toMatch(/reserved for a higher job/);
  });

  it('victims already being killed for the job suffice: no new preemption, still a strict reservation', () => {
    const out = scheduleQueue(preemptFleet(), [aJob('f').gpus(4).build()], ctxOf({ preempting: new Map([['v-old', 'f']]) }));
    expect(out.preemptions).toEqual([]);
    expect(out.reservations.map((r) => [r.jobId, r.strict])).toEqual([['f', true]]);
    expect(out.waiting.get('f')!.reason).toBe('waiting for 1 preempted FLEX job to stop on fast-1 (GPUs free within 30 s)');
  });

  it('two FAST jobs in one pass never pick the same victim', () => {
    const out = scheduleQueue(preemptFleet(), [aJob('f1').gpus(4).seq(1).build(), aJob('f2').gpus(4).seq(2).build()], ctxOf());
    expect(out.preemptions.map((p) => [p.forJobId, p.victims])).toEqual([['f1', ['v-new']]]);
    // f2: fast-1 is strictly reserved for f1 (and v-new spoken for), and FAST may not use flex-1:
    // nothing to preempt, and no node left to reserve either.
    expect(out.waiting.get('f2')!.diagnosis.step).toBe(null);
    expect(out.reservations.map((r) => r.jobId)).toEqual(['f1']);
  });

  it('not when the job fits, not for FLEX, not with preemption off', () => {
    const snap = preemptFleet();
    snap.release('v-new');
    const fits = scheduleQueue(snap, [aJob('f').gpus(4).build()], ctxOf());
    expect(fits.preemptions).toEqual([]);
    expect(placedIds(fits)).toEqual(['f']);
    expect(scheduleQueue(preemptFleet(), [aJob('l').flex().gpus(4).build()], ctxOf()).preemptions).toEqual([]);
    const off = scheduleQueue(preemptFleet(), [aJob('f').gpus(4).build()], ctxOf({ policy: NO_PREEMPTION }));
    expect(off.preemptions).toEqual([]);
    // Without preemption it waits for v-old / v-new to end at +3600 s.
    expect(off.reservations.map((r) => [r.jobId, r.startAt, r.strict])).toEqual([['f', sec(3600), false]]);
  });
});

describe('scheduleQueue: the failure cache', () => {
  it('skips the pipeline for covered requests and changes no decision', () => {
    const mk = (): CapacitySnapshot => {
      const snap = fleet(aNode('fast-1'), aNode('fast-2'));
      holdOn(snap, aJob('h1').gpus(8).build(), 'fast-1', { ends: 600 });
      holdOn(snap, aJob('h2').gpus(7).build(), 'fast-2', { ends: 900 });
      return snap;
    };
    const jobs: JobRequest[] = [];
    for (let i = 0; i < 50; i++) jobs.push(aJob(`j${i}`).gpus(1 + (i % 4)).duration(600 + i).build());
    let calls = 0;
    const counting: typeof placeJob = (s, j, c) => (calls++, placeJob(s, j, c));
    const cached = runQueue(mk(), jobs, ctxOf({ policy: NO_PREEMPTION }), counting);
    const callsCached = calls;
    calls = 0;
    const plain = runQueue(mk(), jobs, ctxOf({ policy: NO_PREEMPTION }), counting, { cache: false });
    expect(callsCached).toBeLessThan(10);
    expect(calls).toBe(50);
    expect(placedIds(cached)).toEqual(placedIds(plain));
    expect(waitingIds(cached)).toEqual(waitingIds(plain));
    expect(cached.reservations).toEqual(plain.reservations);
    // A job that skipped the scan still gets a reason in the pipeline's words, with its own numbers.
    expect(cached.waiting.get('j7')!.reason).toMatch(/^0 of 2 ready fast nodes can hold it: .*fewer than 4 free GPUs with ≥ 40 GB/);
  });
});

describe('scheduleQueue: stopWhenFull', () => {
  it('stops at the first job once no GPU is free and nothing can be preempted: the rest are left for a full pass', () => {
    // fast-1 has 8 GPUs; the queue's first job takes all 8, so the fleet is full.
    const snap = fleet(aNode('fast-1'));
    const jobs = [aJob('a').seq(1).gpus(8).build(), aJob('b').seq(2).build(), aJob('c').seq(3).build()];
    const out = scheduleQueue(snap, jobs, ctxOf({ stopWhenFull: true }));
    expect(placedIds(out)).toEqual(['a']);
    expect(waitingIds(out)).toEqual([]);
    // A full pass explains every job.
    const again = scheduleQueue(fleet(aNode('fast-1')), jobs, ctxOf());
    expect(waitingIds(again)).toEqual(['b', 'c']);
  });

  it('goes on for FAST jobs while a FLEX job on a fast node could be preempted, and not past them', () => {
    // fast-1 is full with a FLEX job (preemptible there); the FAST job preempts it; the FLEX job after it is left out.
    const snap = fleet(aNode('fast-1'));
    holdOn(snap, aJob('flex-running').flex().gpus(8).build(), 'fast-1', { ends: 3600 });
    const out = scheduleQueue(snap, [aJob('fast').seq(1).gpus(8).build(), aJob('flex-later').flex().seq(2).build()], ctxOf({ stopWhenFull: true }));
    expect(out.preemptions).toEqual([expect.objectContaining({ forJobId: 'fast', victims: ['flex-running'] })]);
    expect(waitingIds(out)).toEqual(['fast']);
  });
});
