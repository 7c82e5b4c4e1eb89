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
