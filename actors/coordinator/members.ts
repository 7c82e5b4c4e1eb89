/**
 * How the members of an attempt end. A single-node job has one member; a
 * gang has one per node. The job machine hears of the attempt's end only
 * once every member has ended, so a new attempt is never placed while a
 * member of the old one still holds GPUs. The first member to fail makes the
 * others be killed (the gang fails as a whole); each member's GPUs are freed
 * as soon as that member is gone.
 */
import { isTerminal, type JobEvent } from '../../machines/job.machine.ts';
import type { CapacitySnapshot } from '../../src/placement/index.ts';
import type { ExitedEvent, LaunchFailedEvent } from '../../src/wire/messages.ts';
import type { Commands } from './commands.ts';
import type { After, MemberEndInput } from './inputs.ts';
import type { LiveJob, MemberEnd } from './live.ts';
import type { Batch } from './ports.ts';

export interface MemberHost {
  capacity: CapacitySnapshot;
  commands: Commands;
}

/**
 * How an agent's final event for a member ends that member. A run that
 * reached its agent expired (launch_failed, code command_expired) ran
 * nothing, as on a lost node: the attempt is requeued (attempt + 1, counted
 * against SCALAR_MAX_ATTEMPTS) rather than the job failed, and the agent's
 * reason, which names the clocks and the TTL, becomes its status_reason.
 */
export function memberEndOf(ev: ExitedEvent | LaunchFailedEvent): MemberEndInput {
  if (ev.type === 'exited') return { code: ev.code, reason: null };
  // Nothing ran (an expired run), or it died with its host (a reboot): requeued, as on a lost node.
  if (ev.code === 'command_expired' || ev.code === 'node_rebooted') return { code: null, reason: ev.reason, lost: true };
  return { code: null, reason: `launch failed: ${ev.reason}` };
}

/** Undo records for a pass that did not commit. */
export type MemberUndo = Array<() => void>;

/**
 * Records that the member of `job`'s current attempt on `nodeId` ended, and
 * adds to the batch what follows: the machine event when it was the last
 * member, or the release of this member's GPUs (and kills of the others on a
 * failure) when members remain. Ignores a member that is not part of the
 * current attempt or already ended (redeliveries).
 */
export function memberEnded(
  h: MemberHost,
  job: LiveJob,
  nodeId: string,
  end: MemberEndInput,
  batch: Batch,
  after: After,
  undo: MemberUndo,
): void {
  const nodes = job.nodes();
  if (!nodes.includes(nodeId)) return;
  const ended = job.endedMembers();
  const ref = { job_id: job.rec.id, attempt: job.rec.attempt, node_id: nodeId };
  const holdsHere = (): boolean => h.capacity.holding(job.rec.id)?.nodes.some((n) => n.node_id === nodeId) ?? false;

  if (isTerminal(job.status)) {
    // Cancelled or timed out: this member's kill is confirmed (or its node is
    // gone). Checked before the duplicate test: a member whose exit was taken
    // while the API's cancel won the row race was marked ended, and the
    // agent's answer to the cancel's kill (its exit again) must still free it.
    if (!ended.has(nodeId)) {
      ended.set(nodeId, end);
      undo.push(() => ended.delete(nodeId));
    }
    if (holdsHere()) batch.releases.push(ref);
    return;
  }
  if (ended.has(nodeId)) return;
  if (job.status !== 'scheduled' && job.status !== 'running') return;

  ended.set(nodeId, end);
  undo.push(() => ended.delete(nodeId));
  const remaining = nodes.filter((n) => !ended.has(n));
  if (remaining.length === 0) {
    batch.items.push({ jobId: job.rec.id, attempt: job.rec.attempt, events: [attemptEnd(nodes, ended)] });
    return;
  }
  // Members remain: this one's GPUs are free now.
  if (holdsHere()) batch.releases.push(ref);
  // The first failure kills the others (later ones find them being killed
  // already), and is written to the row first, so a coordinator that
  // restarts before the others end still fails the gang for the right reason.
  // A gang being preempted is already being killed as a whole: its members'
  // exits (143 after SIGTERM) are the preemption, not a failure.
  if (failed(end) && !job.rec.preemptedBy && [...ended.values()].filter(failed).length === 1) {
    const why = end.lost ? `gang member on ${nodeId} lost` : end.code !== null ? `gang member on ${nodeId} exited with code ${end.code}` : `gang member on ${nodeId} failed: ${end.reason}`;
    batch.items.push({
      jobId: job.rec.id,
      attempt: job.rec.attempt,
      events: [{ type: 'member_failed', node_id: nodeId, code: end.code, reason: why, ...(end.lost ? { lost: true } : {}) }],
    });
    // The kill is for this attempt: if the others ended in this very pass,
    // the job may have moved on to a new attempt, which must not be killed.
    const attempt = job.rec.attempt;
    after.push(() => (job.rec.attempt === attempt ? h.commands.kill(job, why, remaining) : undefined));
  }
}

const failed = (e: MemberEnd): boolean => e.code !== 0;

/**
 * The machine event for an attempt all of whose members ended: the first
 * member to fail, in the order they ended, decides (a lost node requeues; an
 * exit code fails; a launch failure fails), otherwise every member exited 0
 * and it completed. Order of ending, not rank: the first failure has the
 * others killed, and their exits (143 after SIGTERM) are its consequence,
 * not the job's cause. `ended` keeps insertion order, which is that order.
 */
function attemptEnd(nodes: string[], ended: Map<string, MemberEnd & { lost?: boolean }>): JobEvent {
  for (const [n, e] of ended) {
    if (!failed(e)) continue;
    const gang = nodes.length > 1;
    const where = gang ? ` (gang member on ${n})` : '';
    if (e.lost) return { type: 'requeue', code: 'node_lost', reason: `${e.reason ?? `node ${n} lost`}` };
    if (e.code !== null) return { type: 'exit', code: e.code };
    // No exit code and not lost: the member never started (the runtime refused it).
    return { type: 'fail', code: gang ? 'gang_member_failed' : 'launch_failed', reason: `${e.reason ?? 'failed'}${where}` };
  }
  return { type: 'exit', code: 0 };
}
