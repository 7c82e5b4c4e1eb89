/** The plain words users read as status_reason: why a job waits, or why it never can run. */
import { describe, expect, it } from 'vitest';
import type { NodeShape, Reservation } from '../../../src/placement/index.ts';
import { aJob, aNode, decide, holdOn, HOUR, NOW, reasonOf, snapshotOf, type JobBuilder, type NodeBuilder } from './builders.ts';

interface Held {
  job: JobBuilder;
  on: string;
  gpus: number[];
}

describe('waiting reasons', () => {
  it.each<{ name: string; nodes: NodeBuilder[]; held?: Held[]; job: JobBuilder; reservations?: Reservation[]; reason: string }>([
    { name: 'no node at all', nodes: [], job: aJob('j'), reason: 'no ready fast node' },
    { name: 'FLEX with no node at all', nodes: [], job: aJob('j').flex(), reason: 'no ready flex or fast node' },
    { name: 'only flex nodes for FAST', nodes: [aNode('x').flex()], job: aJob('j'), reason: 'no ready fast node' },
    {
      name: 'every node not ready',
      nodes: [aNode('a').notReady(), aNode('b').notReady()],
      job: aJob('j'),
      reason: 'no ready fast node (2 are registering, draining or lost)',
    },
    {
      // a: 1 GPU, b: 40 GB GPUs → gpus; c: only 8 cores → cpu_ram; d: not ready (not in the "of 3").
      name: 'counts by cause',
      nodes: [aNode('a').gpus(1, 80), aNode('b').gpus(3, 40), aNode('c').gpus(2, 80).cpu(8), aNode('d').gpus(2, 80).notReady()],
      job: aJob('j').gpus(2, 80).cpu(16),
      reason: '0 of 3 ready fast nodes can hold it: 2 have fewer than 2 free GPUs with ≥ 80 GB, 1 lacks free CPU (needs 16 cores)',
    },
    {
      name: 'one GPU, RAM',
      nodes: [aNode('a').gpuVrams([24]), aNode('b').gpus(1, 80).ram(100)],
      held: [{ job: aJob('h').gpus(0).ram(50), on: 'b', gpus: [] }],
      job: aJob('j').gpus(1, 48).ram(64),
      reason: '0 of 2 ready fast nodes can hold it: 1 has no free GPU with ≥ 48 GB, 1 lacks free RAM (needs 64 GB)',
    },
    {
      name: 'GPUs held by others, VRAM not asked',
      nodes: [aNode('a').gpus(2, 80)],
      held: [{ job: aJob('h'), on: 'a', gpus: [0] }],
      job: aJob('j').gpus(2, 0),
      reason: '0 of 1 ready fast node can hold it: 1 has fewer than 2 free GPUs',
    },
    {
      name: 'one core',
      nodes: [aNode('a').gpus(0, 0).cpu(1)],
      held: [{ job: aJob('h').gpus(0).cpu(1), on: 'a', gpus: [] }],
      job: aJob('j').gpus(0).cpu(1),
      reason: '0 of 1 ready fast node can hold it: 1 lacks free CPU (needs 1 core)',
    },
    {
      name: 'FLEX counts busy fast nodes',
      nodes: [aNode('f1').gpus(1, 80), aNode('f2').gpus(1, 80), aNode('x').flex().gpus(1, 40)],
      held: [
        { job: aJob('h1').fast().gpus(1, 80), on: 'f1', gpus: [0] },
        { job: aJob('h2').fast().gpus(0), on: 'f2', gpus: [] },
      ],
      job: aJob('j').flex().gpus(1, 80),
      reason: '0 of 3 ready flex or fast nodes can hold it: 2 are busy with FAST jobs, 1 has no free GPU with ≥ 80 GB',
    },
    {
      // a is reserved (a 1 h job ends after the reserved start, NOW + 30 min); b is full; c's block ends too soon.
      name: 'reserved nodes and ending blocks',
      nodes: [aNode('a'), aNode('b').gpus(1, 80), aNode('c').endsAt(NOW + HOUR), aNode('d').endsAt(NOW + HOUR)],
      held: [{ job: aJob('h').gpus(1, 80), on: 'b', gpus: [0] }],
      reservations: [{ jobId: 'big', tier: 'FAST', nodeIds: ['a'], startAt: NOW + HOUR / 2, strict: false }],
      job: aJob('j').gpus(1, 80).duration(3600),
      reason: '0 of 4 ready fast nodes can hold it: 1 is reserved for a higher job, 1 has no free GPU with ≥ 80 GB, 2 belong to blocks that end too soon',
    },
    {
      // The reserved node is also short of GPUs: reservation comes first in FILTERS, so it counts there.
      name: 'a full reserved node counts as reserved',
      nodes: [aNode('a').gpus(1, 80), aNode('b').gpus(1, 80).endsAt(NOW + HOUR)],
      held: [{ job: aJob('h').gpus(1, 80), on: 'a', gpus: [0] }],
      reservations: [{ jobId: 'big', tier: 'FAST', nodeIds: ['a'], startAt: NOW, strict: true }],
      job: aJob('j').gpus(1, 80),
      reason: '0 of 2 ready fast nodes can hold it: 1 is reserved for a higher job, 1 belongs to a block that ends too soon',
    },
  ])('$name', ({ nodes, held = [], job, reservations = [], reason }) => {
    const snap = snapshotOf(...nodes);
    for (const h of held) holdOn(snap, h.job, h.on, h.gpus);
    const byNode = new Map(reservations.flatMap((r) => r.nodeIds.map((n) => [n, r] as const)));
    const d = decide(snap, job, { reservations: byNode });
    expect(d.kind === 'waiting' && d.reason).toBe(reason);
    // Every node of the pools is counted once.
    expect(Object.values(d.diagnosis.rejected).reduce((a, b) => a + b, 0)).toBe(d.diagnosis.nodes);
  });

  it('a large-enough node that is busy gives the capacity reason, not the size one', () => {
    const snap = snapshotOf(aNode('a'));
    holdOn(snap, aJob('h').gpus(8, 80), 'a', [0, 1, 2, 3, 4, 5, 6, 7]);
    expect(reasonOf(snap, aJob('j').gpus(8, 80))).toBe('0 of 1 ready fast node can hold it: 1 has fewer than 8 free GPUs with ≥ 80 GB');
  });
});

const offer = (o: Partial<NodeShape>): NodeShape => ({ pool: 'fast', gpus: 8, vramPerGpuGb: 80, cpu: 64, ram: 512, maxNodes: Number.POSITIVE_INFINITY, ...o });

describe('unschedulable: no node shape or offer could ever hold it', () => {
  it.each<{ name: string; nodes: NodeBuilder[]; offers?: NodeShape[]; job: JobBuilder; reason: string }>([
    {
      name: 'too many GPUs (a flex node does not count for FAST)',
      nodes: [aNode('a'), aNode('b').gpus(2, 80), aNode('x').flex().gpus(16, 80)],
      job: aJob('j').gpus(16, 80),
      reason: 'no fast node is large enough: needs 16 GPUs with ≥ 80 GB, the largest has 8 (for a gang, ask node_count 2 with gpu_count 8)',
    },
    {
      name: 'counts only GPUs with enough VRAM',
      nodes: [aNode('a').gpuVrams([40, 40, 40, 80])],
      job: aJob('j').gpus(2, 80),
      reason: 'no fast node is large enough: needs 2 GPUs with ≥ 80 GB, the largest has 1 (for a gang, ask node_count 2 with gpu_count 1)',
    },
    {
      name: 'GPUs too small',
      nodes: [aNode('a').gpuVrams([80, 141])],
      job: aJob('j').gpus(1, 192),
      reason: 'no fast node is large enough: needs 1 GPU with ≥ 192 GB, the largest has 1 with 141 GB',
    },
    { name: 'no GPUs anywhere', nodes: [aNode('a').gpus(0, 0)], job: aJob('j').gpus(1, 0), reason: 'no fast node is large enough: needs 1 GPU, none has a GPU' },
    {
      name: 'CPU and RAM, also counting nodes that are not ready',
      nodes: [aNode('a').cpu(64).ram(512), aNode('b').cpu(96).ram(256).notReady()],
      job: aJob('j').cpu(128).ram(1024),
      reason: 'no fast node is large enough: needs 128 CPU cores, the largest has 96; needs 1024 GB RAM, the largest has 512 GB',
    },
    {
      name: 'no single node has it all',
      nodes: [aNode('a').gpus(2, 80).cpu(8), aNode('b').gpus(1, 80).cpu(64)],
      job: aJob('j').gpus(2, 80).cpu(32).ram(64),
      reason: 'no fast node is large enough: none has 2 GPUs with ≥ 80 GB, 32 CPU cores and 64 GB RAM together',
    },
    {
      name: 'FLEX looks at both pools',
      nodes: [aNode('f').gpus(4, 80), aNode('x').flex().gpus(2, 80)],
      job: aJob('j').flex().gpus(8, 80),
      reason: 'no flex or fast node is large enough: needs 8 GPUs with ≥ 80 GB, the largest has 4 (for a gang, ask node_count 2 with gpu_count 4)',
    },
    {
      name: 'nor any offer',
      nodes: [aNode('a')],
      offers: [offer({ gpus: 4, vramPerGpuGb: 80 }), offer({ pool: 'flex', vramPerGpuGb: 141 })],
      job: aJob('j').gpus(8, 120),
      reason: 'no fast node or offer can ever hold it: needs 8 GPUs with ≥ 120 GB, the largest has 8 with 80 GB',
    },
    {
      name: 'a gang larger than the fleet',
      nodes: [aNode('a'), aNode('b'), aNode('c').gpus(4, 80)],
      job: aJob('g').gpus(8, 80).nodes(4),
      reason: 'too few fast nodes are large enough: a gang of 4 needs 4 nodes that can each hold a member, 2 can',
    },
    {
      name: 'a gang larger than the fleet and the offers',
      nodes: [aNode('a'), aNode('b')],
      offers: [offer({ maxNodes: 1 })],
      job: aJob('g').gpus(8, 80).nodes(4),
      reason: 'too few fast nodes or offers can ever hold it: a gang of 4 needs 4 nodes that can each hold a member, 3 can',
    },
  ])('$name', ({ nodes, offers, job, reason }) => {
    const d = decide(snapshotOf(...nodes), job, { offers });
    expect(d).toMatchObject({ kind: 'unschedulable', reason });
    expect(d.diagnosis.step).toBeNull();
  });

  it.each<{ name: string; nodes: NodeBuilder[]; offers: NodeShape[]; job: JobBuilder; reason: string }>([
    { name: 'an offer that fits, and no node yet', nodes: [], offers: [offer({})], job: aJob('j').gpus(8, 80), reason: 'no ready fast node' },
    {
      name: 'an offer completes a gang',
      nodes: [aNode('a')],
      offers: [offer({ maxNodes: 3 })],
      job: aJob('g').gpus(8, 80).nodes(4),
      reason: '0 of 1 ready fast node can hold it: a gang of 4 needs 4 nodes, 1 can hold a member now',
    },
  ])('waits instead: $name', ({ nodes, offers, job, reason }) => {
    expect(reasonOf(snapshotOf(...nodes), job, { offers })).toBe(reason);
  });

  it('an offer of a pool the tier may not use does not help', () => {
    const d = decide(snapshotOf(), aJob('j').gpus(8, 80), { offers: [offer({ pool: 'flex' })] });
    expect(d.kind).toBe('waiting'); // no fast node and no fast offer: nothing to judge by, it waits
    const e = decide(snapshotOf(aNode('a').gpus(4, 80)), aJob('j').gpus(8, 80), { offers: [offer({ pool: 'flex' })] });
    expect(e.kind).toBe('unschedulable');
  });

  it('follows the fleet: a larger node makes the job schedulable again (shape cache invalidated)', () => {
    const snap = snapshotOf(aNode('a').gpus(4, 80));
    const job = aJob('j').gpus(8, 80).build();
    expect(decide(snap, job).kind).toBe('unschedulable');
    snap.upsertNode(aNode('b').gpus(8, 80).notReady().build());
    expect(reasonOf(snap, job)).toBe('0 of 1 ready fast node can hold it: 1 has fewer than 8 free GPUs with ≥ 80 GB');
    snap.setSchedulable('b', true);
    expect(decide(snap, job).kind).toBe('placed');
    snap.removeNode('b');
    expect(decide(snap, job).kind).toBe('unschedulable');
  });
});
