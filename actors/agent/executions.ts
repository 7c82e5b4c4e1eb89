/**
 * The `run` and `kill` commands, and the executions they start: launching an
 * attempt (after its `launching` entry is durable), watching it until it
 * ends, killing it, and remembering kills that came before their run
 * (tombstones). Commands are handled one at a time; each handler returns true
 * when the command may be acked (see agent.ts).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { KillCommand, RunCommand } from '../../src/wire/messages.ts';
import { attemptKey } from '../../src/domain/cluster.ts';
import { LaunchError, type Execution, type ExitResult, type LogSink, type RunSpec, type Runtime } from '../../src/runtimes/types.ts';
import type { AttemptTable } from './attempts.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { LogShipper } from './logs.ts';
import type { Refusals } from './refusals.ts';
import type { Reporter } from './reporting.ts';
import type { ExecutionEntry } from './state.ts';

export class Executions {
  /** The executions this agent watches, by attemptKey. */
  private readonly live = new Map<string, Execution>();

  constructor(
    private readonly nodeId: string,
    private readonly runtime: Runtime,
    /** Indices of this node's GPUs. */
    private readonly gpuIndices: ReadonlySet<number>,
    private readonly attempts: AttemptTable,
    private readonly reporter: Reporter,
    private readonly shipper: LogShipper,
    private readonly lifecycle: Lifecycle,
    private readonly refusals: Refusals,
    private readonly log: Logger,
  ) {}

  // ---------------------------------------------------------------- commands

  /**
   * A verified run, its signature valid until `expMs`. Returns true when the
   * command may be acked. An attempt this node has taken before never
   * launches again: while its entry is kept, the run is answered with the
   * attempt's status (the coordinator re-sends runs it is not sure arrived,
   * and JetStream redelivers what an agent did not ack); after the sweep
   * forgot the entry, the seen runs still refuse it until every signature
   * of it has expired.
   */
  async run(cmd: RunCommand, expMs: number): Promise<boolean> {
    const key = attemptKey(cmd);
    const known = this.attempts.entries.get(key);
    const seen = this.attempts.sawRun(key, Date.now());
    // On disk before anything launches (a later copy of a run may carry a later expiry).
    await this.attempts.recordRun(cmd, expMs);
    if (known) {
      this.refusals.count('replayed');
      this.log.info(
        { job_id: cmd.job_id, attempt: cmd.attempt, status: known.status, tombstone: !!known.tombstone, reason: 'replayed' },
        'run for a known attempt: re-publishing its status, not running it again',
      );
      return this.reporter.republish(key, known);
    }
    if (seen) {
      this.refusals.note('replayed', cmd, 'this node took a run of this attempt before (its entry is forgotten); it never launches twice');
      return true;
    }
    const now = new Date().toISOString();
    const e: ExecutionEntry = {
      job_id: cmd.job_id,
      attempt: cmd.attempt,
      status: 'launching',
      reported: false,
      gpu_indices: [...cmd.gpu_indices],
      cpu_cores: cmd.cpu_cores,
      ram_gb: cmd.ram_gb,
      created_at: now,
    };
    this.attempts.entries.set(key, e);

    const missing = cmd.gpu_indices.filter((i) => !this.gpuIndices.has(i));
    const dupes = cmd.gpu_indices.filter((i, n) => cmd.gpu_indices.indexOf(i) !== n);
    if (missing.length || dupes.length) {
      const have = [...this.gpuIndices].sort((a, b) => a - b).join(',') || 'none';
      const reason = missing.length
        ? `GPU index ${missing.join(', ')} does not exist on node ${this.nodeId} (it has GPUs ${have})`
        : `gpu_indices lists GPU ${[...new Set(dupes)].join(', ')} more than once`;
      return this.failLaunch(e, reason);
    }
    const busy = this.attempts.busyGpus(key);
    const overlap = cmd.gpu_indices.filter((i) => busy.has(i));
    if (overlap.length) {
      this.log.warn({ job_id: cmd.job_id, attempt: cmd.attempt, gpus: overlap }, 'GPUs given to this attempt are still used by another attempt on this node');
    }

    const workDir = join(this.attempts.jobsDir, `${cmd.job_id}-${cmd.attempt}`);
    e.work_dir = workDir;
    await this.attempts.save(); // `launching` is durable before anything starts

    const spec: RunSpec = {
      jobId: cmd.job_id,
      attempt: cmd.attempt,
      gpuIndices: [...cmd.gpu_indices],
      image: cmd.image,
      command: cmd.command,
      env: cmd.env,
      cpuCores: cmd.cpu_cores,
      ramGb: cmd.ram_gb,
      expectedDurationSec: cmd.expected_duration_sec,
      workDir,
    };
    let exec: Execution;
    try {
      await mkdir(workDir, { recursive: true });
      exec = await this.runtime.launch(spec, this.sinkFor(key, e));
    } catch (err) {
      const reason = err instanceof LaunchError ? err.reason : `${this.runtime.kind} runtime: launch failed: ${(err as Error).message}`;
      this.log.warn({ job_id: cmd.job_id, attempt: cmd.attempt, reason }, 'launch failed');
      return this.failLaunch(e, reason);
    }
    e.status = 'running';
    e.record = exec.record;
    e.pid = exec.pid;
    this.log.info({ job_id: cmd.job_id, attempt: cmd.attempt, pid: exec.pid, gpus: cmd.gpu_indices }, 'attempt started');
    const saved = this.attempts.save();
    // On the chain before the exit watcher can add `exited`: started always goes first.
    const published = this.reporter.started(key, e, saved);
    this.watch(key, e, exec);
    return published;
  }

  /** Returns true when the command may be acked. */
  async kill(cmd: KillCommand): Promise<boolean> {
    const key = attemptKey(cmd);
    const e = this.attempts.entries.get(key);
    if (!e) {
      // Killed before its run arrived (or after this node forgot it): remember, so a later run never starts.
      this.log.info({ job_id: cmd.job_id, attempt: cmd.attempt }, 'kill for an unknown attempt: keeping a tombstone');
      const now = new Date().toISOString();
      const tomb: ExecutionEntry = {
        job_id: cmd.job_id,
        attempt: cmd.attempt,
        status: 'exited',
        exit: { code: -1, signal: null, killed: true },
        killRequested: true,
        kill_grace_sec: cmd.grace_sec,
        tombstone: true,
        reported: false,
        gpu_indices: [],
        cpu_cores: 0,
        ram_gb: 0,
        created_at: now,
        ended_at: now,
      };
      this.attempts.entries.set(key, tomb);
      await this.attempts.save();
      return this.reporter.report(tomb);
    }
    if (e.status === 'exited') return this.reporter.republish(key, e);
    // launching (cannot happen: commands are handled one at a time) or running
    if (!e.killRequested) {
      e.killRequested = true;
      e.kill_grace_sec = cmd.grace_sec;
      await this.attempts.save();
    }
    const exec = this.live.get(key);
    if (exec) {
      this.log.info({ job_id: cmd.job_id, attempt: cmd.attempt, grace_sec: cmd.grace_sec, reason: cmd.reason }, 'killing attempt');
      // Sends SIGTERM now; the grace runs in the background and `exited` (killed: true) reports the end.
      void exec.kill(cmd.grace_sec * 1000).catch((err) => this.log.error({ err, job_id: cmd.job_id }, 'kill failed'));
    }
    return true;
  }

  /**
   * A run whose signature is good but expired: nothing runs. An attempt this
   * node knows is answered with its status, as any re-sent run; an unknown
   * one is reported launch_failed (code command_expired), so the coordinator
   * requeues it at once rather than re-sending into the same refusal (a
   * clock that is off refuses every run). Returns true when it may be acked.
   */
  async expiredRun(cmd: RunCommand, detail: string): Promise<boolean> {
    const key = attemptKey(cmd);
    this.refusals.note('expired', cmd, detail);
    const known = this.attempts.entries.get(key);
    if (known) return this.reporter.republish(key, known);
    if (this.attempts.sawRun(key, Date.now())) return true;
    const e: ExecutionEntry = {
      job_id: cmd.job_id,
      attempt: cmd.attempt,
      status: 'exited',
      reported: false,
      gpu_indices: [],
      cpu_cores: 0,
      ram_gb: 0,
      created_at: new Date().toISOString(),
    };
    this.attempts.entries.set(key, e);
    const reason =
      `the run command expired before node ${this.nodeId} took it (${detail}): its agent was down or stalled for longer than ` +
      "SCALAR_COMMAND_TTL_SEC, or this node's clock is ahead of the coordinator's (check NTP)";
    return this.failLaunch(e, reason, 'command_expired');
  }

  private async failLaunch(e: ExecutionEntry, reason: string, code?: ExecutionEntry['launch_failed_code']): Promise<boolean> {
    Object.assign(e, { status: 'exited', launch_failed: reason, ended_at: new Date().toISOString() });
    if (code) e.launch_failed_code = code;
    delete e.record;
    await this.attempts.save();
    return this.reporter.report(e);
  }

  // ---------------------------------------------------------------- executions

  /** Where the runtime hands the attempt's log lines. */
  sinkFor(key: string, e: ExecutionEntry): LogSink {
    return (line) => this.shipper.enqueue(key, e.job_id, e.attempt, line);
  }

  /** Watches a launched or re-attached execution until it ends, then reports its end. */
  watch(key: string, e: ExecutionEntry, exec: Execution): void {
    this.live.set(key, exec);
    exec.exited.then(
      (res) => this.onExit(key, e, exec, res).catch((err) => this.log.error({ err, job_id: e.job_id }, 'handling an exit failed')),
      () => undefined,
    );
  }

  /** Stops watching the executions that can be detached; they keep running for the next agent. */
  detachAll(): void {
    for (const exec of this.live.values()) (exec as { detach?: () => void }).detach?.();
  }

  private async onExit(key: string, e: ExecutionEntry, exec: Execution, res: ExitResult): Promise<void> {
    // A stopping agent leaves the end to the next one (it re-attaches and sees the end).
    if (this.lifecycle.stopping || this.live.get(key) !== exec || e.status !== 'running') return;
    this.live.delete(key);
    Object.assign(e, {
      status: 'exited',
      exit: { code: res.code, signal: res.signal, killed: !!e.killRequested },
      ended_at: new Date().toISOString(),
      record: exec.record,
    });
    this.log.info({ job_id: e.job_id, attempt: e.attempt, code: res.code, signal: res.signal, killed: !!e.killRequested }, 'attempt ended');
    await this.attempts.saveWithRetry();
    await this.reporter.report(e);
  }
}
