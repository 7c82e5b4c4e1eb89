import { describe, expect, it } from 'vitest';
import type { Pool } from '../../../src/domain/cluster.ts';
import { CapacitySnapshot, type JobRequest, type Placement } from '../../../src/placement/index.ts';
import { aJob, aNode, holdOn, HOUR, NOW, put, snapshotOf } from './builders.ts';

const times = { startedAt: NOW, endsAt: NOW + HOUR };
const one = (jobId: string, nodeId: string, gpuIndices: number[]): Placement => ({ jobId, nodes: [{ node_id: nodeId, gpu_indices: gpuIndices }] });

describe('CapacitySnapshot: hold and release', () => {
  it('round-trips GPUs, CPU, RAM, the FAST count, user GPUs and the hold views', () => {
    const snap = snapshotOf(aNode('a').gpuVrams([80, 80, 40]).cpu(32).ram(256));
    const before = snap.node('a');
    const job = aJob('j').gpus(2, 80).cpu(8).ram(64.5).user('ana').priority(3).build();
    snap.hold(job, one('j', 'a', [1, 0]), times);

    expect(snap.holding('j')).toEqual(one('j', 'a', [0, 1]));
    expect(snap.holdTimes('j')).toEqual(times);
    expect(snap.node('a')).toMatchObject({ cpuFree: 24, ramFree: 191.5, fastJobs: 1 });
    expect(snap.node('a')!.gpus.map((g) => g.heldBy)).toEqual(['j', 'j', null]);
    const state = snap.state('a')!;
    expect(state.freeGpus).toEqual([{ index: 2, vramGb: 40 }]);
    expect(state.holds).toEqual([
      { jobId: 'j', tier: 'FAST', userId: 'ana', priority: 3, gpuIndices: [0, 1], cpu: 8, ram: 64.5, preemptible: false, ...times },
    ]);
    expect(snap.userGpus('ana')).toBe(2);

    expect(snap.release('j')).toBe(true);
    expect(snap.holding('j')).toBeUndefined();
    expect(snap.node('a')).toEqual(before);
    expect(snap.state('a')!.holds).toEqual([]);
    expect(snap.userGpus('ana')).toBe(0);
    expect(snap.release('j')).toBe(false);
    expect(snap.release('never-held')).toBe(false);
  });

  it('holds a gang on every node at once, in rank order, and releases slice by slice', () => {
    const snap = snapshotOf(aNode('a').gpus(4, 80), aNode('b').gpus(4, 80), aNode('c').gpus(4, 80));
    const gang = aJob('g').flex().gpus(2, 80).nodes(2).user('bo').build();
    const p: Placement = { jobId: 'g', nodes: [{ node_id: 'c', gpu_indices: [3, 1] }, { node_id: 'a', gpu_indices: [0, 1] }] };
    snap.hold(gang, p, times);

    expect(snap.holding('g')).toEqual({ jobId: 'g', nodes: [{ node_id: 'c', gpu_indices: [1, 3] }, { node_id: 'a', gpu_indices: [0, 1] }] });
    expect(snap.holdsOf('g').map((h) => h.gpuIndices)).toEqual([[1, 3], [0, 1]]);
    // FLEX on fast nodes: preemptible.
    expect(snap.holdsOf('g').every((h) => h.preemptible)).toBe(true);
    expect(snap.userGpus('bo')).toBe(4);
    expect([...snap.heldJobs()]).toEqual(['g']);

    expect(snap.releaseSlice('g', 'b')).toBe(false); // holds nothing on b
    expect(snap.releaseSlice('g', 'c')).toBe(true);
    expect(snap.holding('g')).toEqual({ jobId: 'g', nodes: [{ node_id: 'a', gpu_indices: [0, 1] }] });
    expect(snap.state('c')!.freeGpus).toHaveLength(4);
    expect(snap.userGpus('bo')).toBe(2);
    expect(snap.releaseSlice('g', 'a')).toBe(true);
    expect(snap.holding('g')).toBeUndefined();
    expect(snap.releaseSlice('g', 'a')).toBe(false);
    expect(snap.userGpus('bo')).toBe(0);
  });

  it('extendHold moves the expected end on every slice; unknown jobs answer false', () => {
    const snap = snapshotOf(aNode('a'), aNode('b'));
    snap.hold(aJob('g').gpus(1).nodes(2).build(), { jobId: 'g', nodes: [{ node_id: 'a', gpu_indices: [0] }, { node_id: 'b', gpu_indices: [0] }] }, times);
    expect(snap.extendHold('g', NOW + 2 * HOUR)).toBe(true);
    expect(snap.holdTimes('g')).toEqual({ startedAt: NOW, endsAt: NOW + 2 * HOUR });
    expect(snap.holdsOf('g').map((h) => h.endsAt)).toEqual([NOW + 2 * HOUR, NOW + 2 * HOUR]);
    expect(snap.extendHold('nope', NOW)).toBe(false);
    expect(snap.holdTimes('nope')).toBeUndefined();
  });

  it('views are copies; states are live', () => {
    const snap = snapshotOf(aNode('a').gpus(1, 80));
    const v = snap.node('a')!;
    v.gpus[0]!.heldBy = 'x';
    v.cpuFree = 0;
    expect(snap.node('a')).toMatchObject({ cpuFree: 64, gpus: [{ heldBy: null }] });
    const live = snap.state('a')!;
    holdOn(snap, aJob('j').gpus(1, 80), 'a', [0]);
    snap.holding('j')!.nodes[0]!.gpu_indices.push(7);
    expect(snap.holding('j')!.nodes[0]!.gpu_indices).toEqual([0]);
    expect(live.freeGpus).toEqual([]);
    expect(live.cpuFree).toBe(60);
  });

  it('ignores heldBy in the node shapes it is given', () => {
    const n = aNode('a').gpus(2, 80).build();
    n.gpus[0]!.heldBy = 'ghost';
    expect(new CapacitySnapshot([n]).node('a')!.gpus.map((g) => g.heldBy)).toEqual([null, null]);
  });

  const twoNodes = () => snapshotOf(aNode('a').gpuVrams([80, 80, 40]).cpu(16).ram(100), aNode('b').gpus(2, 80).cpu(16).ram(100));
  it.each<[string, Partial<JobRequest>, Placement, RegExp]>([
    ['a GPU already held', { gpuCount: 1, vramPerGpuGb: 80 }, one('j', 'a', [0]), /held by other/],
    ['an unknown GPU', { gpuCount: 1, vramPerGpuGb: 0 }, one('j', 'a', [9]), /no GPU 9/],
    ['the same GPU twice', { gpuCount: 2, vramPerGpuGb: 40 }, one('j', 'a', [1, 1]), /twice/],
    ['too little VRAM', { gpuCount: 1, vramPerGpuGb: 80 }, one('j', 'a', [2]), /40 GB, needs 80/],
    ['a GPU count unlike the request', { gpuCount: 2, vramPerGpuGb: 40 }, one('j', 'a', [1]), /asks for 2 GPUs/],
    ['CPU over the total', { gpuCount: 0, cpuCores: 13, ramGb: 1 }, one('j', 'a', []), /CPU cores/],
    ['RAM over the total', { gpuCount: 0, cpuCores: 1, ramGb: 80.5 }, one('j', 'a', []), /GB RAM/],
    ['an unknown node', { gpuCount: 0 }, one('j', 'zz', []), /unknown node zz/],
    ['a placement for another job', { gpuCount: 0 }, one('k', 'a', []), /placement is for job k/],
    ['a negative CPU request', { gpuCount: 0, cpuCores: -4 }, one('j', 'a', []), /≥ 0/],
    ['fewer slices than nodeCount', { gpuCount: 0, nodeCount: 2 }, one('j', 'a', []), /asks for 2 nodes, the placement names 1/],
    [
      'the same node twice in a gang',
      { gpuCount: 1, vramPerGpuGb: 0, nodeCount: 2 },
      { jobId: 'j', nodes: [{ node_id: 'b', gpu_indices: [0] }, { node_id: 'b', gpu_indices: [1] }] },
      /node b listed twice/,
    ],
    [
      // b's slice is fine, a's is not: nothing may be held on b either.
      'one bad slice in a gang',
      { gpuCount: 1, vramPerGpuGb: 80, nodeCount: 2 },
      { jobId: 'j', nodes: [{ node_id: 'b', gpu_indices: [0] }, { node_id: 'a', gpu_indices: [0] }] },
      /GPU 0 on a is held by other/,
    ],
  ])('hold refuses %s and changes nothing', (_name, req, placement, message) => {
    const snap = twoNodes();
    holdOn(snap, aJob('other').gpus(1, 80).cpu(4).ram(20), 'a', [0]);
    const before = snap.nodes();
    expect(() => snap.hold(aJob('j').with(req).build(), placement, times)).toThrow(message);
    expect(snap.nodes()).toEqual(before);
    expect(snap.holding('j')).toBeUndefined();
    expect(snap.userGpus('u1')).toBe(1);
  });

  it('hold refuses a job that already holds something, and bad times', () => {
    const snap = twoNodes();
    const job = aJob('j').gpus(1, 0).build();
    snap.hold(job, one('j', 'a', [2]), times);
    expect(() => snap.hold(job, one('j', 'a', [0]), times)).toThrow(/already holds/);
    expect(() => snap.hold(aJob('k').gpus(1, 0).build(), one('k', 'a', [0]), { startedAt: NOW, endsAt: Number.NaN })).toThrow(/finite/);
    expect(snap.node('a')!.gpus.map((g) => g.heldBy)).toEqual([null, null, 'j']);
  });

  it('hold ignores pool and schedulable (rebuilding holds of running jobs)', () => {
    const snap = snapshotOf(aNode('f').flex().notReady());
    snap.hold(aJob('j').fast().build(), one('j', 'f', [3]), times);
    expect(snap.holding('j')?.nodes[0]?.node_id).toBe('f');
  });
});

describe('CapacitySnapshot: nodes', () => {
  it('upsertNode keeps holds on GPUs that still exist and drops the rest', () => {
    const snap = snapshotOf(aNode('a').gpus(4, 80).cpu(32).ram(256));
    holdOn(snap, aJob('x').gpus(2, 40).cpu(8).ram(64).user('ux'), 'a', [0, 3]);
    holdOn(snap, aJob('y').flex().gpus(1, 40).cpu(4).ram(32), 'a', [1]);
    expect(snap.holdsOf('y')[0]!.preemptible).toBe(true);

    // GPU 3 is gone, the node moves pool and becomes unschedulable, gains RAM, joins a block.
    snap.upsertNode(aNode('a').flex().gpus(3, 80).cpu(32).ram(512).notReady().endsAt(NOW + HOUR).build());
    const v = snap.node('a')!;
    expect(v).toMatchObject({ pool: 'flex', schedulable: false, cpuFree: 20, ramFree: 416, fastJobs: 1, blockId: 'b1', endsAt: NOW + HOUR });
    expect(v.gpus.map((g) => g.heldBy)).toEqual(['x', 'y', null]);
    expect(snap.holding('x')!.nodes[0]!.gpu_indices).toEqual([0]);
    expect(snap.userGpus('ux')).toBe(1);
    expect(snap.holdsOf('y')[0]!.preemptible).toBe(false); // FLEX on a flex node
    expect([...snap.states('flex')].map((n) => n.nodeId)).toEqual(['a']);
    expect([...snap.states('fast')]).toEqual([]);

    snap.release('x');
    snap.release('y');
    expect(snap.node('a')).toMatchObject({ cpuFree: 32, ramFree: 512, fastJobs: 0 });
    expect(snap.node('a')!.gpus.every((g) => g.heldBy === null)).toBe(true);
  });

  it('removeNode drops the node and the slices on it; a gang keeps its other slices', () => {
    const snap = snapshotOf(aNode('a'), aNode('b'), aNode('c'));
    holdOn(snap, aJob('j').gpus(7, 80), 'a', [0, 1, 2, 3, 4, 5, 6]);
    snap.hold(aJob('g').gpus(1).nodes(2).build(), { jobId: 'g', nodes: [{ node_id: 'a', gpu_indices: [7] }, { node_id: 'b', gpu_indices: [0] }] }, times);
    expect(snap.removeNode('a')).toBe(true);
    expect(snap.holding('j')).toBeUndefined();
    expect(snap.holding('g')).toEqual({ jobId: 'g', nodes: [{ node_id: 'b', gpu_indices: [0] }] });
    expect(snap.release('j')).toBe(false);
    expect(snap.removeNode('a')).toBe(false);
    expect(snap.nodes().map((n) => n.nodeId)).toEqual(['b', 'c']);
  });

  it('a re-registration keeps the node in place and the shape census as is', () => {
    const snap = snapshotOf(aNode('a'), aNode('b'));
    const v0 = snap.shapeVersion;
    snap.upsertNode(aNode('a').notReady().build());
    expect(snap.nodes().map((n) => n.nodeId)).toEqual(['a', 'b']);
    expect(snap.shapeVersion).toBe(v0);
    snap.upsertNode(aNode('a').gpus(4, 80).build());
    expect(snap.shapeVersion).toBeGreaterThan(v0);
  });

  it('setSchedulable says whether it changed; setEndsAt sets the end', () => {
    const snap = snapshotOf(aNode('a'));
    expect(snap.setSchedulable('a', false)).toBe(true);
    expect(snap.setSchedulable('a', false)).toBe(false);
    expect(snap.node('a')!.schedulable).toBe(false);
    expect(snap.setSchedulable('nope', true)).toBe(false);
    expect(snap.setEndsAt('a', NOW + HOUR)).toBe(true);
    expect(snap.state('a')!.endsAt).toBe(NOW + HOUR);
    expect(snap.setEndsAt('a', null)).toBe(true);
    expect(snap.state('a')!.endsAt).toBeNull();
    expect(snap.setEndsAt('nope', null)).toBe(false);
  });

  it('counts nodes, ready nodes and GPUs on ready nodes per pool', () => {
    const snap = snapshotOf(aNode('f1').gpus(8, 80), aNode('f2').gpus(4, 40).notReady(), aNode('x').flex().gpus(2, 80));
    expect([snap.nodeCount(), snap.nodeCount('fast'), snap.nodeCount('flex')]).toEqual([3, 2, 1]);
    expect([snap.readyCount(), snap.readyCount('fast')]).toEqual([2, 1]);
    expect([snap.totalGpus(), snap.totalGpus('fast'), snap.totalGpus('flex')]).toEqual([10, 8, 2]);
    snap.setSchedulable('f2', true);
    expect(snap.totalGpus('fast')).toBe(12);
    snap.removeNode('f1');
    expect([snap.totalGpus('fast'), snap.nodeCount('fast')]).toEqual([4, 1]);
  });

  it('keeps a census of node shapes per pool, any state', () => {
    const snap = snapshotOf(aNode('a').gpus(8, 80), aNode('b').gpus(8, 80).notReady(), aNode('c').gpus(4, 40));
    const v0 = snap.shapeVersion;
    expect([...snap.shapes('fast')].map((s) => [s.vrams.length, s.vrams[0], s.count])).toEqual([
      [8, 80, 2],
      [4, 40, 1],
    ]);
    snap.setSchedulable('b', true);
    expect(snap.shapeVersion).toBe(v0); // a flag is not a shape
    snap.removeNode('c');
    expect(snap.shapeVersion).toBeGreaterThan(v0);
    expect([...snap.shapes('fast')]).toHaveLength(1);
  });

  it.each<[string, unknown]>([
    ['a duplicate GPU index', { ...aNode('a').build(), gpus: [{ index: 0, vramGb: 80, heldBy: null }, { index: 0, vramGb: 80, heldBy: null }] }],
    ['a negative CPU total', aNode('a').cpu(-1).build()],
    ['a NaN VRAM', aNode('a').gpuVrams([Number.NaN]).build()],
    ['an unknown pool', { ...aNode('a').build(), pool: 'slow' as Pool }],
    ['an endless end', aNode('a').endsAt(Number.POSITIVE_INFINITY).build()],
  ])('refuses a node with %s', (_name, n) => {
    expect(() => new CapacitySnapshot([n as never])).toThrow(/node a/);
  });

  it('fractional RAM over many hold/release rounds never drifts', () => {
    const snap = snapshotOf(aNode('a').gpus(0, 0).cpu(3).ram(0.3));
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 3; i++) put(snap, aJob(`r${round}-${i}`).gpus(0).cpu(1).ram(0.1));
      expect(snap.node('a')!.ramFree).toBeGreaterThan(-1e-9);
      for (let i = 0; i < 3; i++) snap.release(`r${round}-${i}`);
      expect(snap.node('a')!.ramFree).toBe(0.3);
    }
  });
});
