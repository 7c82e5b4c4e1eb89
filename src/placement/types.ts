/**
 * Placement v1: pure, no I/O. The coordinator keeps a CapacitySnapshot of
 * every node's free resources, asks for placements for the queued jobs in
 * queue order, binds the result in Postgres, and only then sends `run`.
 */
import type { Pool, Tier } from '../domain/cluster.ts';

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
}

/** What a job asks for, plus what orders it in the queue. */
export interface JobRequest {
  jobId: string;
  tier: Tier;
  priority: number;
  /** Submission order: older (smaller) first among equal tier and priority. */
  seq: number;
  gpuCount: number;
  vramPerGpuGb: number;
  cpuCores: number;
  ramGb: number;
}

export interface Placement {
  jobId: string;
  nodeId: string;
  /** Distinct, ascending. */
  gpuIndices: number[];
}

export type PlacementDecision =
  | { kind: 'placed'; placement: Placement }
  /** `reason` is plain words for the job's status_reason, e.g. '0 of 2 fast nodes have 2 free GPUs with ≥ 80 GB'. */
  | { kind: 'waiting'; reason: string };
