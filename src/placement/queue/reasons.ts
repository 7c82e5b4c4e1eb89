/** Plain-words reasons for the queue's decisions (status_reason of a waiting job); a diagnosis is worded by diagnosis.ts. */
import { plural } from '../words.ts';

/** "14:05 UTC" when on now's UTC day, else "2025-03-02 14:05 UTC"; rounded up so "by" stays true. */
export function clockTime(at: number, now: number): string {
  const minute = 60_000;
  const iso = new Date(Math.ceil(at / minute) * minute).toISOString();
  const sameDay = iso.slice(0, 10) === new Date(now).toISOString().slice(0, 10);
  return `${sameDay ? '' : `${iso.slice(0, 10)} `}${iso.slice(11, 16)} UTC`;
}

export const reservedClause = (startAt: number, now: number): string =>
  `expected to start by ${clockTime(startAt, now)} (reserved)`;

/** "within 30 s", "within 2 min". */
function within(sec: number): string {
  return sec < 120 ? `within ${Math.ceil(sec)} s` : `within ${Math.ceil(sec / 60)} min`;
}

export function preemptingReason(victims: number, reused: number, nodeIds: readonly string[], graceSec: number): string {
  const on = `on ${nodeIds.join(', ')} (GPUs free ${within(graceSec)})`;
  if (victims === 0) return `waiting for ${reused} preempted FLEX ${plural(reused, 'job', 'jobs')} to stop ${on}`;
  return `preempting ${victims} FLEX ${plural(victims, 'job', 'jobs')} ${on}`;
}
