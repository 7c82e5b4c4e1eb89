/**
 * Metrics of one replay, computed from what it recorded: the jobs' outcomes
 * and the cluster's samples (a step function of virtual time).
 *
 * Time-weighted figures integrate the step function over [0, makespan]: a
 * sample holds from its t until the next sample's t, the last one until the
 * makespan. Samples at the same t hold for no time (only the last of them
 * counts). Everything is plain sums and quotients, so a test can check it by
 * hand.
 */
import type { Distribution, JobOutcome, Sample, SimMetrics, TierStats } from './types.ts';

export interface RunRecord {
  meta: { trace: string; policy: string; autoscale: boolean; seed: number; fleet: string; tierRule: string };
  outcomes: JobOutcome[];
  /** Step function: each sample holds from its t until the next sample's t (the last one until makespanSec). Sorted by t; the first at t = 0. */
  samples: Sample[];
  makespanSec: number;
  preemptions: number;
  capacity: { startGpus: number; peakGpus: number; blocksBought: number; costUsd: number; staticPeakCostUsd: number };
  wallSec: number;
}

export const DEFAULT_SERIES_POINTS = 1500;

/**
 * Nearest-rank percentile of an ascending array: the smallest value with at
 * least p % of the values at or below it (rank ⌈p/100 · n⌉, at least 1).
 * p is in percent (0–100). 0 for an empty array.
 */
export function percentile(sortedAsc: number[], p: number): number {
  const n = sortedAsc.length;
  if (n === 0) return 0;
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
  return sortedAsc[rank - 1] ?? 0;
}

/** mean / p50 / p99 / max of the values (zeros when there are none). */
export function distribution(values: number[]): Distribution {
  if (values.length === 0) return { mean: 0, p50: 0, p99: 0, max: 0 };
  const sorted = values.slice().sort((a, b) => a - b);
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    mean: sum / sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? 0,
  };
}

/**
 * Tier statistics over a set of outcomes: wait over the jobs that started,
 * JCT over the jobs that completed.
 */
function tierStats(outcomes: JobOutcome[]): TierStats {
  const waits: number[] = [];
  const jcts: number[] = [];
  for (const o of outcomes) {
    if (o.firstStartSec !== null) waits.push(o.firstStartSec - o.submitSec);
    if (o.endSec !== null && o.status === 'completed') jcts.push(o.endSec - o.submitSec);
  }
  const jct = distribution(jcts);
  return { jobs: outcomes.length, wait: distribution(waits), jct: { mean: jct.mean, p99: jct.p99 } };
}

/** Integrals of the step function over [0, makespan]. */
interface Integrals {
  used: number;
  total: number;
  waiting: number;
  /** Time with waitingJobs > 0. */
  waitTime: number;
  usedW: number;
  totalW: number;
  fragW: number;
  freeW: number;
  maxWaiting: number;
}

/**
 * Calls visit(sample, from, to) for every piece of [0, makespan] a sample
 * holds for a positive time. Samples out of order are sorted (a copy); the
 * first sample is taken to hold from 0 if it starts later; times are clipped
 * to [0, makespan].
 */
function forEachInterval(samples: Sample[], makespan: number, visit: (s: Sample, from: number, to: number) => void): void {
  let ordered = samples;
  for (let i = 1; i < samples.length; i++) {
    if ((samples[i] as Sample).t < (samples[i - 1] as Sample).t) {
      ordered = samples.slice().sort((a, b) => a.t - b.t);
      break;
    }
  }
  const n = ordered.length;
  for (let i = 0; i < n; i++) {
    const s = ordered[i] as Sample;
    const from = i === 0 ? 0 : Math.max(0, Math.min(s.t, makespan));
    const to = i + 1 < n ? Math.max(0, Math.min((ordered[i + 1] as Sample).t, makespan)) : makespan;
    if (to > from) visit(s, from, to);
  }
}

function integrate(samples: Sample[], makespan: number): Integrals {
  const acc: Integrals = { used: 0, total: 0, waiting: 0, waitTime: 0, usedW: 0, totalW: 0, fragW: 0, freeW: 0, maxWaiting: 0 };
  let held = false;
  forEachInterval(samples, makespan, (s, from, to) => {
    held = true;
    const dt = to - from;
    acc.used += s.usedGpus * dt;
    acc.total += s.totalGpus * dt;
    acc.waiting += s.waitingJobs * dt;
    if (s.waitingJobs > acc.maxWaiting) acc.maxWaiting = s.waitingJobs;
    if (s.waitingJobs > 0) {
      acc.waitTime += dt;
      acc.usedW += s.usedGpus * dt;
      acc.totalW += s.totalGpus * dt;
      acc.fragW += s.fragmentedGpus * dt;
      acc.freeW += s.freeGpus * dt;
    }
  });
  // A run of no length: the queue's peak is what the samples saw.
  if (!held) for (const s of samples) acc.maxWaiting = Math.max(acc.maxWaiting, s.waitingJobs);
  return acc;
}

const ratio = (a: number, b: number): number => (b > 0 ? a / b : 0);

/**
 * The step function down-sampled to at most `points` equal-width buckets
 * over [0, makespan] (fewer when the makespan is short: buckets are at least
 * one second wide). Each point holds the time-weighted values within its
 * bucket; t is the bucket's start. O(samples + buckets).
 */
export function downsample(samples: Sample[], makespan: number, points = DEFAULT_SERIES_POINTS): SimMetrics['series'] {
  if (!(makespan > 0) || samples.length === 0 || points < 1) return [];
  const b = Math.max(1, Math.min(Math.floor(points), Math.ceil(makespan)));
  const edge = (k: number): number => (k >= b ? makespan : (k * makespan) / b);
  const used = new Float64Array(b);
  const total = new Float64Array(b);
  const waiting = new Float64Array(b);
  const frag = new Float64Array(b);
  const covered = new Float64Array(b);
  let k = 0;
  forEachInterval(samples, makespan, (s, from, to) => {
    // Intervals come in time order: the bucket only moves forward.
    while (k < b - 1 && edge(k + 1) <= from) k++;
    let a = from;
    while (a < to) {
      const end = Math.min(to, edge(k + 1));
      const dt = end - a;
      used[k] = (used[k] as number) + s.usedGpus * dt;
      total[k] = (total[k] as number) + s.totalGpus * dt;
      waiting[k] = (waiting[k] as number) + s.waitingJobs * dt;
      frag[k] = (frag[k] as number) + s.fragmentedGpus * dt;
      covered[k] = (covered[k] as number) + dt;
      a = end;
      if (a < to) {
        if (k >= b - 1) break;
        k++;
      }
    }
  });
  const series: SimMetrics['series'] = [];
  for (let i = 0; i < b; i++) {
    const dt = covered[i] as number;
    series.push({
      t: edge(i),
      utilisation: ratio(used[i] as number, total[i] as number),
      waitingJobs: Math.round(ratio(waiting[i] as number, dt) * 10) / 10,
      fragmentedGpus: ratio(frag[i] as number, dt),
      totalGpus: ratio(total[i] as number, dt),
    });
  }
  return series;
}

export function computeMetrics(r: RunRecord, o: { seriesPoints?: number } = {}): SimMetrics {
  const fast: JobOutcome[] = [];
  const flex: JobOutcome[] = [];
  const fastWarm: JobOutcome[] = [];
  const jobs = { total: r.outcomes.length, completed: 0, failed: 0, unschedulable: 0, unfinished: 0 };
  let lost = 0;
  let used = 0;
  let needed = 0;
  for (const j of r.outcomes) {
    if (j.tier === 'FAST') {
      fast.push(j);
      if (j.warmCovered) fastWarm.push(j);
    } else {
      flex.push(j);
    }
    if (j.unschedulable) jobs.unschedulable++;
    else if (j.status === 'failed') jobs.failed++;
    if (j.status === 'completed') {
      jobs.completed++;
      needed += j.needGpuSec;
    }
    if (j.status === 'unfinished') jobs.unfinished++;
    lost += j.lostGpuSec;
    used += j.usedGpuSec;
  }

  const makespan = Math.max(0, r.makespanSec);
  const i = integrate(r.samples, makespan);

  return {
    trace: r.meta.trace,
    policy: r.meta.policy,
    autoscale: r.meta.autoscale,
    seed: r.meta.seed,
    fleet: r.meta.fleet,
    tierRule: r.meta.tierRule,
    jobs,
    tiers: { FAST: tierStats(fast), FLEX: tierStats(flex), all: tierStats(r.outcomes) },
    fastWarm: tierStats(fastWarm),
    utilisation: {
      mean: ratio(i.used, i.total),
      whileWaiting: ratio(i.usedW, i.totalW),
      waitingShare: ratio(i.waitTime, makespan),
    },
    fragmentation: {
      meanGpus: ratio(i.fragW, i.waitTime),
      shareOfFree: ratio(i.fragW, i.freeW),
    },
    queue: { meanJobs: ratio(i.waiting, makespan), maxJobs: i.maxWaiting },
    makespanSec: r.makespanSec,
    preemptions: r.preemptions,
    gpuSecondsLostToPreemption: lost,
    gpuSeconds: { used, needed },
    capacity: { ...r.capacity },
    wallSec: r.wallSec,
    series: downsample(r.samples, makespan, o.seriesPoints ?? DEFAULT_SERIES_POINTS),
  };
}
