/**
 * A job's statuses, apart from the machine (job.machine.ts) so that what only
 * needs the vocabulary (the wire protocol, and through it the agent) does not
 * load xstate. job.machine.ts re-exports all of it.
 */

// Enums are `as const` objects with a derived union (STYLE.md): the object
// gives runtime values for the DB and API, the union gives exhaustive switches.
// Keys are listed in lifecycle order, which JOB_STATUSES relies on.
export const JobStatus = {
  pending: 'pending',
  queued: 'queued',
  scheduled: 'scheduled',
  running: 'running',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

/** Every status, in lifecycle order (pending first, the terminal ones last). */
export const JOB_STATUSES: readonly JobStatus[] = Object.freeze(Object.values(JobStatus));

/** Statuses a job never leaves. The machine marks them `type: 'final'`. */
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set<JobStatus>([
  JobStatus.completed,
  JobStatus.failed,
  JobStatus.cancelled,
]);

export function isTerminal(s: JobStatus): boolean {
  return TERMINAL_STATUSES.has(s);
}
