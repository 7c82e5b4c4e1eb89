/**
 * What the coordinator-store contract speaks in: the seed a factory builds a
 * store from, what a test may inspect besides the port (job_events and
 * usage rows), builders for records, and `plan`, which turns job events
 * into the batch a coordinator pass would commit (the production planWrites
 * over live job actors), so the writes under test are the real ones.
 */
import type { BlockStatus } from '../../machines/block.machine.ts';
import type { JobEvent } from '../../machines/job.machine.ts';
import { LiveJob, JobTable } from '../../actors/coordinator/live.ts';
import { planWrites } from '../../actors/coordinator/plan.ts';
import type { CoordinatorStorePort } from '../../actors/coordinator/ports.ts';
import { emptyBatch, type Batch, type JobRecord, type Prices, type StoredNode } from '../../actors/coordinator/store.ts';
import type { BlockRow } from '../../actors/capacity/store.ts';
import type { Pool } from '../../src/domain/cluster.ts';
import type { AllocationSeed, MemoryJobEvent, UsageRecord } from '../../src/sim/adapters/coordinator-store.ts';

/** Prices both stores are built with (USD per GPU-hour). */
export const PRICES: Prices = { FAST: 3.6, FLEX: 1.8 };

/** A fixed instant, so times read back exactly. */
export const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);

export interface StoreSeed {
  /** Users with a fair-share weight; users that jobs name are created with weight 1. */
  users?: { id: string; weight: number }[];
  /** Inserted in this order: their seq follows it. */
  jobs?: Omit<JobRecord, 'seq'>[];
  nodes?: StoredNode[];
  /** `releasedAt`: a released allocation (history, in Postgres). */
  allocations?: (AllocationSeed & { releasedAt?: number })[];
  blocks?: { id: string; endsAt: number | null; status: BlockStatus }[];
}

/** A job_events row of one job. */
export type EventRow = Omit<MemoryJobEvent, 'job_id'>;

/** A usage_records row. */
export type UsageRow = UsageRecord;

export interface SeededStore {
  store: CoordinatorStorePort;
  /** The job's job_events rows, oldest first. */
  events(jobId: string): Promise<EventRow[]>;
  /** Every usage row, in the order written. */
  usage(): Promise<UsageRow[]>;
}

export interface StoreFactory {
  /** A store holding exactly `seed` (nothing from earlier tests). */
  seed(seed: StoreSeed): Promise<SeededStore>;
  close?(): Promise<void>;
}

/** Ids must be UUIDs (jobs.id, users.id are uuid in Postgres). */
export const uuid = (kind: 'job' | 'user', n: number) => `00000000-0000-4000-8000-${kind === 'job' ? '1' : '2'}${String(n).padStart(11, '0')}`;
export const USER = uuid('user', 1);

export function aJob(n: number, over: Partial<Omit<JobRecord, 'seq'>> = {}): Omit<JobRecord, 'seq'> {
  return {
    id: uuid('job', n),
    userId: USER,
    tier: 'FAST',
    status: 'pending',
    statusReason: null,
    priority: 0,
    gpuCount: 2,
    vramPerGpuGb: 40,
    cpuCores: 4,
    ramGb: 32,
    expectedDurationSec: 3600,
    image: 'ghcr.io/acme/train:1',
    command: ['python', 'train.py', `--run=${n}`],
    env: { RUN: String(n) },
    attempt: 1,
    maxAttempts: 3,
    nodeId: null,
    gpuIndices: null,
    exitCode: null,
    nodeCount: 1,
    placements: null,
    preemptedBy: null,
    preemptions: 0,
    memberFailure: null,
    createdAt: T0 - 3600_000 + n * 1000,
    scheduledAt: null,
    ...over,
  };
}

/** A job placed on `nodeId` (scheduled or running), with its placement fields filled in. */
export function aPlacedJob(n: number, nodeId: string, gpus: number[], over: Partial<Omit<JobRecord, 'seq'>> = {}): Omit<JobRecord, 'seq'> {
  return aJob(n, {
    status: 'running',
    gpuCount: gpus.length,
    nodeId,
    gpuIndices: gpus,
    placements: [{ node_id: nodeId, gpu_indices: gpus }],
    scheduledAt: T0 - 600_000,
    ...over,
  });
}

export function aNode(id: string, pool: Pool, gpus: number, over: Partial<StoredNode> = {}): StoredNode {
  return {
    id,
    pool,
    state: 'ready',
    stateReason: null,
    runtime: 'simulated',
    cpuCores: 64,
    ramGb: 512,
    drainRequested: false,
    blockId: null,
    addr: `${id}.internal`,
    gpus: Array.from({ length: gpus }, (_, index) => ({ index, uuid: `GPU-${id}-${index}`, model: 'H100', vram_gb: 80 })),
    ...over,
  };
}

/** A capacity_blocks row for a seeded block (only id, status and end matter to the coordinator). */
export function blockRow(b: NonNullable<StoreSeed['blocks']>[number]): BlockRow {
  const at = new Date(T0 - 86_400_000);
  return {
    id: b.id,
    provider: 'simulated',
    externalId: null,
    instanceType: 'sim.8xh100',
    tier: 'fast',
    pool: 'fast',
    nodes: 1,
    gpusPerNode: 8,
    vramPerGpuGb: 80,
    cpuPerNode: 64,
    ramPerNodeGb: 512,
    startsAt: at,
    endsAt: b.endsAt === null ? null : new Date(b.endsAt),
    costPerHour: 20,
    status: b.status,
    statusReason: null,
    createdBy: 'autoscaler',
    createdAt: at,
    updatedAt: at,
    releasedAt: b.status === 'released' ? at : null,
  };
}

/**
 * The batch a pass would commit for these job events, stepped from the jobs
 * as the store holds them now (as the coordinator steps its live actors).
 */
export async function plan(store: CoordinatorStorePort, events: Array<[jobId: string, ...JobEvent[]]>): Promise<Batch> {
  const recs = await store.loadJobs(events.map(([id]) => id));
  const jobs = new JobTable();
  for (const rec of recs) jobs.set(rec.id, new LiveJob(rec));
  const batch = emptyBatch();
  batch.items = events.map(([jobId, ...evs]) => ({ jobId, events: evs }));
  planWrites(batch, jobs);
  for (const j of jobs.values()) j.stop();
  return batch;
}

/** A record without its seq (each store numbers its own rows). */
export const unseq = ({ seq: _seq, ...rest }: JobRecord): Omit<JobRecord, 'seq'> => rest;
