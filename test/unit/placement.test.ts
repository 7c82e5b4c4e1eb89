import { describe, expect, it } from 'vitest';
import type { Pool, Tier } from '../../src/domain/cluster.ts';
import {
  CapacitySnapshot,
  compareJobs,
  placeJob,
  placeQueue,
  type JobRequest,
  type NodeCapacity,
  type Placement,
} from '../../src/placement/index.ts';

// --- builders -------------------------------------------------------------------

interface NodeOpts {
  pool?: Pool;
  /** VRAM of each GPU; index = position unless `indices` is given. */
  gpus?: number[];
  indices?: number[];
  cpu?: number;
  ram?: number;
  schedulable?: boolean;
}

function mkNode(nodeId: string, o: NodeOpts = {}): NodeCapacity {
  const vram = o.gpus ?? [80, 80, 80, 80, 80, 80, 80, 80];
  return {
    nodeId,
    pool: o.pool ?? 'fast',
    schedulable: o.schedulable ?? true,
    cpuTotal: o.cpu ?? 64,
    ramTotal: o.ram ?? 512,
    gpus: vram.map((v, i) => ({ index: o.indices?.[i] ?? i, vramGb: v, heldBy: null })),
  };
}

let seqCounter = 0;
function mkJob(jobId: string, o: Partial<Omit<JobRequest, 'jobId'>> = {}): JobRequest {
  return {
    jobId,
    tier: 'FAST',
    priority: 0,
    seq: ++seqCounter,
    gpuCount: 1,
    vramPerGpuGb: 40,
    cpuCores: 4,
    ramGb: 16,
    ...o,
  };
}

function placed(snapshot: CapacitySnapshot, job: JobRequest): Placement {
  const d = placeJob(snapshot, job);
  if (d.kind !== 'placed') throw new Error(`expected a placement, got: ${d.reason}`);
  return d.placement;
}

function reasonOf(snapshot: CapacitySnapshot, job: JobRequest): string {
  const d = placeJob(snapshot, job);
  if (d.kind !== 'waiting') throw new Error(`expected waiting, got ${JSON.stringify(d.placement)}`);
  return d.reason;
}

/** Holds `job` wherever placeJob puts it. */
function put(snapshot: CapacitySnapshot, job: JobRequest): Placement {
  const p = placed(snapshot, job);
  snapshot.hold(job, p);
  return p;
}

/** mulberry32: small seeded PRNG so the random tests are reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const int = (rnd: () => number, lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));

const VRAMS = [24, 40, 48, 80, 141] as const;

function randomCluster(rnd: () => number, count: number): NodeCapacity[] {
  return Array.from({ length: count }, (_, i) => {
    const vram = pick(rnd, VRAMS);
    const mixed = rnd() < 0.3;
    return mkNode(`n${String(i).padStart(3, '0')}`, {
      pool: rnd() < 0.5 ? 'fast' : 'flex',
      gpus: Array.from({ length: int(rnd, 0, 8) }, () => (mixed ? pick(rnd, VRAMS) : vram)),
      cpu: int(rnd, 8, 128),
      ram: int(rnd, 32, 1024),
      schedulable: rnd() < 0.9,
    });
  });
}

function randomJobs(rnd: () => number, count: number, prefix = 'j'): JobRequest[] {
  return Array.from({ length: count }, (_, i) =>
    mkJob(`${prefix}${i}`, {
      tier: rnd() < 0.4 ? 'FAST' : 'FLEX',
      priority: int(rnd, 0, 3),
      seq: i,
      gpuCount: int(rnd, 0, 8),
      vramPerGpuGb: pick(rnd, [0, ...VRAMS]),
      cpuCores: int(rnd, 1, 32),
      ramGb: int(rnd, 1, 256),
    }),
  );
}

/** Asserts the snapshot never over-commits, from the placements themselves. */
function assertNoOvercommit(nodes: NodeCapacity[], jobs: JobRequest[], placements: Placement[], snapshot: CapacitySnapshot) {
  const byId = new Map(jobs.map((j) => [j.jobId, j]));
  const shape = new Map(nodes.map((n) => [n.nodeId, n]));
  const perNode = new Map<string, { gpus: Set<number>; cpu: number; ram: number; tiers: Set<Tier> }>();
  for (const p of placements) {
    const job = byId.get(p.jobId)!;
    const node = shape.get(p.nodeId)!;
    expect(node, `${p.jobId} on unknown node`).toBeDefined();
    expect(node.schedulable).toBe(true);
    if (job.tier === 'FAST') expect(node.pool).toBe('fast');
    expect(p.gpuIndices).toHaveLength(job.gpuCount);
    expect([...p.gpuIndices].sort((a, b) => a - b)).toEqual(p.gpuIndices);
    const acc = perNode.get(p.nodeId) ?? { gpus: new Set<number>(), cpu: 0, ram: 0, tiers: new Set<Tier>() };
    for (const i of p.gpuIndices) {
      const gpu = node.gpus.find((g) => g.index === i);
      expect(gpu, `${p.jobId}: GPU ${i} missing on ${p.nodeId}`).toBeDefined();
      expect(gpu!.vramGb).toBeGreaterThanOrEqual(job.vramPerGpuGb);
      expect(acc.gpus.has(i), `GPU ${i} on ${p.nodeId} given twice`).toBe(false);
      acc.gpus.add(i);
    }
    acc.cpu += job.cpuCores;
    acc.ram += job.ramGb;
    acc.tiers.add(job.tier);
    perNode.set(p.nodeId, acc);
  }
  for (const [nodeId, acc] of perNode) {
    const node = shape.get(nodeId)!;
    expect(acc.cpu).toBeLessThanOrEqual(node.cpuTotal);
    expect(acc.ram).toBeLessThanOrEqual(node.ramTotal);
    // Within one call FAST goes first, so FLEX never lands next to FAST work.
    expect(acc.tiers.size, `${nodeId} mixes FAST and FLEX`).toBe(1);
    const view = snapshot.node(nodeId)!;
    expect(view.cpuFree).toBe(node.cpuTotal - acc.cpu);
    expect(view.ramFree).toBe(node.ramTotal - acc.ram);
    for (const g of view.gpus) expect(g.heldBy !== null).toBe(acc.gpus.has(g.index));
  }
}

// --- queue order ---------------------------------------------------------------------

describe('compareJobs', () => {
  it.each([
    ['FAST before FLEX, whatever the priority', { tier: 'FAST', priority: 0, seq: 9 }, { tier: 'FLEX', priority: 9, seq: 1 }, -1],
    ['FLEX after FAST', { tier: 'FLEX', priority: 9, seq: 1 }, { tier: 'FAST', priority: 0, seq: 9 }, 1],
    ['higher priority first', { tier: 'FLEX', priority: 5, seq: 9 }, { tier: 'FLEX', priority: 1, seq: 1 }, -1],
    ['lower priority later', { tier: 'FAST', priority: -1, seq: 1 }, { tier: 'FAST', priority: 0, seq: 2 }, 1],
    ['older first on equal tier and priority', { tier: 'FAST', priority: 2, seq: 3 }, { tier: 'FAST', priority: 2, seq: 4 }, -1],
    ['newer later', { tier: 'FLEX', priority: 2, seq: 40 }, { tier: 'FLEX', priority: 2, seq: 4 }, 1],
  ] as const)('%s', (_name, a, b, sign) => {
    const cmp = compareJobs(mkJob('a', a), mkJob('b', b));
    expect(Math.sign(cmp)).toBe(sign);
    expect(Math.sign(compareJobs(mkJob('b', b), mkJob('a', a)))).toBe(-sign);
  });

  it('sorts a mixed queue', () => {
    const jobs = [
      mkJob('flex-old', { tier: 'FLEX', priority: 0, seq: 1 }),
      mkJob('fast-low', { tier: 'FAST', priority: 0, seq: 5 }),
      mkJob('flex-hi', { tier: 'FLEX', priority: 7, seq: 9 }),
      mkJob('fast-hi-new', { tier: 'FAST', priority: 3, seq: 8 }),
      mkJob('fast-hi-old', { tier: 'FAST', priority: 3, seq: 2 }),
    ];
    expect(jobs.sort(compareJobs).map((j) => j.jobId)).toEqual(['fast-hi-old', 'fast-hi-new', 'fast-low', 'flex-hi', 'flex-old']);
  });
});

// --- snapshot bookkeeping --------------------------------------------------------------

describe('CapacitySnapshot', () => {
  it('hold then release round-trips GPUs, CPU, RAM and the FAST count', () => {
    const snap = new CapacitySnapshot([mkNode('a', { gpus: [80, 80, 40], cpu: 32, ram: 256 })]);
    const before = snap.node('a');
    const job = mkJob('j', { gpuCount: 2, vramPerGpuGb: 80, cpuCores: 8, ramGb: 64.5 });
    snap.hold(job, { jobId: 'j', nodeId: 'a', gpuIndices: [1, 0] });

    expect(snap.holding('j')).toEqual({ jobId: 'j', nodeId: 'a', gpuIndices: [0, 1] });
    const during = snap.node('a')!;
    expect(during.cpuFree).toBe(24);
    expect(during.ramFree).toBe(191.5);
    expect(during.fastJobs).toBe(1);
    expect(during.gpus.map((g) => g.heldBy)).toEqual(['j', 'j', null]);

    expect(snap.release('j')).toBe(true);
    expect(snap.holding('j')).toBeUndefined();
    expect(snap.node('a')).toEqual(before);
    expect(snap.release('j')).toBe(false);
    expect(snap.release('never-held')).toBe(false);
  });

  it('views are copies', () => {
    const snap = new CapacitySnapshot([mkNode('a', { gpus: [80] })]);
    const v = snap.node('a')!;
    v.gpus[0]!.heldBy = 'x';
    v.cpuFree = 0;
    expect(snap.node('a')!.gpus[0]!.heldBy).toBeNull();
    expect(snap.node('a')!.cpuFree).toBe(64);
    snap.hold(mkJob('j', { vramPerGpuGb: 80 }), { jobId: 'j', nodeId: 'a', gpuIndices: [0] });
    snap.holding('j')!.gpuIndices.push(7);
    expect(snap.holding('j')!.gpuIndices).toEqual([0]);
  });

  it('ignores heldBy in the node shapes it is given', () => {
    const n = mkNode('a', { gpus: [80, 80] });
    n.gpus[0]!.heldBy = 'ghost';
    const snap = new CapacitySnapshot([n]);
    expect(snap.node('a')!.gpus.map((g) => g.heldBy)).toEqual([null, null]);
  });

  const node = () => mkNode('a', { gpus: [80, 80, 40], cpu: 16, ram: 100 });
  it.each<[string, Partial<JobRequest>, Placement, RegExp]>([
    ['a GPU already held', { gpuCount: 1, vramPerGpuGb: 80 }, { jobId: 'j', nodeId: 'a', gpuIndices: [0] }, /held by other/],
    ['an unknown GPU', { gpuCount: 1, vramPerGpuGb: 0 }, { jobId: 'j', nodeId: 'a', gpuIndices: [9] }, /no GPU 9/],
    ['the same GPU twice', { gpuCount: 2, vramPerGpuGb: 40 }, { jobId: 'j', nodeId: 'a', gpuIndices: [1, 1] }, /twice/],
    ['too little VRAM', { gpuCount: 1, vramPerGpuGb: 80 }, { jobId: 'j', nodeId: 'a', gpuIndices: [2] }, /40 GB, needs 80/],
    ['a GPU count unlike the request', { gpuCount: 2, vramPerGpuGb: 40 }, { jobId: 'j', nodeId: 'a', gpuIndices: [1] }, /asks for 2 GPUs/],
    ['CPU over the total', { gpuCount: 0, cpuCores: 13, ramGb: 1 }, { jobId: 'j', nodeId: 'a', gpuIndices: [] }, /CPU cores/],
    ['RAM over the total', { gpuCount: 0, cpuCores: 1, ramGb: 80.5 }, { jobId: 'j', nodeId: 'a', gpuIndices: [] }, /GB RAM/],
    ['an unknown node', { gpuCount: 0 }, { jobId: 'j', nodeId: 'zz', gpuIndices: [] }, /unknown node zz/],
    ['a placement for another job', { gpuCount: 0 }, { jobId: 'k', nodeId: 'a', gpuIndices: [] }, /placement is for job k/],
    ['a negative CPU request', { gpuCount: 0, cpuCores: -4 }, { jobId: 'j', nodeId: 'a', gpuIndices: [] }, /≥ 0/],
  ])('hold refuses %s and changes nothing', (_name, req, placement, message) => {
    const snap = new CapacitySnapshot([node()]);
    snap.hold(mkJob('other', { gpuCount: 1, vramPerGpuGb: 80, cpuCores: 4, ramGb: 20 }), { jobId: 'other', nodeId: 'a', gpuIndices: [0] });
    const before = snap.node('a');
    expect(() => snap.hold(mkJob('j', req), placement)).toThrow(message);
    expect(snap.node('a')).toEqual(before);
    expect(snap.holding('j')).toBeUndefined();
  });

  it('hold refuses a job that already holds something', () => {
    const snap = new CapacitySnapshot([node()]);
    const job = mkJob('j', { gpuCount: 1, vramPerGpuGb: 0 });
    snap.hold(job, { jobId: 'j', nodeId: 'a', gpuIndices: [2] });
    expect(() => snap.hold(job, { jobId: 'j', nodeId: 'a', gpuIndices: [0] })).toThrow(/already holds/);
    expect(snap.node('a')!.gpus.map((g) => g.heldBy)).toEqual([null, null, 'j']);
  });

  it('hold ignores pool and schedulable (rebuilding holds of running jobs)', () => {
    const snap = new CapacitySnapshot([mkNode('f', { pool: 'flex', schedulable: false })]);
    snap.hold(mkJob('j', { tier: 'FAST' }), { jobId: 'j', nodeId: 'f', gpuIndices: [3] });
    expect(snap.holding('j')?.nodeId).toBe('f');
  });

  it('upsertNode keeps holds on GPUs that still exist and drops the rest', () => {
    const snap = new CapacitySnapshot([mkNode('a', { gpus: [80, 80, 80, 80], cpu: 32, ram: 256 })]);
    snap.hold(mkJob('x', { gpuCount: 2, cpuCores: 8, ramGb: 64 }), { jobId: 'x', nodeId: 'a', gpuIndices: [0, 3] });
    snap.hold(mkJob('y', { gpuCount: 1, cpuCores: 4, ramGb: 32, tier: 'FLEX' }), { jobId: 'y', nodeId: 'a', gpuIndices: [1] });

    // GPU 3 is gone, the node moves pool and becomes unschedulable, gains RAM.
    snap.upsertNode(mkNode('a', { pool: 'flex', gpus: [80, 80, 80], cpu: 32, ram: 512, schedulable: false }));
    const v = snap.node('a')!;
    expect(v).toMatchObject({ pool: 'flex', schedulable: false, cpuFree: 20, ramFree: 416, fastJobs: 1 });
    expect(v.gpus.map((g) => g.heldBy)).toEqual(['x', 'y', null]);
    expect(snap.holding('x')!.gpuIndices).toEqual([0]);
    expect([...snap.states('flex')].map((n) => n.nodeId)).toEqual(['a']);
    expect([...snap.states('fast')]).toEqual([]);

    snap.release('x');
    snap.release('y');
    expect(snap.node('a')).toMatchObject({ cpuFree: 32, ramFree: 512, fastJobs: 0 });
    expect(snap.node('a')!.gpus.every((g) => g.heldBy === null)).toBe(true);
  });

  it('removeNode drops the node and the holds on it; setSchedulable says whether it changed', () => {
    const snap = new CapacitySnapshot([mkNode('a'), mkNode('b')]);
    put(snap, mkJob('j', { gpuCount: 8 }));
    const nodeId = snap.holding('j')!.nodeId;
    expect(snap.removeNode(nodeId)).toBe(true);
    expect(snap.holding('j')).toBeUndefined();
    expect(snap.release('j')).toBe(false);
    expect(snap.removeNode(nodeId)).toBe(false);
    expect(snap.nodes()).toHaveLength(1);

    const other = snap.nodes()[0]!.nodeId;
    expect(snap.setSchedulable(other, false)).toBe(true);
    expect(snap.setSchedulable(other, false)).toBe(false); // no change
    expect(snap.node(other)!.schedulable).toBe(false);
    expect(placeJob(snap, mkJob('k')).kind).toBe('waiting');
    expect(snap.setSchedulable('nope', true)).toBe(false);
  });

  it.each([
    ['a duplicate GPU index', { ...mkNode('a'), gpus: [{ index: 0, vramGb: 80, heldBy: null }, { index: 0, vramGb: 80, heldBy: null }] }],
    ['a negative CPU total', mkNode('a', { cpu: -1 })],
    ['a NaN VRAM', mkNode('a', { gpus: [Number.NaN] })],
    ['an unknown pool', { ...mkNode('a'), pool: 'slow' as Pool }],
  ])('refuses a node with %s', (_name, n) => {
    expect(() => new CapacitySnapshot([n])).toThrow(/node a/);
  });
});

// --- best fit ------------------------------------------------------------------------------

interface FitCase {
  name: string;
  nodes: NodeCapacity[];
  /** Holds applied first, placed with placeJob. */
  before?: JobRequest[];
  job: Partial<JobRequest>;
  node: string;
  gpus: number[];
}

describe('placeJob picks the best fit', () => {
  it.each<FitCase>([
    {
      name: 'the node left with fewer free GPUs',
      nodes: [mkNode('a', { gpus: [80, 80, 80, 80, 80, 80, 80, 80] }), mkNode('b', { gpus: [80, 80] })],
      job: { gpuCount: 2, vramPerGpuGb: 80 },
      node: 'b',
      gpus: [0, 1],
    },
    {
      name: 'the node left with fewer free GPUs, even with more VRAM left over',
      nodes: [mkNode('a', { gpus: [141, 141] }), mkNode('b', { gpus: [40, 40, 40] })],
      job: { gpuCount: 2, vramPerGpuGb: 40 },
      node: 'a',
      gpus: [0, 1],
    },
    {
      name: 'the node whose GPUs leave less VRAM over, on equal free GPUs',
      nodes: [mkNode('a', { gpus: [141, 141] }), mkNode('b', { gpus: [48, 48] }), mkNode('c', { gpus: [80, 80] })],
      job: { gpuCount: 2, vramPerGpuGb: 40 },
      node: 'b',
      gpus: [0, 1],
    },
    {
      name: 'the smaller sufficient GPUs within a node',
      nodes: [mkNode('a', { gpus: [141, 80, 24, 80, 141] })],
      job: { gpuCount: 2, vramPerGpuGb: 40 },
      node: 'a',
      gpus: [1, 3],
    },
    {
      name: 'the lowest indices among equal GPUs',
      nodes: [mkNode('a', { gpus: [80, 80, 80, 80] })],
      job: { gpuCount: 3, vramPerGpuGb: 80 },
      node: 'a',
      gpus: [0, 1, 2],
    },
    {
      name: 'sparse CUDA indices, returned ascending',
      nodes: [mkNode('a', { gpus: [141, 80, 80, 80], indices: [7, 5, 3, 6] })],
      job: { gpuCount: 2, vramPerGpuGb: 80 },
      node: 'a',
      gpus: [3, 5],
    },
    {
      name: 'the free GPUs, skipping held ones',
      nodes: [mkNode('a', { gpus: [80, 80, 80] })],
      before: [mkJob('h', { gpuCount: 1, vramPerGpuGb: 80 })],
      job: { gpuCount: 1, vramPerGpuGb: 80 },
      node: 'a',
      gpus: [1],
    },
    {
      name: 'the node left with less CPU and RAM, on equal GPUs',
      nodes: [mkNode('a', { gpus: [80], cpu: 64, ram: 512 }), mkNode('b', { gpus: [80], cpu: 16, ram: 64 })],
      job: { gpuCount: 1, vramPerGpuGb: 80, cpuCores: 8, ramGb: 32 },
      node: 'b',
      gpus: [0],
    },
    {
      name: 'CPU and RAM left as fractions of the totals',
      // a leaves 8/64 + 448/512 = 1.0; b leaves 4/8 + 0/64 = 0.5.
      nodes: [mkNode('a', { gpus: [80], cpu: 64, ram: 512 }), mkNode('b', { gpus: [80], cpu: 8, ram: 64 })],
      job: { gpuCount: 1, vramPerGpuGb: 80, cpuCores: 4, ramGb: 64 },
      node: 'b',
      gpus: [0],
    },
    {
      name: 'nodeId ascending on a full tie',
      nodes: [mkNode('c'), mkNode('a'), mkNode('b')],
      job: { gpuCount: 1 },
      node: 'a',
      gpus: [0],
    },
    {
      name: 'the node with fewer free GPUs after earlier holds',
      nodes: [mkNode('a', { gpus: [80, 80, 80, 80] }), mkNode('b', { gpus: [80, 80, 80, 80] })],
      before: [mkJob('h', { gpuCount: 3, vramPerGpuGb: 80 })],
      job: { gpuCount: 1, vramPerGpuGb: 80 },
      node: 'a',
      gpus: [3],
    },
    {
      name: 'a CPU-only job on the node with the fewest free GPUs',
      nodes: [mkNode('a', { gpus: [80, 80] }), mkNode('b', { gpus: [] }), mkNode('c', { gpus: [80] })],
      job: { gpuCount: 0, vramPerGpuGb: 80 },
      node: 'b',
      gpus: [],
    },
  ])('$name', ({ nodes, before = [], job, node, gpus }) => {
    const snap = new CapacitySnapshot(nodes);
    for (const b of before) put(snap, b);
    expect(placed(snap, mkJob('j', job))).toEqual({ jobId: 'j', nodeId: node, gpuIndices: gpus });
  });

  it('does not mutate the snapshot', () => {
    const snap = new CapacitySnapshot([mkNode('a'), mkNode('b', { pool: 'flex' })]);
    const before = snap.nodes();
    placeJob(snap, mkJob('j', { gpuCount: 4 }));
    placeJob(snap, mkJob('k', { gpuCount: 99 }));
    expect(snap.nodes()).toEqual(before);
    expect(snap.holding('j')).toBeUndefined();
  });

  it.each([
    ['not schedulable', { schedulable: false }],
    ['short of CPU', { cpu: 2 }],
    ['short of RAM', { ram: 8 }],
    ['short of VRAM', { gpus: [24, 24] }],
    ['short of GPUs', { gpus: [80] }],
  ])('skips a node that is %s', (_name, o) => {
    const snap = new CapacitySnapshot([mkNode('a', { gpus: [80, 80], ...o }), mkNode('b', { gpus: [80, 80, 80, 80, 80, 80] })]);
    expect(placed(snap, mkJob('j', { gpuCount: 2, vramPerGpuGb: 40, cpuCores: 4, ramGb: 16 })).nodeId).toBe('b');
  });
});

// --- tier rules -----------------------------------------------------------------------------

describe('tier rules', () => {
  it.each<{ name: string; nodes: NodeCapacity[]; before?: JobRequest[]; tier: Tier; expected: string | null }>([
    { name: 'FAST never runs on a flex node', nodes: [mkNode('x', { pool: 'flex' })], tier: 'FAST', expected: null },
    {
      name: 'FAST takes the fast node even when a flex node fits better',
      nodes: [mkNode('f', { pool: 'fast' }), mkNode('x', { pool: 'flex', gpus: [80] })],
      tier: 'FAST',
      expected: 'f',
    },
    {
      name: 'FLEX prefers a flex node over a better-fitting fast one',
      nodes: [mkNode('f', { pool: 'fast', gpus: [80] }), mkNode('x', { pool: 'flex' })],
      tier: 'FLEX',
      expected: 'x',
    },
    { name: 'FLEX runs on idle fast capacity', nodes: [mkNode('f', { pool: 'fast' })], tier: 'FLEX', expected: 'f' },
    {
      name: 'FLEX uses a fast node when the flex nodes are full',
      nodes: [mkNode('f', { pool: 'fast' }), mkNode('x', { pool: 'flex', gpus: [80] })],
      before: [mkJob('full', { tier: 'FLEX', gpuCount: 1 })],
      tier: 'FLEX',
      expected: 'f',
    },
    {
      name: 'FLEX does not join a fast node that holds a FAST job',
      nodes: [mkNode('f', { pool: 'fast' })],
      before: [mkJob('fast', { tier: 'FAST', gpuCount: 1 })],
      tier: 'FLEX',
      expected: null,
    },
    {
      name: 'FLEX skips the busy fast node for an idle one',
      nodes: [mkNode('f1', { pool: 'fast', gpus: [80, 80] }), mkNode('f2', { pool: 'fast' })],
      before: [mkJob('fast', { tier: 'FAST', gpuCount: 1 })],
      tier: 'FLEX',
      expected: 'f2',
    },
    {
      name: 'FAST shares a fast node with FLEX when GPUs are free',
      nodes: [mkNode('f', { pool: 'fast', gpus: [80, 80] })],
      before: [mkJob('flex', { tier: 'FLEX', gpuCount: 1 })],
      tier: 'FAST',
      expected: 'f',
    },
    {
      name: 'FLEX may join FLEX on a fast node',
      nodes: [mkNode('f', { pool: 'fast', gpus: [80, 80] })],
      before: [mkJob('flex', { tier: 'FLEX', gpuCount: 1 })],
      tier: 'FLEX',
      expected: 'f',
    },
  ])('$name', ({ nodes, before = [], tier, expected }) => {
    const snap = new CapacitySnapshot(nodes);
    for (const b of before) put(snap, b);
    const d = placeJob(snap, mkJob('j', { tier, gpuCount: 1 }));
    if (expected === null) expect(d.kind).toBe('waiting');
    else expect(d).toMatchObject({ kind: 'placed', placement: { nodeId: expected } });
  });

  it('a fast node takes FLEX again once its FAST jobs are released', () => {
    const snap = new CapacitySnapshot([mkNode('f')]);
    put(snap, mkJob('a', { tier: 'FAST' }));
    put(snap, mkJob('b', { tier: 'FAST' }));
    snap.release('a');
    expect(placeJob(snap, mkJob('x', { tier: 'FLEX' })).kind).toBe('waiting');
    snap.release('b');
    expect(placeJob(snap, mkJob('x', { tier: 'FLEX' })).kind).toBe('placed');
  });
});

// --- reasons -------------------------------------------------------------------------------

describe('waiting reasons', () => {
  it.each<{ name: string; nodes: NodeCapacity[]; before?: JobRequest[]; job: Partial<JobRequest>; reason: string }>([
    { name: 'no node at all', nodes: [], job: {}, reason: 'no ready fast node' },
    { name: 'FLEX with no node at all', nodes: [], job: { tier: 'FLEX' }, reason: 'no ready flex or fast node' },
    { name: 'only flex nodes for FAST', nodes: [mkNode('x', { pool: 'flex' })], job: {}, reason: 'no ready fast node' },
    {
      name: 'every node not ready',
      nodes: [mkNode('a', { schedulable: false }), mkNode('b', { schedulable: false })],
      job: {},
      reason: 'no ready fast node (2 are registering, draining or lost)',
    },
    {
      name: 'counts by cause',
      nodes: [
        mkNode('a', { gpus: [80] }),
        mkNode('b', { gpus: [40, 40, 40] }),
        mkNode('c', { gpus: [80, 80], cpu: 8 }),
        mkNode('d', { gpus: [80, 80], schedulable: false }),
      ],
      job: { gpuCount: 2, vramPerGpuGb: 80, cpuCores: 16 },
      reason: '0 of 3 ready fast nodes can hold it: 2 have fewer than 2 free GPUs with ≥ 80 GB, 1 lacks free CPU (needs 16 cores)',
    },
    {
      name: 'one GPU, RAM',
      nodes: [mkNode('a', { gpus: [24] }), mkNode('b', { gpus: [80], ram: 100 })],
      // Lands on b: equal GPUs, and b is left with the smaller share of RAM.
      before: [mkJob('h', { gpuCount: 0, ramGb: 50 })],
      job: { gpuCount: 1, vramPerGpuGb: 48, ramGb: 64 },
      reason: '0 of 2 ready fast nodes can hold it: 1 has no free GPU with ≥ 48 GB, 1 lacks free RAM (needs 64 GB)',
    },
    {
      name: 'GPUs held by others',
      nodes: [mkNode('a', { gpus: [80, 80] })],
      before: [mkJob('h', { gpuCount: 1 })],
      job: { gpuCount: 2, vramPerGpuGb: 0 },
      reason: '0 of 1 ready fast node can hold it: 1 has fewer than 2 free GPUs',
    },
    {
      name: 'one core',
      nodes: [mkNode('a', { gpus: [], cpu: 1 })],
      before: [mkJob('h', { gpuCount: 0, cpuCores: 1 })],
      job: { gpuCount: 0, cpuCores: 1 },
      reason: '0 of 1 ready fast node can hold it: 1 lacks free CPU (needs 1 core)',
    },
    {
      name: 'FLEX counts busy fast nodes',
      nodes: [mkNode('f1', { gpus: [80] }), mkNode('f2', { gpus: [80] }), mkNode('x', { pool: 'flex', gpus: [40] })],
      before: [mkJob('h1', { tier: 'FAST' }), mkJob('h2', { tier: 'FAST' })],
      job: { tier: 'FLEX', gpuCount: 1, vramPerGpuGb: 80 },
      reason: '0 of 3 ready flex or fast nodes can hold it: 2 are busy with FAST jobs, 1 has no free GPU with ≥ 80 GB',
    },
  ])('$name', ({ nodes, before = [], job, reason }) => {
    const snap = new CapacitySnapshot(nodes);
    for (const b of before) put(snap, b);
    expect(reasonOf(snap, mkJob('j', job))).toBe(reason);
  });

  it.each<{ name: string; nodes: NodeCapacity[]; job: Partial<JobRequest>; reason: string }>([
    {
      name: 'too many GPUs',
      nodes: [mkNode('a'), mkNode('b', { gpus: [80, 80] }), mkNode('x', { pool: 'flex', gpus: Array(16).fill(80) })],
      job: { gpuCount: 16, vramPerGpuGb: 80 },
      reason: 'no fast node is large enough: needs 16 GPUs with ≥ 80 GB, the largest has 8',
    },
    {
      name: 'counts only GPUs with enough VRAM',
      nodes: [mkNode('a', { gpus: [40, 40, 40, 80] })],
      job: { gpuCount: 2, vramPerGpuGb: 80 },
      reason: 'no fast node is large enough: needs 2 GPUs with ≥ 80 GB, the largest has 1',
    },
    {
      name: 'GPUs too small',
      nodes: [mkNode('a', { gpus: [80, 141] })],
      job: { gpuCount: 1, vramPerGpuGb: 192 },
      reason: 'no fast node is large enough: needs 1 GPU with ≥ 192 GB, the largest GPU has 141 GB',
    },
    {
      name: 'no GPUs anywhere',
      nodes: [mkNode('a', { gpus: [] })],
      job: { gpuCount: 1, vramPerGpuGb: 0 },
      reason: 'no fast node is large enough: needs 1 GPU, none has a GPU',
    },
    {
      name: 'CPU and RAM, also counting nodes that are not ready',
      nodes: [mkNode('a', { cpu: 64, ram: 512 }), mkNode('b', { cpu: 96, ram: 256, schedulable: false })],
      job: { gpuCount: 1, cpuCores: 128, ramGb: 1024 },
      reason: 'no fast node is large enough: needs 128 CPU cores, the largest has 96; needs 1024 GB RAM, the largest has 512 GB',
    },
    {
      name: 'no single node has it all',
      nodes: [mkNode('a', { gpus: [80, 80], cpu: 8 }), mkNode('b', { gpus: [80], cpu: 64 })],
      job: { gpuCount: 2, vramPerGpuGb: 80, cpuCores: 32, ramGb: 64 },
      reason: 'no fast node is large enough: none has 2 GPUs with ≥ 80 GB, 32 CPU cores and 64 GB RAM together',
    },
    {
      name: 'FLEX looks at both pools',
      nodes: [mkNode('f', { gpus: [80, 80, 80, 80] }), mkNode('x', { pool: 'flex', gpus: [80, 80] })],
      job: { tier: 'FLEX', gpuCount: 8, vramPerGpuGb: 80 },
      reason: 'no flex or fast node is large enough: needs 8 GPUs with ≥ 80 GB, the largest has 4',
    },
  ])('unschedulable size: $name', ({ nodes, job, reason }) => {
    expect(reasonOf(new CapacitySnapshot(nodes), mkJob('j', job))).toBe(reason);
  });

  it('a large-enough node that is busy gives the capacity reason, not the size one', () => {
    const snap = new CapacitySnapshot([mkNode('a')]);
    put(snap, mkJob('h', { gpuCount: 8 }));
    expect(reasonOf(snap, mkJob('j', { gpuCount: 8, vramPerGpuGb: 80 }))).toBe(
      '0 of 1 ready fast node can hold it: 1 has fewer than 8 free GPUs with ≥ 80 GB',
    );
  });
});

// --- placeQueue ----------------------------------------------------------------------------

/** placeQueue without the shape cache: placeJob + hold, one job at a time. */
function referenceQueue(snapshot: CapacitySnapshot, jobs: JobRequest[]) {
  const placed: Placement[] = [];
  const waiting = new Map<string, string>();
  for (const job of [...jobs].sort(compareJobs)) {
    const d = placeJob(snapshot, job);
    if (d.kind === 'placed') {
      snapshot.hold(job, d.placement);
      placed.push(d.placement);
    } else waiting.set(job.jobId, d.reason);
  }
  return { placed, waiting };
}

describe('placeQueue', () => {
  it('places in queue order and holds as it goes', () => {
    const snap = new CapacitySnapshot([mkNode('f', { gpus: [80, 80] }), mkNode('x', { pool: 'flex', gpus: [80] })]);
    const jobs = [
      mkJob('flex-1', { tier: 'FLEX', seq: 1 }),
      mkJob('flex-2', { tier: 'FLEX', seq: 2 }),
      mkJob('fast-lo', { tier: 'FAST', seq: 3 }),
      mkJob('fast-hi', { tier: 'FAST', seq: 4, priority: 5 }),
      mkJob('fast-3', { tier: 'FAST', seq: 5 }),
    ];
    const { placed, waiting } = placeQueue(snap, jobs);
    expect(placed).toEqual([
      { jobId: 'fast-hi', nodeId: 'f', gpuIndices: [0] },
      { jobId: 'fast-lo', nodeId: 'f', gpuIndices: [1] },
      { jobId: 'flex-1', nodeId: 'x', gpuIndices: [0] },
    ]);
    expect([...waiting.keys()].sort()).toEqual(['fast-3', 'flex-2']);
    expect(waiting.get('fast-3')).toBe('0 of 1 ready fast node can hold it: 1 has no free GPU with ≥ 40 GB');
    // flex-2 may not take the fast node, which now holds FAST jobs.
    expect(waiting.get('flex-2')).toBe(
      '0 of 2 ready flex or fast nodes can hold it: 1 is busy with FAST jobs, 1 has no free GPU with ≥ 40 GB',
    );
    for (const p of placed) expect(snap.holding(p.jobId)).toEqual(p);
    expect(jobs.map((j) => j.jobId)).toEqual(['flex-1', 'flex-2', 'fast-lo', 'fast-hi', 'fast-3']); // input not reordered
  });

  it('a job that does not fit does not block smaller ones behind it', () => {
    const snap = new CapacitySnapshot([mkNode('f', { gpus: [80, 80, 80, 80] })]);
    const { placed, waiting } = placeQueue(snap, [
      mkJob('big', { priority: 9, gpuCount: 8 }),
      mkJob('mid', { priority: 5, gpuCount: 3 }),
      mkJob('huge', { priority: 4, gpuCount: 2, cpuCores: 1000 }),
      mkJob('small', { priority: 1, gpuCount: 1 }),
      mkJob('late', { priority: 0, gpuCount: 1 }),
    ]);
    expect(placed.map((p) => p.jobId)).toEqual(['mid', 'small']);
    expect([...waiting.keys()]).toEqual(['big', 'huge', 'late']);
    expect(waiting.get('big')).toMatch(/^no fast node is large enough/);
  });

  it('FLEX fills idle fast nodes only after FAST had its turn', () => {
    const snap = new CapacitySnapshot([mkNode('f1', { gpus: [80] }), mkNode('f2', { gpus: [80] })]);
    const { placed, waiting } = placeQueue(snap, [
      mkJob('flex-a', { tier: 'FLEX', seq: 1, priority: 9 }),
      mkJob('flex-b', { tier: 'FLEX', seq: 2, priority: 9 }),
      mkJob('fast', { tier: 'FAST', seq: 3 }),
    ]);
    expect(placed).toEqual([
      { jobId: 'fast', nodeId: 'f1', gpuIndices: [0] },
      { jobId: 'flex-a', nodeId: 'f2', gpuIndices: [0] },
    ]);
    expect([...waiting.keys()]).toEqual(['flex-b']);
  });

  it('reuses a failed shape within the call; the same jobs fit once capacity is released', () => {
    const snap = new CapacitySnapshot([mkNode('f', { gpus: [80, 80] })]);
    const jobs = [mkJob('a', { gpuCount: 2 }), mkJob('b', { gpuCount: 2 }), mkJob('c', { gpuCount: 2 }), mkJob('d', { gpuCount: 1 })];
    const first = placeQueue(snap, jobs);
    expect(first.placed.map((p) => p.jobId)).toEqual(['a']);
    expect(first.waiting.get('b')).toBe(first.waiting.get('c'));
    expect(first.waiting.get('d')).toBe('0 of 1 ready fast node can hold it: 1 has no free GPU with ≥ 40 GB');

    snap.release('a');
    const second = placeQueue(snap, jobs.slice(1));
    expect(second.placed.map((p) => p.jobId)).toEqual(['b']);
  });

  it('refuses duplicate jobs and jobs already holding, before placing anything', () => {
    const snap = new CapacitySnapshot([mkNode('f')]);
    expect(() => placeQueue(snap, [mkJob('a'), mkJob('b'), mkJob('a')])).toThrow(/queued twice/);
    put(snap, mkJob('held'));
    expect(() => placeQueue(snap, [mkJob('a'), mkJob('held')])).toThrow(/already holds/);
    expect(snap.holding('a')).toBeUndefined();
  });

  it('an empty queue places nothing', () => {
    expect(placeQueue(new CapacitySnapshot([mkNode('f')]), [])).toEqual({ placed: [], waiting: new Map() });
  });

  it.each(
    [1, 2, 3, 4, 5, 6, 7, 8].flatMap((seed) => [
      [seed, 'few shapes'],
      [seed, 'random shapes'],
    ]),
  )('shape cache gives the same result as placing one by one (seed %i, %s)', (seed, mode) => {
    const rnd = prng(seed * 7919);
    const nodes = randomCluster(rnd, int(rnd, 1, 20));
    // Few distinct shapes hit the exact-shape cache; random ones mostly the "needs more than a failed one" rule.
    const shapes = randomJobs(rnd, 6, 's');
    const jobs =
      mode === 'few shapes'
        ? Array.from({ length: 300 }, (_, i) => ({ ...pick(rnd, shapes), jobId: `j${i}`, seq: i, priority: int(rnd, 0, 2) }))
        : randomJobs(rnd, 300);
    const cached = new CapacitySnapshot(nodes);
    const plain = new CapacitySnapshot(nodes);
    const got = placeQueue(cached, jobs);
    const want = referenceQueue(plain, jobs);
    expect(got.placed).toEqual(want.placed);
    expect(cached.nodes()).toEqual(plain.nodes());
    expect([...got.waiting.keys()].sort()).toEqual([...want.waiting.keys()].sort());
    // Counts by first cause may be those of an earlier, equal or smaller
    // failure; the kind of reason, and every size reason, are exact.
    const head = (r: string) => r.split(':')[0];
    for (const [jobId, reason] of want.waiting) {
      const mine = got.waiting.get(jobId)!;
      expect(head(mine)).toBe(head(reason));
      if (reason.includes('large enough')) expect(mine).toBe(reason);
    }
  });

  it.each<{ name: string; nodes: NodeCapacity[]; first: Partial<JobRequest>; then: Partial<JobRequest>; reason: string }>([
    {
      name: 'quotes the bigger job’s own numbers',
      nodes: [mkNode('a', { gpus: [80, 80, 80, 80], cpu: 8 }), mkNode('b', { gpus: [80, 80, 80, 80], cpu: 64 })],
      first: { gpuCount: 1, vramPerGpuGb: 80, cpuCores: 16, ramGb: 16, priority: 9 },
      then: { gpuCount: 1, vramPerGpuGb: 80, cpuCores: 32, ramGb: 16 },
      reason: '0 of 2 ready fast nodes can hold it: 1 has no free GPU with ≥ 80 GB, 1 lacks free CPU (needs 32 cores)',
    },
    {
      name: 'still says when the bigger job is too large for any node',
      nodes: [mkNode('a', { gpus: [80, 80, 80, 80], cpu: 8 }), mkNode('b', { gpus: [80, 80, 80, 80], cpu: 64 })],
      first: { gpuCount: 1, vramPerGpuGb: 80, cpuCores: 16, ramGb: 16, priority: 9 },
      then: { gpuCount: 6, vramPerGpuGb: 141, cpuCores: 16, ramGb: 16 },
      reason: 'no fast node is large enough: needs 6 GPUs with ≥ 141 GB, the largest GPU has 80 GB',
    },
  ])('a shape needing more than a failed one $name', ({ nodes, first, then, reason }) => {
    const snap = new CapacitySnapshot(nodes);
    // Fill b's GPUs so `first` fails: on a for CPU, on b for GPUs.
    snap.hold(mkJob('filler', { gpuCount: 4, vramPerGpuGb: 80, cpuCores: 1, ramGb: 1 }), {
      jobId: 'filler',
      nodeId: 'b',
      gpuIndices: [0, 1, 2, 3],
    });
    const { placed, waiting } = placeQueue(snap, [mkJob('first', first), mkJob('then', then)]);
    expect(placed).toEqual([]);
    expect(waiting.get('first')).toBe(
      '0 of 2 ready fast nodes can hold it: 1 has no free GPU with ≥ 80 GB, 1 lacks free CPU (needs 16 cores)',
    );
    expect(waiting.get('then')).toBe(reason);
  });
});

// --- never over-commits ---------------------------------------------------------------------

describe('never over-commits', () => {
  it.each(Array.from({ length: 20 }, (_, i) => i + 1))('random cluster and queue (seed %i)', (seed) => {
    const rnd = prng(seed);
    const nodes = randomCluster(rnd, int(rnd, 1, 40));
    const jobs = randomJobs(rnd, int(rnd, 1, 400));
    const snap = new CapacitySnapshot(nodes);
    const { placed, waiting } = placeQueue(snap, jobs);

    expect(placed.length + waiting.size).toBe(jobs.length);
    assertNoOvercommit(nodes, jobs, placed, snap);
    for (const p of placed) expect(snap.holding(p.jobId)).toEqual(p);
    // Capacity only shrank during the call, so what waited still does not fit.
    const byId = new Map(jobs.map((j) => [j.jobId, j]));
    for (const [jobId, reason] of waiting) {
      expect(reason.length).toBeGreaterThan(0);
      expect(placeJob(snap, byId.get(jobId)!).kind).toBe('waiting');
    }
    // Releasing everything gives back exactly the empty cluster.
    for (const p of placed) snap.release(p.jobId);
    expect(snap.nodes()).toEqual(new CapacitySnapshot(nodes).nodes());
  });

  it('fractional RAM over many hold/release rounds never drifts into over-commit', () => {
    const snap = new CapacitySnapshot([mkNode('a', { gpus: [], cpu: 3, ram: 0.3 })]);
    for (let round = 0; round < 50; round++) {
      const jobs = [0, 1, 2, 3].map((i) => mkJob(`r${round}-${i}`, { gpuCount: 0, cpuCores: 1, ramGb: 0.1 }));
      const { placed } = placeQueue(snap, jobs);
      expect(placed).toHaveLength(3);
      expect(snap.node('a')!.ramFree).toBeGreaterThan(-1e-9);
      for (const p of placed) snap.release(p.jobId);
      expect(snap.node('a')!.ramFree).toBe(0.3);
    }
  });

  it('100 nodes × 8 GPUs and 10,000 queued jobs place in normal test time', () => {
    const rnd = prng(42);
    const nodes = Array.from({ length: 100 }, (_, i) =>
      mkNode(`n${String(i).padStart(3, '0')}`, {
        pool: i < 40 ? 'fast' : 'flex',
        gpus: Array(8).fill(pick(rnd, [40, 80, 141])),
        cpu: 128,
        ram: 1024,
      }),
    );
    const jobs = randomJobs(rnd, 10_000).map((j) => ({ ...j, cpuCores: int(rnd, 1, 16), ramGb: int(rnd, 1, 128) }));
    const snap = new CapacitySnapshot(nodes);
    const { placed, waiting } = placeQueue(snap, jobs);
    expect(placed.length + waiting.size).toBe(10_000);
    expect(placed.reduce((n, p) => n + p.gpuIndices.length, 0)).toBeLessThanOrEqual(800);
    assertNoOvercommit(nodes, jobs, placed, snap);
  });
});
