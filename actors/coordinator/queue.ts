/**
 * Admission, placement and preemption for one pass: hands the waiting jobs
 * to the pure queue discipline (src/placement/queue: fair share, EASY
 * backfill, preemption, the placement pipeline) and turns its outcome into
 * job events. Placement itself is pure; this decides what to hand it and
 * what to write.
 */
import type { JobEvent } from '../../machines/job.machine.ts';
import {
  roundScores,
  scheduleQueue,
  type CapacitySnapshot,
  type NodeShape,
  type PlacementDiagnosis,
  type PlacementRecord,
  type QueuePolicy,
  type WaitingJob,
} from '../../src/placement/index.ts';
import type { JobTable, LiveJob } from './live.ts';
import type { BatchItem } from './ports.ts';

/** How often a queued job's status_reason and diagnosis may be rewritten (the first is written at admission). */
export const REASON_REFRESH_MS = 5000;
/** Bounds a pass's writes when thousands of jobs wait. */
const MAX_DIAGNOSES_PER_PASS = 1000;
/** Most pending jobs admitted in one pass. */
const MAX_ADMISSIONS_PER_PASS = 2000;

export interface QueueSettings {
  policy: QueuePolicy;
  blockMarginSec: number;
  preemptGraceSec: number;
  /** Shapes providers sell: a job no node or offer could ever hold fails as unschedulable. */
  offers: readonly NodeShape[];
  userWeights: ReadonlyMap<string, number>;
  /** Stop once nothing more can be placed (QueueContext.stopWhenFull); the jobs left out are explained by a later full pass. */
  stopWhenFull?: boolean;
  /**
   * How often a queued job's reason may be rewritten (ms; default
   * REASON_REFRESH_MS, and 6× that when the reason did not change). A replay
   * refreshes hourly: reasons are not part of its metrics.
   */
  reasonRefreshMs?: number;
  /** Jobs this pass cancels: neither admitted, placed nor explained (their cancel comes first). */
  skip?: ReadonlySet<string>;
}

export interface QueueDecision {
  /** admit / place / diagnose / fail / preempt events, per job. */
  items: BatchItem[];
  /** Jobs placed (their capacity is now held in the snapshot). */
  placed: string[];
  /** True when work was left for the next pass (admissions or diagnoses over budget). */
  more: boolean;
}

/** The diagnosis as stored in jobs.placement and served on GET /jobs/{id} (snake_case). */
export function placementJson(
  d: PlacementDiagnosis,
  extra: { position?: number; reason?: string; at: number },
): PlacementRecord {
  return {
    position: extra.position ?? null,
    step: d.step,
    nodes: d.nodes,
    rejected: { ...d.rejected },
    best: d.best.map((b) => ({ node_id: b.nodeId, score: round(b.score), scores: roundScores(b.scores) })),
    reason: extra.reason ?? null,
    at: new Date(extra.at).toISOString(),
  };
}

const waitingJson = (w: WaitingJob, at: number): PlacementRecord =>
  placementJson(w.diagnosis, { position: w.position, reason: w.reason, at });

const round = (x: number): number => Math.round(x * 100) / 100;

export function admitAndPlace(jobs: JobTable, capacity: CapacitySnapshot, s: QueueSettings, now = Date.now()): QueueDecision {
  // A burst of thousands of submissions is admitted over several passes, so
  // one huge pass does not hold up placement and agents' reports.
  const considered: LiveJob[] = [];
  let admissions = 0;
  let more = false;
  for (const j of jobs.waiting.values()) {
    if (s.skip?.has(j.rec.id)) continue;
    if (j.status === 'pending') {
      if (admissions >= MAX_ADMISSIONS_PER_PASS) {
        more = true;
        continue;
      }
      admissions++;
    }
    considered.push(j);
  }
  const preempting = new Map<string, string>();
  for (const j of jobs.preempting()) preempting.set(j.rec.id, j.rec.preemptedBy!);

  const out = scheduleQueue(
    capacity,
    considered.map((j) => j.request()),
    {
      now,
      blockMarginSec: s.blockMarginSec,
      offers: s.offers,
      policy: s.policy,
      userWeights: s.userWeights,
      preempting,
      preemptGraceSec: s.preemptGraceSec,
      stopWhenFull: s.stopWhenFull,
    },
  );

  const items: BatchItem[] = [];
  const placedIds = new Set(out.placed.map((p) => p.placement.jobId));
  const admit = (job: LiveJob, reason: string, list: JobEvent[]) => {
    if (job.status === 'pending') list.unshift({ type: 'admit', reason });
  };

  for (const p of out.placed) {
    const job = jobs.get(p.placement.jobId)!;
    const [first, ...rest] = p.placement.nodes;
    const events: JobEvent[] = [];
    admit(job, 'placing it now', events);
    events.push({
      type: 'place',
      node_id: first!.node_id,
      gpu_indices: first!.gpu_indices,
      ...(rest.length > 0 ? { placements: p.placement.nodes } : {}),
    });
    // A FAST job placed on GPUs its preemption freed says so (the pass that places it sees only free GPUs).
    const diagnosis = job.preempted ? { ...p.diagnosis, step: 'preempt' as const } : p.diagnosis;
    items.push({ jobId: job.rec.id, attempt: job.rec.attempt, events, placement: placementJson(diagnosis, { at: now }) });
  }

  for (const [id, u] of out.unschedulable) {
    const job = jobs.get(id)!;
    const reason = `unschedulable: ${u.reason}`;
    items.push({ jobId: id, attempt: job.rec.attempt, events: [{ type: 'fail', code: 'unschedulable', reason }], placement: placementJson(u.diagnosis, { reason, at: now }) });
  }

  for (const p of out.preemptions) {
    const forJob = jobs.get(p.forJobId);
    if (forJob) forJob.preempted = true;
    for (const victimId of p.victims) {
      const victim = jobs.get(victimId);
      if (!victim) continue;
      items.push({ jobId: victimId, attempt: victim.rec.attempt, events: [{ type: 'preempt', by: p.forJobId }] });
    }
  }

  let diagnosed = 0;
  const refresh = s.reasonRefreshMs ?? REASON_REFRESH_MS;
  for (const [id, w] of out.waiting) {
    const job = jobs.get(id)!;
    // The placement object is built only for the rows written: thousands of
    // waiting jobs are skipped by the refresh limit below.
    if (job.status === 'pending') {
      items.push({ jobId: id, attempt: job.rec.attempt, events: [{ type: 'admit', reason: w.reason }], placement: waitingJson(w, now) });
      job.reasonAt = now;
      continue;
    }
    // Counts and positions move with every placement; rewriting thousands of
    // queued rows each pass would starve placement, so each job's diagnosis
    // is refreshed at most every REASON_REFRESH_MS, and sooner only when the
    // reason itself changed.
    const changed = w.reason !== job.rec.statusReason;
    if (diagnosed >= MAX_DIAGNOSES_PER_PASS) {
      if (changed) more = true;
      continue;
    }
    if (now - job.reasonAt < refresh) continue;
    if (!changed && now - job.reasonAt < 6 * refresh) continue;
    items.push({ jobId: id, attempt: job.rec.attempt, events: [{ type: 'diagnose', reason: w.reason }], placement: waitingJson(w, now) });
    job.reasonAt = now;
    diagnosed++;
  }
  return { items, placed: [...placedIds], more };
}
