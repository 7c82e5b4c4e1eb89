/**
 * From trace rows to the jobs a replay submits.
 *
 * Tier. A trace does not say which jobs paid for FAST, so a tier rule
 * decides (`--tiers`):
 *   random:P     each job is FAST with probability P (0 ≤ P ≤ 1), decided by
 *                unitHash(seed, "tier:" + job_id) < P: a job's tier depends
 *                only on the seed and its id, never on file order or on the
 *                other rows (drop rows and the rest keep their tiers);
 *   max-gpus:N   jobs of at most N GPUs are FAST, the rest FLEX
 *                (interactive-sized jobs pay for speed);
 *   all-fast, all-flex.
 * Default DEFAULT_TIER_RULE (random:0.3).
 *
 * User. A row with a user keeps it. A row without one gets `user-K`,
 * K = floor(unitHash(seed, "user:" + job_id) × users), i.e. a seeded hash of
 * the job id reduced to 0 … users−1 (users defaults to DEFAULT_USERS), so
 * fair share has someone to be fair between. Tier and user hash different
 * keys, so the two draws are independent.
 *
 * Resources. Empty cells take JOB_DEFAULTS: 16 GB VRAM per GPU (a request
 * every GPU of the fleet satisfies, since the trace does not say), 4 CPU cores
 * and 32 GB RAM per GPU.
 *
 * Gangs. `nodeGpus` is the GPU count of the widest node on offer (the fleet's,
 * or the autoscaler's instance types'). A job of more GPUs than that becomes a
 * gang of whole nodes: nodeCount = ceil(gpu_count / nodeGpus), each node
 * taking nodeGpus GPUs (so 12 GPUs on 8-GPU nodes hold 2×8 = 16; traceGpus
 * keeps 12). A gang's CPU and RAM per node are the trace's values divided over
 * its nodes (rounded up) when the trace gives them, otherwise the per-GPU
 * defaults × nodeGpus.
 *
 * Durations. durationSec is the trace's duration_sec and is also the job's
 * expected_duration_sec: the replay assumes users estimate run times exactly.
 *
 * seq is the index in the rows as given (parseTrace sorts them by submit
 * time, ties in file order).
 */
import type { SimJobSpec, Tier, TraceRow } from './types.ts';

export const DEFAULT_TIER_RULE = 'random:0.3';
export const DEFAULT_USERS = 16;
/** What a job asks for when its trace cell is empty. */
export const JOB_DEFAULTS = {
  vramPerGpuGb: 16,
  cpuCoresPerGpu: 4,
  ramGbPerGpu: 32,
} as const;

/**
 * A deterministic hash of (seed, key) to a float in [0, 1): 32-bit FNV-1a
 * over the UTF-16 code units of `${seed}:${key}`, then MurmurHash3's fmix32
 * finaliser (so nearby inputs spread over the whole range), divided by 2^32.
 */
export function unitHash(seed: number, key: string): number {
  const s = `${seed}:${key}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 0x1_0000_0000;
}

export type TierRule =
  | { kind: 'random'; fastShare: number }
  | { kind: 'max-gpus'; maxGpus: number }
  | { kind: 'all-fast' }
  | { kind: 'all-flex' };

export class TierRuleError extends Error {
  override name = 'TierRuleError';
}

const FORMS = 'random:P (0 ≤ P ≤ 1, e.g. random:0.3), max-gpus:N (N ≥ 1), all-fast or all-flex';

export function parseTierRule(s: string): TierRule {
  const t = s.trim().toLowerCase();
  if (t === 'all-fast') return { kind: 'all-fast' };
  if (t === 'all-flex') return { kind: 'all-flex' };
  const m = /^(random|max-gpus)\s*:\s*(\S+)$/.exec(t);
  if (m) {
    const v = /^(?:\d+\.?\d*|\.\d+)$/.test(m[2]!) ? Number(m[2]) : Number.NaN;
    if (m[1] === 'random') {
      if (v >= 0 && v <= 1) return { kind: 'random', fastShare: v };
      throw new TierRuleError(`--tiers: "${s}": P must be a number from 0 to 1; accepted forms: ${FORMS}`);
    }
    if (Number.isSafeInteger(v) && v >= 1) return { kind: 'max-gpus', maxGpus: v };
    throw new TierRuleError(`--tiers: "${s}": N must be a whole number ≥ 1; accepted forms: ${FORMS}`);
  }
  throw new TierRuleError(`--tiers: "${s}" is not a tier rule; accepted forms: ${FORMS}`);
}

/** The rule as parseTierRule reads it: `random:0.3`, `max-gpus:8`, `all-fast`, `all-flex`. */
export function describeTierRule(rule: TierRule): string {
  switch (rule.kind) {
    case 'random':
      return `random:${rule.fastShare}`;
    case 'max-gpus':
      return `max-gpus:${rule.maxGpus}`;
    default:
      return rule.kind;
  }
}

/** The tier `rule` gives a job (`gpuCount` as in the trace). */
export function tierOf(rule: TierRule, seed: number, jobId: string, gpuCount: number): Tier {
  switch (rule.kind) {
    case 'random':
      return unitHash(seed, `tier:${jobId}`) < rule.fastShare ? 'FAST' : 'FLEX';
    case 'max-gpus':
      return gpuCount <= rule.maxGpus ? 'FAST' : 'FLEX';
    case 'all-fast':
      return 'FAST';
    case 'all-flex':
      return 'FLEX';
  }
}

/** The user of a row: its own, or `user-K` from a seeded hash of its id. */
export function userOf(row: Pick<TraceRow, 'jobId' | 'user'>, seed: number, users = DEFAULT_USERS): string {
  if (row.user !== null) return row.user;
  return `user-${Math.floor(unitHash(seed, `user:${row.jobId}`) * users)}`;
}

export interface WorkloadOptions {
  seed: number;
  tierRule: TierRule;
  /** GPUs of the widest node on offer; wider jobs become gangs of whole nodes. */
  nodeGpus: number;
  /** How many synthetic users share the rows without one (default DEFAULT_USERS). */
  users?: number;
}

export function buildWorkload(rows: readonly TraceRow[], o: WorkloadOptions): SimJobSpec[] {
  const { seed, tierRule, nodeGpus } = o;
  const users = o.users ?? DEFAULT_USERS;
  if (!Number.isSafeInteger(nodeGpus) || nodeGpus < 1) throw new RangeError(`nodeGpus must be a whole number ≥ 1 (got ${nodeGpus})`);
  if (!Number.isSafeInteger(users) || users < 1) throw new RangeError(`users must be a whole number ≥ 1 (got ${users})`);

  return rows.map((row, seq): SimJobSpec => {
    const gang = row.gpuCount > nodeGpus;
    const nodeCount = gang ? Math.ceil(row.gpuCount / nodeGpus) : 1;
    const gpuCount = gang ? nodeGpus : row.gpuCount;
    const cpuCores =
      row.cpuCores === null ? JOB_DEFAULTS.cpuCoresPerGpu * gpuCount : gang ? Math.ceil(row.cpuCores / nodeCount) : row.cpuCores;
    const ramGb = row.ramGb === null ? JOB_DEFAULTS.ramGbPerGpu * gpuCount : gang ? Math.ceil(row.ramGb / nodeCount) : row.ramGb;
    return {
      id: row.jobId,
      seq,
      submitSec: row.submitSec,
      tier: tierOf(tierRule, seed, row.jobId, row.gpuCount),
      user: userOf(row, seed, users),
      gpuCount,
      nodeCount,
      vramPerGpuGb: row.vramPerGpuGb ?? JOB_DEFAULTS.vramPerGpuGb,
      cpuCores,
      ramGb,
      durationSec: row.durationSec,
      traceGpus: row.gpuCount,
    };
  });
}
