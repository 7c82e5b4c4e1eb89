import { describe, expect, it } from 'vitest';
import { formatCompare, formatDuration, formatRun } from '../../../src/sim/report.ts';
import type { SimMetrics, TierStats } from '../../../src/sim/types.ts';

function tier(jobs: number, waitMean: number, jctMean: number): TierStats {
  return { jobs, wait: { mean: waitMean, p50: 8.2, p99: 840, max: 11520 }, jct: { mean: jctMean, p99: 181440 } };
}

function metrics(change: (m: SimMetrics) => void = () => undefined): SimMetrics {
  const m: SimMetrics = {
    trace: 'philly.csv',
    policy: 'scalar',
    autoscale: false,
    seed: 42,
    fleet: 'fast=20x8x80,flex=40x8x40',
    tierRule: 'gpus>=8',
    jobs: { total: 1234, completed: 1200, failed: 3, unschedulable: 4, unfinished: 27 },
    tiers: { FAST: tier(234, 100, 3600), FLEX: tier(1000, 60, 7200), all: tier(1234, 70, 6000) },
    fastWarm: tier(200, 30, 3000),
    utilisation: { mean: 0.7234, whileWaiting: 0.91, waitingShare: 0.4 },
    fragmentation: { meanGpus: 3.25, shareOfFree: 0.125 },
    queue: { meanJobs: 12.34, maxJobs: 340 },
    makespanSec: 181440,
    preemptions: 12,
    gpuSecondsLostToPreemption: 9000,
    gpuSeconds: { used: 3_600_000, needed: 3_240_000 },
    capacity: { startGpus: 480, peakGpus: 544, blocksBought: 8, costUsd: 12345, staticPeakCostUsd: 15000 },
    wallSec: 8.2,
    series: [],
  };
  change(m);
  return m;
}

/** The cells of the row whose first cell is `label` (split on runs of 2+ spaces). */
function row(text: string, label: string): string[] {
  const line = text.split('\n').find((l) => l.trimStart().startsWith(`${label}  `));
  if (!line) throw new Error(`no row ${label} in\n${text}`);
  return line.trim().split(/ {2,}/);
}

describe('formatDuration', () => {
  it.each([
    [0, '0 s'],
    [0.04, '0 s'],
    [8, '8 s'],
    [8.2, '8.2 s'],
    [59.9, '59.9 s'],
    [59.97, '1 min'],
    [90, '1.5 min'],
    [597, '10 min'],
    [840, '14 min'],
    [3599, '1 h'],
    [11520, '3.2 h'],
    [86000, '23.9 h'],
    [86300, '1 d'],
    [181440, '2.1 d'],
    [-5, '-5 s'],
    [Number.NaN, '—'],
  ])('%s s → %s', (sec, text) => {
    expect(formatDuration(sec)).toBe(text);
  });
});

describe('formatRun', () => {
  const text = formatRun(metrics());

  it('starts with the run facts', () => {
    const head = text.split('\n\n')[0] as string;
    for (const part of ['trace philly.csv', 'policy scalar', 'autoscale off', 'fleet fast=20x8x80,flex=40x8x40', 'tiers gpus>=8', 'seed 42']) {
      expect(head).toContain(part);
    }
  });

  it('has a row per tier with waits and JCTs formatted', () => {
    expect(row(text, 'tier')).toEqual(['tier', 'jobs', 'wait mean', 'p50', 'p99', 'max', 'JCT mean', 'JCT p99']);
    expect(row(text, 'FAST')).toEqual(['FAST', '234', '1.7 min', '8.2 s', '14 min', '3.2 h', '1 h', '2.1 d']);
    expect(row(text, 'FLEX')).toEqual(['FLEX', '1,000', '1 min', '8.2 s', '14 min', '3.2 h', '2 h', '2.1 d']);
    expect(row(text, 'all')).toEqual(['all', '1,234', '1.2 min', '8.2 s', '14 min', '3.2 h', '1.7 h', '2.1 d']);
    expect(row(text, 'FAST warm')).toEqual(['FAST warm', '200', '30 s', '8.2 s', '14 min', '3.2 h', '50 min', '2.1 d']);
  });

  it('reports the cluster figures', () => {
    expect(row(text, 'utilisation')[1]).toBe('mean 72.3%, while waiting 91.0% (jobs waited 40.0% of the time)');
    expect(row(text, 'fragmentation')[1]).toBe('3.3 GPUs while waiting, 12.5% of free'); // 3.25 → 3.3
    expect(row(text, 'queue')[1]).toBe('mean 12.3 jobs, max 340');
    expect(row(text, 'makespan')[1]).toBe('2.1 d');
    expect(row(text, 'preemptions')[1]).toBe('12 (2.5 GPU-h lost)'); // 9000 GPU-s
    expect(row(text, 'GPU-hours')[1]).toBe('used 1,000, needed 900');
    expect(row(text, 'jobs')[1]).toBe('1,234 total: 1,200 completed, 3 failed, 4 unschedulable, 27 unfinished');
    expect(row(text, 'capacity')[1]).toBe('start 480 GPUs, peak 544 GPUs, 8 blocks bought');
    expect(row(text, 'cost')[1]).toBe('$12,345 vs $15,000 static peak (82.3%)');
    expect(row(text, 'wall time')[1]).toBe('8.2 s');
  });

  it('stays within 100 columns and uses no escape codes', () => {
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
    expect(text).not.toMatch(/\u001b/);
  });
});

describe('formatCompare', () => {
  const first = metrics();
  const other = metrics((m) => {
    m.policy = 'fifo-first-fit';
    m.autoscale = true;
    m.tiers.FAST.wait.mean = 50; // first 100 → 0.50
    m.tiers.FLEX.wait.mean = 120; // first 60 → 2.00
    m.utilisation.mean = 0.3617; // first 0.7234 → 0.50
    m.preemptions = 0; // first 12 → 0.00
    m.jobs.failed = 6; // first 3 → 2.00
  });

  it('labels the columns by policy, +autoscale when on, and the ratio as other ÷ first', () => {
    const text = formatCompare([first, other]);
    const head = text.split('\n\n')[1]?.split('\n') ?? [];
    expect(head[0]?.trim().split(/ {2,}/)).toEqual(['scalar', 'fifo-first-fit', '÷ scalar']);
    expect(head[1]?.trim()).toBe('+autoscale');
    expect(head[1]?.indexOf('+autoscale')).toBe((head[0]?.indexOf('fifo-first-fit') ?? 0) + 4); // right-aligned under it
    expect(text).toContain('÷ columns: the run to the left ÷ the first run, scalar');
    // What both share is said once above the table.
    expect(text.split('\n')[0]).toBe('trace philly.csv  fleet fast=20x8x80,flex=40x8x40  tiers gpus>=8  seed 42');
  });

  it('divides the other run by the first', () => {
    const text = formatCompare([first, other]);
    const lines = text.split('\n');
    const section = (name: string): string => lines.slice(lines.indexOf(name)).join('\n');
    expect(row(section('FAST'), 'wait mean')).toEqual(['wait mean', '1.7 min', '50 s', '0.50']);
    expect(row(section('FLEX'), 'wait mean')).toEqual(['wait mean', '1 min', '2 min', '2.00']);
    expect(row(text, 'utilisation')).toEqual(['utilisation', '72.3%', '36.2%', '0.50']);
    expect(row(text, 'preemptions')).toEqual(['preemptions', '12', '0', '0.00']);
    expect(row(text, 'failed')).toEqual(['failed', '3', '6', '2.00']);
    expect(row(text, 'cost (USD)')).toEqual(['cost (USD)', '$12,345', '$12,345', '1.00']);
  });

  it('shows — where the first run is 0', () => {
    const zero = metrics((m) => {
      m.preemptions = 0;
      m.capacity.blocksBought = 0;
    });
    const text = formatCompare([zero, metrics((m) => (m.policy = 'fifo'))]);
    expect(text.split('\n\n')[1]?.split('\n')[0]?.trim().split(/ {2,}/)).toEqual(['scalar', 'fifo', '÷ scalar']);
    expect(text.split('\n\n')[1]?.split('\n')[1]?.trim()).toBe('FAST'); // no second heading line
    expect(row(text, 'preemptions')).toEqual(['preemptions', '0', '12', '—']);
    expect(row(text, 'blocks bought')).toEqual(['blocks bought', '0', '8', '—']);
  });

  it('gives each run a column and a ratio, rows for what differs, within 100 columns', () => {
    const third = metrics((m) => {
      m.policy = 'fifo-first-fit';
      m.autoscale = true;
      m.seed = 43;
      m.tiers.FAST.wait.mean = 25;
    });
    const text = formatCompare([first, other, third]);
    const head = text.split('\n\n')[1]?.split('\n') ?? [];
    expect(head[0]?.trim().split(/ {2,}/)).toEqual(['scalar', 'fifo-first-fit', '÷ scalar', 'fifo-first-fit #2', '÷ scalar']);
    expect(head[1]?.trim().split(/ {2,}/)).toEqual(['+autoscale', '+autoscale']);
    expect(row(text, 'seed')).toEqual(['seed', '42', '42', '43']);
    expect(text.split('\n')[0]).not.toContain('seed');
    const lines = text.split('\n');
    expect(row(lines.slice(lines.indexOf('FAST')).join('\n'), 'wait mean')).toEqual(['wait mean', '1.7 min', '50 s', '0.50', '25 s', '0.25']);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(100);
  });

  it('prints a single run without ratio columns, and says so when there is none', () => {
    expect(row(formatCompare([first]), 'utilisation')).toEqual(['utilisation', '72.3%']);
    expect(formatCompare([])).toBe('(no runs to compare)\n');
  });
});
