import { describe, expect, it } from 'vitest';
import { computeMetrics, downsample, percentile, type RunRecord } from '../../../src/sim/metrics.ts';
import type { JobOutcome, Sample } from '../../../src/sim/types.ts';

function sample(t: number, s: Partial<Omit<Sample, 't'>> = {}): Sample {
  const totalGpus = s.totalGpus ?? 8;
  const usedGpus = s.usedGpus ?? 0;
  return {
    t,
    totalGpus,
    usedGpus,
    waitingJobs: s.waitingJobs ?? 0,
    waitingGpus: s.waitingGpus ?? 0,
    fragmentedGpus: s.fragmentedGpus ?? 0,
    freeGpus: s.freeGpus ?? totalGpus - usedGpus,
  };
}

function outcome(id: string, o: Partial<JobOutcome> = {}): JobOutcome {
  return {
    id,
    tier: 'FLEX',
    gpus: 1,
    submitSec: 0,
    firstStartSec: null,
    endSec: null,
    status: 'unfinished',
    unschedulable: false,
    preemptions: 0,
    lostGpuSec: 0,
    usedGpuSec: 0,
    needGpuSec: 0,
    warmCovered: false,
    ...o,
  };
}

function record(r: Partial<RunRecord> = {}): RunRecord {
  return {
    meta: { trace: 't.csv', policy: 'scalar', autoscale: false, seed: 7, fleet: 'fast=1x8x80', tierRule: 'gpus>=8' },
    outcomes: [],
    samples: [sample(0)],
    makespanSec: 20,
    preemptions: 0,
    capacity: { startGpus: 8, peakGpus: 8, blocksBought: 0, costUsd: 10, staticPeakCostUsd: 10 },
    wallSec: 1.5,
    ...r,
  };
}

describe('percentile (nearest rank)', () => {
  it('is 0 for no values and the value itself for one', () => {
    expect(percentile([], 50)).toBe(0);
    expect(percentile([5], 0)).toBe(5);
    expect(percentile([5], 50)).toBe(5);
    expect(percentile([5], 100)).toBe(5);
  });

  it('takes the value at rank ⌈p/100 · n⌉ (at least 1)', () => {
    const four = [1, 2, 3, 4];
    expect(percentile(four, 0)).toBe(1); // rank 1
    expect(percentile(four, 25)).toBe(1); // ⌈1⌉ = 1
    expect(percentile(four, 26)).toBe(2); // ⌈1.04⌉ = 2
    expect(percentile(four, 50)).toBe(2); // ⌈2⌉ = 2
    expect(percentile(four, 75)).toBe(3); // ⌈3⌉ = 3
    expect(percentile(four, 76)).toBe(4); // ⌈3.04⌉ = 4
    expect(percentile(four, 99)).toBe(4); // ⌈3.96⌉ = 4
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
    const ten = Array.from({ length: 10 }, (_, i) => (i + 1) * 10);
    expect(percentile(ten, 99)).toBe(100); // ⌈9.9⌉ = 10
    expect(percentile(ten, 90)).toBe(90); // ⌈9⌉ = 9
  });
});

describe('computeMetrics: time-weighted cluster figures', () => {
  it('integrates a two-step run by hand', () => {
    // [0,10): used 4 of 8, 1 job waiting, 2 of the 4 free GPUs fragmented
    // [10,20): used 8 of 8, nobody waiting
    const m = computeMetrics(
      record({
        samples: [
          sample(0, { usedGpus: 4, waitingJobs: 1, fragmentedGpus: 2 }),
          sample(10, { usedGpus: 8, waitingJobs: 0 }),
        ],
        makespanSec: 20,
      }),
    );
    expect(m.utilisation.mean).toBe(0.75); // (4·10 + 8·10) / (8·20) = 120/160
    expect(m.utilisation.whileWaiting).toBe(0.5); // 4·10 / 8·10
    expect(m.utilisation.waitingShare).toBe(0.5); // 10 / 20
    expect(m.fragmentation.meanGpus).toBe(2); // 2·10 / 10
    expect(m.fragmentation.shareOfFree).toBe(0.5); // 2·10 / 4·10
    expect(m.queue.meanJobs).toBe(0.5); // 1·10 / 20
    expect(m.queue.maxJobs).toBe(1);
  });

  // Samples of a richer run (makespan 25). The first holds for no time: a
  // second sample at the same t replaces it (its 9 waiting jobs never count).
  //   [0,5)   total 8,  used 6,  waiting 2, fragmented 1, free 2
  //   [5,15)  total 16, used 10, waiting 3, fragmented 3, free 6
  //   [15,25) total 16, used 4,  waiting 0, fragmented 0, free 12
  const rich = (): Sample[] => [
    sample(0, { usedGpus: 0, waitingJobs: 9 }),
    sample(0, { usedGpus: 6, waitingJobs: 2, fragmentedGpus: 1 }),
    sample(5, { totalGpus: 16, usedGpus: 10, waitingJobs: 3, fragmentedGpus: 3 }),
    sample(15, { totalGpus: 16, usedGpus: 4, waitingJobs: 0 }),
  ];

  it('integrates steps of different lengths and a changing fleet', () => {
    const m = computeMetrics(record({ samples: rich(), makespanSec: 25 }));
    // ∫used = 6·5 + 10·10 + 4·10 = 170; ∫total = 8·5 + 16·10 + 16·10 = 360
    expect(m.utilisation.mean).toBe(170 / 360);
    // waiting on [0,15): used 30 + 100 = 130 of 40 + 160 = 200
    expect(m.utilisation.whileWaiting).toBe(0.65);
    expect(m.utilisation.waitingShare).toBe(0.6); // 15 / 25
    // fragmented 1·5 + 3·10 = 35 over 15 s; free 2·5 + 6·10 = 70
    expect(m.fragmentation.meanGpus).toBe(35 / 15);
    expect(m.fragmentation.shareOfFree).toBe(0.5);
    expect(m.queue.meanJobs).toBe(1.6); // (2·5 + 3·10) / 25
    expect(m.queue.maxJobs).toBe(3); // the 9 held for no time
  });

  it('sorts samples given out of order and clips them to the makespan', () => {
    const shuffled = rich();
    const [a, b, c, d] = shuffled as [Sample, Sample, Sample, Sample];
    const m = computeMetrics(record({ samples: [a, b, d, c, sample(40, { usedGpus: 8, waitingJobs: 50 })], makespanSec: 25 }));
    expect(m.utilisation.mean).toBe(170 / 360);
    expect(m.queue.maxJobs).toBe(3); // the sample at 40 lies past the makespan
  });

  it('reports zeros when nobody waits, nothing runs or the run has no length', () => {
    const idle = computeMetrics(record({ samples: [sample(0)], makespanSec: 100 }));
    expect(idle.utilisation).toEqual({ mean: 0, whileWaiting: 0, waitingShare: 0 });
    expect(idle.fragmentation).toEqual({ meanGpus: 0, shareOfFree: 0 });
    expect(idle.queue).toEqual({ meanJobs: 0, maxJobs: 0 });

    const empty = computeMetrics(record({ samples: [sample(0, { totalGpus: 0 })], makespanSec: 0 }));
    expect(empty.utilisation.mean).toBe(0);
    expect(empty.queue.meanJobs).toBe(0);
    expect(empty.series).toEqual([]);

    const none = computeMetrics(record({ samples: [], makespanSec: 50 }));
    expect(none.utilisation.mean).toBe(0);
    expect(none.series).toEqual([]);
  });
});

describe('computeMetrics: jobs', () => {
  // FAST a: waits 10, JCT 110 (warm).  FAST b: waits 20, JCT 220, preempted once.
  // FLEX c: started at 100, never ended. FLEX d: unschedulable.
  // FLEX e: waited 0, failed at 50.     FLEX f: never started.
  const outcomes = (): JobOutcome[] => [
    outcome('a', { tier: 'FAST', gpus: 8, submitSec: 0, firstStartSec: 10, endSec: 110, status: 'completed', warmCovered: true, usedGpuSec: 800, needGpuSec: 800 }),
    outcome('b', { tier: 'FAST', gpus: 8, submitSec: 5, firstStartSec: 25, endSec: 225, status: 'completed', preemptions: 1, lostGpuSec: 160, usedGpuSec: 1760, needGpuSec: 1600 }),
    outcome('c', { submitSec: 0, firstStartSec: 100, status: 'unfinished', usedGpuSec: 400, needGpuSec: 1000 }),
    outcome('d', { submitSec: 10, endSec: 10, status: 'failed', unschedulable: true, needGpuSec: 64 }),
    outcome('e', { submitSec: 20, firstStartSec: 20, endSec: 50, status: 'failed', usedGpuSec: 30, needGpuSec: 60 }),
    outcome('f', { submitSec: 30, status: 'unfinished', needGpuSec: 10 }),
  ];

  it('computes wait and JCT per tier, over started and completed jobs', () => {
    const m = computeMetrics(record({ outcomes: outcomes(), preemptions: 1 }));
    // FAST waits [10, 20], JCTs [110, 220]
    expect(m.tiers.FAST).toEqual({ jobs: 2, wait: { mean: 15, p50: 10, p99: 20, max: 20 }, jct: { mean: 165, p99: 220 } });
    // FLEX waits [0 (e), 100 (c)]; no FLEX job completed
    expect(m.tiers.FLEX).toEqual({ jobs: 4, wait: { mean: 50, p50: 0, p99: 100, max: 100 }, jct: { mean: 0, p99: 0 } });
    // all waits [0, 10, 20, 100]: mean 32.5, p50 rank 2, p99 rank 4
    expect(m.tiers.all).toEqual({ jobs: 6, wait: { mean: 32.5, p50: 10, p99: 100, max: 100 }, jct: { mean: 165, p99: 220 } });
    expect(m.fastWarm).toEqual({ jobs: 1, wait: { mean: 10, p50: 10, p99: 10, max: 10 }, jct: { mean: 110, p99: 110 } });
  });

  it('counts jobs by how they ended and sums GPU-seconds', () => {
    const m = computeMetrics(record({ outcomes: outcomes(), preemptions: 1 }));
    expect(m.jobs).toEqual({ total: 6, completed: 2, failed: 1, unschedulable: 1, unfinished: 2 });
    expect(m.preemptions).toBe(1);
    expect(m.gpuSecondsLostToPreemption).toBe(160);
    expect(m.gpuSeconds).toEqual({ used: 800 + 1760 + 400 + 30, needed: 800 + 1600 });
  });

  it('gives zeros for a tier without jobs and copies the run facts', () => {
    const m = computeMetrics(record());
    const zero = { jobs: 0, wait: { mean: 0, p50: 0, p99: 0, max: 0 }, jct: { mean: 0, p99: 0 } };
    expect(m.tiers).toEqual({ FAST: zero, FLEX: zero, all: zero });
    expect(m.fastWarm).toEqual(zero);
    expect(m.jobs).toEqual({ total: 0, completed: 0, failed: 0, unschedulable: 0, unfinished: 0 });
    expect(m).toMatchObject({
      trace: 't.csv',
      policy: 'scalar',
      autoscale: false,
      seed: 7,
      fleet: 'fast=1x8x80',
      tierRule: 'gpus>=8',
      makespanSec: 20,
      wallSec: 1.5,
      capacity: { startGpus: 8, peakGpus: 8, blocksBought: 0, costUsd: 10, staticPeakCostUsd: 10 },
    });
  });
});

describe('computeMetrics: series', () => {
  const rich = (): Sample[] => [
    sample(0, { usedGpus: 6, waitingJobs: 2, fragmentedGpus: 1 }),
    sample(5, { totalGpus: 16, usedGpus: 10, waitingJobs: 3, fragmentedGpus: 3 }),
    sample(15, { totalGpus: 16, usedGpus: 4, waitingJobs: 0 }),
  ];

  it('gives one point per bucket when buckets align with the steps', () => {
    const m = computeMetrics(record({ samples: rich(), makespanSec: 25 }), { seriesPoints: 5 });
    expect(m.series).toEqual([
      { t: 0, utilisation: 0.75, waitingJobs: 2, fragmentedGpus: 1, totalGpus: 8 },
      { t: 5, utilisation: 0.625, waitingJobs: 3, fragmentedGpus: 3, totalGpus: 16 },
      { t: 10, utilisation: 0.625, waitingJobs: 3, fragmentedGpus: 3, totalGpus: 16 },
      { t: 15, utilisation: 0.25, waitingJobs: 0, fragmentedGpus: 0, totalGpus: 16 },
      { t: 20, utilisation: 0.25, waitingJobs: 0, fragmentedGpus: 0, totalGpus: 16 },
    ]);
  });

  it('time-weights the steps inside a bucket', () => {
    // Two buckets of 12.5 s.
    // [0,12.5): 5 s of (6/8, w2, f1) + 7.5 s of (10/16, w3, f3)
    //   used 30 + 75 = 105, total 40 + 120 = 160; waiting (10 + 22.5) / 12.5 = 2.6;
    //   fragmented (5 + 22.5) / 12.5 = 2.2; total 160 / 12.5 = 12.8
    // [12.5,25): 2.5 s of (10/16, w3, f3) + 10 s of (4/16, w0, f0)
    //   used 25 + 40 = 65, total 40 + 160 = 200; waiting 7.5 / 12.5 = 0.6; fragmented 0.6
    const m = computeMetrics(record({ samples: rich(), makespanSec: 25 }), { seriesPoints: 2 });
    expect(m.series).toEqual([
      { t: 0, utilisation: 105 / 160, waitingJobs: 2.6, fragmentedGpus: 2.2, totalGpus: 12.8 },
      { t: 12.5, utilisation: 65 / 200, waitingJobs: 0.6, fragmentedGpus: 0.6, totalGpus: 16 },
    ]);
  });

  it('rounds the waiting jobs to one decimal', () => {
    // One bucket of 3 s: 1 job waits for 1 s → mean 1/3 → 0.3
    const m = computeMetrics(
      record({ samples: [sample(0, { waitingJobs: 1 }), sample(1, { waitingJobs: 0 })], makespanSec: 3 }),
      { seriesPoints: 1 },
    );
    expect(m.series).toEqual([{ t: 0, utilisation: 0, waitingJobs: 0.3, fragmentedGpus: 0, totalGpus: 8 }]);
  });

  it('keeps to the point bound, with buckets at least a second wide', () => {
    expect(computeMetrics(record({ makespanSec: 1e6 })).series).toHaveLength(1500);
    expect(computeMetrics(record({ makespanSec: 1e6 }), { seriesPoints: 7 }).series).toHaveLength(7);
    const short = computeMetrics(record({ makespanSec: 10 })).series;
    expect(short).toHaveLength(10);
    expect(short.map((p) => p.t)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(computeMetrics(record({ makespanSec: 2.5 })).series).toHaveLength(3);
  });

  it('conserves the integrals: Σ bucket mean × width = ∫ over the run', () => {
    // 200,000 irregular steps (also the performance sanity check).
    const n = 200_000;
    const samples: Sample[] = [];
    let t = 0;
    let seed = 12345;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let i = 0; i < n; i++) {
      const total = 64 + Math.floor(rand() * 64);
      const used = Math.floor(rand() * total);
      samples.push(sample(t, { totalGpus: total, usedGpus: used, waitingJobs: Math.floor(rand() * 5), fragmentedGpus: Math.floor(rand() * (total - used)) }));
      t += Math.floor(rand() * 30); // repeats (0 s) included
    }
    const makespan = t + 17;
    const m = computeMetrics(record({ samples, makespanSec: makespan }));
    expect(m.series).toHaveLength(1500);
    let totalInt = 0;
    let fragInt = 0;
    for (let i = 0; i < n; i++) {
      const s = samples[i] as Sample;
      const next = i + 1 < n ? (samples[i + 1] as Sample).t : makespan;
      totalInt += s.totalGpus * (next - s.t);
      fragInt += s.fragmentedGpus * (next - s.t);
    }
    const width = makespan / 1500;
    const sumTotal = m.series.reduce((acc, p) => acc + p.totalGpus * width, 0);
    const sumFrag = m.series.reduce((acc, p) => acc + p.fragmentedGpus * width, 0);
    expect(sumTotal / totalInt).toBeCloseTo(1, 9);
    expect(sumFrag / fragInt).toBeCloseTo(1, 9);
    m.series.forEach((p, i) => {
      expect(p.t).toBeCloseTo(i * width, 6);
      expect(p.utilisation).toBeGreaterThanOrEqual(0);
      expect(p.utilisation).toBeLessThanOrEqual(1);
    });
  });

  it('down-samples directly too', () => {
    expect(downsample([], 100)).toEqual([]);
    expect(downsample([sample(0)], 0)).toEqual([]);
    expect(downsample([sample(0, { usedGpus: 2 })], 4, 2)).toEqual([
      { t: 0, utilisation: 0.25, waitingJobs: 0, fragmentedGpus: 0, totalGpus: 8 },
      { t: 2, utilisation: 0.25, waitingJobs: 0, fragmentedGpus: 0, totalGpus: 8 },
    ]);
  });
});
