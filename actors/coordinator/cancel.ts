/**
 * Cancel is a request to the coordinator, the only writer of job status: the
 * API asks on `<prefix>.coord.jobs.cancel` (core NATS request/reply), and the
 * leader steps the job machine's `cancel` in its next pass, commits it with
 * its job_events row, sends the kill to the agent, and only then answers.
 *
 * A job the coordinator does not hold is read by id: a pending job it has
 * not admitted yet joins the pass (and is cancelled before admission could
 * place it); a finished one is answered from its row.
 */
import { isTerminal, type JobStatus } from '../../machines/job.machine.ts';
import type { JobCancelReply } from '../../src/wire/messages.ts';

/** The answer for a job whose status is `status` once the pass is committed (null: no such job). */
export function cancelAnswer(jobId: string, status: JobStatus | null): JobCancelReply {
  if (status === null) return { ok: false, error: 'job_not_found', message: `job ${jobId} not found` };
  if (status === 'cancelled') return { ok: true, status };
  if (isTerminal(status)) {
    return { ok: false, error: 'job_already_finished', status, message: `job ${jobId} already ${status}; it cannot be cancelled` };
  }
  // Only when the conditional write missed (the row changed under the pass): the next try steps from the row as it is.
  return { ok: false, error: 'retry', status, message: `job ${jobId} changed while it was being cancelled; retry` };
}

/** The answer to a cancel the coordinator will not handle: it is stopping (leadership lost, shutdown). */
export const stoppingAnswer: JobCancelReply = {
  ok: false,
  error: 'retry',
  message: 'the coordinator is stopping; retry (another coordinator takes over)',
};
