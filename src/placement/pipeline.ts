/**
 * placeJob: one job's placement, as a pipeline (STYLE.md, after Nomad's
 * stack and kube-scheduler's framework). Pure: no I/O, no clocks.
 *
 *   0. request check     a malformed request is unschedulable, never thrown
 *   1. shapes            could any node shape or offer ever hold it? (shapes.ts)
 *   2. candidates        from the free-GPU index, tightest bucket first (free-index.ts)
 *   3. filters           the registry's plugins, cheapest first, first rejection counted (filters.ts)
 *   4. scorers           normalised 0–100, weighted (scorers.ts)
 *   5. select and bind   the best nodeCount distinct nodes; on each, the smallest sufficient GPUs
 *
 * Why the index first: a node whose free GPUs (with enough VRAM) are fewer
 * than asked can never pass `gpus`, so it is not visited at all. Buckets are
 * walked from the tightest count that fits upward, and within a count from
 * the tightest VRAM upward, so the nodes best_fit and fragmentation like
 * (partly used, little left over, no VRAM wasted) come first and whole free
 * nodes of the largest GPUs last.
 *
 * The search limit (Nomad's `limit`): scoring stops after K feasible nodes,
 *   K = max(2 · nodeCount, 8)                                   (searchLimit)
 * or, when filters reject many of the visited nodes, after 8·K visits once
 * nodeCount feasible nodes are in hand (visitLimit). The cost of a placed
 * decision is thus bounded by the limits, not by the fleet size. A decision
 * that places nothing has visited every node with enough free GPUs (that is
 * how it knows none fits); the nodes the index rules out are counted without
 * a visit.
 *
 * What the diagnosis counts cover:
 *   - always: the nodes the index rules out wholesale, claimed by the filters
 *     whose rule it applies (FilterPlugin.ruledOut): `node_ready` (every
 *     not-ready node of the pools) and, for FLEX, `pool` (every fast node
 *     busy with FAST jobs).
 *   - placed: the per-node checks count only the nodes the search visited.
 *   - waiting: every node of the pools. The nodes the index shows short of
 *     free GPUs were never visited: a filter may claim those it rejects
 *     (`reservation` looks its few nodes up), and `gpus` takes the rest,
 *     without running `cpu_ram` on them.
 *   - unschedulable: no counts; the reason says which size no shape reaches.
 *   - `nodes` is always the pools' total, in any state; `best` is empty unless placed.
 */
import type { Tier } from '../domain/cluster.ts';
import type { PlacementDecision, PlacementDiagnosis } from './decision.ts';
import { describeWaiting, emptyDiagnosis } from './diagnosis.ts';
import { GROUP, type Filed, type Group } from './free-index.ts';
import { compileFilters, DEFAULT_FILTERS, firstSufficient, needOf, type CompiledFilters, type FilterPlugin, type Need, type RuledOut } from './filters.ts';
import { DEFAULT_WEIGHTS, roundScores, scoreNode, scoreTotal, weightVector } from './scorers.ts';
import { offersFor, POOLS_OF, unschedulableReason } from './shapes.ts';
import type { CapacitySnapshot } from './snapshot.ts';
import type { HoldTimes, JobRequest, NodeView, PlacementContext, ScorerName } from './types.ts';

/** Feasible nodes scored before the search stops (Nomad's limit). */
export const searchLimit = (nodeCount: number): number => Math.max(2 * nodeCount, 8);
/** Visits after which the search stops as soon as it holds nodeCount feasible nodes. */
export const visitLimit = (nodeCount: number): number => 8 * searchLimit(nodeCount);

/**
 * The index groups a tier may use, in tiers of preference: a FLEX job takes
 * a flex node over any fast one (a hard preference, before scores: FLEX on
 * fast nodes is preemptible), so flex nodes are searched first and fast ones
 * only when flex alone cannot hold the job.
 */
const SEARCH: Record<Tier, readonly (readonly Group[])[]> = {
  FAST: [[GROUP.fastIdle, GROUP.fastBusy]],
  FLEX: [[GROUP.flex], [GROUP.fastIdle]],
};
/** Every group the tier's search walks. */
const SEARCHED: Record<Tier, readonly Group[]> = { FAST: SEARCH.FAST.flat(), FLEX: SEARCH.FLEX.flat() };
/** The index groups of the tier's pools that its search never walks (FLEX: fast nodes busy with FAST jobs). */
const UNSEARCHED: Record<Tier, readonly Group[]> = { FAST: [], FLEX: [GROUP.fastBusy] };

interface Candidate {
  node: NodeView;
  /** Position in node.freeGpus of the first GPU bind takes. */
  start: number;
  /** 0 unless a FLEX job on a fast node. */
  poolRank: number;
  /** The weighted score (scoreTotal); 0 under first fit. */
  total: number;
}

/** Queue order: FAST before FLEX, then higher priority, then older (smaller seq), then jobId. */
export function compareJobs(a: JobRequest, b: JobRequest): number {
  if (a.tier !== b.tier) return a.tier === 'FAST' ? -1 : 1;
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.seq !== b.seq) return a.seq - b.seq;
  return a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0;
}

/** The hold times of a job placed at `now`: it is expected to end after its expected duration. */
export const expectedHoldTimes = (job: JobRequest, now: number): HoldTimes => ({ startedAt: now, endsAt: now + job.expectedDurationSec * 1000 });

/** Why the request itself is malformed, or null. */
function invalidRequest(job: JobRequest): string | null {
  const amount = (x: number): boolean => Number.isFinite(x) && x >= 0;
  if (!Number.isInteger(job.nodeCount) || job.nodeCount < 1) return `nodeCount must be an integer ≥ 1, got ${job.nodeCount}`;
  if (!Number.isInteger(job.gpuCount) || job.gpuCount < 0) return `gpuCount must be an integer ≥ 0, got ${job.gpuCount}`;
  for (const k of ['vramPerGpuGb', 'cpuCores', 'ramGb', 'expectedDurationSec'] as const) {
    if (!amount(job[k])) return `${k} must be a number ≥ 0, got ${job[k]}`;
  }
  return null;
}

/**
 * Where `job` goes now, or why it waits, or why it never can. Does not
 * mutate the snapshot: the caller holds a placement (snapshot.hold) once it
 * binds it. `filters` is the filter registry (filters.ts), in the order they
 * run; tests pass another to show that a new filter needs nothing else.
 */
export function placeJob(
  snapshot: CapacitySnapshot,
  job: JobRequest,
  ctx: PlacementContext,
  filters: readonly FilterPlugin[] | CompiledFilters = DEFAULT_FILTERS,
): PlacementDecision {
  const registry = 'checks' in filters ? filters : compileFilters(filters);
  const pools = POOLS_OF[job.tier];
  let nodes = 0;
  for (const p of pools) nodes += snapshot.nodeCount(p);
  const invalid = invalidRequest(job);
  if (invalid) return { kind: 'unschedulable', reason: `invalid request: ${invalid}`, diagnosis: emptyDiagnosis(nodes, registry) };

  const need = needOf(job, ctx);
  const offers = offersFor(job.tier, ctx.offers);
  if (nodes === 0 && offers.length === 0) {
    // Nothing to judge the job by yet: agents may register later, so it waits.
    const diagnosis = emptyDiagnosis(0, registry);
    return { kind: 'waiting', reason: describeWaiting(need, diagnosis, registry), diagnosis };
  }
  const never = unschedulableReason(snapshot, need, offers);
  if (never !== null) return { kind: 'unschedulable', reason: never, diagnosis: emptyDiagnosis(nodes, registry) };
  return search(snapshot, need, ctx, nodes, registry);
}

function search(snapshot: CapacitySnapshot, need: Need, ctx: PlacementContext, nodes: number, filters: CompiledFilters): PlacementDecision {
  const diagnosis = emptyDiagnosis(nodes, filters);
  const rejected: Record<string, number> = diagnosis.rejected;
  const causes = diagnosis.causes;
  const checks = filters.checks;
  const tells = filters.checkTellsCauses;
  const index = snapshot.index;
  const level = index.levelFor(need.vram);
  const tiers = SEARCH[need.tier];
  const tally = { visited: 0 };
  // Rejections per check, by position: the hot loop increments an array slot, not a key; folded into `rejected` below.
  const hits: number[] = new Array<number>(checks.length).fill(0);

  /** Runs the per-node checks on a visited node, first rejection counted; true when one member fits there. */
  const feasible = (node: NodeView): boolean => {
    tally.visited++;
    for (let i = 0; i < checks.length; i++) {
      const code = checks[i]!.check(node, need, ctx);
      if (code !== null) {
        hits[i]!++;
        if (tells[i]) causes[code]!++;
        return false;
      }
    }
    return true;
  };

  let chosen: Candidate[] = [];
  let ranked: Candidate[] = [];
  if (level >= 0) {
    if (ctx.firstFit) chosen = ranked = firstFitSearch(snapshot, need, level, tiers, feasible);
    else {
      ranked = scoredSearch(snapshot, need, ctx, level, tiers, feasible, tally);
      chosen = ranked.slice(0, need.nodeCount);
    }
  }

  for (let i = 0; i < checks.length; i++) rejected[checks[i]!.name]! += hits[i]!;
  // What the search did not visit, and the set-level rules.
  const waiting = chosen.length < need.nodeCount;
  const out = new IndexRuledOut(snapshot, need, nodes, level, waiting ? tally.visited : null);
  for (const f of filters.ruledOut) count(diagnosis, f, f.ruledOut(out, need, ctx));
  for (const f of filters.sets) count(diagnosis, f, f.rejectsSet(chosen.length, need));
  if (waiting) return { kind: 'waiting', reason: describeWaiting(need, diagnosis, filters), diagnosis };

  const weights = ctx.scoreWeights ?? DEFAULT_WEIGHTS;
  diagnosis.best = ranked.slice(0, 3).map((c) => {
    const s = scoreNode(c.node, need, c.start, ctx, weights);
    return { nodeId: c.node.nodeId, score: round2(s.total), scores: roundScores(s.scores) };
  });
  diagnosis.step = 'fit';
  const slices = chosen.map((c) => ({
    node_id: c.node.nodeId,
    gpu_indices: c.node.freeGpus
      .slice(c.start, c.start + need.gpus)
      .map((g) => g.index)
      .sort((a, b) => a - b),
  }));
  return { kind: 'placed', placement: { jobId: need.jobId, nodes: slices }, diagnosis };
}

/** Counts `n` rejections of a filter that the search did not see one by one, under its first code. */
function count(d: PlacementDiagnosis, f: FilterPlugin, n: number): void {
  if (n === 0) return;
  (d.rejected as Record<string, number>)[f.name]! += n;
  if (f.codes.length > 1) d.causes[f.codes[0]!]! += n;
}

/** Best first: a flex node over a fast one for FLEX, then the higher total, then nodeId ascending. */
function better(a: Candidate, b: Candidate): number {
  return a.poolRank - b.poolRank || b.total - a.total || (a.node.nodeId < b.node.nodeId ? -1 : a.node.nodeId > b.node.nodeId ? 1 : 0);
}

/** Visits the buckets tightest first and scores feasible nodes until the limits; returns them ranked. */
function scoredSearch(
  snapshot: CapacitySnapshot,
  need: Need,
  ctx: PlacementContext,
  level: number,
  tiers: readonly (readonly Group[])[],
  feasible: (node: NodeView) => boolean,
  tally: { visited: number },
): Candidate[] {
  const index = snapshot.index;
  const weights = weightVector(ctx.scoreWeights ?? DEFAULT_WEIGHTS);
  const k = searchLimit(need.nodeCount);
  const maxVisits = visitLimit(need.nodeCount);
  const found: Candidate[] = [];
  search: for (let t = 0; t < tiers.length; t++) {
    const groups = tiers[t]!;
    let limit = 0;
    for (const g of groups) limit = Math.max(limit, index.countLimit(g, level));
    for (let count = need.gpus; count < limit; count++) {
      for (let tight = level; tight <= index.levels.length; tight++) {
        for (const g of groups) {
          for (const node of index.bucket(g, level, count, tight)) {
            if (feasible(node)) {
              const start = firstSufficient(node, need.vram);
              // Only the total here; the best three get their scores when the diagnosis is written.
              found.push({ node, start, poolRank: t, total: scoreTotal(node, need, start, ctx, weights) });
            }
            if (found.length >= k || (tally.visited >= maxVisits && found.length >= need.nodeCount)) break search;
          }
        }
      }
    }
    // A later tier can never beat this one's nodes: stop once they suffice.
    if (found.length >= need.nodeCount) break;
  }
  return found.sort(better);
}

/**
 * First fit (the fifo-first-fit baseline): the feasible nodes with the
 * smallest nodeIds, flex before fast for FLEX, no scoring. Each bucket is
 * nodeId-sorted, so a bucket's walk stops at its first `want` feasible nodes,
 * or as soon as its ids pass the worst node kept so far.
 */
function firstFitSearch(
  snapshot: CapacitySnapshot,
  need: Need,
  level: number,
  tiers: readonly (readonly Group[])[],
  feasible: (node: NodeView) => boolean,
): Candidate[] {
  const index = snapshot.index;
  const chosen: Candidate[] = [];
  for (let t = 0; t < tiers.length && chosen.length < need.nodeCount; t++) {
    const want = need.nodeCount - chosen.length;
    /** nodeId ascending, at most `want`. */
    const kept: NodeView[] = [];
    for (const g of tiers[t]!) {
      for (let count = need.gpus; count < index.countLimit(g, level); count++) {
        for (let tight = level; tight <= index.levels.length; tight++) {
          for (const node of index.bucket(g, level, count, tight)) {
            if (kept.length === want && node.nodeId > kept[want - 1]!.nodeId) break;
            if (!feasible(node)) continue;
            let at = kept.length;
            while (at > 0 && kept[at - 1]!.nodeId > node.nodeId) at--;
            kept.splice(at, 0, node);
            if (kept.length > want) kept.pop();
          }
        }
      }
    }
    for (const node of kept) chosen.push({ node, start: firstSufficient(node, need.vram), poolRank: t, total: 0 });
  }
  return chosen;
}

/**
 * What the index ruled out, for the filters that claim it. `visited` is null
 * for a placed decision: it counts only what it visited, so the short nodes
 * are not offered. For one that places nothing, the searched groups' nodes
 * that were never visited are exactly those the index shows short of free
 * GPUs (the search visits every node with enough of them before it gives up).
 * A class, not an object literal, so a decision builds no closures.
 */
class IndexRuledOut implements RuledOut {
  readonly notReady: number;
  readonly unsearched: number;
  #unclaimed = 0;
  #claimed: Set<string> | undefined;
  readonly #snapshot: CapacitySnapshot;
  readonly #need: Need;
  readonly #level: number;
  readonly #groups: readonly Group[];

  constructor(snapshot: CapacitySnapshot, need: Need, nodes: number, level: number, visited: number | null) {
    this.#snapshot = snapshot;
    this.#need = need;
    this.#level = level;
    this.#groups = SEARCHED[need.tier];
    const index = snapshot.index;
    let ready = 0;
    for (const p of POOLS_OF[need.tier]) ready += snapshot.readyCount(p);
    this.notReady = nodes - ready;
    let unsearched = 0;
    for (const g of UNSEARCHED[need.tier]) unsearched += index.groupSize(g);
    this.unsearched = unsearched;
    if (visited !== null) {
      this.#unclaimed = -visited;
      for (const g of this.#groups) this.#unclaimed += index.groupSize(g);
    }
  }

  get unclaimed(): number {
    return this.#unclaimed;
  }

  claim(nodeId: string): boolean {
    if (this.#unclaimed <= 0 || this.#claimed?.has(nodeId)) return false;
    const node: (NodeView & Filed) | undefined = this.#snapshot.indexed(nodeId);
    if (!node || node.group === null || !this.#groups.includes(node.group)) return false;
    if (this.#level >= 0 && node.counts[this.#level]! >= this.#need.gpus) return false; // visited: its checks counted it
    (this.#claimed ??= new Set()).add(nodeId);
    this.#unclaimed--;
    return true;
  }
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
