/**
 * The coordinator's durable record, in memory: CoordinatorStorePort with the
 * semantics of the Postgres CoordinatorStore that matter to scheduling:
 *
 * - a write applies only while the row still holds the expected status and
 *   attempt, and its allocations and releases go with it;
 * - releases not tied to a transition (a gang member ended, a kill was
 *   confirmed) always apply;
 * - every released allocation becomes a usage record (GPU-seconds from
 *   placement to release, priced by the job's tier), as in usage_records;
 * - a GPU has at most one active holder (allocations_active_gpu_uniq): a
 *   batch that would double-book one throws and writes nothing;
 * - reads come back in the order Postgres gives them where it gives one
 *   (pending ids by submission order, nodes by id, GPUs by index).
 *
 * test/contract/coordinator-store.contract.ts holds both stores to this.
 *
 * It also keeps what the simulator reports from: when each job first
 * started, and the usage of every attempt.
 */
import type { ActiveAllocation, Batch, CoordinatorStorePort, JobRecord, JobWrite, Prices, StoredNode } from '../../../actors/coordinator/ports.ts';
import { isTerminal } from '../../../machines/job.machine.ts';
import type { JobFailureCode } from '../../../machines/job.failure.ts';

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

/** A job_events row (kept only with `keepEvents`: the replay never reads them). */
export interface MemoryJobEvent {
  job_id: string;
  attempt: number;
  from_status: string;
  to_status: string;
  event: string;
  reason: string | null;
  failure_code: JobFailureCode | null;
  at: number;
}

/** An active allocation to seed: one attempt's GPUs on one node. */
export interface AllocationSeed {
  jobId: string;
  attempt: number;
  nodeId: string;
  gpuIndices: number[];
  /** ms since the epoch. */
  createdAt: number;
}

/** Per job, what the replay reports from (times in ms). */
export interface JobHistory {
  firstStartedAt: number | null;
  finishedAt: number | null;
}

const allocKey = (jobId: string, attempt: number, nodeId: string) => `${jobId}\u0000${attempt}\u0000${nodeId}`;
const gpuKey = (nodeId: string, gpu: number) => `${nodeId}\u0000${gpu}`;

/** What Postgres's unique index says when a GPU would get a second active holder. */
export class DoubleBookedGpuError extends Error {
  constructor(nodeId: string, gpu: number) {
    super(`GPU ${gpu} of node ${nodeId} already has an active allocation (allocations_active_gpu_uniq)`);
  }
}

export class MemoryCoordinatorStore implements CoordinatorStorePort {
  private readonly jobs = new Map<string, JobRecord>();
  private readonly pending = new Set<string>();
  private readonly allocations = new Map<string, Allocation>();
  /** Active allocation keys by job. */
  private readonly allocsByJob = new Map<string, Set<string>>();
  /** The active allocation (key) holding each GPU (node, index). */
  private readonly gpuHolders = new Map<string, string>();
  private readonly nodes = new Map<string, StoredNode>();
  /** users.fair_share_weight where it is not 1. */
  private readonly userWeights = new Map<string, number>();
  /** job_events, oldest first; null unless asked for. */
  readonly events: MemoryJobEvent[] | null;
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
    opts: { keepEvents?: boolean } = {},
  ) {
    this.events = opts.keepEvents ? [] : null;
  }

  /** Job rows, numbered in this order (POST /jobs inserts pending ones; tests seed any status). */
  insertJobs(recs: Omit<JobRecord, 'seq'>[]): void {
    for (const r of recs) {
      if (this.jobs.has(r.id)) throw new Error(`job ${r.id} exists`);
      this.jobs.set(r.id, copy({ ...r, seq: ++this.seq }));
      if (r.status === 'pending') this.pending.add(r.id);
      this.history.set(r.id, { firstStartedAt: null, finishedAt: null });
    }
  }

  /** Node rows as an agent's registration would leave them. */
  insertNodes(nodes: StoredNode[]): void {
    for (const n of nodes) this.nodes.set(n.id, copyNode(n));
  }

  /** Active allocations (what placements committed earlier hold). */
  insertAllocations(allocs: AllocationSeed[]): void {
    const claimed = new Set<string>();
    for (const a of allocs) {
      if (!this.jobs.has(a.jobId)) throw new Error(`job ${a.jobId} does not exist`);
      for (const g of a.gpuIndices) this.claim(claimed, new Set(), a.nodeId, g);
    }
    for (const a of allocs) for (const g of a.gpuIndices) this.addAllocation(a.jobId, a.attempt, a.nodeId, g, a.createdAt);
  }

  /** A user's fair-share weight (users.fair_share_weight; 1 is the default). */
  setUserWeight(userId: string, weight: number): void {
    if (!(weight > 0)) throw new Error(`fair-share weight must be > 0, got ${weight}`);
    if (weight === 1) this.userWeights.delete(userId);
    else this.userWeights.set(userId, weight);
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
    // In submission order (`order by seq`): jobs enter the set in seq order, and no transition leads back to pending.
    return [...this.pending].slice(0, limit);
  }

  async loadJobs(ids: string[]): Promise<JobRecord[]> {
    return [...new Set(ids)].flatMap((id) => {
      const j = this.jobs.get(id);
      return j ? [copy(j)] : [];
    });
  }

  async loadPending(ids: string[]): Promise<JobRecord[]> {
    return [...new Set(ids)].flatMap((id) => (this.pending.has(id) ? [copy(this.jobs.get(id)!)] : []));
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
    return [...this.nodes.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map(copyNode);
  }

  async loadBlockEnds(): Promise<Map<string, number | null>> {
    return this.blockEnds();
  }

  async loadUserWeights(): Promise<Map<string, number>> {
    return new Map(this.userWeights);
  }

  // ---------------------------------------------------------------- the write

  async commit(batch: Batch, now: Date): Promise<Set<string>> {
    const at = now.getTime();
    // Which writes apply: the row still holds the expected status and attempt.
    const applied = new Set<string>();
    for (const w of batch.writes) {
      const row = this.jobs.get(w.jobId);
      if (row && row.status === w.expect.status && row.attempt === w.expect.attempt) applied.add(w.jobId);
    }
    const applies = batch.writes.filter((w) => applied.has(w.jobId));
    // Releases first, then inserts (a pass never places a GPU it frees; see
    // CoordinatorStore). A GPU that would get a second active holder fails
    // the whole batch before anything changes, as the unique index does.
    const releases = [
      ...applies.flatMap((w) => w.releases.map((r) => ({ jobId: r.job_id, attempt: r.attempt, nodeId: null as string | null }))),
      ...batch.releases.map((r) => ({ jobId: r.job_id, attempt: r.attempt, nodeId: r.node_id ?? null })),
    ];
    const freed = new Set(releases.flatMap((r) => this.keysOf(r.jobId, r.attempt, r.nodeId)));
    const claimed = new Set<string>();
    for (const w of applies) for (const a of w.allocations) this.claim(claimed, freed, a.node_id, a.gpu_index);

    for (const w of applies) this.applyWrite(w, at);
    for (const r of releases) this.release(r.jobId, r.attempt, r.nodeId, at);
    for (const w of applies) for (const a of w.allocations) this.addAllocation(w.jobId, a.attempt, a.node_id, a.gpu_index, at);
    for (const n of batch.nodeUpserts) this.nodes.set(n.id, copyNode(n));
    for (const s of batch.nodeStates) {
      const n = this.nodes.get(s.id);
      if (n) Object.assign(n, { state: s.state, stateReason: s.stateReason, drainRequested: s.drainRequested });
    }
    for (const id of batch.nodeDeletes) this.nodes.delete(id);
    return applied;
  }

  private applyWrite(w: JobWrite, at: number): void {
    const row = this.jobs.get(w.jobId)!;
    const c = w.after.context;
    Object.assign(row, {
      status: w.after.status,
      statusReason: c.statusReason,
      failureCode: c.failureCode,
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
    if (this.events) for (const e of w.events) this.events.push({ job_id: w.jobId, ...e, at });
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

  /** Keys of a job attempt's active allocations (on one node, or all). */
  private keysOf(jobId: string, attempt: number, nodeId: string | null): string[] {
    return [...(this.allocsByJob.get(jobId) ?? [])].filter((key) => {
      const a = this.allocations.get(key)!;
      return a.attempt === attempt && (nodeId === null || a.nodeId === nodeId);
    });
  }

  /**
   * Marks a GPU claimed by an insert, or throws if an active allocation
   * (but those in `freed`) or an earlier insert already holds it.
   */
  private claim(claimed: Set<string>, freed: Set<string>, nodeId: string, gpu: number): void {
    const key = gpuKey(nodeId, gpu);
    const holder = this.gpuHolders.get(key);
    if (claimed.has(key) || (holder !== undefined && !freed.has(holder))) throw new DoubleBookedGpuError(nodeId, gpu);
    claimed.add(key);
  }

  private addAllocation(jobId: string, attempt: number, nodeId: string, gpu: number, at: number): void {
    const key = allocKey(jobId, attempt, nodeId);
    let alloc = this.allocations.get(key);
    if (!alloc) {
      alloc = { jobId, attempt, nodeId, gpuIndices: [], createdAt: at };
      this.allocations.set(key, alloc);
      let set = this.allocsByJob.get(jobId);
      if (!set) this.allocsByJob.set(jobId, (set = new Set()));
      set.add(key);
    }
    alloc.gpuIndices.push(gpu);
    this.gpuHolders.set(gpuKey(nodeId, gpu), key);
  }

  private release(jobId: string, attempt: number, nodeId: string | null, at: number): void {
    const keys = this.allocsByJob.get(jobId);
    if (!keys) return;
    const job = this.jobs.get(jobId)!;
    const price = job.tier === 'FAST' ? this.prices.FAST : this.prices.FLEX;
    for (const key of this.keysOf(jobId, attempt, nodeId)) {
      const a = this.allocations.get(key)!;
      const gpuSeconds = (a.gpuIndices.length * Math.max(0, at - a.createdAt)) / 1000;
      this.usage.push({ jobId, attempt, nodeId: a.nodeId, gpus: a.gpuIndices.length, gpuSeconds, costUsd: (gpuSeconds / 3600) * price });
      for (const g of a.gpuIndices) this.gpuHolders.delete(gpuKey(a.nodeId, g));
      this.allocations.delete(key);
      keys.delete(key);
    }
    if (keys.size === 0) this.allocsByJob.delete(jobId);
  }
}

function copyNode(n: StoredNode): StoredNode {
  return { ...n, gpus: n.gpus.map((g) => ({ ...g })).sort((a, b) => a.index - b.index) };
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
