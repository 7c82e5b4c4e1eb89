/**
 * Admission and placement for one pass: which waiting jobs are admitted,
 * which are placed (and on which GPUs), and which get a fresh reason.
 * Placement itself is the pure src/placement; this decides what to hand it.
 */
import type { JobEvent } from '../../machines/job.machine.ts';
import { placeQueue, type CapacitySnapshot, type Placement } from '../../src/placement/index.ts';
import type { JobTable, LiveJob } from './live.ts';
import type { BatchItem } from './store.ts';

/** How often a queued job's status_reason may be rewritten (the first reason is written at admission). */
export const REASON_REFRESH_MS = 5000;
/** Bounds a pass's size when thousands of jobs wait. */
const MAX_DIAGNOSES_PER_PASS = 1000;
/** Most pending jobs admitted in one pass. */
const MAX_ADMISSIONS_PER_PASS = 2000;
/** Jobs handed to placement at a time, while GPUs remain free. */
const PLACE_CHUNK = 512;

export interface QueueDecision {
  /** admit / place / diagnose events, per job. */
  items: BatchItem[];
  /** Jobs placed (their capacity is now held in the snapshot). */
  placed: string[];
  /** True when work was left for the next pass (admissions or diagnoses over budget). */
  more: boolean;
}

function anyGpuFree(capacity: CapacitySnapshot): boolean {
  for (const n of capacity.states()) if (n.schedulable && n.freeGpus.length > 0) return true;
  return false;
}

/**
 * Greedy in queue order, a chunk at a time, until no GPU is free anywhere:
 * after that no queued job can move, so the rest of the queue is not looked
 * at (only new jobs, which need a reason to be admitted).
 */
export function admitAndPlace(jobs: JobTable, capacity: CapacitySnapshot, now = Date.now()): QueueDecision {
  const ordered = jobs.ordered();
  const waiting: LiveJob[] = [];
  const placed: Placement[] = [];
  const reasons = new Map<string, string>();
  const rest: LiveJob[] = [];
  let more = false;
  // A burst of thousands of submissions is admitted over several passes, so
  // one huge pass does not hold up placement and agents' reports.
  let admissions = 0;
  const take = (j: LiveJob) => {
    if (!jobs.stillWaiting(j)) return false;
    if (j.status !== 'pending') return true;
    if (admissions >= MAX_ADMISSIONS_PER_PASS) {
      more = true;
      return false;
    }
    admissions++;
    return true;
  };
  for (let i = 0; i < ordered.length; i += PLACE_CHUNK) {
    if (!anyGpuFree(capacity)) {
      for (let k = i; k < ordered.length; k++) {
        const j = ordered[k]!;
        if (j.status === 'pending' && take(j)) rest.push(j);
      }
      break;
    }
    const chunk = ordered.slice(i, i + PLACE_CHUNK).filter(take);
    const r = placeQueue(capacity, chunk.map((j) => j.request()));
    placed.push(...r.placed);
    for (const [id, reason] of r.waiting) reasons.set(id, reason);
    waiting.push(...chunk);
  }
  if (rest.length > 0) {
    for (const [id, reason] of placeQueue(capacity, rest.map((j) => j.request())).waiting) reasons.set(id, reason);
    waiting.push(...rest);
  }

  const events = new Map<string, JobEvent[]>();
  for (const p of placed) events.set(p.jobId, [{ type: 'place', node_id: p.nodeId, gpu_indices: p.gpuIndices }]);
  const items: BatchItem[] = [];
  let diagnosed = 0;
  for (const job of waiting) {
    const list = events.get(job.rec.id) ?? [];
    const reason = reasons.get(job.rec.id);
    if (job.status === 'pending') {
      list.unshift({ type: 'admit', reason: reason ?? 'placing it now' });
      job.reasonAt = now;
    } else if (
      reason !== undefined &&
      reason !== job.rec.statusReason &&
      // The counts in a reason move with every placement; rewriting thousands
      // of queued rows each pass would starve placement, so each job's
      // reason is refreshed at most every REASON_REFRESH_MS.
      now - job.reasonAt >= REASON_REFRESH_MS &&
      diagnosed < MAX_DIAGNOSES_PER_PASS
    ) {
      list.push({ type: 'diagnose', reason });
      job.reasonAt = now;
      diagnosed++;
    }
    if (list.length > 0) items.push({ jobId: job.rec.id, attempt: job.rec.attempt, events: list });
  }
  if (diagnosed === MAX_DIAGNOSES_PER_PASS) more = true;
  return { items, placed: placed.map((p) => p.jobId), more };
}
