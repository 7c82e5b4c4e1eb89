/**
 * The simulator's shared shapes: a trace as read, the jobs the replay
 * submits, the fleet it starts with, what it records while it runs, and the
 * metrics it reports. Times in the simulator are seconds from the trace's
 * first submission (virtual time); wall-clock figures are named as such.
 */
import type { Pool, Tier } from '../domain/cluster.ts';

export type { Pool, Tier };

/** One row of a trace file (README of ../shared/traces): empty cells are null. */
export interface TraceRow {
  jobId: string;
  submitSec: number;
  gpuCount: number;
  durationSec: number;
  vramPerGpuGb: number | null;
  cpuCores: number | null;
  ramGb: number | null;
  user: string | null;
  status: string | null;
  /** 1-based line in the file, for error messages. */
  line: number;
}

/** A job as the replay submits it (after the tier rule, the defaults and gang conversion). */
export interface SimJobSpec {
  id: string;
  /** Submission order (ties in submit time keep file order). */
  seq: number;
  submitSec: number;
  tier: Tier;
  user: string;
  /** GPUs per node (the whole request when nodeCount is 1). */
  gpuCount: number;
  nodeCount: number;
  vramPerGpuGb: number;
  /** Per node. */
  cpuCores: number;
  /** Per node. */
  ramGb: number;
  /** How long it runs once started; also its expected_duration_sec. */
  durationSec: number;
  /** The trace's gpu_count (a gang may hold more: whole nodes). */
  traceGpus: number;
}

/** One group of identical nodes of the starting fleet (`fast=20x8x80`). */
export interface FleetGroup {
  pool: Pool;
  nodes: number;
  gpusPerNode: number;
  vramGb: number;
  cpuCores: number;
  ramGb: number;
}

/** How one job of the trace fared in a replay. */
export interface JobOutcome {
  id: string;
  tier: Tier;
  /** GPUs it held while running (gpuCount × nodeCount). */
  gpus: number;
  submitSec: number;
  /** First start of any attempt; null if it never started. */
  firstStartSec: number | null;
  /** When it ended (completed, failed); null if it never ended. */
  endSec: number | null;
  status: 'completed' | 'failed' | 'cancelled' | 'unfinished';
  /** Failed at admission: no node shape could ever hold it. */
  unschedulable: boolean;
  preemptions: number;
  /** GPU-seconds of attempts that were preempted (work thrown away). */
  lostGpuSec: number;
  /** GPU-seconds of every attempt (from start to exit), lost ones included. */
  usedGpuSec: number;
  /** Trace duration × GPUs held: what the job needs to finish once. */
  needGpuSec: number;
  /**
   * FAST only: when it was submitted, the fast pool's GPUs covered every
   * FAST GPU running or waiting, this job's included ("warm capacity covers
   * the FAST demand").
   */
  warmCovered: boolean;
}

/** The cluster at one instant of virtual time. */
export interface Sample {
  t: number;
  /** GPUs on schedulable nodes. */
  totalGpus: number;
  /** GPUs held by jobs. */
  usedGpus: number;
  /** Jobs waiting (queued or pending). */
  waitingJobs: number;
  /** GPUs the waiting jobs ask for. */
  waitingGpus: number;
  /** Free GPUs that no waiting job can use because they are split across nodes. */
  fragmentedGpus: number;
  /** Free GPUs. */
  freeGpus: number;
}

export interface Distribution {
  mean: number;
  p50: number;
  p99: number;
  max: number;
}

export interface TierStats {
  jobs: number;
  /** Queueing delay: first start − submit (s), over jobs that started. */
  wait: Distribution;
  /** Job completion time: end − submit (s), over jobs that ended. */
  jct: { mean: number; p99: number };
}

export interface SimMetrics {
  trace: string;
  policy: string;
  autoscale: boolean;
  seed: number;
  fleet: string;
  tierRule: string;
  jobs: { total: number; completed: number; failed: number; unschedulable: number; unfinished: number };
  tiers: { FAST: TierStats; FLEX: TierStats; all: TierStats };
  /** FAST jobs submitted while warm capacity covered the FAST demand. */
  fastWarm: TierStats;
  utilisation: {
    /** Time-weighted used / total GPUs over the makespan. */
    mean: number;
    /** The same, over the time when at least one job waited. */
    whileWaiting: number;
    /** Share of the makespan during which a job waited. */
    waitingShare: number;
  };
  fragmentation: {
    /** Time-weighted mean of fragmented GPUs, while jobs wait. */
    meanGpus: number;
    /** Fragmented GPUs / free GPUs, time-weighted while jobs wait. */
    shareOfFree: number;
  };
  queue: { meanJobs: number; maxJobs: number };
  makespanSec: number;
  preemptions: number;
  gpuSecondsLostToPreemption: number;
  gpuSeconds: { used: number; needed: number };
  capacity: {
    startGpus: number;
    peakGpus: number;
    blocksBought: number;
    /** What the starting fleet and every bought block cost over the makespan (USD). */
    costUsd: number;
    /** A fleet of peakGpus kept for the whole makespan (USD). */
    staticPeakCostUsd: number;
  };
  wallSec: number;
  /** Down-sampled series for charts: one point per bucket. */
  series: Array<{ t: number; utilisation: number; waitingJobs: number; fragmentedGpus: number; totalGpus: number }>;
}
