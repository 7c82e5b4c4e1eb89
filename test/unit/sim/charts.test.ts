import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cdfPoints, CDF_MAX_POINTS, renderCharts, type ChartRun } from '../../../src/sim/charts.ts';
import type { JobOutcome, SimMetrics, TierStats, Tier } from '../../../src/sim/types.ts';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A SimMetrics with every figure zero; only the series matters to the charts. */
function aMetrics(series: SimMetrics['series'] = []): SimMetrics {
  const tier = (): TierStats => ({ jobs: 0, wait: { mean: 0, p50: 0, p99: 0, max: 0 }, jct: { mean: 0, p99: 0 } });
  return {
    trace: 'test',
    policy: 'fifo',
    autoscale: false,
    seed: 0,
    fleet: '',
    tierRule: '',
    jobs: { total: 0, completed: 0, failed: 0, unschedulable: 0, unfinished: 0 },
    tiers: { FAST: tier(), FLEX: tier(), all: tier() },
    fastWarm: tier(),
    utilisation: { mean: 0, whileWaiting: 0, waitingShare: 0 },
    fragmentation: { meanGpus: 0, shareOfFree: 0 },
    queue: { meanJobs: 0, maxJobs: 0 },
    makespanSec: 0,
    preemptions: 0,
    gpuSecondsLostToPreemption: 0,
    gpuSeconds: { used: 0, needed: 0 },
    capacity: { startGpus: 0, peakGpus: 0, blocksBought: 0, costUsd: 0, staticPeakCostUsd: 0 },
    wallSec: 0,
    series,
  };
}

/** A series of `n` points one hour apart. */
function aSeries(n: number, util: (i: number) => number, waiting: (i: number) => number): SimMetrics['series'] {
  return Array.from({ length: n }, (_, i) => ({
    t: i * 3600,
    utilisation: util(i),
    waitingJobs: waiting(i),
    fragmentedGpus: 0,
    totalGpus: 64,
  }));
}

/** A completed job submitted at 1000 s that waited `waitSec` (null: never started). */
function anOutcome(id: string, tier: Tier, waitSec: number | null, unschedulable = false): JobOutcome {
  const submitSec = 1000;
  const firstStartSec = waitSec === null ? null : submitSec + waitSec;
  return {
    id,
    tier,
    gpus: 1,
    submitSec,
    firstStartSec,
    endSec: firstStartSec === null ? null : firstStartSec + 60,
    status: firstStartSec === null ? 'unfinished' : 'completed',
    unschedulable,
    preemptions: 0,
    lostGpuSec: 0,
    usedGpuSec: 60,
    needGpuSec: 60,
    warmCovered: false,
  };
}

const CHARTS: Array<[file: string, title: string]> = [
  ['utilisation', 'GPU utilisation over time'],
  ['wait-cdf', 'Queueing delay CDF'],
  ['queue-length', 'Jobs waiting over time'],
];

describe('renderCharts', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scalar-charts-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const runs: ChartRun[] = [
    {
      label: 'fifo-static',
      metrics: aMetrics(aSeries(48, (i) => (i % 10) / 10, (i) => i % 7)),
      outcomes: [
        anOutcome('a1', 'FAST', 0),
        anOutcome('a2', 'FAST', 30),
        anOutcome('a3', 'FLEX', 7200),
        anOutcome('a4', 'FLEX', 90_000),
        anOutcome('a5', 'FLEX', null),
        anOutcome('a6', 'FAST', null, true),
      ],
    },
    {
      label: 'preempt-autoscale',
      metrics: aMetrics(aSeries(48, () => 0.75, () => 2)),
      outcomes: [anOutcome('b1', 'FAST', 0), anOutcome('b2', 'FLEX', 600), anOutcome('b3', 'FLEX', 3600)],
    },
  ];

  it('writes an SVG and a PNG of each chart, with its title and every run in the legend', async () => {
    const out = join(dir, 'nested', 'charts');
    const written = await renderCharts(runs, out, { title: 'trace: tiny' });
    const expected = CHARTS.flatMap(([f]) => [join(out, `${f}.svg`), join(out, `${f}.png`)]);
    expect([...written].sort()).toEqual([...expected].sort());

    for (const [file, title] of CHARTS) {
      const svg = await readFile(join(out, `${file}.svg`), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain(title);
      expect(svg).toContain('trace: tiny');
      for (const r of runs) expect(svg).toContain(r.label);

      const png = await readFile(join(out, `${file}.png`));
      expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      expect(png.length).toBeGreaterThan(10_000);
    }
    const cdf = await readFile(join(out, 'wait-cdf.svg'), 'utf8');
    expect(cdf).toContain('FAST');
    expect(cdf).toContain('FLEX');
  });

  it('writes only SVGs when png is false', async () => {
    const out = join(dir, 'svg-only');
    const written = await renderCharts(runs, out, { png: false });
    expect(written.map((p) => p.slice(out.length + 1))).toEqual(CHARTS.map(([f]) => `${f}.svg`));
  });

  it('down-samples the wait CDF so 10,000 jobs per run keep the SVG small', async () => {
    const many = (label: string, scale: number): ChartRun => ({
      label,
      metrics: aMetrics(aSeries(10, () => 0.5, () => 1)),
      // Deterministic spread of waits from 0 to `scale` seconds, both tiers.
      outcomes: Array.from({ length: 10_000 }, (_, i) =>
        anOutcome(`${label}-${i}`, i % 3 === 0 ? 'FAST' : 'FLEX', Math.round(((i * 7919) % 10_000) ** 2 / 1e8 * scale)),
      ),
    });
    const out = join(dir, 'big');
    await renderCharts([many('big-a', 86_400), many('big-b', 3600)], out, { png: false });
    const { size } = await stat(join(out, 'wait-cdf.svg'));
    // About 57 KB with the cap; without it (15,600 distinct points) about 500 KB.
    expect(size).toBeLessThan(150_000);
  });
});

describe('cdfPoints', () => {
  it('is exact for ties: the fraction at x counts every wait ≤ x', () => {
    // 0, 0, 0, 3600, 7200 s: from the origin, 3/5 at 0 h, 4/5 at 1 h, all at 2 h.
    expect(cdfPoints([7200, 0, 3600, 0, 0])).toEqual([
      { hours: 0, fraction: 0 },
      { hours: 0, fraction: 0.6 },
      { hours: 1, fraction: 0.8 },
      { hours: 2, fraction: 1 },
    ]);
  });

  it('keeps at most the cap, from the origin through the smallest wait to the largest at 100%', () => {
    const waits = Array.from({ length: 15_000 }, (_, i) => i + 1);
    const pts = cdfPoints(waits);
    expect(pts.length).toBeLessThanOrEqual(CDF_MAX_POINTS);
    expect(pts.length).toBeGreaterThan(CDF_MAX_POINTS - 10);
    expect(pts[0]).toEqual({ hours: 0, fraction: 0 });
    expect(pts[1]).toEqual({ hours: 1 / 3600, fraction: 1 / 15_000 });
    expect(pts.at(-1)).toEqual({ hours: 15_000 / 3600, fraction: 1 });
    for (let i = 1; i < pts.length; i++) expect(pts[i]!.fraction).toBeGreaterThan(pts[i - 1]!.fraction);
  });

  it('is empty without waits, and a visible step for one job', () => {
    expect(cdfPoints([])).toEqual([]);
    expect(cdfPoints([60])).toEqual([
      { hours: 0, fraction: 0 },
      { hours: 60 / 3600, fraction: 1 },
    ]);
  });
});
