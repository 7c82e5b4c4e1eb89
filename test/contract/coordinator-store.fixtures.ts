/**
 * What the coordinator-store contract speaks in: the seed a factory builds a
 * store from, what a test may inspect besides the port (job_events and
 * usage rows), and `plan`, which turns job events
 * into the batch a coordinator pass would commit (the production planWrites
 * over live job actors), so the writes under test are the real ones.
 */
import type { BlockStatus } from '../../machines/block.machine.ts';
import type { JobEvent } from '../../machines/job.machine.ts';
import { LiveJob, JobTable } from '../../actors/coordinator/live.ts';
import { planWrites } from '../../actors/coordinator/plan.ts';
import { emptyBatch, type Batch, type CoordinatorStorePort, type JobRecord, type Prices, type StoredNode } from '../../actors/coordinator/ports.ts';
import type { BlockRow } from '../../actors/capacity/ports.ts';
import type { AllocationSeed, MemoryJobEvent, UsageRecord } from '../../src/sim/adapters/coordinator-store.ts';
import { T0 } from '../helpers/coordinator-records.ts';

/** Prices both stores are built with (USD per GPU-hour). */
export const PRICES: Prices = { FAST: 3.6, FLEX: 1.8 };

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
