/**
 * placeJob: one job's placement, as a pipeline (STYLE.md, after Nomad's
 * stack and kube-scheduler's framework). Pure: no I/O, no clocks.
 *
 *   0. request check     a malformed request is unschedulable, never thrown
 *   1. shapes            could any node shape or offer ever hold it? (shapes.ts)
 *   2. candidates        from the free-GPU index, tightest bucket first (free-index.ts)
 *   3. filters           cheapest first, first rejection counted (filters.ts)
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
 *   - always: `node_ready` (every not-ready node of the pools) and, for FLEX,
 *     `pool` (every fast node busy with FAST jobs): the index rejects them
 *     wholesale.
 *   - placed: the other filters count only the nodes the search visited.
 *   - waiting: every node of the pools. A node the index shows short of free
 *     GPUs is counted under `gpus` (or `reservation`, which comes first, when
 *     a reservation excludes it) without running `cpu_ram` on it.
 *   - unschedulable: no counts; the reason says which size no shape reaches.
 *   - `nodes` is always the pools' total, in any state; `best` is empty unless placed.
 */
import type { Tier } from '../domain/cluster.ts';
import { describeWaiting, emptyDiagnosis } from './diagnosis.ts';
import { GROUP, type Filed, type Group } from './free-index.ts';
import { cpuRam, firstReject, firstSufficient, lacksCpu, needOf, reservationFilter, type Need } from './filters.ts';
import { DEFAULT_WEIGHTS, scoreNode } from './scorers.ts';
import { offersFor, POOLS_OF, unschedulableReason } from './shapes.ts';
import type { CapacitySnapshot } from './snapshot.ts';
import type { HoldTimes, JobRequest, NodeView, PlacementContext, PlacementDecision, PlacementDiagnosis, ScorerName } from './types.ts';

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

interface Candidate {
  node: NodeView;
  /** Position in node.freeGpus of the first GPU bind takes. */
  start: number;
  /** 0 unless a FLEX job on a fast node. */
  poolRank: number;
  total: number;
  scores: Record<ScorerName, number> | null;
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
 * binds it.
 */
export function placeJob(snapshot: CapacitySnapshot, job: JobRequest, ctx: PlacementContext): PlacementDecision {
  const pools = POOLS_OF[job.tier];
  let nodes = 0;
  for (const p of pools) nodes += snapshot.nodeCount(p);
  const invalid = invalidRequest(job);
  if (invalid) return { kind: 'unschedulable', reason: `invalid request: ${invalid}`, diagnosis: emptyDiagnosis(nodes) };

  const need = needOf(job, ctx);
  const offers = offersFor(job.tier, ctx.offers);
  if (nodes === 0 && offers.length === 0) {
    // Nothing to judge the job by yet: agents may register later, so it waits.
    const diagnosis = emptyDiagnosis(0);
    return { kind: 'waiting', reason: describeWaiting(need, diagnosis, { ready: 0, cpuShort: 0 }), diagnosis };
  }
  const never = unschedulableReason(snapshot, need, offers);
  if (never !== null) return { kind: 'unschedulable', reason: never, diagnosis: emptyDiagnosis(nodes) };
  return search(snapshot, need, ctx, nodes);
}

function search(snapshot: CapacitySnapshot, need: Need, ctx: PlacementContext, nodes: number): PlacementDecision {
  const diagnosis = emptyDiagnosis(nodes);
  const rejected = diagnosis.rejected;
  const index = snapshot.index;
  const level = index.levelFor(need.vram);
  const tiers = SEARCH[need.tier];
  const tally = { visited: 0, cpuShort: 0 };

  /** Runs the filters on a visited node; true when one member fits there. */
  const feasible = (node: NodeView): boolean => {
    tally.visited++;
    const f = firstReject(node, need, ctx);
    if (f === null) return true;
    rejected[f.name]++;
    if (f === cpuRam && lacksCpu(node, need)) tally.cpuShort++;
    return false;
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

  let ready = 0;
  for (const p of POOLS_OF[need.tier]) ready += snapshot.readyCount(p);
  rejected.node_ready = nodes - ready;
  if (need.tier === 'FLEX') rejected.pool += index.groupSize(GROUP.fastBusy);

  if (chosen.length < need.nodeCount) {
    countUnvisited(snapshot, need, ctx, level, tiers, tally.visited, rejected);
    rejected.gang = chosen.length;
    return { kind: 'waiting', reason: describeWaiting(need, diagnosis, { ready, cpuShort: tally.cpuShort }), diagnosis };
  }

  const weights = ctx.scoreWeights ?? DEFAULT_WEIGHTS;
  diagnosis.best = ranked.slice(0, 3).map((c) => {
    const s = c.scores ? c : { ...c, ...scoreNode(c.node, need, c.start, ctx, weights) };
    return { nodeId: c.node.nodeId, score: round2(s.total), scores: roundAll(s.scores!) };
  });
  diagnosis.step = 'fit';
  const slices = chosen.map((c) => ({
    nodeId: c.node.nodeId,
    gpuIndices: c.node.freeGpus
      .slice(c.start, c.start + need.gpus)
      .map((g) => g.index)
      .sort((a, b) => a - b),
  }));
  return { kind: 'placed', placement: { jobId: need.jobId, nodes: slices }, diagnosis };
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
  const weights = ctx.scoreWeights ?? DEFAULT_WEIGHTS;
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
              const { total, scores } = scoreNode(node, need, start, ctx, weights);
              found.push({ node, start, poolRank: t, total, scores });
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
    for (const node of kept) chosen.push({ node, start: firstSufficient(node, need.vram), poolRank: t, total: 0, scores: null });
  }
  return chosen;
}

/**
 * Counts, for a decision that places nothing, the ready nodes of the
 * searched groups that were never visited: the index shows them short of free
 * GPUs, so `gpus` rejects them, unless `reservation` (earlier in FILTERS) does.
 * Reservations are few, so they are looked up rather than found by a scan.
 */
function countUnvisited(
  snapshot: CapacitySnapshot,
  need: Need,
  ctx: PlacementContext,
  level: number,
  tiers: readonly (readonly Group[])[],
  visited: number,
  rejected: PlacementDiagnosis['rejected'],
): void {
  const groups = tiers.flat();
  let unvisited = -visited;
  for (const g of groups) unvisited += snapshot.index.groupSize(g);
  let reserved = 0;
  for (const nodeId of ctx.reservations?.keys() ?? []) {
    const node: (NodeView & Filed) | undefined = snapshot.indexed(nodeId);
    if (!node || node.group === null || !groups.includes(node.group)) continue;
    const wasVisited = level >= 0 && node.counts[level]! >= need.gpus;
    if (!wasVisited && reservationFilter.reject(node, need, ctx)) reserved++;
  }
  rejected.reservation += reserved;
  rejected.gpus += unvisited - reserved;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
const roundAll = (s: Record<ScorerName, number>): Record<ScorerName, number> => ({
  best_fit: round2(s.best_fit),
  fragmentation: round2(s.fragmentation),
  block_time: round2(s.block_time),
});
