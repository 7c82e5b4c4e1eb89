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
import type { JobStatus, MemberFailure } from '../../machines/job.machine.ts';
import type { NodeState } from '../../machines/node.machine.ts';
import type { GpuInfo, NodeSlice, Pool, Tier } from '../../src/domain/cluster.ts';
import { STAMP_COLUMNS } from '../../machines/job.step.ts';
import { isJobFailureCode } from '../../machines/job.failure.ts';
import type { ActiveAllocation, Batch, CoordinatorStorePort, JobRecord, Prices, StoredNode } from './ports.ts';

const JOB_COLUMNS = `id, seq, user_id, tier, status, status_reason, failure_code, priority, gpu_count, vram_per_gpu_gb, cpu_cores, ram_gb,
  expected_duration_sec, image, command, env, attempt, max_attempts, node_id, gpu_indices, exit_code,
  node_count, placements, preempted_by, preemptions, member_failure, created_at, scheduled_at`;

const ms = (v: unknown): number | null => (v === null || v === undefined ? null : new Date(v as string).getTime());

function toJobRecord(r: Record<string, unknown>): JobRecord {
  return {
    id: r.id as string,
    seq: Number(r.seq),
    tier: r.tier as Tier,
    status: r.status as JobStatus,
    statusReason: (r.status_reason as string | null) ?? null,
    failureCode: isJobFailureCode(r.failure_code) ? r.failure_code : null,
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
    userId: r.user_id as string,
    nodeCount: Number(r.node_count ?? 1),
    placements: (r.placements as NodeSlice[] | null) ?? null,
    preemptedBy: (r.preempted_by as string | null) ?? null,
    preemptions: Number(r.preemptions ?? 0),
    memberFailure: (r.member_failure as MemberFailure | null) ?? null,
    createdAt: ms(r.created_at) ?? 0,
    scheduledAt: ms(r.scheduled_at),
  };
}


/** Every timestamp column a transition can stamp. */
const ALL_STAMP_COLUMNS = [...new Set(Object.values(STAMP_COLUMNS).flat())];


export class CoordinatorStore implements CoordinatorStorePort {
  constructor(
    private readonly orm: MikroORM,
    private readonly prices: Prices = { FAST: 0, FLEX: 0 },
  ) {}

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
      blockId: (n.block_id as string | null) ?? null,
      addr: (n.addr as string | null) ?? null,
      gpus: byNode.get(n.id as string) ?? [],
    }));
  }

  /** When each capacity block ends (ms; null: never), for the block_time filter. */
  async loadBlockEnds(): Promise<Map<string, number | null>> {
    const rows = await this.em().execute(`select id, ends_at from capacity_blocks where status <> 'released'`);
    return new Map(rows.map((r: Record<string, unknown>) => [r.id as string, ms(r.ends_at)]));
  }

  /** Fair-share weights that differ from 1, by user id. */
  async loadUserWeights(): Promise<Map<string, number>> {
    const rows = await this.em().execute(`select id, fair_share_weight from users where fair_share_weight <> 1`);
    return new Map(rows.map((r: Record<string, unknown>) => [r.id as string, Number(r.fair_share_weight)]));
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
    const hasNodes = batch.nodeUpserts.length > 0 || batch.nodeStates.length > 0 || batch.heartbeats.size > 0 || batch.nodeDeletes.length > 0;
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
        failure_code: c.failureCode,
        attempt: c.attempt,
        node_id: c.nodeId,
        gpu_indices: c.nodeId ? c.gpuIndices : null,
        placements: c.placements.length > 0 ? c.placements : null,
        preempted_by: c.preemptedBy,
        preemptions: c.preemptions,
        member_failure: c.memberFailure,
        has_placement: w.placement !== undefined,
        placement: w.placement ?? null,
        exit_code: c.exitCode,
        stamps: `,${w.stamps.join(',')},`,
      };
    });
    const events = batch.writes.flatMap((w) => w.events.map((e) => ({ job_id: w.jobId, ...e })));
    const allocs = batch.writes.flatMap((w) => w.allocations.map((a) => ({ job_id: w.jobId, ...a })));
    const releases = [
      ...batch.writes.flatMap((w) => w.releases.map((r) => ({ ...r, node_id: null, always: false }))),
      ...batch.releases.map((r) => ({ ...r, node_id: r.node_id ?? null, always: true })),
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
           status_reason text, failure_code text, attempt int, node_id text, gpu_indices jsonb, placements jsonb, preempted_by uuid,
           preemptions int, member_failure jsonb, has_placement boolean, placement jsonb, exit_code int, stamps text)
       ), upd as (
         update jobs j set status = w.status, status_reason = w.status_reason, failure_code = w.failure_code, attempt = w.attempt, node_id = w.node_id,
           gpu_indices = nullif(w.gpu_indices, 'null'::jsonb), placements = nullif(w.placements, 'null'::jsonb),
           preempted_by = w.preempted_by, preemptions = w.preemptions, member_failure = nullif(w.member_failure, 'null'::jsonb),
           placement = case when w.has_placement then nullif(w.placement, 'null'::jsonb) else j.placement end,
           exit_code = w.exit_code, updated_at = ?::timestamptz,
           ${stampSql}
         from w where j.id = w.id and j.status = w.exp_status and j.attempt = w.exp_attempt
         returning j.id
       ), ev as (
         insert into job_events (job_id, attempt, from_status, to_status, event, reason, failure_code, created_at)
         select e.job_id, e.attempt, e.from_status, e.to_status, e.event, e.reason, e.failure_code, ?::timestamptz
           from jsonb_to_recordset(?::jsonb) as e(job_id uuid, attempt int, from_status text, to_status text, event text, reason text, failure_code text)
          where e.job_id in (select id from upd)
       ), rel as (
         update allocations a set released_at = ?::timestamptz
           from jsonb_to_recordset(?::jsonb) as r(job_id uuid, attempt int, node_id text, always boolean)
          where a.job_id = r.job_id and a.attempt = r.attempt and a.released_at is null
            and (r.node_id is null or a.node_id = r.node_id)
            and (r.always or r.job_id in (select id from upd))
          returning a.job_id, a.attempt, a.node_id, a.created_at
       ), usage as (
         -- What each released attempt used on each node, priced by the job's tier.
         insert into usage_records (job_id, attempt, node_id, user_id, tier, gpu_count, gpu_seconds, cost_usd, started_at, ended_at)
         select r.job_id, r.attempt, r.node_id, j.user_id, j.tier, count(*),
                sum(greatest(0, extract(epoch from (?::timestamptz - r.created_at)))),
                sum(greatest(0, extract(epoch from (?::timestamptz - r.created_at)))) / 3600.0
                  * case when j.tier = 'FAST' then ?::float8 else ?::float8 end,
                min(r.created_at), ?::timestamptz
           from rel r join jobs j on j.id = r.job_id
          group by r.job_id, r.attempt, r.node_id, j.user_id, j.tier
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
        now,
        this.prices.FAST,
        this.prices.FLEX,
        now,
        now,
        JSON.stringify(allocs),
      ],
    );
    return new Set(res.map((r) => r.id));
  }

  private async writeNodes(tx: EntityManager, batch: Batch, now: Date): Promise<void> {
    for (const n of batch.nodeUpserts) {
      await tx.execute(
        `insert into nodes (id, pool, state, state_reason, runtime, cpu_cores, ram_gb, drain_requested, block_id, addr, registered_at, last_heartbeat_at, updated_at)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         on conflict (id) do update set pool = excluded.pool, state = excluded.state, state_reason = excluded.state_reason,
           runtime = excluded.runtime, cpu_cores = excluded.cpu_cores, ram_gb = excluded.ram_gb,
           drain_requested = excluded.drain_requested, block_id = excluded.block_id, addr = excluded.addr, registered_at = excluded.registered_at,
           last_heartbeat_at = excluded.last_heartbeat_at, updated_at = excluded.updated_at`,
        [n.id, n.pool, n.state, n.stateReason, n.runtime, n.cpuCores, n.ramGb, n.drainRequested, n.blockId, n.addr, now, now, now],
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
    if (batch.nodeDeletes.length > 0) {
      // Their GPUs go with them (cascade); allocations and usage keep the node id as history.
      await tx.execute(`delete from nodes where id in (select value from jsonb_array_elements_text(?::jsonb))`, [JSON.stringify(batch.nodeDeletes)]);
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
