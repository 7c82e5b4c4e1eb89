/**
 * One scheduling pass over the waiting jobs (ARCHITECTURE.md "Queue order",
 * STYLE.md "Escalation for tiers"): order → place (fit, else backfill behind
 * reservations) → preempt (FAST only) → reserve → explain the rest.
 *
 * Pure: the caller's snapshot is the only state, and it is mutated only by
 * holding the placements made here (the coordinator releases any whose bind
 * fails). Every job leaves the pass in exactly one of placed, waiting or
 * unschedulable.
 *
 * Why in this order: placing first keeps the common case (it fits) one
 * pipeline call. A FAST job that does not fit tries preemption before a
 * reservation, because killing FLEX work starts it within the grace period,
 * while a reservation would make it wait for whole jobs to end. A job that
 * preempts has its GPUs coming and does not count as blocked: the tier's
 * EASY reservation goes to the first job that truly waits.
 */
import type { Tier } from '../../domain/cluster.ts';
import type { PlacementDecision, PlacementDiagnosis, QueueOutcome } from '../decision.ts';
import { describeWaiting, emptyDiagnosis } from '../diagnosis.ts';
import { askOf } from '../filters.ts';
import { placeJob } from '../pipeline.ts';
import type { CapacitySnapshot } from '../snapshot.ts';
import type { HoldTimes, JobRequest, NodeView, Placement, PlacementContext, QueueContext, Reservation, SnapshotReader } from '../types.ts';
import { FailureCache } from './cache.ts';
import { queueOrder } from './order.ts';
import { planPreemption } from './preemption.ts';
import { preemptingReason, reservedClause } from './reasons.ts';
import { EPS, POOLS_OF, earliestStart } from './reservations.ts';

/** What a pass needs of the snapshot: read it, and hold what it places. */
export interface QueueSnapshot extends SnapshotReader {
  hold(job: JobRequest, placement: Placement, times: HoldTimes): void;
}

export type Placer<S> = (snapshot: S, job: JobRequest, ctx: PlacementContext) => PlacementDecision;

/**
 * Per tier, how many blocked jobs may try for the EASY reservation when the
 * earlier ones could get none (nothing ever frees enough for them): bounds
 * the work in a queue full of jobs that cannot start.
 */
export const MAX_RESERVATION_TRIES = 8;

/** The pass with the real pipeline; see runQueue. */
export function scheduleQueue(snapshot: CapacitySnapshot, jobs: readonly JobRequest[], ctx: QueueContext): QueueOutcome {
  return runQueue(snapshot, jobs, ctx, placeJob);
}

/** Knobs for tests and benchmarks; the defaults are what the coordinator runs. */
export interface RunOptions {
  /**
   * Skip the pipeline (and the preemption search) for requests covered by one
   * that already failed in this pass (cache.ts). Default true. It changes what
   * a pass costs, never which jobs are placed, reserved or preempted for; only
   * the counts in a skipped job's diagnosis may differ.
   */
  cache?: boolean;
}

/**
 * Decides what to do with `jobs` (the waiting ones) and holds each placement
 * in `snapshot` from now until now + its expected duration. Throws, before
 * doing anything, when a jobId repeats or a job already holds capacity.
 */
export function runQueue<S extends QueueSnapshot>(
  snapshot: S,
  jobs: readonly JobRequest[],
  ctx: QueueContext,
  place: Placer<S>,
  opts: RunOptions = {},
): QueueOutcome {
  const ids = new Set<string>();
  for (const j of jobs) {
    if (ids.has(j.jobId)) throw new Error(`job ${j.jobId} is queued twice`);
    if (snapshot.holding(j.jobId)) throw new Error(`job ${j.jobId} already holds capacity`);
    ids.add(j.jobId);
  }
  const pass = new Pass(snapshot, ctx, place, opts.cache ?? true);
  const order = queueOrder(jobs, snapshot, ctx.policy, ctx.userWeights);
  // Early stop (QueueContext.stopWhenFull): with every GPU held, a job can
  // only wait, unless a FAST job can still preempt. Capacity only shrinks
  // within a pass, so once full it stays full; what could preempt is checked
  // when the pass first finds the fleet full.
  const canStop = ctx.stopWhenFull === true && jobs.every((j) => j.gpuCount > 0);
  let full = canStop && !snapshot.anyFreeGpu();
  let preemptible: boolean | undefined;
  for (let job = order.next(); job; job = order.next()) {
    if (full) {
      preemptible ??= ctx.policy.preemption && hasPreemptible(snapshot, ctx.preempting);
      if (!(preemptible && job.tier === 'FAST')) break;
    }
    if (pass.consider(job)) {
      order.placed(job);
      if (canStop) full = !snapshot.anyFreeGpu();
    }
  }
  return pass.out;
}

/** Any FLEX hold on a schedulable fast node that is not already being killed. */
function hasPreemptible(snapshot: SnapshotReader, preempting: ReadonlyMap<string, string> | undefined): boolean {
  for (const n of snapshot.states('fast')) {
    if (!n.schedulable) continue;
    for (const h of n.holds) if (h.preemptible && !preempting?.has(h.jobId)) return true;
  }
  return false;
}

/** The state of one pass: what it decided so far, and what it learnt about the fleet. */
class Pass<S extends QueueSnapshot> {
  readonly out: QueueOutcome = { placed: [], waiting: new Map(), unschedulable: new Map(), preemptions: [], reservations: [] };
  readonly #snapshot: S;
  readonly #ctx: QueueContext;
  readonly #place: Placer<S>;
  readonly #useCache: boolean;
  readonly #graceMs: number;
  /** Reservations made in this pass, by node id; the pipeline's `reservation` filter reads it. */
  readonly #reservations = new Map<string, Reservation>();
  readonly #placeCtx: PlacementContext;
  /** Victims being killed, including those chosen in this pass → the FAST job each makes room for. */
  readonly #preempting: Map<string, string>;
  /** Each of those ends within the grace period, whatever its expected end. */
  readonly #endsBy = new Map<string, number>();
  /** FAST jobs with victims from earlier passes: their preemption search may succeed where a smaller one failed. */
  readonly #hasVictims: Set<string>;
  readonly #gpuCache = new Map<string, number>();
  /** Fast nodes holding something preemptible (the only places killing can help a single-node job); built on first use. */
  #preemptNodes: Map<string, NodeView> | undefined;
  readonly #fits = new FailureCache<PlacementDecision & { kind: 'waiting' }>();
  readonly #noVictims = new FailureCache<true>();
  readonly #guard: ShapeGuard;
  /** Backfill off: the first blocked job of each lane (tier, or '*' for strict arrival). */
  readonly #blocked = new Map<Tier | '*', string>();
  /** EASY reservation tries per tier; Infinity once one is made. */
  readonly #easy = new Map<Tier, number>();
  #position = 0;

  constructor(snapshot: S, ctx: QueueContext, place: Placer<S>, useCache: boolean) {
    this.#snapshot = snapshot;
    this.#ctx = ctx;
    this.#place = place;
    this.#useCache = useCache;
    this.#graceMs = ctx.preemptGraceSec * 1000;
    this.#placeCtx = {
      now: ctx.now,
      blockMarginSec: ctx.blockMarginSec,
      reservations: this.#reservations,
      firstFit: ctx.policy.firstFit,
      ...(ctx.scoreWeights && { scoreWeights: ctx.scoreWeights }),
      ...(ctx.offers && { offers: ctx.offers }),
    };
    this.#preempting = new Map(ctx.preempting ?? []);
    for (const v of this.#preempting.keys()) this.#endsBy.set(v, ctx.now + this.#graceMs);
    this.#hasVictims = new Set(this.#preempting.values());
    this.#guard = new ShapeGuard(snapshot, ctx);
  }

  /** Decides one job; true when it was placed (and is now held). */
  consider(job: JobRequest): boolean {
    const policy = this.#ctx.policy;
    const lane: Tier | '*' = policy.strictArrival ? '*' : job.tier;
    const ahead = policy.backfill ? undefined : this.#blocked.get(lane);
    if (ahead !== undefined) {
      const why = `waiting behind job ${ahead} (${policy.strictArrival ? 'arrival' : 'queue'} order)`;
      this.#wait(job, why, this.#guard.emptyDiagnosis(job));
      return false;
    }

    const decision = this.#decide(job);
    if (decision.kind === 'placed') {
      this.#hold(job, decision.placement, decision.diagnosis);
      return true;
    }
    if (decision.kind === 'unschedulable') {
      this.out.unschedulable.set(job.jobId, { reason: decision.reason, diagnosis: decision.diagnosis });
      return false;
    }
    if (policy.preemption && job.tier === 'FAST' && this.#preempt(job, decision.diagnosis)) return false;

    let reason = decision.reason;
    const tries = this.#easy.get(job.tier) ?? 0;
    if (policy.backfill && tries < MAX_RESERVATION_TRIES) {
      const ctx = this.#ctx;
      const at = earliestStart(this.#snapshot, job, {
        now: ctx.now,
        blockMarginSec: ctx.blockMarginSec,
        reservations: this.#reservations,
        endsBy: this.#endsBy,
      });
      if (at) {
        this.#reserve({ jobId: job.jobId, tier: job.tier, nodeIds: at.nodeIds, startAt: at.startAt, strict: false });
        reason = `${reason}; ${reservedClause(at.startAt, ctx.now)}`;
        this.#easy.set(job.tier, Infinity);
      } else this.#easy.set(job.tier, tries + 1);
    }
    if (!policy.backfill) this.#blocked.set(lane, job.jobId);
    this.#wait(job, reason, decision.diagnosis);
    return false;
  }

  /** The pipeline's decision, or the cached failure of a request this one covers. */
  #decide(job: JobRequest): PlacementDecision {
    const hit = this.#useCache ? this.#fits.get(job) : undefined;
    if (hit?.exact) return hit.value;
    if (hit && this.#guard.surelyHoldable(job)) {
      // The counts are those of the earlier scan, worded with this job's numbers: every node that
      // failed the smaller request fails this one too, though maybe by an earlier filter.
      return { kind: 'waiting', reason: describeWaiting(askOf(job), hit.value.diagnosis), diagnosis: hit.value.diagnosis };
    }
    const decision = this.#place(this.#snapshot, job, this.#placeCtx);
    if (decision.kind === 'waiting') this.#fits.add(job, decision);
    return decision;
  }

  #hold(job: JobRequest, placement: Placement, diagnosis: PlacementDiagnosis): void {
    const now = this.#ctx.now;
    this.#snapshot.hold(job, placement, { startedAt: now, endsAt: now + job.expectedDurationSec * 1000 });
    const step = this.#reservations.size > 0 ? 'backfill' : (diagnosis.step ?? 'fit');
    this.out.placed.push({ placement, diagnosis: { ...diagnosis, step } });
    if (job.tier !== 'FLEX') return;
    // A FLEX job on a fast node is a new preemptible hold: earlier preemption failures may no longer hold.
    for (const slice of placement.nodes) {
      const node = this.#snapshot.state(slice.node_id);
      if (node?.pool !== 'fast') continue;
      this.#noVictims.clear();
      this.#preemptNodes?.set(node.nodeId, node);
    }
  }

  /** Preemption for a blocked FAST job; true when it got room (new victims, or ones already being killed). */
  #preempt(job: JobRequest, diagnosis: PlacementDiagnosis): boolean {
    const ctx = this.#ctx;
    const own = this.#hasVictims.has(job.jobId);
    if (this.#useCache && !own && this.#noVictims.get(job)) return false;
    const plan = planPreemption(this.#snapshot, job, {
      now: ctx.now,
      blockMarginSec: ctx.blockMarginSec,
      graceSec: ctx.preemptGraceSec,
      reservations: this.#reservations,
      preempting: this.#preempting,
      gpuCache: this.#gpuCache,
      nodes: this.#nodesToPreempt(),
    });
    if (!plan) {
      if (!own) this.#noVictims.add(job, true);
      return false;
    }
    const freeAt = ctx.now + this.#graceMs;
    this.#reserve({ jobId: job.jobId, tier: job.tier, nodeIds: plan.nodeIds, startAt: freeAt, strict: true });
    for (const v of plan.victims) {
      this.#preempting.set(v, job.jobId);
      this.#endsBy.set(v, freeAt);
    }
    if (plan.victims.length > 0) {
      this.out.preemptions.push({ forJobId: job.jobId, victims: plan.victims, lostGpuSeconds: plan.lostGpuSeconds });
    }
    const reason = preemptingReason(plan.victims.length, plan.reused.length, plan.nodeIds, ctx.preemptGraceSec);
    this.#wait(job, reason, diagnosis, 'preempt');
    return true;
  }

  #nodesToPreempt(): Iterable<NodeView> {
    if (!this.#preemptNodes) {
      this.#preemptNodes = new Map();
      for (const n of this.#snapshot.states('fast')) if (n.holds.some((h) => h.preemptible)) this.#preemptNodes.set(n.nodeId, n);
    }
    return this.#preemptNodes.values();
  }

  #reserve(r: Reservation): void {
    for (const n of r.nodeIds) this.#reservations.set(n, r);
    this.out.reservations.push(r);
    // Failures stay failures, but their counts would no longer name the reservation: rescan.
    this.#fits.clear();
  }

  #wait(job: JobRequest, reason: string, diagnosis: PlacementDiagnosis, step: PlacementDiagnosis['step'] = null): void {
    this.out.waiting.set(job.jobId, { reason, diagnosis: { ...diagnosis, step }, position: ++this.#position });
  }
}

/**
 * Node shapes that cannot change within a pass, for two cheap answers: an
 * empty diagnosis for jobs that wait without a scan, and whether a job that
 * skips the scan is surely not unschedulable. The pipeline calls a job
 * unschedulable only if no node shape could ever hold it, so a job that a
 * schedulable node of its pools could hold when empty (block permitting) is
 * safe to call waiting; any other job gets a real pipeline call.
 */
class ShapeGuard {
  readonly #snapshot: SnapshotReader;
  readonly #ctx: QueueContext;
  readonly #shapes = new Map<Tier, { vrams: number[]; cpu: number; ram: number; endsAt: number | null; count: number }[]>();
  readonly #nodes = new Map<Tier, number>();

  constructor(snapshot: SnapshotReader, ctx: QueueContext) {
    this.#snapshot = snapshot;
    this.#ctx = ctx;
  }

  emptyDiagnosis(job: JobRequest): PlacementDiagnosis {
    let nodes = this.#nodes.get(job.tier);
    if (nodes === undefined) {
      nodes = 0;
      for (const pool of POOLS_OF[job.tier]) for (const _ of this.#snapshot.states(pool)) nodes++;
      this.#nodes.set(job.tier, nodes);
    }
    return emptyDiagnosis(nodes);
  }

  surelyHoldable(job: JobRequest): boolean {
    // A malformed request is the pipeline's to judge (it calls it unschedulable).
    const amount = (x: number): boolean => Number.isFinite(x) && x >= 0;
    if (!Number.isInteger(job.nodeCount) || job.nodeCount < 1 || !Number.isInteger(job.gpuCount) || job.gpuCount < 0) return false;
    if (![job.vramPerGpuGb, job.cpuCores, job.ramGb, job.expectedDurationSec].every(amount)) return false;
    const deadline = this.#ctx.now + (job.expectedDurationSec + this.#ctx.blockMarginSec) * 1000;
    const vram = job.gpuCount > 0 ? job.vramPerGpuGb : 0;
    let count = 0;
    for (const s of this.#shapesOf(job.tier)) {
      if (s.endsAt != null && s.endsAt < deadline) continue;
      if (job.cpuCores > s.cpu + EPS || job.ramGb > s.ram + EPS) continue;
      let g = 0;
      while (g < s.vrams.length && s.vrams[g]! >= vram) g++;
      if (g >= job.gpuCount && (count += s.count) >= job.nodeCount) return true;
    }
    return false;
  }

  #shapesOf(tier: Tier): { vrams: number[]; cpu: number; ram: number; endsAt: number | null; count: number }[] {
    let list = this.#shapes.get(tier);
    if (!list) {
      const byKey = new Map<string, { vrams: number[]; cpu: number; ram: number; endsAt: number | null; count: number }>();
      for (const pool of POOLS_OF[tier]) {
        for (const n of this.#snapshot.states(pool)) {
          if (!n.schedulable) continue;
          const vrams = n.gpus.map((g) => g.vramGb).sort((a, b) => b - a);
          const key = `${n.cpuTotal}|${n.ramTotal}|${n.endsAt}|${vrams.join(',')}`;
          const s = byKey.get(key);
          if (s) s.count++;
          else byKey.set(key, { vrams, cpu: n.cpuTotal, ram: n.ramTotal, endsAt: n.endsAt, count: 1 });
        }
      }
      this.#shapes.set(tier, (list = [...byKey.values()]));
    }
    return list;
  }
}
