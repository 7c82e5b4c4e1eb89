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
import type { JobEffect, JobEffectParams, JobEvent, JobStatus } from '../../machines/job.machine.ts';
import type { NodeState } from '../../machines/node.machine.ts';
import type { AttemptRef, GpuInfo, Pool, Tier } from '../../src/domain/cluster.ts';
import { jobStateOf, stepJob, STAMP, type JobState } from '../job-transitions.ts';

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

export interface ItemOutcome {
  jobId: string;
  kind: 'applied' | 'refused' | 'stale' | 'not_found';
  /** The events the machine took, in order (a refused one stops the item). */
  applied: JobEvent[];
  before: JobState | null;
  after: JobState | null;
  effects: { type: JobEffect; params: JobEffectParams }[];
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
  items: BatchItem[];
  /** Allocations to free that no transition releases (a cancelled job's kill was confirmed). */
  releases: AttemptRef[];
  nodeUpserts: NodeUpsert[];
  nodeStates: NodeStateWrite[];
  /** node id → time of its latest heartbeat. */
  heartbeats: Map<string, Date>;
}

export const emptyBatch = (): Batch => ({ items: [], releases: [], nodeUpserts: [], nodeStates: [], heartbeats: new Map() });

export function batchIsEmpty(b: Batch): boolean {
  return b.items.length === 0 && b.releases.length === 0 && b.nodeUpserts.length === 0 && b.nodeStates.length === 0 && b.heartbeats.size === 0;
}

const snake = (camel: string) => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const STAMP_COLUMNS = ['queued_at', 'scheduled_at', 'started_at', 'completed_at', 'failed_at', 'cancelled_at', 'finished_at'];

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

  /** Jobs still pending: the given ones, or (without ids) the oldest `limit` of them. */
  async loadPending(ids?: string[], limit = 5000): Promise<JobRecord[]> {
    const rows = ids
      ? await this.em().execute(
          `select ${JOB_COLUMNS} from jobs where status = 'pending' and id in (select value::uuid from jsonb_array_elements_text(?::jsonb))`,
          [JSON.stringify(ids)],
        )
      : await this.em().execute(`select ${JOB_COLUMNS} from jobs where status = 'pending' order by seq limit ?`, [limit]);
    return rows.map(toJobRecord);
  }

  async loadJobs(ids: string[]): Promise<JobRecord[]> {
    if (ids.length === 0) return [];
    const rows = await this.em().execute(
      `select ${JOB_COLUMNS} from jobs where id in (select value::uuid from jsonb_array_elements_text(?::jsonb))`,
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
   * Writes a whole batch in one transaction and returns what each item did.
   * Job rows are locked (in id order, so two writers never deadlock) and the
   * machine is stepped from the locked row, so a concurrent API cancel always
   * wins or loses cleanly: a `place` on a job cancelled meanwhile is refused
   * and no allocation is written for it.
   */
  async commit(batch: Batch, now = new Date()): Promise<ItemOutcome[]> {
    return this.em().transactional(async (tx) => {
      const outcomes = batch.items.length > 0 ? await this.writeJobs(tx, batch.items, batch.releases, now) : [];
      if (batch.items.length === 0 && batch.releases.length > 0) await this.releaseAllocations(tx, batch.releases, now);
      await this.writeNodes(tx, batch, now);
      return outcomes;
    });
  }

  private async writeJobs(tx: EntityManager, items: BatchItem[], extraReleases: AttemptRef[], now: Date): Promise<ItemOutcome[]> {
    // Several items for one job (e.g. a start and an exit in one pass) are applied in order.
    const ids = [...new Set(items.map((i) => i.jobId))];
    const rows = await tx.execute(
      `select id, status, attempt, max_attempts, node_id, gpu_indices, exit_code, status_reason from jobs
        where id in (select value::uuid from jsonb_array_elements_text(?::jsonb)) order by id for update`,
      [JSON.stringify(ids)],
    );
    const state = new Map<string, JobState>();
    for (const r of rows) {
      state.set(
        r.id,
        jobStateOf({
          id: r.id,
          status: r.status,
          attempt: r.attempt,
          maxAttempts: r.max_attempts,
          nodeId: r.node_id,
          gpuIndices: r.gpu_indices,
          exitCode: r.exit_code,
          statusReason: r.status_reason,
        }),
      );
    }
    const stamps = new Map<string, Set<string>>();
    const changed = new Set<string>();
    const events: Record<string, unknown>[] = [];
    const allocs: Record<string, unknown>[] = [];
    const releases: AttemptRef[] = [...extraReleases];
    const outcomes: ItemOutcome[] = [];

    for (const item of items) {
      const before = state.get(item.jobId);
      if (!before) {
        outcomes.push({ jobId: item.jobId, kind: 'not_found', applied: [], before: null, after: null, effects: [] });
        continue;
      }
      if (item.attempt !== undefined && item.attempt !== before.context.attempt) {
        outcomes.push({ jobId: item.jobId, kind: 'stale', applied: [], before, after: before, effects: [] });
        continue;
      }
      let cur = before;
      const applied: JobEvent[] = [];
      const effects: ItemOutcome['effects'] = [];
      let refused = false;
      for (const ev of item.events) {
        const step = stepJob(cur, ev);
        if (step.kind === 'refused') {
          refused = true;
          break;
        }
        applied.push(ev);
        effects.push(...step.effects);
        if (step.changedStatus) {
          const set = stamps.get(item.jobId) ?? new Set<string>();
          for (const c of STAMP[step.next.status]) set.add(snake(c));
          stamps.set(item.jobId, set);
          events.push({
            job_id: item.jobId,
            attempt: step.next.context.attempt,
            from_status: cur.status,
            to_status: step.next.status,
            event: ev.type,
            reason: step.next.context.statusReason,
          });
        }
        if (ev.type === 'place') {
          for (const g of ev.gpu_indices) {
            allocs.push({ job_id: item.jobId, attempt: step.next.context.attempt, node_id: ev.node_id, gpu_index: g });
          }
        }
        for (const e of step.effects) {
          if (e.type === 'releaseGpus') releases.push({ job_id: e.params.jobId, attempt: e.params.attempt });
        }
        cur = step.next;
      }
      if (applied.length > 0) changed.add(item.jobId);
      state.set(item.jobId, cur);
      outcomes.push({
        jobId: item.jobId,
        kind: applied.length === 0 && refused ? 'refused' : 'applied',
        applied,
        before,
        after: cur,
        effects,
      });
    }

    if (changed.size > 0) {
      const updates = [...changed].map((id) => {
        const s = state.get(id)!;
        const c = s.context;
        return {
          id,
          status: s.status,
          status_reason: c.statusReason,
          attempt: c.attempt,
          node_id: c.nodeId,
          gpu_indices: c.nodeId ? c.gpuIndices : null,
          exit_code: c.exitCode,
          stamps: `,${[...(stamps.get(id) ?? [])].join(',')},`,
        };
      });
      const stampSql = STAMP_COLUMNS.map(
        (col) => `${col} = case when strpos(u.stamps, ',${col},') > 0 then ?::timestamptz else j.${col} end`,
      ).join(',\n  ');
      await tx.execute(
        `update jobs j set status = u.status, status_reason = u.status_reason, attempt = u.attempt, node_id = u.node_id,
           gpu_indices = nullif(u.gpu_indices, 'null'::jsonb), exit_code = u.exit_code, updated_at = ?::timestamptz,
           ${stampSql}
         from jsonb_to_recordset(?::jsonb) as u(id uuid, status text, status_reason text, attempt int, node_id text,
              gpu_indices jsonb, exit_code int, stamps text)
         where j.id = u.id`,
        [now, ...STAMP_COLUMNS.map(() => now), JSON.stringify(updates)],
      );
    }
    if (events.length > 0) {
      await tx.execute(
        `insert into job_events (job_id, attempt, from_status, to_status, event, reason, created_at)
         select e.job_id, e.attempt, e.from_status, e.to_status, e.event, e.reason, ?::timestamptz
           from jsonb_to_recordset(?::jsonb) as e(job_id uuid, attempt int, from_status text, to_status text, event text, reason text)`,
        [now, JSON.stringify(events)],
      );
    }
    // Release before insert: a GPU freed here is never reused in the same
    // batch (capacity is freed in memory only after the commit), but keep the
    // order that could never trip the unique index.
    if (releases.length > 0) await this.releaseAllocations(tx, releases, now);
    if (allocs.length > 0) {
      await tx.execute(
        `insert into allocations (job_id, attempt, node_id, gpu_index, created_at)
         select a.job_id, a.attempt, a.node_id, a.gpu_index, ?::timestamptz
           from jsonb_to_recordset(?::jsonb) as a(job_id uuid, attempt int, node_id text, gpu_index int)`,
        [now, JSON.stringify(allocs)],
      );
    }
    return outcomes;
  }

  private async releaseAllocations(tx: EntityManager, refs: AttemptRef[], now: Date): Promise<void> {
    await tx.execute(
      `update allocations a set released_at = ?::timestamptz
         from jsonb_to_recordset(?::jsonb) as r(job_id uuid, attempt int)
        where a.job_id = r.job_id and a.attempt = r.attempt and a.released_at is null`,
      [now, JSON.stringify(refs)],
    );
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
