/**
 * The coordinator's durable record, in memory: CoordinatorStorePort with the
 * semantics of the Postgres CoordinatorStore that matter to scheduling:
 *
 * - a write applies only while the row still holds the expected status and
 *   attempt, and its allocations and releases go with it;
 * - releases not tied to a transition (a gang member ended, a kill was
 *   confirmed) always apply;
 * - every released allocation becomes a usage record (GPU-seconds from
 *   placement to release, priced by the job's tier), as in usage_records.
 *
 * It also keeps what the simulator reports from: when each job first
 * started, and the usage of every attempt.
 */
import type { ActiveAllocation, Batch, CoordinatorStorePort, JobRecord, Prices, StoredNode } from '../../../actors/coordinator/ports.ts';
import { isTerminal } from '../../../machines/job.machine.ts';

interface Allocation {
  jobId: string;
  attempt: number;
  nodeId: string;
  gpuIndices: number[];
  createdAt: number;
}

export interface UsageRecord {
  jobId: string;
  attempt: number;
  nodeId: string;
  gpus: number;
  gpuSeconds: number;
  costUsd: number;
}

/** Per job, what the replay reports from (times in ms). */
export interface JobHistory {
  firstStartedAt: number | null;
  finishedAt: number | null;
}

const allocKey = (jobId: string, attempt: number, nodeId: string) => `${jobId}\u0000${attempt}\u0000${nodeId}`;

export class MemoryCoordinatorStore implements CoordinatorStorePort {
  private readonly jobs = new Map<string, JobRecord>();
  private readonly pending = new Set<string>();
  private readonly allocations = new Map<string, Allocation>();
  /** Active allocation keys by job. */
  private readonly allocsByJob = new Map<string, Set<string>>();
  private readonly nodes = new Map<string, StoredNode>();
  readonly history = new Map<string, JobHistory>();
  readonly usage: UsageRecord[] = [];
  /** Jobs that reached a final status, and attempts that started: the replay's progress. */
  finished = 0;
  started = 0;
  private seq = 0;

  constructor(
    private readonly prices: Prices,
    /** When each live capacity block ends (ms), from the capacity record (capacity_blocks in Postgres). */
    private readonly blockEnds: () => Map<string, number | null> = () => new Map(),
  ) {}

  /** What the API's POST /jobs would insert: pending rows. */
  insertJobs(recs: Omit<JobRecord, 'seq'>[]): void {
    for (const r of recs) {
      if (this.jobs.has(r.id)) throw new Error(`job ${r.id} exists`);
      this.jobs.set(r.id, { ...r, seq: ++this.seq });
      this.pending.add(r.id);
      this.history.set(r.id, { firstStartedAt: null, finishedAt: null });
    }
  }

  job(id: string): JobRecord | undefined {
    return this.jobs.get(id);
  }

  allJobs(): IterableIterator<JobRecord> {
    return this.jobs.values();
  }

  // ---------------------------------------------------------------- reads

  async loadLiveJobs(): Promise<JobRecord[]> {
    return [...this.jobs.values()].filter((j) => !isTerminal(j.status)).map(copy);
  }

  async pendingIds(limit = 5000): Promise<string[]> {
    return [...this.pending].slice(0, limit);
  }

  async loadJobs(ids: string[]): Promise<JobRecord[]> {
    return ids.flatMap((id) => {
      const j = this.jobs.get(id);
      return j ? [copy(j)] : [];
    });
  }

  async loadPending(ids: string[]): Promise<JobRecord[]> {
    return ids.flatMap((id) => (this.pending.has(id) ? [copy(this.jobs.get(id)!)] : []));
  }

  async loadFinishedHoldingGpus(): Promise<string[]> {
    return [...this.allocsByJob.keys()].filter((id) => isTerminal(this.jobs.get(id)!.status));
  }

  async loadActiveAllocations(): Promise<ActiveAllocation[]> {
    return [...this.allocations.values()].map((a) => ({
      job_id: a.jobId,
      attempt: a.attempt,
      nodeId: a.nodeId,
      gpuIndices: [...a.gpuIndices].sort((x, y) => x - y),
      job: copy(this.jobs.get(a.jobId)!),
    }));
  }

  async loadNodes(): Promise<StoredNode[]> {
    return [...this.nodes.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((n) => ({ ...n, gpus: n.gpus.map((g) => ({ ...g })) }));
  }

  async loadBlockEnds(): Promise<Map<string, number | null>> {
    return this.blockEnds();
  }

  async loadUserWeights(): Promise<Map<string, number>> {
    return new Map();
  }

  // ---------------------------------------------------------------- the write

  async commit(batch: Batch, now: Date): Promise<Set<string>> {
    const at = now.getTime();
    const applied = new Set<string>();
    for (const w of batch.writes) {
      const row = this.jobs.get(w.jobId);
      if (!row || row.status !== w.expect.status || row.attempt !== w.expect.attempt) continue;
      applied.add(w.jobId);
      const c = w.after.context;
      Object.assign(row, {
        status: w.after.status,
        statusReason: c.statusReason,
        attempt: c.attempt,
        nodeId: c.nodeId,
        gpuIndices: c.nodeId ? [...c.gpuIndices] : null,
        placements: c.placements.length > 0 ? c.placements.map((p) => ({ node_id: p.node_id, gpu_indices: [...p.gpu_indices] })) : null,
        preemptedBy: c.preemptedBy,
        preemptions: c.preemptions,
        memberFailure: c.memberFailure,
        exitCode: c.exitCode,
      } satisfies Partial<JobRecord>);
      if (row.status === 'pending') this.pending.add(row.id);
      else this.pending.delete(row.id);
      const h = this.history.get(row.id)!;
      if (w.stamps.includes('scheduled_at')) row.scheduledAt = at;
      if (w.stamps.includes('started_at')) {
        this.started++;
        if (h.firstStartedAt === null) h.firstStartedAt = at;
      }
      if (w.stamps.includes('finished_at')) {
        this.finished++;
        h.finishedAt = at;
      }
    }
    // Releases first, then inserts: a pass never places a GPU it frees (see CoordinatorStore).
    for (const w of batch.writes) {
      if (!applied.has(w.jobId)) continue;
      for (const r of w.releases) this.release(r.job_id, r.attempt, null, at);
    }
    for (const r of batch.releases) this.release(r.job_id, r.attempt, r.node_id ?? null, at);
    for (const w of batch.writes) {
      if (!applied.has(w.jobId)) continue;
      for (const a of w.allocations) {
        const key = allocKey(w.jobId, a.attempt, a.node_id);
        let alloc = this.allocations.get(key);
        if (!alloc) {
          alloc = { jobId: w.jobId, attempt: a.attempt, nodeId: a.node_id, gpuIndices: [], createdAt: at };
          this.allocations.set(key, alloc);
          let set = this.allocsByJob.get(w.jobId);
          if (!set) this.allocsByJob.set(w.jobId, (set = new Set()));
          set.add(key);
        }
        alloc.gpuIndices.push(a.gpu_index);
      }
    }
    for (const n of batch.nodeUpserts) {
      this.nodes.set(n.id, { id: n.id, pool: n.pool, state: n.state, stateReason: n.stateReason, runtime: n.runtime, cpuCores: n.cpuCores, ramGb: n.ramGb, drainRequested: n.drainRequested, blockId: n.blockId, addr: n.addr, gpus: n.gpus.map((g) => ({ ...g })) });
    }
    for (const s of batch.nodeStates) {
      const n = this.nodes.get(s.id);
      if (n) Object.assign(n, { state: s.state, stateReason: s.stateReason, drainRequested: s.drainRequested });
    }
    for (const id of batch.nodeDeletes) this.nodes.delete(id);
    return applied;
  }

  private release(jobId: string, attempt: number, nodeId: string | null, at: number): void {
    const keys = this.allocsByJob.get(jobId);
    if (!keys) return;
    const job = this.jobs.get(jobId)!;
    const price = job.tier === 'FAST' ? this.prices.FAST : this.prices.FLEX;
    for (const key of [...keys]) {
      const a = this.allocations.get(key)!;
      if (a.attempt !== attempt || (nodeId !== null && a.nodeId !== nodeId)) continue;
      const gpuSeconds = (a.gpuIndices.length * Math.max(0, at - a.createdAt)) / 1000;
      this.usage.push({ jobId, attempt, nodeId: a.nodeId, gpus: a.gpuIndices.length, gpuSeconds, costUsd: (gpuSeconds / 3600) * price });
      this.allocations.delete(key);
      keys.delete(key);
    }
    if (keys.size === 0) this.allocsByJob.delete(jobId);
  }
}

/** The coordinator changes the records it is given: hand out copies, as rows read from Postgres would be. */
function copy(j: JobRecord): JobRecord {
  return {
    ...j,
    command: [...j.command],
    env: { ...j.env },
    gpuIndices: j.gpuIndices ? [...j.gpuIndices] : null,
    placements: j.placements ? j.placements.map((p) => ({ node_id: p.node_id, gpu_indices: [...p.gpu_indices] })) : null,
  };
}
