/**
 * The commands the coordinator sends to agents (run, kill), over the node's
 * JetStream command subject. A failed publish is logged, not thrown: the job
 * stays as committed, and reconciliation with the node's heartbeats re-sends.
 */
import type { Logger } from 'pino';
import { attemptKey, type AttemptRef } from '../../src/domain/cluster.ts';
import type { Bus } from '../bus/connection.ts';
import { encodeJson, type KillCommand, type RunCommand } from '../bus/messages.ts';
import type { LiveJob } from './live.ts';

export class Commands {
  private readonly staleKills = new Map<string, number>();

  constructor(
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly killGraceSec: number,
    /** The node holding a job's GPUs, if any (a finished job's attempt may still hold them). */
    private readonly heldOn: (jobId: string) => string | undefined,
  ) {}

  private async publish(nodeId: string, cmd: RunCommand | KillCommand, msgID?: string): Promise<void> {
    try {
      await this.bus.js.publish(this.bus.t.subjects.nodeCmd(nodeId), encodeJson(cmd), msgID ? { msgID } : undefined);
    } catch (err) {
      // The job stays scheduled; the next reconcile with this node re-sends it.
      this.log.warn({ err, node_id: nodeId, job_id: cmd.job_id, type: cmd.type }, 'could not send a command; will retry');
    }
  }

  run(job: LiveJob): Promise<void> {
    const r = job.rec;
    if (!r.nodeId) return Promise.resolve();
    job.dispatchedAt = Date.now();
    return this.publish(
      r.nodeId,
      {
        type: 'run',
        job_id: r.id,
        attempt: r.attempt,
        gpu_indices: r.gpuIndices ?? [],
        image: r.image,
        command: r.command,
        env: r.env,
        cpu_cores: r.cpuCores,
        ram_gb: r.ramGb,
        expected_duration_sec: r.expectedDurationSec,
      },
      // Within JetStream's duplicate window a re-send of the same attempt is stored once.
      `${r.id}:${r.attempt}:run:${job.dispatchedAt}`,
    );
  }

  kill(job: LiveJob, reason: string): Promise<void> {
    const nodeId = this.heldOn(job.rec.id) ?? job.rec.nodeId;
    if (!nodeId) return Promise.resolve();
    job.killSentAt = Date.now();
    return this.publish(nodeId, { type: 'kill', job_id: job.rec.id, attempt: job.rec.attempt, grace_sec: this.killGraceSec, reason });
  }

  /** Kills an attempt an agent runs that is no longer current (at most once per 10 s per attempt). */
  async killStale(nodeId: string, ref: AttemptRef): Promise<void> {
    const key = `${nodeId}/${attemptKey(ref)}`;
    const now = Date.now();
    if (now - (this.staleKills.get(key) ?? 0) < 10_000) return;
    this.staleKills.set(key, now);
    if (this.staleKills.size > 10_000) this.staleKills.clear();
    this.log.info({ node_id: nodeId, ...ref }, 'killing an attempt that is no longer current');
    await this.publish(nodeId, { type: 'kill', ...ref, grace_sec: this.killGraceSec, reason: 'attempt is no longer current' });
  }
}
