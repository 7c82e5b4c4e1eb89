/**
 * Every scorer on its own, table-driven, with the arithmetic in comments.
 * Nodes are 8 × 80 GB, 64 cores, 512 GB unless said otherwise.
 */
import { describe, expect, it } from 'vitest';
import { firstSufficient, needOf } from '../../../src/placement/filters.ts';
import {
  bestFit,
  blockTimeScorer,
  DEFAULT_WEIGHTS,
  fragmentation,
  NO_END_SCORE,
  remainderQuality,
  scoreNode,
  type ScorerPlugin,
} from '../../../src/placement/scorers.ts';
import { aJob, aNode, ctxOf, holdOn, MIN, NOW, snapshotOf, type JobBuilder, type NodeBuilder } from './builders.ts';

interface Case {
  name: string;
  node: NodeBuilder;
  /** One job already holding [0 .. gpus) with this CPU and RAM. */
  held?: { gpus: number; cpu?: number; ram?: number };
  job: JobBuilder;
  expected: number;
}

function setup(c: Omit<Case, 'expected' | 'name'>) {
  const snap = snapshotOf(c.node);
  const nodeId = snap.nodes()[0]!.nodeId;
  if (c.held) {
    const h = aJob('held').gpus(c.held.gpus, 0).cpu(c.held.cpu ?? 0).ram(c.held.ram ?? 0);
    holdOn(snap, h, nodeId, [...Array(c.held.gpus).keys()]);
  }
  const ctx = ctxOf();
  const need = needOf(c.job.build(), ctx);
  const node = snap.state(nodeId)!;
  return { node, need, ctx, start: firstSufficient(node, need.vram) };
}

const table = (scorer: ScorerPlugin, cases: Case[]) =>
  it.each(cases)(`${scorer.name}: $name → $expected`, (c) => {
    const { node, need, ctx, start } = setup(c);
    expect(scorer.score(node, need, start, ctx)).toBeCloseTo(c.expected, 6);
  });

describe('best_fit = 100 · (1 − (4·gpuLeft + 2·vramOver + cpuLeft + ramLeft) / 8)', () => {
  table(bestFit, [
    {
      // gpuLeft 1/8 = 0.125, vramOver (40+40)/160 = 0.5, cpuLeft 24/64 = 0.375, ramLeft 192/512 = 0.375
      // 100 · (1 − (0.5 + 1 + 0.375 + 0.375)/8) = 71.875
      name: 'the worked example in scorers.ts',
      node: aNode('a'),
      held: { gpus: 5, cpu: 32, ram: 256 },
      job: aJob('j').gpus(2, 40).cpu(8).ram(64),
      expected: 71.875,
    },
    // Nothing left anywhere: 100 · (1 − 0) = 100.
    { name: 'a job that fills the node exactly', node: aNode('a'), job: aJob('j').gpus(8, 80).cpu(64).ram(512), expected: 100 },
    // gpuLeft 7/8 → 3.5, cpuLeft 1, ramLeft 1: 100 · (1 − 5.5/8) = 31.25.
    { name: 'one GPU on an empty node, no CPU or RAM', node: aNode('a'), job: aJob('j').gpus(1, 80).cpu(0).ram(0), expected: 31.25 },
    // No GPUs: gpuLeft 0, vramOver 0; cpuLeft 8/16, ramLeft 32/64: 100 · (1 − 1/8) = 87.5.
    { name: 'a CPU job on a GPU-less node', node: aNode('a').gpus(0, 0).cpu(16).ram(64), job: aJob('j').gpus(0).cpu(8).ram(32), expected: 87.5 },
    {
      // vramOver 101/141, cpuLeft 60/64, ramLeft 496/512: 100 · (1 − (2·0.716312 + 0.9375 + 0.96875)/8) = 58.264...
      name: 'VRAM beyond the ask counts as leftover',
      node: aNode('a').gpuVrams([141]),
      job: aJob('j').gpus(1, 40),
      expected: 100 * (1 - ((2 * 101) / 141 + 60 / 64 + 496 / 512) / 8),
    },
    {
      // The node shrank under its jobs (free < 0): shares clamp to 0 rather than reward it.
      name: 'negative free CPU clamps to 0',
      node: aNode('a').gpus(1, 80).cpu(4).ram(16),
      held: { gpus: 0, cpu: 4, ram: 16 },
      job: aJob('j').gpus(1, 80).cpu(0).ram(0),
      expected: 100,
    },
  ]);
});

describe('fragmentation = 100 · (keep + q(GPUs left)) / 2', () => {
  it.each([
    [0, 1],
    [1, 0.75],
    [2, 0.75],
    [3, 0.375],
    [4, 0.75],
    [5, 0.375],
    [6, 0.375],
    [7, 0.25],
    [8, 0.75],
  ])('q(%i) = %f', (r, q) => {
    expect(remainderQuality(r)).toBe(q);
  });

  table(fragmentation, [
    // r = 1, keep 1 (node already used): (1 + 0.75)/2 = 87.5
    { name: '3 free, job of 2', node: aNode('a'), held: { gpus: 5 }, job: aJob('j').gpus(2, 40), expected: 87.5 },
    // r = 0: (1 + 1)/2 = 100
    { name: '4 free, job of 4', node: aNode('a'), held: { gpus: 4 }, job: aJob('j').gpus(4, 40), expected: 100 },
    // r = 3 (2+1, ragged): (1 + 0.375)/2 = 68.75
    { name: '4 free, job of 1', node: aNode('a'), held: { gpus: 4 }, job: aJob('j').gpus(1, 40), expected: 68.75 },
    // Breaks a whole node, r = 6: (0 + 0.375)/2 = 18.75
    { name: 'whole node, job of 2', node: aNode('a'), job: aJob('j').gpus(2, 40), expected: 18.75 },
    // Breaks a whole node, r = 7: (0 + 0.25)/2 = 12.5
    { name: 'whole node, job of 1', node: aNode('a'), job: aJob('j').gpus(1, 40), expected: 12.5 },
    // Takes it all: nothing broken, nothing left: 100
    { name: 'whole node, job of 8', node: aNode('a'), job: aJob('j').gpus(8, 40), expected: 100 },
    // A CPU job on a whole GPU node breaks it too: r = 8, (0 + 0.75)/2 = 37.5
    { name: 'whole node, CPU-only job', node: aNode('a'), job: aJob('j').gpus(0), expected: 37.5 },
    // No GPUs to keep whole: (1 + 1)/2 = 100
    { name: 'GPU-less node, CPU-only job', node: aNode('a').gpus(0, 0), job: aJob('j').gpus(0), expected: 100 },
  ]);
});

describe('block_time = 50 + 50 · needed / left, 50 outside a block', () => {
  // A 2 h job with the 10 min margin needs 130 min.
  const job = () => aJob('j').duration(2 * 3600);
  table(blockTimeScorer, [
    { name: 'no block', node: aNode('a').endsAt(null), job: job(), expected: NO_END_SCORE },
    // 50 + 50 · 130/130
    { name: 'a block ending just in time', node: aNode('a').endsAt(NOW + 130 * MIN), job: job(), expected: 100 },
    // 50 + 50 · 130/260
    { name: 'a block with twice the time', node: aNode('a').endsAt(NOW + 260 * MIN), job: job(), expected: 75 },
    // 50 + 50 · 130/1560 ≈ 54.17: still above a node with no end
    { name: 'a block ending in 26 h', node: aNode('a').endsAt(NOW + 1560 * MIN), job: job(), expected: 50 + (50 * 130) / 1560 },
  ]);
});

describe('weighted total = Σ w·s / Σ w', () => {
  const c = { node: aNode('a'), held: { gpus: 5, cpu: 32, ram: 256 }, job: aJob('j').gpus(2, 40).cpu(8).ram(64) };

  it('defaults: best_fit 3, fragmentation 2, block_time 1', () => {
    expect(DEFAULT_WEIGHTS).toEqual({ best_fit: 3, fragmentation: 2, block_time: 1 });
    const { node, need, ctx, start } = setup(c);
    const s = scoreNode(node, need, start, ctx, DEFAULT_WEIGHTS);
    // (3·71.875 + 2·87.5 + 1·50) / 6 = 440.625 / 6 = 73.4375
    expect(s.scores).toEqual({ best_fit: 71.875, fragmentation: 87.5, block_time: 50 });
    expect(s.total).toBeCloseTo(73.4375, 9);
  });

  it.each([
    [{ best_fit: 1, fragmentation: 0, block_time: 0 }, 71.875],
    [{ best_fit: 0, fragmentation: 1, block_time: 1 }, (87.5 + 50) / 2],
    [{ best_fit: 0, fragmentation: 0, block_time: 0 }, 0],
  ])('weights %j → %f', (weights, total) => {
    const { node, need, ctx, start } = setup(c);
    expect(scoreNode(node, need, start, ctx, weights).total).toBeCloseTo(total, 9);
  });
});
