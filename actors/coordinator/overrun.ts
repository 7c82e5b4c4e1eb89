/**
 * Jobs that outlive their expected_duration_sec (docs/scheduling.md,
 * "Overruns"). Backfill trusts expected durations, so a job still running
 * past its expected end would make reservations promise starts that cannot
 * happen. Two policies, chosen by SCALAR_OVERRUN_POLICY:
 *
 * - `extend` (default): the job keeps running; whenever it passes the end its
 *   hold promised, the hold is extended by expected_duration_sec × (factor − 1)
 *   (at least a minute), so reservations behind it move later instead of
 *   pointing into the past.
 * - `fail`: a time limit of expected_duration_sec × SCALAR_OVERRUN_FACTOR. Past
 *   it, the job is killed (kill grace) and fails with a reason; before it,
 *   its hold is extended to that limit.
 */
import type { CapacitySnapshot } from '../../src/placement/index.ts';
import type { JobTable } from './live.ts';
import type { BatchItem } from './ports.ts';

export interface OverrunSettings {
  factor: number;
  policy: 'fail' | 'extend';
}

const MIN_EXTENSION_MS = 60_000;

/** Timeouts to write (policy `fail`), and hold extensions applied to the snapshot on the way. */
export function overrunItems(jobs: JobTable, capacity: CapacitySnapshot, s: OverrunSettings, now: number): BatchItem[] {
  const items: BatchItem[] = [];
  for (const job of jobs.values()) {
    if (job.status !== 'running' && job.status !== 'scheduled') continue;
    const times = capacity.holdTimes(job.rec.id);
    if (!times) continue;
    const expectedMs = job.rec.expectedDurationSec * 1000;
    const limit = times.startedAt + expectedMs * s.factor;
    if (s.policy === 'fail' && now >= limit && job.status === 'running' && !job.rec.preemptedBy) {
      const ran = Math.round((now - times.startedAt) / 1000);
      items.push({
        jobId: job.rec.id,
        attempt: job.rec.attempt,
        events: [
          {
            type: 'timeout',
            reason: `time limit: ran ${ran} s, over expected_duration_sec ${job.rec.expectedDurationSec} × ${s.factor}`,
          },
        ],
      });
      continue;
    }
    if (now >= times.endsAt) {
      const next = s.policy === 'fail' ? Math.max(limit, now + MIN_EXTENSION_MS) : now + Math.max(MIN_EXTENSION_MS, expectedMs * (s.factor - 1));
      capacity.extendHold(job.rec.id, next);
    }
  }
  return items;
}
