/**
 * Filter plugins (kube-scheduler's Filter, Nomad's feasibility checks). Each
 * rejects a node for one named reason; the pipeline runs them in the order of
 * `FILTERS` (types.ts), cheapest first, and counts a rejected node once, under
 * the first filter that rejected it.
 *
 * Why this order: a flag (node_ready), then the tier rule (pool), a map lookup
 * (reservation), two number compares (cpu_ram), a short walk of the free GPUs
 * (gpus), then the time rule (block_time, which also needs the job's
 * duration). `gang` is not a per-node check: it looks at the set of nodes that
 * passed everything else, so it lives in the pipeline (see pipeline.ts).
 *
 * Tier rules (unchanged from v1): FAST runs only on `fast` nodes. FLEX runs on
 * `flex` nodes, or on `fast` nodes that hold no FAST job (idle FAST capacity,
 * where FLEX holds are preemptible). A FAST job may join a fast node that
 * already runs FLEX work if it fits.
 */
import { Pool, type Tier } from '../domain/cluster.ts';
import { EPSILON } from './snapshot.ts';
import type { FilterName, JobRequest, NodeView, PlacementContext } from './types.ts';

/** One member's request, with what every filter needs precomputed once per decision. */
export interface Need {
  jobId: string;
  tier: Tier;
  /** GPUs per node. */
  gpus: number;
  /** VRAM per GPU; 0 when no GPU is asked for (so VRAM never rejects a CPU-only job). */
  vram: number;
  cpu: number;
  ram: number;
  nodeCount: number;
  /** Expected duration, ms. */
  durationMs: number;
  /** A node's block must end at or after this (ms since the epoch): now + expected duration + margin. */
  mustOutlive: number;
  /** The job's own expected end without margin: a reservation can admit it if this is ≤ its startAt. */
  endsBy: number;
}

export function needOf(job: JobRequest, ctx: PlacementContext): Need {
  const durationMs = job.expectedDurationSec * 1000;
  return {
    jobId: job.jobId,
    tier: job.tier,
    gpus: job.gpuCount,
    vram: job.gpuCount > 0 ? job.vramPerGpuGb : 0,
    cpu: job.cpuCores,
    ram: job.ramGb,
    nodeCount: job.nodeCount,
    durationMs,
    mustOutlive: ctx.now + durationMs + ctx.blockMarginSec * 1000,
    endsBy: ctx.now + durationMs,
  };
}

export interface FilterPlugin {
  readonly name: FilterName;
  /** True: the node cannot hold one member of the job now. */
  reject(node: NodeView, need: Need, ctx: PlacementContext): boolean;
}

/** Position in `node.freeGpus` of the first free GPU with VRAM ≥ the ask (freeGpus is VRAM-ascending). */
export function firstSufficient(node: NodeView, vram: number): number {
  const free = node.freeGpus;
  let i = 0;
  while (i < free.length && free[i]!.vramGb < vram) i++;
  return i;
}

export const lacksCpu = (node: NodeView, need: Need): boolean => need.cpu > node.cpuFree + EPSILON;
export const lacksRam = (node: NodeView, need: Need): boolean => need.ram > node.ramFree + EPSILON;

/** Only `ready` nodes take new jobs (not registering, draining or lost). */
export const nodeReady: FilterPlugin = {
  name: 'node_ready',
  reject: (node) => !node.schedulable,
};

/** The tier rule. A FLEX job may not join a fast node busy with FAST work: it would be preempted at once. */
export const poolFilter: FilterPlugin = {
  name: 'pool',
  reject: (node, need) => (need.tier === 'FAST' ? node.pool !== Pool.fast : node.pool === Pool.fast && node.fastJobs > 0),
};

/**
 * EASY backfill: a node promised to another (higher) job admits this one only
 * if the reservation is not strict and the job, by its expected duration,
 * ends by the reserved start. The reserved job itself passes.
 */
export const reservationFilter: FilterPlugin = {
  name: 'reservation',
  reject: (node, need, ctx) => {
    const r = ctx.reservations?.get(node.nodeId);
    return r !== undefined && r.jobId !== need.jobId && (r.strict || need.endsBy > r.startAt);
  },
};

export const cpuRam: FilterPlugin = {
  name: 'cpu_ram',
  reject: (node, need) => lacksCpu(node, need) || lacksRam(node, need),
};

/** Fewer than gpuCount free GPUs with VRAM ≥ the ask. */
export const gpusFilter: FilterPlugin = {
  name: 'gpus',
  reject: (node, need) => need.gpus > 0 && node.freeGpus.length - firstSufficient(node, need.vram) < need.gpus,
};

/** The node's capacity block ends before the job (plus margin) would: it would be killed mid-run. */
export const blockTime: FilterPlugin = {
  name: 'block_time',
  reject: (node, need) => node.endsAt !== null && node.endsAt < need.mustOutlive,
};

/** The per-node filters, in `FILTERS` order (`gang` is the set-level check in the pipeline). */
export const NODE_FILTERS: readonly FilterPlugin[] = [nodeReady, poolFilter, reservationFilter, cpuRam, gpusFilter, blockTime];

/** The first filter that rejects the node, or null when one member fits there now. */
export function firstReject(node: NodeView, need: Need, ctx: PlacementContext): FilterPlugin | null {
  for (const f of NODE_FILTERS) if (f.reject(node, need, ctx)) return f;
  return null;
}
