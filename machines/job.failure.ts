/**
 * The one failure vocabulary of a job: why an attempt ended other than by
 * exiting 0. The sentence in status_reason is for people; the code is for
 * programs (clients switch on it, retry policies match on it, dashboards
 * count it). Every `fail`, `requeue`, `timeout` and `cancel` of the job
 * machine carries one, and it is stored in the `failure_code` column next to
 * `status_reason` and served as `failure_code`.
 *
 * `failureInfo` is the one exhaustive switch over the codes (after
 * Trigger.dev's run engine): adding a code fails to compile until it says
 * where the job ends, whether trying again may help, and whose fault it is.
 * Pure: imported by the machine, the coordinator, the API and the docs test.
 */

export const JobFailureCode = {
  /** The job's process exited with a non-zero code (single-node job). */
  exit_nonzero: 'exit_nonzero',
  /** The node could not start the process: the runtime refused it (image, command, docker engine). */
  launch_failed: 'launch_failed',
  /** The node stopped answering (no heartbeat for SCALAR_NODE_LOST_SEC) while it held the attempt: requeued. */
  node_lost: 'node_lost',
  /** It ran past expected_duration_sec × SCALAR_OVERRUN_FACTOR under SCALAR_OVERRUN_POLICY=fail. */
  time_limit: 'time_limit',
  /** A FAST job needed its GPUs: killed with a grace and requeued, not counted against max attempts. */
  preempted: 'preempted',
  /** No node shape the cluster has (or can buy) could ever hold the request. */
  unschedulable: 'unschedulable',
  /** A member of a gang (node_count > 1) exited non-zero or could not launch; the others were stopped. */
  gang_member_failed: 'gang_member_failed',
  /** Its owner (or an admin) cancelled it. */
  cancelled_by_user: 'cancelled_by_user',
  /** Attempts ended by lost nodes used up max attempts. */
  max_attempts: 'max_attempts',
} as const;
export type JobFailureCode = (typeof JobFailureCode)[keyof typeof JobFailureCode];
export const JOB_FAILURE_CODES: readonly JobFailureCode[] = Object.freeze(Object.values(JobFailureCode));

/** Who has to act for the job to succeed: the job's owner (its code or its request), or the system (its nodes, its operators). */
export type FailureFault = 'user' | 'system';

export interface FailureInfo {
  /**
   * The status the code leaves the job in: a terminal one, or `queued` for
   * codes that end only the attempt (the scheduler starts another).
   */
  status: 'failed' | 'cancelled' | 'queued';
  /**
   * Whether the same job may succeed if it runs again unchanged: true for
   * what went wrong around the job (a node, capacity), false for what the
   * job or its request did. A `queued` code is retried by the scheduler itself.
   */
  retryable: boolean;
  fault: FailureFault;
}

function assertNever(x: never): never {
  throw new Error(`unknown job failure code ${JSON.stringify(x)}`);
}

/** Where each code ends a job, whether running it again may help, and whose fault it is. */
export function failureInfo(code: JobFailureCode): FailureInfo {
  switch (code) {
    // What the job or its request did: running it again unchanged ends the same way.
    case 'exit_nonzero':
    case 'gang_member_failed':
    case 'time_limit':
    case 'unschedulable':
      return { status: 'failed', retryable: false, fault: 'user' };
    case 'cancelled_by_user':
      return { status: 'cancelled', retryable: false, fault: 'user' };
    // A launch failure is the node's refusal to start the job: most often a
    // runtime that is down or misconfigured on that node, so another node (or
    // a later try) may well succeed. An image that does not exist fails the
    // same way again; status_reason names the runtime's own words.
    case 'launch_failed':
      return { status: 'failed', retryable: true, fault: 'system' };
    case 'max_attempts':
      return { status: 'failed', retryable: true, fault: 'system' };
    case 'node_lost':
    case 'preempted':
      return { status: 'queued', retryable: true, fault: 'system' };
    default:
      return assertNever(code);
  }
}

export function isJobFailureCode(x: unknown): x is JobFailureCode {
  return typeof x === 'string' && (JOB_FAILURE_CODES as readonly string[]).includes(x);
}
