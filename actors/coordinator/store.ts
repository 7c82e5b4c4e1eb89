/**
 * The coordinator's reads and batched writes. Everything a pass decides is
 * written in one transaction: job transitions with their job_events rows,
 * allocation inserts and releases, node rows. Only after the commit does the
 * coordinator send commands (see coordinator.ts).
 *
 * Rows travel as one JSON parameter through `jsonb_to_recordset`, so a batch
 * of 1,000 transitions is a handful of statements, not 1,000 round trips.
 */
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { JobEvent, JobStatus } from '../../machines/job.machine.ts';
import type { NodeState } from '../../machines/node.machine.ts';
import type { AttemptRef, GpuInfo, Pool, Tier } from '../../src/domain/cluster.ts';
import { STAMP_COLUMNS, type JobState } from '../job-transitions.ts';

/** A job as the coordinator keeps it in memory. */
export interface JobRecord {
  id: string;
  seq: number;
  tier: Tier;
  status: JobStatus;
  statusReason: string | null;
  priority: number;
  gpuCount: number;
  vramPerGpuGb: number;
  cpuCores: number;
  ramGb: number;
  expectedDurationSec: number;
  image: string;
  command: string[];
  env: Record<string, string>;
  attempt: number;
  maxAttempts: number;
  nodeId: string | null;
  gpuIndices: number[] | null;
  exitCode: number | null;
}

const JOB_COLUMNS = `id, seq, tier, status, status_reason, priority, gpu_count, vram_per_gpu_gb, cpu_cores, ram_gb,
  expected_duration_sec, image, command, env, attempt, max_attempts, node_id, gpu_indices, exit_code`;

function toJobRecord(r: Record<string, unknown>): JobRecord {
  return {
    id: r.id as string,
    seq: Number(r.seq),
    tier: r.tier as Tier,
    status: r.status as JobStatus,
    statusReason: (r.status_reason as string | null) ?? null,
    priority: Number(r.priority),
    gpuCount: Number(r.gpu_count),
    vramPerGpuGb: Number(r.vram_per_gpu_gb),
    cpuCores: Number(r.cpu_cores),
    ramGb: Number(r.ram_gb),
    expectedDurationSec: Number(r.expected_duration_sec),
    image: r.image as string,
    command: r.command as string[],
    env: r.env as Record<string, string>,
    attempt: Number(r.attempt),
    maxAttempts: Number(r.max_attempts),
    nodeId: (r.node_id as string | null) ?? null,
    gpuIndices: (r.gpu_indices as number[] | null) ?? null,
    exitCode: r.exit_code === null || r.exit_code === undefined ? null : Number(r.exit_code),
  };
}

export interface ActiveAllocation extends AttemptRef {
  nodeId: string;
  gpuIndices: number[];
  job: JobRecord;
}

export interface StoredNode {
  id: string;
  pool: Pool;
  state: NodeState;
  stateReason: string | null;
  runtime: string;
  cpuCores: number;
  ramGb: number;
  drainRequested: boolean;
  gpus: GpuInfo[];
}

/** One job's events for this batch. `attempt`, when set, must be current or the item is stale. */
export interface BatchItem {
  jobId: string;
  attempt?: number;
  events: JobEvent[];
}

/**
 * A job's planned change: the coordinator stepped the machine from the state
 * it holds in memory (`expect`); the row is written only if it still holds
 * that state, so a concurrent API cancel makes the write miss rather than
 * being overwritten.
 */
export interface JobWrite {
  jobId: string;
  expect: { status: JobStatus; attempt: number };
  after: JobState;
  /** snake_case timestamp columns to stamp. */
  stamps: string[];
  events: { attempt: number; from_status: JobStatus; to_status: JobStatus; event: string; reason: string | null }[];
  allocations: { attempt: number; node_id: string; gpu_index: number }[];
  /** Attempts whose allocations this change frees. */
  releases: AttemptRef[];
}

export interface NodeUpsert {
  id: string;
  pool: Pool;
  runtime: string;
  cpuCores: number;
  ramGb: number;
  gpus: GpuInfo[];
  state: NodeState;
  stateReason: string | null;
  drainRequested: boolean;
}

export interface NodeStateWrite {
  id: string;
  state: NodeState;
  stateReason: string | null;
  drainRequested: boolean;
}

export interface Batch {
  /** What the inputs asked for; the coordinator turns them into `writes`. */
  items: BatchItem[];
  writes: JobWrite[];
  /** Allocations to free that no transition releases (a cancelled job's kill was confirmed). */
  releases: AttemptRef[];
  nodeUpserts: NodeUpsert[];
  nodeStates: NodeStateWrite[];
  /** node id → time of its latest heartbeat. */
  heartbeats: Map<string, Date>;
}

export const emptyBatch = (): Batch => ({ items: [], writes: [], releases: [], nodeUpserts: [], nodeStates: [], heartbeats: new Map() });

export function batchIsEmpty(b: Batch): boolean {
  return b.items.length === 0 && b.writes.length === 0 && b.releases.length === 0 && b.nodeUpserts.length === 0 && b.nodeStates.length === 0 && b.heartbeats.size === 0;
}

/** Every timestamp column a transition can stamp. */
const ALL_STAMP_COLUMNS = [...new Set(Object.values(STAMP_COLUMNS).flat())];

export class CoordinatorStore {
  constructor(private readonly orm: MikroORM) {}

  private em(): EntityManager {
    return this.orm.em.fork();
  }

  async loadLiveJobs(): Promise<JobRecord[]> {
    const rows = await this.em().execute(
      `select ${JOB_COLUMNS} from jobs where status in ('pending','queued','scheduled','running') order by seq`,
    );
    return rows.map(toJobRecord);
  }

  /** Ids of the oldest pending jobs (the sweep's cheap first look: most are usually already known). */
  async pendingIds(limit = 5000): Promise<string[]> {
    const rows = await this.em().execute(`select id from jobs where status = 'pending' order by seq limit ?`, [limit]);
    return rows.map((r) => r.id as string);
  }

  /** These jobs, as they are now (missing ids are left out). */
  loadJobs(ids: string[]): Promise<JobRecord[]> {
    return this.jobsById(ids);
  }

  /** Those of these jobs that are still pending. */
  loadPending(ids: string[]): Promise<JobRecord[]> {
    return this.jobsById(ids, `and status = 'pending'`);
  }

  private async jobsById(ids: string[], filter = ''): Promise<JobRecord[]> {
    if (ids.length === 0) return [];
    const rows = await this.em().execute(
      `select ${JOB_COLUMNS} from jobs where id in (select value::uuid from jsonb_array_elements_text(?::jsonb)) ${filter}`,
      [JSON.stringify(ids)],
    );
    return rows.map(toJobRecord);
  }

  /** Finished jobs that still hold GPUs: their kill confirmation is outstanding (or their cancel message was lost). */
  async loadFinishedHoldingGpus(): Promise<string[]> {
    const rows = await this.em().execute(
      `select distinct a.job_id from allocations a join jobs j on j.id = a.job_id
        where a.released_at is null and j.status in ('completed','failed','cancelled')`,
    );
    return rows.map((r) => r.job_id as string);
  }

  /** Every active allocation, one entry per (job, attempt), with its job. */
  async loadActiveAllocations(): Promise<ActiveAllocation[]> {
    const rows = await this.em().execute(
      `select a.job_id as alloc_job, a.attempt as alloc_attempt, a.node_id as alloc_node,
              array_agg(a.gpu_index order by a.gpu_index) as alloc_gpus, ${JOB_COLUMNS.replace(/(\w+)/g, 'j.$1')}
         from allocations a join jobs j on j.id = a.job_id
        where a.released_at is null
        group by a.job_id, a.attempt, a.node_id, j.id`,
    );
    return rows.map((r: Record<string, unknown>) => ({
      job_id: r.alloc_job as string,
      attempt: Number(r.alloc_attempt),
      nodeId: r.alloc_node as string,
      gpuIndices: (r.alloc_gpus as number[]).map(Number),
      job: toJobRecord(r),
    }));
  }

  async loadNodes(): Promise<StoredNode[]> {
    const em = this.em();
    const nodes = await em.execute(`select * from nodes order by id`);
    const gpus = await em.execute(`select node_id, index, uuid, model, vram_gb from gpus order by node_id, index`);
    const byNode = new Map<string, GpuInfo[]>();
    for (const g of gpus) {
      const list = byNode.get(g.node_id) ?? [];
      list.push({ index: Number(g.index), uuid: g.uuid, model: g.model, vram_gb: Number(g.vram_gb) });
      byNode.set(g.node_id, list);
    }
    return nodes.map((n: Record<string, unknown>) => ({
      id: n.id as string,
      pool: n.pool as Pool,
      state: n.state as NodeState,
      stateReason: (n.state_reason as string | null) ?? null,
      runtime: n.runtime as string,
      cpuCores: Number(n.cpu_cores),
      ramGb: Number(n.ram_gb),
      drainRequested: Boolean(n.drain_requested),
      gpus: byNode.get(n.id as string) ?? [],
    }));
  }

  /**
   * Writes a batch atomically and returns the ids of the jobs whose change
   * was applied. The job changes, their job_events rows, allocation inserts
   * and releases are ONE statement (data-modifying CTEs): a single round
   * trip, atomic on its own. A row that no longer holds the expected status
   * and attempt is left alone, and so are its events and allocations.
   * Node rows, when there are any, join it in one transaction.
   */
  async commit(batch: Batch, now = new Date()): Promise<Set<string>> {
    const hasNodes = batch.nodeUpserts.length > 0 || batch.nodeStates.length > 0 || batch.heartbeats.size > 0;
    const hasJobs = batch.writes.length > 0 || batch.releases.length > 0;
    if (!hasNodes) return hasJobs ? this.writeJobs(this.em(), batch, now) : new Set();
    return this.em().transactional(async (tx) => {
      const applied = hasJobs ? await this.writeJobs(tx, batch, now) : new Set<string>();
      await this.writeNodes(tx, batch, now);
      return applied;
    });
  }

  private async writeJobs(em: EntityManager, batch: Batch, now: Date): Promise<Set<string>> {
    const rows = batch.writes.map((w) => {
      const c = w.after.context;
      return {
        id: w.jobId,
        exp_status: w.expect.status,
        exp_attempt: w.expect.attempt,
        status: w.after.status,
        status_reason: c.statusReason,
        attempt: c.attempt,
        node_id: c.nodeId,
        gpu_indices: c.nodeId ? c.gpuIndices : null,
        exit_code: c.exitCode,
        stamps: `,${w.stamps.join(',')},`,
      };
    });
    const events = batch.writes.flatMap((w) => w.events.map((e) => ({ job_id: w.jobId, ...e })));
    const allocs = batch.writes.flatMap((w) => w.allocations.map((a) => ({ job_id: w.jobId, ...a })));
    const releases = [
      ...batch.writes.flatMap((w) => w.releases.map((r) => ({ ...r, always: false }))),
      ...batch.releases.map((r) => ({ ...r, always: true })),
    ];
    const stampSql = ALL_STAMP_COLUMNS.map(
      (col) => `${col} = case when strpos(w.stamps, ',${col},') > 0 then ?::timestamptz else j.${col} end`,
    ).join(',\n        ');
    // Two sub-statements touch allocations: `rel` frees rows of attempts that
    // ended, `ins` adds rows for new placements. The coordinator never places
    // a GPU in the pass that frees it, so they never meet on one GPU.
    const res: { id: string }[] = await em.execute(
      `with w as (
         select * from jsonb_to_recordset(?::jsonb) as x(id uuid, exp_status text, exp_attempt int, status text,
           status_reason text, attempt int, node_id text, gpu_indices jsonb, exit_code int, stamps text)
       ), upd as (
         update jobs j set status = w.status, status_reason = w.status_reason, attempt = w.attempt, node_id = w.node_id,
           gpu_indices = nullif(w.gpu_indices, 'null'::jsonb), exit_code = w.exit_code, updated_at = ?::timestamptz,
           ${stampSql}
         from w where j.id = w.id and j.status = w.exp_status and j.attempt = w.exp_attempt
         returning j.id
       ), ev as (
         insert into job_events (job_id, attempt, from_status, to_status, event, reason, created_at)
         select e.job_id, e.attempt, e.from_status, e.to_status, e.event, e.reason, ?::timestamptz
           from jsonb_to_recordset(?::jsonb) as e(job_id uuid, attempt int, from_status text, to_status text, event text, reason text)
          where e.job_id in (select id from upd)
       ), rel as (
         update allocations a set released_at = ?::timestamptz
           from jsonb_to_recordset(?::jsonb) as r(job_id uuid, attempt int, always boolean)
          where a.job_id = r.job_id and a.attempt = r.attempt and a.released_at is null
            and (r.always or r.job_id in (select id from upd))
       ), ins as (
         insert into allocations (job_id, attempt, node_id, gpu_index, created_at)
         select a.job_id, a.attempt, a.node_id, a.gpu_index, ?::timestamptz
           from jsonb_to_recordset(?::jsonb) as a(job_id uuid, attempt int, node_id text, gpu_index int)
          where a.job_id in (select id from upd)
       )
       select id from upd`,
      [
        JSON.stringify(rows),
        now,
        ...ALL_STAMP_COLUMNS.map(() => now),
        now,
        JSON.stringify(events),
        now,
        JSON.stringify(releases),
        now,
        JSON.stringify(allocs),
      ],
    );
    return new Set(res.map((r) => r.id));
  }

  private async writeNodes(tx: EntityManager, batch: Batch, now: Date): Promise<void> {
    for (const n of batch.nodeUpserts) {
      await tx.execute(
        `insert into nodes (id, pool, state, state_reason, runtime, cpu_cores, ram_gb, drain_requested, registered_at, last_heartbeat_at, updated_at)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         on conflict (id) do update set pool = excluded.pool, state = excluded.state, state_reason = excluded.state_reason,
           runtime = excluded.runtime, cpu_cores = excluded.cpu_cores, ram_gb = excluded.ram_gb,
           drain_requested = excluded.drain_requested, registered_at = excluded.registered_at,
           last_heartbeat_at = excluded.last_heartbeat_at, updated_at = excluded.updated_at`,
        [n.id, n.pool, n.state, n.stateReason, n.runtime, n.cpuCores, n.ramGb, n.drainRequested, now, now, now],
      );
      await tx.execute(`delete from gpus where node_id = ?`, [n.id]);
      if (n.gpus.length > 0) {
        await tx.execute(
          `insert into gpus (node_id, index, uuid, model, vram_gb)
           select ?, g.index, g.uuid, g.model, g.vram_gb from jsonb_to_recordset(?::jsonb) as g(index int, uuid text, model text, vram_gb float8)`,
          [n.id, JSON.stringify(n.gpus)],
        );
      }
    }
    if (batch.nodeStates.length > 0) {
      await tx.execute(
        `update nodes n set state = s.state, state_reason = s.state_reason, drain_requested = s.drain_requested, updated_at = ?::timestamptz
           from jsonb_to_recordset(?::jsonb) as s(id text, state text, state_reason text, drain_requested boolean)
          where n.id = s.id`,
        [now, JSON.stringify(batch.nodeStates.map((s) => ({ id: s.id, state: s.state, state_reason: s.stateReason, drain_requested: s.drainRequested })))],
      );
    }
    if (batch.heartbeats.size > 0) {
      await tx.execute(
        `update nodes n set last_heartbeat_at = h.at
           from jsonb_to_recordset(?::jsonb) as h(id text, at timestamptz) where n.id = h.id`,
        [JSON.stringify([...batch.heartbeats].map(([id, at]) => ({ id, at })))],
      );
    }
  }
}
