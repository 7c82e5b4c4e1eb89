import { describe, expect, it } from 'vitest';
import type { Tier } from '../../../src/domain/cluster.ts';
import { compareJobs, FILTERS, searchLimit, type FilterName, type JobRequest } from '../../../src/placement/index.ts';
import { aJob, aNode, decide, holdOn, HOUR, NOW, placed, put, snapshotOf, where, type JobBuilder, type NodeBuilder } from './builders.ts';

const sum = (r: Record<FilterName, number>): number => FILTERS.reduce((n, f) => n + r[f], 0);

describe('compareJobs (queue order)', () => {
  it.each([
    ['FAST before FLEX, whatever the priority', { tier: 'FAST', priority: 0, seq: 9 }, { tier: 'FLEX', priority: 9, seq: 1 }, -1],
    ['higher priority first', { tier: 'FLEX', priority: 5, seq: 9 }, { tier: 'FLEX', priority: 1, seq: 1 }, -1],
    ['older first on equal tier and priority', { tier: 'FAST', priority: 2, seq: 3 }, { tier: 'FAST', priority: 2, seq: 4 }, -1],
    ['jobId last', { tier: 'FAST', priority: 2, seq: 3, jobId: 'b' }, { tier: 'FAST', priority: 2, seq: 3, jobId: 'c' }, -1],
  ] as const)('%s', (_name, a, b, sign) => {
    const ja = aJob('a').with(a as Partial<JobRequest>).build();
    const jb = aJob('b').with(b as Partial<JobRequest>).build();
    expect(Math.sign(compareJobs(ja, jb))).toBe(sign);
    expect(Math.sign(compareJobs(jb, ja))).toBe(-sign);
  });
});

interface FitCase {
  name: string;
  nodes: NodeBuilder[];
  /** Placed and held first, in order. */
  before?: JobBuilder[];
  /** Held first on a given node: [job, nodeId, GPU indices]. */
  held?: [JobBuilder, string, number[]][];
  job: JobBuilder;
  /** "node:gpu,gpu", rank order for gangs. */
  at: string;
}

describe('placeJob: select and bind', () => {
  it.each<FitCase>([
    {
      // b: nothing left (best_fit 94, fragmentation 100); a: 6 GPUs left on a broken whole node.
      name: 'the node left with fewer free GPUs',
      nodes: [aNode('a').gpus(8, 80), aNode('b').gpus(2, 80)],
      job: aJob('j').gpus(2, 80),
      at: 'b:0,1',
    },
    {
      // a: gpuLeft 0, vramOver 202/282 → best_fit 58.3, fragmentation 100 (taken whole) → total 62.5
      // b: gpuLeft 1/3 → best_fit 59.5, breaks a whole node leaving 1 → fragmentation 37.5 → 50.5
      name: 'the node left with no GPU, even with more VRAM over',
      nodes: [aNode('a').gpuVrams([141, 141]), aNode('b').gpus(3, 40)],
      job: aJob('j').gpus(2, 40),
      at: 'a:0,1',
    },
    {
      name: 'the node whose GPUs leave less VRAM over, on equal free GPUs',
      nodes: [aNode('a').gpus(2, 141), aNode('b').gpus(2, 48), aNode('c').gpus(2, 80)],
      job: aJob('j').gpus(2, 40),
      at: 'b:0,1',
    },
    { name: 'the smaller sufficient GPUs within a node', nodes: [aNode('a').gpuVrams([141, 80, 24, 80, 141])], job: aJob('j').gpus(2, 40), at: 'a:1,3' },
    { name: 'the lowest indices among equal GPUs', nodes: [aNode('a').gpus(4, 80)], job: aJob('j').gpus(3, 80), at: 'a:0,1,2' },
    { name: 'sparse CUDA indices, ascending', nodes: [aNode('a').gpuVrams([141, 80, 80, 80], [7, 5, 3, 6])], job: aJob('j').gpus(2, 80), at: 'a:3,5' },
    { name: 'the free GPUs, skipping held ones', nodes: [aNode('a').gpus(3, 80)], before: [aJob('h').gpus(1, 80)], job: aJob('j').gpus(1, 80), at: 'a:1' },
    {
      // Equal GPUs; b is left 8/16 + 32/64 vs a's 56/64 + 480/512 of CPU and RAM.
      name: 'the node left with less CPU and RAM, on equal GPUs',
      nodes: [aNode('a').gpus(1, 80).cpu(64).ram(512), aNode('b').gpus(1, 80).cpu(16).ram(64)],
      job: aJob('j').gpus(1, 80).cpu(8).ram(32),
      at: 'b:0',
    },
    { name: 'nodeId ascending on a full tie', nodes: [aNode('c'), aNode('a'), aNode('b')], job: aJob('j').gpus(1), at: 'a:0' },
    {
      // a has 1 free after h: r = 0 → fragmentation 100; b would break a whole node.
      name: 'a partly used node over a whole one',
      nodes: [aNode('a').gpus(4, 80), aNode('b').gpus(4, 80)],
      before: [aJob('h').gpus(3, 80)],
      job: aJob('j').gpus(1, 80),
      at: 'a:3',
    },
    {
      // c leaves 1 free (q .75), b leaves 3 (q .375), a breaks a whole node.
      name: 'no ragged remainder: 2 GPUs onto the node with 3 free, not 5',
      nodes: [aNode('a'), aNode('b'), aNode('c')],
      held: [
        [aJob('hb').gpus(3, 80), 'b', [0, 1, 2]],
        [aJob('hc').gpus(5, 80), 'c', [0, 1, 2, 3, 4]],
      ],
      job: aJob('j').gpus(2, 80),
      at: 'c:5,6',
    },
    {
      name: 'a CPU-only job on the GPU-less node',
      nodes: [aNode('a').gpus(2, 80), aNode('b').gpus(0, 0), aNode('c').gpus(1, 80)],
      job: aJob('j').gpus(0),
      at: 'b:',
    },
    {
      // 1 h job needs 70 min: x (block ends in 2 h) scores 50 + 50·70/120 ≈ 79; y (no block) 50.
      name: 'a short job onto the block that ends soonest',
      nodes: [aNode('x').endsAt(NOW + 2 * HOUR), aNode('y'), aNode('z').endsAt(NOW + 48 * HOUR)],
      job: aJob('j').gpus(1, 80).duration(3600),
      at: 'x:0',
    },
    { name: 'not a block that ends too soon', nodes: [aNode('x').endsAt(NOW + HOUR), aNode('y')], job: aJob('j').duration(3600), at: 'y:0' },
    {
      name: 'a gang: the best distinct nodes, best first',
      // b and c fit exactly (4 of 4 free); a would be a broken whole node.
      nodes: [aNode('a'), aNode('b'), aNode('c')],
      held: [
        [aJob('hb').gpus(4, 80), 'b', [0, 1, 2, 3]],
        [aJob('hc').gpus(4, 80), 'c', [0, 1, 2, 3]],
      ],
      job: aJob('g').gpus(4, 80).nodes(2),
      at: 'b:4,5,6,7 c:4,5,6,7',
    },
    {
      name: 'a FLEX gang takes flex nodes first, then idle fast ones',
      nodes: [aNode('f1'), aNode('x').flex(), aNode('f2')],
      job: aJob('g').flex().gpus(8, 80).nodes(2),
      at: 'x:0,1,2,3,4,5,6,7 f1:0,1,2,3,4,5,6,7',
    },
  ])('$name', ({ nodes, before = [], held = [], job, at }) => {
    const snap = snapshotOf(...nodes);
    for (const b of before) put(snap, b);
    for (const [h, nodeId, gpus] of held) holdOn(snap, h, nodeId, gpus);
    expect(where(placed(snap, job))).toBe(at);
  });

  it('does not mutate the snapshot', () => {
    const snap = snapshotOf(aNode('a'), aNode('b').flex());
    const before = snap.nodes();
    decide(snap, aJob('j').gpus(4));
    decide(snap, aJob('k').gpus(99));
    decide(snap, aJob('g').gpus(8).nodes(2));
    expect(snap.nodes()).toEqual(before);
    expect(snap.holding('j')).toBeUndefined();
  });

  it('explains a placement: the pool total, what the visit rejected, the best three, step fit', () => {
    const snap = snapshotOf(aNode('a').notReady(), aNode('b').cpu(2), aNode('c'), aNode('d'), aNode('e'), aNode('x').flex());
    holdOn(snap, aJob('h').gpus(4, 80), 'd', [0, 1, 2, 3]);
    const d = decide(snap, aJob('j').gpus(4, 80).cpu(4));
    expect(d.kind).toBe('placed');
    expect(d.diagnosis).toMatchObject({ nodes: 5, step: 'fit', rejected: { node_ready: 1, cpu_ram: 1 } });
    expect(sum(d.diagnosis.rejected)).toBe(2);
    // d fits exactly: best_fit 100·(1 − (0 + 0 + 56/64 + 480/512)/8) ≈ 77.34, fragmentation 100, block_time 50.
    // c, e: a broken whole node leaving 4: best_fit 52.34, fragmentation 37.5.
    expect(d.diagnosis.best.map((b) => b.nodeId)).toEqual(['d', 'c', 'e']);
    expect(d.diagnosis.best[0]!.scores).toEqual({ best_fit: 77.34, fragmentation: 100, block_time: 50 });
    expect(d.diagnosis.best[0]!.score).toBeCloseTo((3 * 77.34375 + 200 + 50) / 6, 2);
  });

  it('stops after K feasible nodes (the search limit), tightest buckets first', () => {
    // 40 whole nodes, 40 with 1 free GPU (n40…n79): the job visits the 1-free bucket and stops at K = 8.
    const nodes = Array.from({ length: 80 }, (_, i) => aNode(`n${String(i).padStart(2, '0')}`));
    const snap = snapshotOf(...nodes);
    for (let i = 40; i < 80; i++) holdOn(snap, aJob(`h${i}`).gpus(7, 80), `n${i}`, [0, 1, 2, 3, 4, 5, 6]);
    const d = decide(snap, aJob('j').gpus(1, 80));
    expect(searchLimit(1)).toBe(8);
    expect(d).toMatchObject({ kind: 'placed', placement: { nodes: [{ node_id: 'n40', gpu_indices: [7] }] } });
    expect(sum(d.diagnosis.rejected)).toBe(0);
    expect(d.diagnosis.best.map((b) => b.nodeId)).toEqual(['n40', 'n41', 'n42']);
  });
  it('under the limit, visits nodes with the tightest sufficient VRAM first, whatever their ids', () => {
    // 20 whole 80 GB nodes sort before 20 whole 40 GB ones; K = 8 would see only 80 GB
    // nodes in nodeId order, but the index files the 40 GB ones in a tighter slot.
    const big = Array.from({ length: 20 }, (_, i) => aNode(`a${String(i).padStart(2, '0')}`).gpus(8, 80));
    const small = Array.from({ length: 20 }, (_, i) => aNode(`b${String(i).padStart(2, '0')}`).gpus(8, 40));
    const snap = snapshotOf(...big, ...small);
    expect(where(placed(snap, aJob('j').gpus(1, 40)))).toBe('b00:0');
    expect(where(placed(snap, aJob('k').gpus(1, 80)))).toBe('a00:0');
  });
});

describe('placeJob: tier rules', () => {
  it.each<{ name: string; nodes: NodeBuilder[]; before?: JobBuilder[]; tier: Tier; expected: string | null }>([
    { name: 'FAST never runs on a flex node', nodes: [aNode('x').flex()], tier: 'FAST', expected: null },
    { name: 'FAST takes the fast node even when a flex node fits better', nodes: [aNode('f'), aNode('x').flex().gpus(1, 80)], tier: 'FAST', expected: 'f' },
    { name: 'FLEX prefers a flex node over a better-fitting fast one', nodes: [aNode('f').gpus(1, 80), aNode('x').flex()], tier: 'FLEX', expected: 'x' },
    { name: 'FLEX runs on idle fast capacity', nodes: [aNode('f')], tier: 'FLEX', expected: 'f' },
    {
      name: 'FLEX uses a fast node when the flex nodes are full',
      nodes: [aNode('f'), aNode('x').flex().gpus(1, 80)],
      before: [aJob('full').flex()],
      tier: 'FLEX',
      expected: 'f',
    },
    { name: 'FLEX does not join a fast node that holds a FAST job', nodes: [aNode('f')], before: [aJob('fast').fast()], tier: 'FLEX', expected: null },
    {
      name: 'FLEX skips the busy fast node for an idle one',
      nodes: [aNode('f1').gpus(2, 80), aNode('f2')],
      before: [aJob('fast').fast()],
      tier: 'FLEX',
      expected: 'f2',
    },
    { name: 'FAST shares a fast node with FLEX', nodes: [aNode('f').gpus(2, 80)], before: [aJob('flex').flex()], tier: 'FAST', expected: 'f' },
    { name: 'FLEX may join FLEX on a fast node', nodes: [aNode('f').gpus(2, 80)], before: [aJob('flex').flex()], tier: 'FLEX', expected: 'f' },
    { name: 'never a node that is not ready', nodes: [aNode('f').notReady()], tier: 'FAST', expected: null },
  ])('$name', ({ nodes, before = [], tier, expected }) => {
    const snap = snapshotOf(...nodes);
    for (const b of before) put(snap, b);
    const d = decide(snap, aJob('j').with({ tier }).gpus(1));
    if (expected === null) expect(d.kind).toBe('waiting');
    else expect(d).toMatchObject({ kind: 'placed', placement: { nodes: [{ node_id: expected }] } });
  });

  it('a fast node takes FLEX again once its FAST jobs are released', () => {
    const snap = snapshotOf(aNode('f'));
    put(snap, aJob('a').fast());
    put(snap, aJob('b').fast());
    snap.release('a');
    expect(decide(snap, aJob('x').flex()).kind).toBe('waiting');
    snap.release('b');
    expect(decide(snap, aJob('x').flex()).kind).toBe('placed');
  });
});

describe('placeJob: reservations', () => {
  const res = (strict: boolean) =>
    new Map([['a', { jobId: 'big', tier: 'FAST' as Tier, nodeIds: ['a'], startAt: NOW + HOUR, strict }]]);

  it('a job that ends by the reserved start may backfill; a longer one may not', () => {
    const snap = snapshotOf(aNode('a'));
    expect(decide(snap, aJob('short').duration(1800), { reservations: res(false) }).kind).toBe('placed');
    const d = decide(snap, aJob('long').duration(7200), { reservations: res(false) });
    expect(d).toMatchObject({ kind: 'waiting', reason: '0 of 1 ready fast node can hold it: 1 is reserved for a higher job' });
    expect(d.diagnosis.rejected.reservation).toBe(1);
  });

  it('a strict reservation admits only its own job', () => {
    const snap = snapshotOf(aNode('a'), aNode('b').cpu(1));
    expect(decide(snap, aJob('short').duration(1), { reservations: res(true) }).kind).toBe('waiting');
    expect(where(placed(snap, aJob('big'), { reservations: res(true) }))).toBe('a:0');
  });
});

describe('placeJob: first fit', () => {
  it('takes the feasible nodes with the smallest ids, ignoring fit', () => {
    // Best fit would take c (1 GPU); first fit takes b (a is not ready).
    const snap = snapshotOf(aNode('c').gpus(1, 80), aNode('a').notReady(), aNode('b'), aNode('d'));
    expect(where(placed(snap, aJob('j').gpus(1, 80), { firstFit: true }))).toBe('b:0');
    expect(where(placed(snap, aJob('j').gpus(1, 80)))).toBe('c:0');
    expect(where(placed(snap, aJob('g').gpus(1, 80).nodes(3), { firstFit: true }))).toBe('b:0 c:0 d:0');
  });

  it('is deterministic whatever the history of holds, and FLEX still prefers flex', () => {
    const snap = snapshotOf(aNode('f1'), aNode('x2').flex(), aNode('x1').flex().gpus(2, 80));
    holdOn(snap, aJob('h').flex().gpus(1, 80), 'x2', [0]);
    snap.release('h');
    const d = decide(snap, aJob('g').flex().gpus(2, 80).nodes(3), { firstFit: true });
    expect(d.kind === 'placed' && where(d.placement)).toBe('x1:0,1 x2:0,1 f1:0,1');
    expect(d.diagnosis.best.map((b) => b.nodeId)).toEqual(['x1', 'x2', 'f1']);
  });
});

describe('placeJob: gangs', () => {
  it('waits, holding nothing, when fewer nodes than nodeCount can hold a member', () => {
    const snap = snapshotOf(aNode('a'), aNode('b'), aNode('c'), aNode('d'));
    put(snap, aJob('h1').gpus(8, 80));
    put(snap, aJob('h2').gpus(4, 80));
    const d = decide(snap, aJob('g').gpus(8, 80).nodes(4));
    expect(d).toMatchObject({
      kind: 'waiting',
      reason: '0 of 4 ready fast nodes can hold it: 2 have fewer than 8 free GPUs with ≥ 80 GB, a gang of 4 needs 4 nodes, 2 can hold a member now',
    });
    expect(d.diagnosis.rejected).toMatchObject({ gpus: 2, gang: 2 });
    expect(sum(d.diagnosis.rejected)).toBe(4);
  });

  it('a gang of 64 GPUs spreads 8 × 8 over 8 nodes, one slice each', () => {
    const snap = snapshotOf(...Array.from({ length: 10 }, (_, i) => aNode(`n${i}`)));
    const p = put(snap, aJob('g').gpus(8, 80).nodes(8));
    expect(new Set(p.nodes.map((s) => s.node_id)).size).toBe(8);
    expect(p.nodes.every((s) => s.gpu_indices.length === 8)).toBe(true);
    expect(snap.holding('g')).toEqual(p);
  });
});

describe('placeJob: a malformed request is unschedulable, not thrown', () => {
  it.each<[string, Partial<JobRequest>, RegExp]>([
    ['nodeCount 0', { nodeCount: 0 }, /nodeCount must be an integer ≥ 1/],
    ['a fractional GPU count', { gpuCount: 1.5 }, /gpuCount/],
    ['NaN RAM', { ramGb: Number.NaN }, /ramGb/],
    ['a negative duration', { expectedDurationSec: -1 }, /expectedDurationSec/],
  ])('%s', (_name, o, reason) => {
    const d = decide(snapshotOf(aNode('a')), aJob('j').with(o));
    expect(d.kind).toBe('unschedulable');
    expect(d.kind === 'unschedulable' && d.reason).toMatch(reason);
  });
});
