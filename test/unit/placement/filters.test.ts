/**
 * Every filter plugin on its own, table-driven (kube-scheduler style): a
 * node, what already holds it, a job, and whether the filter rejects.
 */
import { describe, expect, it } from 'vitest';
import { blockTime, cpuRam, gpusFilter, needOf, NODE_FILTERS, nodeReady, poolFilter, reservationFilter, type FilterPlugin } from '../../../src/placement/filters.ts';
import { FILTERS, type PlacementContext, type Reservation } from '../../../src/placement/index.ts';
import { aJob, aNode, ctxOf, holdOn, HOUR, MIN, NOW, snapshotOf, type JobBuilder, type NodeBuilder } from './builders.ts';

interface Case {
  name: string;
  node: NodeBuilder;
  /** Holds on the node first: [job, GPU indices]. */
  held?: [JobBuilder, number[]][];
  job: JobBuilder;
  ctx?: Partial<PlacementContext>;
  rejects: boolean;
}

function run(filter: FilterPlugin, c: Case): boolean {
  const snap = snapshotOf(c.node);
  const nodeId = snap.nodes()[0]!.nodeId;
  for (const [job, gpus] of c.held ?? []) holdOn(snap, job, nodeId, gpus);
  const ctx = ctxOf(c.ctx);
  return filter.check!(snap.state(nodeId)!, needOf(c.job.build(), ctx), ctx) !== null;
}

const reserve = (nodeId: string, r: Partial<Reservation>): Map<string, Reservation> =>
  new Map([[nodeId, { jobId: 'higher', tier: 'FAST', nodeIds: [nodeId], startAt: NOW + HOUR, strict: false, ...r }]]);

const table = (filter: FilterPlugin, cases: Case[]) =>
  it.each(cases)(`${filter.name}: $name`, (c) => {
    expect(run(filter, c)).toBe(c.rejects);
  });

describe('filters run in FILTERS order', () => {
  it('per-node filters are FILTERS without the set-level gang check', () => {
    expect(NODE_FILTERS.map((f) => f.name)).toEqual(FILTERS.filter((f) => f !== 'gang'));
  });
});

describe('node_ready', () => {
  table(nodeReady, [
    { name: 'a ready node passes', node: aNode('a'), job: aJob('j'), rejects: false },
    { name: 'a registering, draining or lost node is rejected', node: aNode('a').notReady(), job: aJob('j'), rejects: true },
  ]);
});

describe('pool', () => {
  table(poolFilter, [
    { name: 'FAST on a fast node', node: aNode('a').fast(), job: aJob('j').fast(), rejects: false },
    { name: 'FAST never on a flex node', node: aNode('a').flex(), job: aJob('j').fast(), rejects: true },
    { name: 'FLEX on a flex node', node: aNode('a').flex(), job: aJob('j').flex(), rejects: false },
    { name: 'FLEX on an idle fast node', node: aNode('a').fast(), job: aJob('j').flex(), rejects: false },
    { name: 'FLEX beside FLEX on a fast node', node: aNode('a'), held: [[aJob('h').flex(), [0]]], job: aJob('j').flex(), rejects: false },
    { name: 'FLEX not on a fast node busy with FAST', node: aNode('a'), held: [[aJob('h').fast(), [0]]], job: aJob('j').flex(), rejects: true },
    { name: 'FAST joins FLEX work on a fast node', node: aNode('a'), held: [[aJob('h').flex(), [0]]], job: aJob('j').fast(), rejects: false },
    { name: 'FLEX on a flex node that holds FAST (rebuilt hold)', node: aNode('a').flex(), held: [[aJob('h').fast(), [0]]], job: aJob('j').flex(), rejects: false },
  ]);
});

describe('reservation', () => {
  // The job: 1 h expected, so it ends at NOW + 60 min.
  table(reservationFilter, [
    { name: 'an unreserved node passes', node: aNode('a'), job: aJob('j'), ctx: { reservations: reserve('other', {}) }, rejects: false },
    { name: 'the reserved job itself passes', node: aNode('a'), job: aJob('higher'), ctx: { reservations: reserve('a', { strict: true }) }, rejects: false },
    {
      // NOW + 60 min ≤ startAt NOW + 60 min: done in time.
      name: 'a job that ends exactly by the reserved start passes',
      node: aNode('a'),
      job: aJob('j').duration(3600),
      ctx: { reservations: reserve('a', { startAt: NOW + HOUR }) },
      rejects: false,
    },
    {
      // NOW + 60 min 1 s > NOW + 60 min: it would delay the reserved job.
      name: 'a job one second too long is rejected',
      node: aNode('a'),
      job: aJob('j').duration(3601),
      ctx: { reservations: reserve('a', { startAt: NOW + HOUR }) },
      rejects: true,
    },
    {
      name: 'a strict reservation admits nobody else',
      node: aNode('a'),
      job: aJob('j').duration(1),
      ctx: { reservations: reserve('a', { strict: true, startAt: NOW + 10 * HOUR }) },
      rejects: true,
    },
    { name: 'no reservations at all', node: aNode('a'), job: aJob('j'), rejects: false },
  ]);
});

describe('cpu_ram', () => {
  table(cpuRam, [
    // 64 − 60 = 4 free ≥ 4.
    { name: 'exactly enough CPU', node: aNode('a').cpu(64), held: [[aJob('h').cpu(60), [0]]], job: aJob('j').cpu(4), rejects: false },
    { name: 'one core short', node: aNode('a').cpu(64), held: [[aJob('h').cpu(61), [0]]], job: aJob('j').cpu(4), rejects: true },
    // 512 − 496 = 16 free ≥ 16.
    { name: 'exactly enough RAM', node: aNode('a').ram(512), held: [[aJob('h').ram(496), [0]]], job: aJob('j').ram(16), rejects: false },
    { name: 'RAM short by 0.5 GB', node: aNode('a').ram(512), held: [[aJob('h').ram(496.5), [0]]], job: aJob('j').ram(16), rejects: true },
    // 0.1 + 0.2 = 0.30000000000000004 held of 0.6: 0.3 asked still fits (EPSILON slack).
    {
      name: 'float sums within EPSILON fit',
      node: aNode('a').ram(0.6),
      held: [[aJob('h1').ram(0.1), [0]], [aJob('h2').ram(0.2), [1]]],
      job: aJob('j').ram(0.3),
      rejects: false,
    },
  ]);
});

describe('cpu_ram codes: a node short of CPU is `cpu`, one short of RAM only `ram`', () => {
  it.each([
    { name: 'CPU short', held: aJob('h').cpu(61), job: aJob('j').cpu(4), code: 'cpu' },
    { name: 'RAM short', held: aJob('h').ram(500), job: aJob('j').ram(16), code: 'ram' },
    { name: 'both short counts as CPU', held: aJob('h').cpu(61).ram(500), job: aJob('j').cpu(4).ram(16), code: 'cpu' },
    { name: 'neither', held: aJob('h'), job: aJob('j'), code: null },
  ])('$name → $code', ({ held, job, code }) => {
    const snap = snapshotOf(aNode('a').cpu(64).ram(512));
    holdOn(snap, held, 'a', [0]);
    const ctx = ctxOf();
    expect(cpuRam.check!(snap.state('a')!, needOf(job.build(), ctx), ctx)).toBe(code);
  });
});

describe('gpus', () => {
  table(gpusFilter, [
    { name: '2 free 80 GB GPUs for 2 × 80 GB', node: aNode('a').gpus(2, 80), job: aJob('j').gpus(2, 80), rejects: false },
    { name: 'one held leaves 1 of 2', node: aNode('a').gpus(2, 80), held: [[aJob('h'), [0]]], job: aJob('j').gpus(2, 80), rejects: true },
    // Free: 40, 40, 80 → only one with ≥ 80 GB.
    { name: 'only GPUs with enough VRAM count', node: aNode('a').gpuVrams([40, 80, 40]), job: aJob('j').gpus(2, 80), rejects: true },
    { name: 'a GPU-less job fits a GPU-less node', node: aNode('a').gpus(0, 0), job: aJob('j').gpus(0), rejects: false },
    { name: 'VRAM 0 asks only for a free GPU', node: aNode('a').gpuVrams([24]), job: aJob('j').gpus(1, 0), rejects: false },
  ]);
});

describe('block_time', () => {
  // The job needs NOW + 60 min (expected) + 10 min (margin) = NOW + 70 min.
  table(blockTime, [
    { name: 'a node outside any block', node: aNode('a').endsAt(null), job: aJob('j').duration(3600), rejects: false },
    { name: 'a block ending exactly at NOW + 70 min', node: aNode('a').endsAt(NOW + 70 * MIN), job: aJob('j').duration(3600), rejects: false },
    { name: 'a block ending a minute sooner', node: aNode('a').endsAt(NOW + 69 * MIN), job: aJob('j').duration(3600), rejects: true },
    {
      name: 'margin counts: 60 min job, 0 margin, block in 60 min',
      node: aNode('a').endsAt(NOW + HOUR),
      job: aJob('j').duration(3600),
      ctx: { blockMarginSec: 0 },
      rejects: false,
    },
    { name: 'an ended block', node: aNode('a').endsAt(NOW - 1), job: aJob('j').duration(0), rejects: true },
  ]);
});
