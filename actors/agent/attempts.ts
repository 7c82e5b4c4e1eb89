/**
 * The attempts this node knows, in memory, and their persistence: the state
 * file holds every attempt not yet reported, the done log the reported ones
 * (see state.ts). Also the retention sweep that forgets old reported attempts
 * and removes their work directories.
 */
import { rm } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { attemptKey, type AttemptRef } from '../../src/domain/cluster.ts';
import type { LogStream } from '../../src/runtimes/types.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { LogShipper } from './logs.ts';
import {
  appendDoneLog,
  appendSeenRun,
  hostBootId,
  rewriteDoneLog,
  rewriteSeenRuns,
  STATE_VERSION,
  StateWriter,
  type ExecutionEntry,
  type SeenRun,
  type StateFileContent,
} from './state.ts';

/** Ended and reported: nothing more to do but remember it (to recognise a redelivered command). */
export const isDone = (e: ExecutionEntry) => e.status === 'exited' && e.reported;

export class AttemptTable {
  /** By attemptKey. */
  readonly entries = new Map<string, ExecutionEntry>();
  /**
   * The runs verified here whose signature has not expired, by attemptKey
   * (state.ts, SEEN_FILE). An attempt in it never launches again.
   */
  readonly seen = new Map<string, SeenRun>();
  /** Holds the jobs/<job_id>-<attempt>/ work directories. */
  readonly jobsDir: string;
  private readonly state: StateWriter;

  constructor(
    readonly stateDir: string,
    private readonly nodeId: string,
    private readonly shipper: LogShipper,
    private readonly lifecycle: Lifecycle,
    private readonly log: Logger,
  ) {
    this.jobsDir = join(stateDir, 'jobs');
    this.state = new StateWriter(stateDir, () => this.snapshot());
  }

  /** This host's boot id, written into the state file so the next start can tell a reboot (recovery.ts). */
  readonly hostBoot = hostBootId();

  init(): Promise<void> {
    return this.state.init();
  }

  /** Resolves once a write that includes every change made before the call is on disk. */
  save(): Promise<void> {
    return this.state.save();
  }

  private soon: NodeJS.Timeout | null = null;

  /**
   * A save that may wait up to 500 ms and so join others. Only for changes
   * whose loss in a crash is harmless: an attempt already in the done log
   * still in the state file is merely reported again after a restart.
   * stop() saves everything anyway.
   */
  saveSoon(): void {
    if (this.soon || this.lifecycle.stopping) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      if (!this.lifecycle.stopping) void this.saveWithRetry();
    }, 500);
  }

  cancelSaveSoon(): void {
    if (this.soon) clearTimeout(this.soon);
    this.soon = null;
  }

  async saveWithRetry(): Promise<void> {
    let delay = 200;
    for (let i = 0; ; i++) {
      try {
        await this.state.save();
        return;
      } catch (err) {
        if (this.lifecycle.stopping || i >= 5) {
          this.log.error({ err }, 'cannot persist the agent state');
          return;
        }
        await this.lifecycle.sleep(delay);
        delay *= 2;
      }
    }
  }

  /** Appends a reported attempt to the done log. */
  appendDone(e: ExecutionEntry): Promise<void> {
    return appendDoneLog(this.stateDir, [this.snapshotEntry(e)]);
  }

  /** Records in memory a run of `ref` valid until `exp` (the latest expiry is kept). True when that changed it. */
  noteRun(ref: AttemptRef, exp: number): boolean {
    const key = attemptKey(ref);
    const prev = this.seen.get(key);
    if (prev && prev.exp >= exp) return false;
    this.seen.set(key, { job_id: ref.job_id, attempt: ref.attempt, exp });
    return true;
  }

  /** Records a verified run of `ref` valid until `exp`, and resolves once it is on disk (when it changed anything). */
  async recordRun(ref: AttemptRef, exp: number): Promise<void> {
    if (this.noteRun(ref, exp)) await appendSeenRun(this.stateDir, { job_id: ref.job_id, attempt: ref.attempt, exp });
  }

  /** Whether a run of this attempt was verified here and its signature is still valid at `now`. */
  sawRun(key: string, now: number): boolean {
    return (this.seen.get(key)?.exp ?? 0) > now;
  }

  /** Attempts this node holds (launching or running). */
  runningAttempts(): AttemptRef[] {
    const out: AttemptRef[] = [];
    for (const e of this.entries.values()) {
      if (e.status !== 'exited') out.push({ job_id: e.job_id, attempt: e.attempt });
    }
    return out;
  }

  /** GPUs of the attempts this node holds, except `exceptKey`'s (an attempt does not compete with itself). */
  busyGpus(exceptKey?: string): Set<number> {
    const busy = new Set<number>();
    for (const [key, e] of this.entries) {
      if (key !== exceptKey && e.status !== 'exited') for (const i of e.gpu_indices) busy.add(i);
    }
    return busy;
  }

  /** A copy of the state as it would be written now: every attempt not yet reported (reported ones live in the done log). */
  snapshot(): StateFileContent {
    const executions = [...this.entries.values()].filter((e) => !isDone(e)).map((e) => this.snapshotEntry(e));
    return { version: STATE_VERSION, node_id: this.nodeId, ...(this.hostBoot ? { host_boot_id: this.hostBoot } : {}), updated_at: new Date().toISOString(), executions };
  }

  private snapshotEntry(e: ExecutionEntry): ExecutionEntry {
    const copy: ExecutionEntry = { ...e, gpu_indices: [...e.gpu_indices] };
    if (e.record) copy.record = this.persistableRecord(attemptKey(e), e.record);
    if (e.exit) copy.exit = { ...e.exit };
    return copy;
  }

  /** The record as persisted: its log offsets no later than the first line not yet stored. */
  private persistableRecord(key: string, record: Record<string, unknown>): Record<string, unknown> {
    const offsets = record.offsets as Partial<Record<LogStream, unknown>> | undefined;
    if (!offsets || typeof offsets !== 'object') return { ...record };
    const out: Record<string, unknown> = { ...offsets };
    for (const s of ['stdout', 'stderr'] as const) {
      const cur = offsets[s];
      const first = this.shipper.firstPendingOffset(key, s);
      if (typeof cur === 'number' && first !== undefined && first < cur) out[s] = first;
    }
    return { ...record, offsets: out };
  }

  // ---------------------------------------------------------------- housekeeping

  /**
   * Removes the work directories of attempts reported `dirTtlMs` ago, forgets
   * those reported `entryTtlMs` ago, and the seen runs whose signature has
   * expired (no copy of them can be accepted any more).
   */
  async sweep(dirTtlMs: number, entryTtlMs: number): Promise<void> {
    if (this.lifecycle.stopping) return;
    const now = Date.now();
    let changed = false;
    let seenChanged = false;
    for (const [key, r] of this.seen) {
      if (r.exp > now) continue;
      this.seen.delete(key);
      seenChanged = true;
    }
    if (seenChanged) {
      await rewriteSeenRuns(this.stateDir, [...this.seen.values()]).catch((err) => this.log.warn({ err }, 'could not compact the seen runs'));
    }
    for (const [key, e] of this.entries) {
      if (e.status !== 'exited' || !e.reported || !e.ended_at) continue;
      const age = now - Date.parse(e.ended_at);
      if (age >= dirTtlMs && e.work_dir && !e.work_dir_removed) {
        await this.removeWorkDir(e.work_dir);
        e.work_dir_removed = true;
        changed = true;
      }
      if (age >= entryTtlMs) {
        this.entries.delete(key);
        this.shipper.forget(key);
        changed = true;
      }
    }
    if (changed) {
      await this.state.save();
      await rewriteDoneLog(this.stateDir, [...this.entries.values()].filter(isDone).map((e) => this.snapshotEntry(e))).catch((err) =>
        this.log.warn({ err }, 'could not compact the done log'),
      );
    }
  }

  private async removeWorkDir(dir: string): Promise<void> {
    const abs = resolve(dir);
    // Only ever inside our own jobs directory, whatever the state file says.
    if (!abs.startsWith(this.jobsDir + sep)) return;
    await rm(abs, { recursive: true, force: true }).catch((err) => this.log.warn({ err, dir: abs }, 'cannot remove a work directory'));
  }
}
