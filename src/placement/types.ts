/**
 * The placement contract. Pure: no I/O, no clocks (time comes in as `now`,
 * in ms since the epoch).
 *
 * The coordinator keeps a CapacitySnapshot of every node's free resources and
 * of every hold (a job's attempt bound to GPUs), asks `scheduleQueue` what to
 * do with the waiting jobs, binds the result in Postgres, and only then sends
 * `run` (and, for preemptions, `kill`).
 *
 * Shape (../shared/STYLE.md, after kube-scheduler and Nomad):
 *   snapshot → filters (cheapest first) → scorers (normalised, weighted)
 *   → select → bind, and every decision returns a PlacementDiagnosis.
 */
import type { NodeSlice, Pool, Tier } from '../domain/cluster.ts';

export interface GpuSlot {
  index: number;
  vramGb: number;
  /** The job holding it, or null when free. */
  heldBy: string | null;
}

export interface NodeCapacity {
  nodeId: string;
  pool: Pool;
  /** Only `ready` nodes take new jobs (not registering, draining or lost). */
  schedulable: boolean;
  cpuTotal: number;
  ramTotal: number;
  gpus: GpuSlot[];
  /** The capacity block the node belongs to; null or absent for a node outside any block. */
  blockId?: string | null;
  /** When the node's block ends (ms since the epoch); null or absent: it never ends. */
  endsAt?: number | null;
}

/** What a job asks for, plus what orders it in the queue. */
export interface JobRequest {
  jobId: string;
  tier: Tier;
  priority: number;
  /** Submission order: older (smaller) first among equals. */
  seq: number;
  /** The owner, for fair share. */
  userId: string;
  /** Per node. A gang (nodeCount > 1) asks for this much on each of its nodes. */
  gpuCount: number;
  vramPerGpuGb: number;
  cpuCores: number;
  ramGb: number;
  /** ≥ 1. All nodes are placed at once, or none are. */
  nodeCount: number;
  expectedDurationSec: number;
}


export interface Placement {
  jobId: string;
  /** One slice per node, rank order: nodes[0] is rank 0 (the gang's master). Length = nodeCount. */
  nodes: NodeSlice[];
}

/** When a hold started and when it is expected to end (ms since the epoch). Backfill and preemption read these. */
export interface HoldTimes {
  startedAt: number;
  /** startedAt + expected duration, or later when a job outlived it and its reservation was extended. */
  endsAt: number;
}

/** A hold as placement sees it: one job's share of one node. */
export interface HoldView extends HoldTimes {
  jobId: string;
  tier: Tier;
  userId: string;
  priority: number;
  gpuIndices: readonly number[];
  cpu: number;
  ram: number;
  /** A FLEX job on a fast node: a FAST job may preempt it. */
  preemptible: boolean;
}

export interface FreeGpu {
  readonly index: number;
  readonly vramGb: number;
}

/**
 * Read-only live view of one node, for placement. Never mutate it; it
 * changes with the snapshot. (Not the node machine's NodeState, which is a
 * node's lifecycle state: registering, ready, draining, lost.)
 */
export interface NodeView {
  readonly nodeId: string;
  readonly pool: Pool;
  readonly schedulable: boolean;
  readonly cpuTotal: number;
  readonly ramTotal: number;
  /** Total minus held. Negative only if the node shrank under running jobs. */
  readonly cpuFree: number;
  readonly ramFree: number;
  /** Every GPU, in the order the node reported them. */
  readonly gpus: readonly Readonly<GpuSlot>[];
  /** The free GPUs, VRAM ascending, then index ascending. */
  readonly freeGpus: readonly FreeGpu[];
  /** How many FAST jobs hold something on this node. */
  readonly fastJobs: number;
  readonly blockId: string | null;
  /** ms since the epoch; null: never ends. */
  readonly endsAt: number | null;
  /** The jobs holding something here, one entry each (a gang member's slice on this node). */
  readonly holds: readonly HoldView[];
}

/** What queue discipline reads from the snapshot (CapacitySnapshot implements it). */
export interface SnapshotReader {
  states(pool?: Pool): Iterable<NodeView>;
  state(nodeId: string): NodeView | undefined;
  /** Every node slice the job holds, rank order, or undefined. */
  holding(jobId: string): Placement | undefined;
  /** GPUs held by the user's jobs, all nodes. */
  userGpus(userId: string): number;
  /** GPUs on schedulable nodes of a pool, or of all pools. */
  totalGpus(pool?: Pool): number;
  /** Whether any schedulable node has a free GPU. */
  anyFreeGpu(): boolean;
}

// --- scorers (the filters are their registry, filters.ts; the diagnosis is in decision.ts) ---

export const SCORERS = ['best_fit', 'fragmentation', 'block_time'] as const;
export type ScorerName = (typeof SCORERS)[number];

/** Weights of the scorers; each scorer gives 0–100. */
export type ScoreWeights = Record<ScorerName, number>;

/** How the decision was reached (STYLE.md: escalation for tiers). */
export type PlacementStep = 'fit' | 'backfill' | 'preempt';

/** A node shape that could exist: a provider's instance type, or a node seen before. */
export interface NodeShape {
  pool: Pool;
  gpus: number;
  vramPerGpuGb: number;
  cpu: number;
  ram: number;
  /** How many such nodes one can have (a provider's limit); Infinity when unbounded. */
  maxNodes: number;
}

/**
 * Nodes promised to a blocked job higher in the queue (EASY backfill): a
 * later job may use a reserved node only if, by its expected duration, it
 * ends by `startAt`. A strict reservation (GPUs being freed by preemption for
 * a FAST job) admits nobody else.
 */
export interface Reservation {
  jobId: string;
  tier: Tier;
  nodeIds: string[];
  /** When the job is expected to be able to start (ms since the epoch). */
  startAt: number;
  strict: boolean;
}

export interface PlacementContext {
  now: number;
  /** A node's block must outlive now + expected duration + this margin (seconds). */
  blockMarginSec: number;
  /** Reserved nodes, by node id. */
  reservations?: ReadonlyMap<string, Reservation>;
  /** Defaults to the pipeline's documented weights. */
  scoreWeights?: ScoreWeights;
  /** Shapes that providers can sell, for the unschedulable check (existing nodes are always counted). */
  offers?: readonly NodeShape[];
  /** First fit instead of scoring (the fifo-first-fit baseline). */
  firstFit?: boolean;
}

// --- the queue ------------------------------------------------------------------

export interface QueuePolicy {
  /** Strict arrival order (seq only), ignoring tier and priority; the first blocked job blocks everything behind it. For the fifo baseline. */
  strictArrival: boolean;
  /** Weighted DRF between users within equal tier and priority; off: arrival order. */
  fairShare: boolean;
  /** EASY backfill: later jobs may start ahead of a blocked one if they cannot delay it; off: a blocked job blocks its tier. */
  backfill: boolean;
  /** FAST jobs preempt FLEX jobs backfilled on fast nodes. */
  preemption: boolean;
  /** First fit instead of scoring. */
  firstFit: boolean;
}

export const FIFO_FIRST_FIT_POLICY: QueuePolicy = Object.freeze({ strictArrival: true, fairShare: false, backfill: false, preemption: false, firstFit: true });

export const SCALAR_POLICY: QueuePolicy = Object.freeze({ strictArrival: false, fairShare: true, backfill: true, preemption: true, firstFit: false });

export interface QueueContext extends Omit<PlacementContext, 'reservations' | 'firstFit'> {
  policy: QueuePolicy;
  /** Fair-share weight per user id; absent users weigh 1. */
  userWeights?: ReadonlyMap<string, number>;
  /** Victims already being killed, by victim job id → the FAST job they make room for. Not chosen again. */
  preempting?: ReadonlyMap<string, string>;
  /** Seconds a preempted job gets between SIGTERM and SIGKILL: when its GPUs are expected free. */
  preemptGraceSec: number;
  /**
   * Stop the pass once nothing more can be placed: no schedulable node has a
   * free GPU, and no later job could preempt (none is FAST, preemption is off,
   * or no FLEX job sits on a fast node). The jobs after that point are left
   * out of the outcome (no reason, no position, not judged unschedulable): a
   * caller that passes this must run full passes too, to explain every job.
   * Placements, reservations that matter and preemptions are the same as a
   * full pass's. Only when every job asks for GPUs.
   */
  stopWhenFull?: boolean;
}

export interface Preemption {
  /** The FAST job that needs the room. */
  forJobId: string;
  /** The FLEX jobs to kill and requeue. */
  victims: string[];
  /** GPU-seconds of work the victims lose (sum of GPUs × seconds run). */
  lostGpuSeconds: number;
}
