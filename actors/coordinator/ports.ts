/**
 * What the coordinator needs from the world, as interfaces: the durable
 * record (Postgres in production, CoordinatorStore) and the way commands
 * reach node agents (JetStream in production, natsNodeLink). `scalar
 * simulate` runs the same Coordinator with in-memory implementations of both
 * (src/sim/adapters/) and a virtual clock: only the transports and the
 * clock change, never the scheduling code.
 *
 * The port owns its vocabulary: the records and the batch it speaks in live
 * here, and the adapters (store.ts, the simulator's) import them, never the
 * other way round.
 */
import type { JobEvent, JobStatus, MemberFailure } from '../../machines/job.machine.ts';
import type { NodeState } from '../../machines/node.machine.ts';
import type { JobState } from '../../machines/job.step.ts';
import type { JobFailureCode } from '../../machines/job.failure.ts';
import type { AttemptRef, GpuInfo, NodeSlice, Pool, Tier } from '../../src/domain/cluster.ts';
import type { PlacementRecord } from '../../src/placement/index.ts';
import type { KillCommand, RunCommand } from '../../src/wire/messages.ts';

/** The coordinator's reads and its one write per pass (see CoordinatorStore for the Postgres one). */
export interface CoordinatorStorePort {
  loadLiveJobs(): Promise<JobRecord[]>;
  /** Ids of the oldest pending jobs. */
  pendingIds(limit?: number): Promise<string[]>;
  /** These jobs as they are now (missing ids left out). */
  loadJobs(ids: string[]): Promise<JobRecord[]>;
  /** Those of these jobs that are still pending. */
  loadPending(ids: string[]): Promise<JobRecord[]>;
  /** Finished jobs whose allocations are not released yet. */
  loadFinishedHoldingGpus(): Promise<string[]>;
  loadActiveAllocations(): Promise<ActiveAllocation[]>;
  loadNodes(): Promise<StoredNode[]>;
  /** When each live capacity block ends (ms; null: never). */
  loadBlockEnds(): Promise<Map<string, number | null>>;
  /** Fair-share weights that differ from 1, by user id. */
  loadUserWeights(): Promise<Map<string, number>>;
  /**
   * Writes a pass atomically; returns the jobs whose change applied (a row
   * that no longer holds the expected status and attempt is left alone).
   */
  commit(batch: Batch, now: Date): Promise<Set<string>>;
}

/** How commands reach the agents. */
export interface NodeLink {
  /** Delivers a command to the node's durable command queue. `msgID` de-duplicates re-sends. */
  send(nodeId: string, cmd: RunCommand | KillCommand, msgID?: string): Promise<void>;
  /** Asks an agent the coordinator does not know (or lost) to register again. */
  hello(nodeId: string): void;
  /** Drops commands a lost node never consumed. */
  forget(nodeId: string): Promise<void>;
}

/** A job as the coordinator keeps it in memory. */
export interface JobRecord {
  id: string;
  seq: number;
  userId: string;
  tier: Tier;
  status: JobStatus;
  statusReason: string | null;
  failureCode: JobFailureCode | null;
  priority: number;
  gpuCount: number;
  vramPerGpuGb: number;
  cpuCores: number;
  ramGb: number;
  expectedDurationSec: number;
  image: string;
  command: string[];
  env: Record<string, string>;
  attempt: number;
  maxAttempts: number;
  nodeId: string | null;
  gpuIndices: number[] | null;
  exitCode: number | null;
  /** Gang size (1 for a single-node job). */
  nodeCount: number;
  /** Every member's node and GPUs, rank order; null until placed. */
  placements: NodeSlice[] | null;
  preemptedBy: string | null;
  preemptions: number;
  /** The first gang member of this attempt to fail, while the others are killed. */
  memberFailure: MemberFailure | null;
  /** ms since the epoch. */
  createdAt: number;
  /** When the current attempt was placed (ms); null before. */
  scheduledAt: number | null;
}

export interface ActiveAllocation extends AttemptRef {
  nodeId: string;
  gpuIndices: number[];
  job: JobRecord;
}

export interface StoredNode {
  id: string;
  pool: Pool;
  state: NodeState;
  stateReason: string | null;
  runtime: string;
  cpuCores: number;
  ramGb: number;
  drainRequested: boolean;
  blockId: string | null;
  addr: string | null;
  gpus: GpuInfo[];
}

/** Allocations of one attempt to free; `node_id` limits it to one gang member's node. */
export interface ReleaseRef extends AttemptRef {
  node_id?: string;
}

/** One job's events for this batch. `attempt`, when set, must be current or the item is stale. */
export interface BatchItem {
  jobId: string;
  attempt?: number;
  events: JobEvent[];
  /** A placement diagnosis to store with the change (jobs.placement). */
  placement?: PlacementRecord | null;
}

/**
 * A job's planned change: the coordinator stepped the machine from the state
 * it holds in memory (`expect`); the row is written only if it still holds
 * that state, so a concurrent API cancel makes the write miss rather than
 * being overwritten.
 */
export interface JobWrite {
  jobId: string;
  expect: { status: JobStatus; attempt: number };
  after: JobState;
  /** snake_case timestamp columns to stamp. */
  stamps: string[];
  events: { attempt: number; from_status: JobStatus; to_status: JobStatus; event: string; reason: string | null; failure_code: JobFailureCode | null }[];
  allocations: { attempt: number; node_id: string; gpu_index: number }[];
  /** Attempts whose allocations this change frees. */
  releases: AttemptRef[];
  /** The latest placement diagnosis to store in jobs.placement (undefined: leave the column as it is). */
  placement?: PlacementRecord | null;
}

export interface NodeUpsert {
  id: string;
  pool: Pool;
  runtime: string;
  cpuCores: number;
  ramGb: number;
  gpus: GpuInfo[];
  state: NodeState;
  stateReason: string | null;
  drainRequested: boolean;
  blockId: string | null;
  addr: string | null;
}

export interface NodeStateWrite {
  id: string;
  state: NodeState;
  stateReason: string | null;
  drainRequested: boolean;
}

export interface Batch {
  /** What the inputs asked for; the coordinator turns them into `writes`. */
  items: BatchItem[];
  writes: JobWrite[];
  /** Allocations to free that no transition releases (a cancelled job's kill was confirmed, a gang member ended). */
  releases: ReleaseRef[];
  nodeUpserts: NodeUpsert[];
  nodeStates: NodeStateWrite[];
  /** node id → time of its latest heartbeat. */
  heartbeats: Map<string, Date>;
  /** Nodes to forget: lost nodes of released capacity blocks. */
  nodeDeletes: string[];
}

export const emptyBatch = (): Batch => ({ items: [], writes: [], releases: [], nodeUpserts: [], nodeStates: [], heartbeats: new Map(), nodeDeletes: [] });

export function batchIsEmpty(b: Batch): boolean {
  return (
    b.items.length === 0 &&
    b.writes.length === 0 &&
    b.releases.length === 0 &&
    b.nodeUpserts.length === 0 &&
    b.nodeStates.length === 0 &&
    b.heartbeats.size === 0 &&
    b.nodeDeletes.length === 0
  );
}

/** Prices per GPU-hour by tier, for the usage records written when allocations are released. */
export interface Prices {
  FAST: number;
  FLEX: number;
}
