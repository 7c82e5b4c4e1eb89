/**
 * The commands the coordinator sends to agents (run, kill), over the node's
 * command queue (JetStream in production; see ports.ts). A failed publish is logged, not thrown: the job
 * stays as committed, and reconciliation with the node's heartbeats re-sends.
 */
import type { Logger } from 'pino';
import { isTerminal } from '../../machines/job.machine.ts';
import { attemptKey, type AttemptRef } from '../../src/domain/cluster.ts';
import type { Clock } from '../../src/domain/clock.ts';
import type { KillCommand, RunCommand } from '../../src/wire/messages.ts';
import type { LiveJob } from './live.ts';
import type { NodeLink } from './ports.ts';

export class Commands {
  private readonly staleKills = new Map<string, number>();

  constructor(
    private readonly link: NodeLink,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly grace: { killSec: number; preemptSec: number },
    /** The nodes still holding a job's GPUs (a finished job's attempt may still hold them). */
    private readonly heldOn: (jobId: string) => string[],
    /** Where gang members reach a node (SCALAR_MASTER_ADDR). */
    private readonly addrOf: (nodeId: string) => string,
  ) {}

  private async publish(nodeId: string, cmd: RunCommand | KillCommand, msgID?: string): Promise<void> {
    try {
      await this.link.send(nodeId, cmd, msgID);
    } catch (err) {
      // The job stays scheduled; the next reconcile with this node re-sends it.
      this.log.warn({ err, node_id: nodeId, job_id: cmd.job_id, type: cmd.type }, 'could not send a command; will retry');
    }
  }

  /**
   * Sends `run` to every member of the attempt (or to one node, for a
   * re-send). Every member learns its rank, the gang's size and where rank 0
   * is, so frameworks like torch.distributed can rendezvous.
   */
  run(job: LiveJob, onlyNode?: string): Promise<void> {
    const r = job.rec;
    const slices = r.placements && r.placements.length > 0 ? r.placements : r.nodeId ? [{ node_id: r.nodeId, gpu_indices: r.gpuIndices ?? [] }] : [];
    if (slices.length === 0) return Promise.resolve();
    job.dispatchedAt = this.clock.now();
    const master = this.addrOf(slices[0]!.node_id);
    const sends = slices.map((slice, rank) => {
      if (onlyNode !== undefined && slice.node_id !== onlyNode) return Promise.resolve();
      return this.publish(
        slice.node_id,
        {
          type: 'run',
          job_id: r.id,
          attempt: r.attempt,
          gpu_indices: slice.gpu_indices,
          image: r.image,
          command: r.command,
          env: {
            ...r.env,
            SCALAR_NODE_RANK: String(rank),
            SCALAR_NODE_COUNT: String(slices.length),
            SCALAR_MASTER_ADDR: master,
          },
          cpu_cores: r.cpuCores,
          ram_gb: r.ramGb,
          expected_duration_sec: r.expectedDurationSec,
        },
        // Within JetStream's duplicate window a re-send of the same attempt is stored once.
        `${r.id}:${r.attempt}:run:${slice.node_id}:${job.dispatchedAt}`,
      );
    });
    return Promise.all(sends).then(() => undefined);
  }

  /**
   * Kills the attempt on the nodes that still hold it (or on `nodes`). A
   * preempted attempt gets the preemption grace, anything else the kill grace.
   */
  kill(job: LiveJob, reason: string, nodes?: string[]): Promise<void> {
    let targets = nodes ?? this.heldOn(job.rec.id);
    if (targets.length === 0) targets = job.nodes();
    if (targets.length === 0) return Promise.resolve();
    job.killSentAt = this.clock.now();
    const grace = job.rec.preemptedBy ? this.grace.preemptSec : this.grace.killSec;
    return Promise.all(
      targets.map((n) => this.publish(n, { type: 'kill', job_id: job.rec.id, attempt: job.rec.attempt, grace_sec: grace, reason })),
    ).then(() => undefined);
  }

  /**
   * Re-sends kills that got no answer within twice their grace (at least
   * 30 s): a finished job whose GPUs are still held, a preemption, or a
   * failing gang's members. A lost publish would otherwise leave work running.
   */
  resendKills(jobs: Iterable<LiveJob>, now = this.clock.now()): void {
    const due = (job: LiveJob, graceSec: number) => now - job.killSentAt > Math.max(30_000, graceSec * 2000);
    for (const job of jobs) {
      if (isTerminal(job.status)) {
        if (due(job, this.grace.killSec)) void this.kill(job, 'job finished');
        continue;
      }
      const stopping = job.stopping();
      if (stopping && due(job, job.rec.preemptedBy ? this.grace.preemptSec : this.grace.killSec)) void this.kill(job, stopping);
    }
  }

  /** Kills an attempt an agent runs that is no longer current (at most once per 10 s per attempt). */
  async killStale(nodeId: string, ref: AttemptRef): Promise<void> {
    const key = `${nodeId}/${attemptKey(ref)}`;
    const now = this.clock.now();
    if (now - (this.staleKills.get(key) ?? 0) < 10_000) return;
    this.staleKills.set(key, now);
    if (this.staleKills.size > 10_000) this.staleKills.clear();
    this.log.info({ node_id: nodeId, ...ref }, 'killing an attempt that is no longer current');
    await this.publish(nodeId, { type: 'kill', ...ref, grace_sec: this.grace.killSec, reason: 'attempt is no longer current' });
  }
}
