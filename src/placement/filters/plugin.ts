/**
 * The filter plugin contract (kube-scheduler's Filter with its Status,
 * Nomad's feasibility checkers with FilterNode). A filter says, for one
 * node, either "pass" (null) or why it rejects it, as one of its own codes.
 * It also says how its rejections read in status_reason, and, where the
 * free-GPU index already answers it for nodes the search never visits, how
 * many of those are its own. The pipeline (pipeline.ts) only runs the
 * registry (filters.ts): it knows no filter by name.
 */
import type { Tier } from '../../domain/cluster.ts';
import type { JobRequest, NodeView, PlacementContext } from '../types.ts';

/** What a job asks of one node, as the reasons word it. */
export interface Ask {
  tier: Tier;
  /** GPUs per node. */
  gpus: number;
  /** VRAM per GPU; 0 when no GPU is asked for (so VRAM never rejects a CPU-only job). */
  vram: number;
  cpu: number;
  ram: number;
  nodeCount: number;
}

/** One member's request, with what every filter needs precomputed once per decision. */
export interface Need extends Ask {
  jobId: string;
  /** Expected duration, ms. */
  durationMs: number;
  /** A node's block must end at or after this (ms since the epoch): now + expected duration + margin. */
  mustOutlive: number;
  /** The job's own expected end without margin: a reservation can admit it if this is ≤ its startAt. */
  endsBy: number;
}

/** Once per decision, in one object literal (built by spreading an Ask it cost a tenth of a decision). */
export function needOf(job: JobRequest, ctx: PlacementContext): Need {
  const durationMs = job.expectedDurationSec * 1000;
  return {
    tier: job.tier,
    gpus: job.gpuCount,
    vram: job.gpuCount > 0 ? job.vramPerGpuGb : 0,
    cpu: job.cpuCores,
    ram: job.ramGb,
    nodeCount: job.nodeCount,
    jobId: job.jobId,
    durationMs,
    mustOutlive: ctx.now + durationMs + ctx.blockMarginSec * 1000,
    endsBy: ctx.now + durationMs,
  };
}

const NO_TIME: PlacementContext = Object.freeze({ now: 0, blockMarginSec: 0 });

/** What the job asks of one node, for the words of a reason (the times of a Need are not used there). */
export const askOf = (job: JobRequest): Ask => needOf(job, NO_TIME);

/**
 * The nodes the free-GPU index ruled out, which the search never visits
 * (pipeline.ts). A filter whose rule the index already applies claims its
 * share of them through `ruledOut`, in registry order.
 */
export interface RuledOut {
  /** Nodes of the tier's pools that are not ready: the index files none of them. */
  readonly notReady: number;
  /** Ready nodes filed in index groups the tier may not search (FLEX: fast nodes that hold a FAST job). */
  readonly unsearched: number;
  /**
   * For a decision that places nothing, the ready nodes of the searched
   * groups that were never visited: the index shows each with fewer free
   * GPUs of enough VRAM than asked. `claim` takes one of them for the
   * calling filter (true once per node); `unclaimed` is how many are left.
   * Both are empty for a placed decision, which counts only what it visited.
   */
  claim(nodeId: string): boolean;
  readonly unclaimed: number;
}

/**
 * One filter. `check` is per node; `rejectsSet` is for a rule about the set
 * of nodes that passed every check (the gang). A rejected node is counted
 * once, under the first filter of the registry that rejects it: in
 * `diagnosis.rejected[name]`, and, for a filter with more than one code,
 * under the code it gave in `diagnosis.causes[code]`.
 */
export interface FilterPlugin<N extends string = string> {
  readonly name: N;
  /** Every code `check` may return; `[name]` for a filter with one cause. With more than one, each is counted in `diagnosis.causes`. */
  readonly codes: readonly string[];
  /** null: one member fits here as far as this filter can tell; otherwise the code of the rejection. Called in the hot loop: no allocation. */
  check?(node: NodeView, need: Need, ctx: PlacementContext): string | null;
  /** How many of the ruled-out nodes this filter rejects; counted under `codes[0]`. */
  ruledOut?(r: RuledOut, need: Need, ctx: PlacementContext): number;
  /** Of `feasible` nodes that passed every check, how many this set-level rule rejects. */
  rejectsSet?(feasible: number, need: Need): number;
  /**
   * Where its phrases come in status_reason, ascending. What is scarce is
   * told first, so `gpus` (40) comes before `cpu_ram` (50) though it is
   * checked after it.
   */
  readonly reasonRank: number;
  /**
   * Its words in status_reason: `count` nodes rejected, `causes` the
   * diagnosis' counts by code, e.g. '3 have fewer than 2 free GPUs with ≥ 80 GB'
   * (two phrases are joined with ', '). null when it has nothing to say.
   */
  describe(count: number, causes: Readonly<Record<string, number>>, ask: Ask): string | null;
}

/** Keeps the plugin's name as a literal type, so the registry can derive FilterName. */
export const defineFilter = <const N extends string>(plugin: FilterPlugin<N>): FilterPlugin<N> => plugin;

/** Position in `node.freeGpus` of the first free GPU with VRAM ≥ the ask (freeGpus is VRAM-ascending). */
export function firstSufficient(node: NodeView, vram: number): number {
  const free = node.freeGpus;
  let i = 0;
  while (i < free.length && free[i]!.vramGb < vram) i++;
  return i;
}

/** Nothing to say. */
export const SILENT = null;
