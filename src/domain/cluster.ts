/**
 * Shared vocabulary of the execution plane: pools, GPUs and the resources a
 * node offers. Used by the agent, the coordinator, placement and the API.
 */

/** A node's pool. FAST jobs run only on `fast` nodes; FLEX jobs on `flex` nodes or idle `fast` ones. */
export const Pool = { fast: 'fast', flex: 'flex' } as const;
export type Pool = (typeof Pool)[keyof typeof Pool];
export const POOLS: readonly Pool[] = Object.freeze(Object.values(Pool));

/** A job's tier. FAST: warm, pre-bought capacity. FLEX: cheaper, waits, may backfill idle fast nodes and be preempted there. */
export const Tier = { FAST: 'FAST', FLEX: 'FLEX' } as const;
export type Tier = (typeof Tier)[keyof typeof Tier];
export const TIERS: readonly Tier[] = Object.freeze(Object.values(Tier));

/** One GPU as the agent discovered (or was told) it. `index` is what CUDA_VISIBLE_DEVICES names. */
export interface GpuInfo {
  index: number;
  uuid: string;
  model: string;
  /** Total memory in GB (nvidia-smi reports MiB; the agent converts). */
  vram_gb: number;
}

/** What a node offers in total. */
export interface NodeResources {
  cpu_cores: number;
  ram_gb: number;
  gpus: GpuInfo[];
}

/** One attempt of one job. Every bus message carries it; a stale attempt is ignored. */
export interface AttemptRef {
  job_id: string;
  attempt: number;
}

export const attemptKey = (r: AttemptRef): string => `${r.job_id}#${r.attempt}`;

/**
 * One node's part of a placement: the node and the GPUs a job (or one gang
 * member) holds there. The one shape everywhere: placement's Placement.nodes,
 * the job machine's placements and place event, jobs.placements as stored,
 * and the API's placements, so it is snake_case, as stored and served.
 * gpu_indices are distinct and, from placement, ascending.
 */
export interface NodeSlice {
  node_id: string;
  gpu_indices: number[];
}
