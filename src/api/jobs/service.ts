import { createHash, randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { initialTransition } from 'xstate';
import { jobMachine, type JobStatus } from '../../../machines/job.machine.ts';
import type { Config } from '../../config/index.ts';
import { Job, JobEvent } from '../../db/entities.ts';
import { GroupCommitter } from '../../db/group-commit.ts';
import { ApiError } from '../common/errors.ts';
import type { JobFailureCode } from '../../../machines/job.failure.ts';
import type { Principal } from '../../auth/principal.ts';
import type { JobResponse, JobSubmitBody } from './schemas.ts';
import type { Tier } from '../../domain/cluster.ts';
import { seqPage } from '../common/cursor.ts';
import { toJobEventResponse, toJobResponse } from './serialize.ts';
import type { Bus } from '../../wire/connection.ts';
import { encodeJson, jobCancelReplySchema, type JobCancelRequest, type JobsSubmitted } from '../../wire/messages.ts';
import { askCoordinator, coordinatorUnavailable } from '../common/ask-coordinator.ts';

type JobRow = Omit<Job, 'seq' | 'user'> & { user: string };
type EventRow = Omit<JobEvent, 'id' | 'job'> & { job: string };

export interface SubmitResult {
  job: JobResponse;
  /** True when an Idempotency-Key matched an earlier request: this is that request's job. */
  replayed: boolean;
}

/** A Postgres unique violation: the only write error a submit expects. */
const isUniqueViolation = (e: unknown) => (e as { code?: string })?.code === '23505';

/**
 * Every transaction that inserts jobs takes this lock first (it is held until
 * commit) and stamps created_at under it. So `seq` order, commit order and
 * created_at order agree: GET /jobs, ordered by seq, is newest first by
 * created_at too, and a job never commits below a cursor someone already
 * holds. Without it two concurrent batches (or a batch and an idempotent
 * submit) could take their seqs in the other order than their timestamps.
 */
const JOB_INSERT_LOCK = 0x5ca1a1;
async function lockJobInserts(tx: EntityManager): Promise<Date> {
  await tx.execute('select pg_advisory_xact_lock(?)', [JOB_INSERT_LOCK]);
  return new Date();
}
function stamp(row: { job: JobRow; event: EventRow }, now: Date): void {
  row.job.createdAt = now;
  row.job.updatedAt = now;
  row.event.createdAt = now;
}

export interface JobServiceDeps {
  /**
   * Without a bus (some tests) nothing is published: the coordinator still
   * finds pending jobs by its sweep. Cancel needs it: without one it answers
   * 503 `coordinator_unavailable`.
   */
  bus?: Bus;
  log: Logger;
}

/**
 * Job submission, reads and cancel (a request to the coordinator, which
 * alone writes job status). Submissions are group-committed: the
 * inserts of concurrent requests share one transaction, and each request is
 * answered only once its row is committed.
 *
 * After each commit the coordinator is woken with one `jobsSubmitted`
 * message naming the batch's jobs. That publish is fire-and-forget: the
 * answer does not wait for it, and a lost wake-up only delays admission
 * until the coordinator's next sweep of pending jobs in Postgres.
 */
export class JobService {
  private readonly committer: GroupCommitter<{ job: JobRow; event: EventRow }, void>;
  private readonly bus: Bus | undefined;
  private readonly log: Logger;
  /** Wake-ups not yet acknowledged by JetStream; drain() waits for them. */
  private readonly publishing = new Set<Promise<void>>();

  constructor(
    private readonly orm: MikroORM,
    private readonly cfg: Config,
    deps: JobServiceDeps,
  ) {
    this.bus = deps.bus;
    this.log = deps.log;
    this.committer = new GroupCommitter((items) => this.writeBatch(items), {
      maxBatch: cfg.SCALAR_SUBMIT_BATCH_MAX,
      // Two batches in flight: one is being written while the next fills.
      maxInFlight: 2,
    });
  }

  private em(): EntityManager {
    return this.orm.em.fork();
  }

  /** Applies the documented defaults and builds the row and its first job_events row. */
  private newJob(principal: Principal, body: JobSubmitBody, now: Date): { job: JobRow; event: EventRow } {
    const id = randomUUID();
    // The machine decides the first status and its context; nothing here hard-codes "pending".
    const [snap] = initialTransition(jobMachine, { jobId: id, maxAttempts: this.cfg.SCALAR_MAX_ATTEMPTS });
    const status = snap.value as JobStatus;
    const job: JobRow = {
      id,
      user: principal.userId,
      tier: body.tier,
      status,
      statusReason: 'waiting for the coordinator to admit it',
      failureCode: null,
      gpuCount: body.gpu_count,
      nodeCount: body.node_count ?? 1,
      vramPerGpuGb: body.vram_per_gpu_gb ?? this.cfg.SCALAR_DEFAULT_VRAM_PER_GPU_GB,
      cpuCores: body.cpu_cores ?? this.cfg.SCALAR_DEFAULT_CPU_CORES,
      ramGb: body.ram_gb ?? this.cfg.SCALAR_DEFAULT_RAM_GB,
      expectedDurationSec: body.expected_duration_sec ?? this.cfg.SCALAR_DEFAULT_EXPECTED_DURATION_SEC,
      priority: body.priority ?? 0,
      image: body.image,
      command: body.command,
      env: body.env ?? {},
      attempt: snap.context.attempt,
      maxAttempts: snap.context.maxAttempts,
      nodeId: null,
      gpuIndices: null,
      placements: null,
      placement: null,
      preemptedBy: null,
      preemptions: 0,
      memberFailure: null,
      exitCode: null,
      createdAt: now,
      updatedAt: now,
      queuedAt: null,
      scheduledAt: null,
      startedAt: null,
      completedAt: null,
      failedAt: null,
      cancelledAt: null,
      finishedAt: null,
    };
    const event: EventRow = {
      job: id,
      attempt: job.attempt,
      fromStatus: null,
      toStatus: status,
      event: 'submit',
      reason: null,
      failureCode: null,
      createdAt: now,
    };
    return { job, event };
  }

  private async writeBatch(items: { job: JobRow; event: EventRow }[]): Promise<void[]> {
    await this.em().transactional(async (tx) => {
      const now = await lockJobInserts(tx);
      for (const item of items) stamp(item, now);
      await tx.insertMany(Job, items.map((i) => i.job));
      await tx.insertMany(JobEvent, items.map((i) => i.event));
    });
    this.announce(items.map((i) => i.job.id));
    return items.map(() => undefined);
  }

  /** Wakes the coordinator for jobs that just committed, without waiting for the PubAck. */
  private announce(jobIds: string[]): void {
    const bus = this.bus;
    if (!bus || jobIds.length === 0) return;
    const msg: JobsSubmitted = { job_ids: jobIds };
    const p: Promise<void> = bus.js
      .publish(bus.t.subjects.jobsSubmitted, encodeJson(msg))
      .then(
        () => undefined,
        (err: unknown) => {
          this.log.warn(
            { err, jobs: jobIds.length },
            'could not announce submitted jobs on NATS; the coordinator will find them on its next sweep',
          );
        },
      )
      .finally(() => this.publishing.delete(p));
    this.publishing.add(p);
  }

  async submit(principal: Principal, body: JobSubmitBody, idempotencyKey?: string): Promise<SubmitResult> {
    const row = this.newJob(principal, body, new Date());
    if (idempotencyKey === undefined) {
      await this.committer.submit(row);
      return { job: this.rowToResponse(row.job), replayed: false };
    }
    return this.submitIdempotent(principal, body, idempotencyKey, row);
  }

  /**
   * With an Idempotency-Key the job, its event and the key are written in one
   * transaction of their own. A concurrent request with the same key blocks
   * on the key's primary key until this one commits, then sees the conflict
   * and replays this job; a key older than 24 h is taken over by the new job.
   */
  private async submitIdempotent(
    principal: Principal,
    body: JobSubmitBody,
    key: string,
    row: { job: JobRow; event: EventRow },
  ): Promise<SubmitResult> {
    const requestHash = hashRequest(body);
    const REPLAY = Symbol('replay');
    try {
      await this.em().transactional(async (tx) => {
        stamp(row, await lockJobInserts(tx));
        await tx.insert(Job, row.job);
        await tx.insert(JobEvent, row.event);
        const owned = await tx.execute(
          `insert into idempotency_keys (user_id, key, request_hash, job_id, created_at)
           values (?, ?, ?, ?, now())
           on conflict (user_id, key) do update
             set request_hash = excluded.request_hash, job_id = excluded.job_id, created_at = excluded.created_at
             where idempotency_keys.created_at < now() - interval '24 hours'
           returning job_id`,
          [principal.userId, key, requestHash, row.job.id],
        );
        if (owned.length === 0) throw REPLAY;
      });
      this.announce([row.job.id]);
      return { job: this.rowToResponse(row.job), replayed: false };
    } catch (err) {
      if (err !== REPLAY && !isUniqueViolation(err)) throw err;
    }
    const em = this.em();
    const [prior] = await em.execute<{ job_id: string; request_hash: string }[]>(
      'select job_id, request_hash from idempotency_keys where user_id = ? and key = ?',
      [principal.userId, key],
    );
    if (!prior) throw new ApiError('conflict', 'a concurrent request with this Idempotency-Key failed; retry it');
    if (prior.request_hash !== requestHash) {
      throw new ApiError(
        'idempotency_key_reused',
        'Idempotency-Key was already used with a different request body in the last 24 hours',
        { idempotency_key: key, job_id: prior.job_id },
      );
    }
    const job = await em.findOneOrFail(Job, { id: prior.job_id });
    return { job: await this.respond(em, job), replayed: true };
  }

  /** A job that was just inserted: it has held nothing yet, so it has cost nothing. */
  private rowToResponse(row: JobRow): JobResponse {
    return toJobResponse(row, 0);
  }

  private async respond(em: EntityManager, job: Job): Promise<JobResponse> {
    const costs = await this.costs(em, [job]);
    return toJobResponse(job, costs.get(job.id) ?? 0);
  }

  /**
   * The cost so far of each job, in one query for all of them (a page of
   * GET /jobs costs one query, not one per job): the usage recorded for its
   * released GPUs (usage_records.cost_usd, written when an attempt's GPUs are
   * released), plus the GPU-seconds its active allocations (one row per GPU,
   * released_at null) have held until now, at the tier's price per GPU-hour.
   * Rounded to micro-dollars so sums print without float noise.
   */
  async costs(em: EntityManager, jobs: Pick<Job, 'id' | 'tier'>[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (jobs.length === 0) return out;
    const ids = jobs.map((j) => j.id);
    const rows = await em.execute<{ job_id: string; recorded_usd: number; active_gpu_seconds: number }[]>(
      `select job_id, sum(recorded_usd)::float8 as recorded_usd, sum(active_gpu_seconds)::float8 as active_gpu_seconds
         from (select job_id, cost_usd as recorded_usd, 0 as active_gpu_seconds
                 from usage_records where job_id in (?)
               union all
               -- greatest(0, …): an allocation stamped by a clock slightly ahead of the database's has held nothing yet
               select job_id, 0, greatest(0, extract(epoch from (now() - created_at)))
                 from allocations where released_at is null and job_id in (?)) as held
        group by job_id`,
      [ids, ids],
    );
    const byId = new Map(rows.map((r) => [r.job_id, r]));
    for (const job of jobs) {
      const r = byId.get(job.id);
      if (!r) {
        out.set(job.id, 0);
        continue;
      }
      const pricePerGpuHour = job.tier === 'FAST' ? this.cfg.SCALAR_PRICE_FAST_GPU_HOUR : this.cfg.SCALAR_PRICE_FLEX_GPU_HOUR;
      const usd = Number(r.recorded_usd) + (Number(r.active_gpu_seconds) * pricePerGpuHour) / 3600;
      out.set(job.id, Math.round(usd * 1e6) / 1e6);
    }
    return out;
  }

  /** The row of a job the caller may see (404 otherwise): for routes that need more than its response. */
  async visibleRow(principal: Principal, id: string): Promise<Job> {
    return this.visibleJob(this.em(), principal, id);
  }

  /** A job the caller may see: their own, or any job for an admin. Others' jobs do not exist for them. */
  private async visibleJob(em: EntityManager, principal: Principal, id: string): Promise<Job> {
    const job = await em.findOne(Job, principal.isAdmin ? { id } : { id, user: principal.userId });
    if (!job) throw ApiError.notFound('job', id);
    return job;
  }

  async get(principal: Principal, id: string): Promise<JobResponse> {
    const em = this.em();
    return this.respond(em, await this.visibleJob(em, principal, id));
  }

  async list(
    principal: Principal,
    q: { status?: string; tier?: Tier; failure_code?: JobFailureCode; limit: number; cursor?: string },
  ): Promise<{ jobs: JobResponse[]; next_cursor: string | null }> {
    const where: Record<string, unknown> = {};
    if (!principal.isAdmin) where.user = principal.userId;
    if (q.status) where.status = q.status;
    if (q.tier) where.tier = q.tier;
    if (q.failure_code) where.failureCode = q.failure_code;
    const em = this.em();
    const { page, next_cursor } = await seqPage(q, where, (w, o) => em.find(Job, w, o));
    const costs = await this.costs(em, page);
    return { jobs: page.map((j) => toJobResponse(j, costs.get(j.id) ?? 0)), next_cursor };
  }

  async events(principal: Principal, id: string) {
    const em = this.em();
    const job = await this.visibleJob(em, principal, id);
    const events = await em.find(JobEvent, { job: job.id }, { orderBy: { id: 'asc' } });
    return { events: events.map(toJobEventResponse) };
  }

  /**
   * Cancel is asked of the coordinator, the only writer of job status: it
   * commits the transition (and sends the kill for a scheduled or running
   * job) before it answers, and the job is then read back. Cancelling a job
   * that is already cancelled answers the job again (idempotent); a job that
   * completed or failed cannot be cancelled (409, with its status). No answer
   * within SCALAR_COORDINATOR_TIMEOUT_MS is a 503 `coordinator_unavailable`
   * with Retry-After: the job may or may not be cancelled, and asking again
   * is safe.
   */
  async cancel(principal: Principal, id: string): Promise<JobResponse> {
    // Another user's job is a 404 whether or not a coordinator runs.
    await this.visibleJob(this.em(), principal, id);
    const req: JobCancelRequest = { job_id: id };
    const r = await askCoordinator(this.bus, (b) => b.t.subjects.coordJobCancel, req, jobCancelReplySchema, {
      timeoutMs: this.cfg.SCALAR_COORDINATOR_TIMEOUT_MS,
      log: this.log,
      what: 'cancel',
      context: { job_id: id },
    });
    if (!r.ok) {
      switch (r.error) {
        case 'job_already_finished':
          throw new ApiError('job_already_finished', `job ${id} already ${r.status}; it cannot be cancelled`, { job_id: id, status: r.status });
        case 'job_not_found':
          throw ApiError.notFound('job', id);
        case 'retry':
          throw coordinatorUnavailable(r.message);
        case 'invalid_request':
          this.log.error({ job_id: id, reply: r }, 'the coordinator refused a cancel request this API built');
          throw coordinatorUnavailable('the coordinator did not understand the cancel request');
      }
    }
    const em = this.em();
    const job = await em.findOne(Job, { id });
    if (!job) throw ApiError.notFound('job', id);
    return this.respond(em, job);
  }

  /** Waits for queued submissions to commit and their wake-ups to be published (graceful shutdown). */
  async drain(): Promise<void> {
    await this.committer.drain();
    await Promise.allSettled([...this.publishing]);
  }
}

/** Canonical hash of a request body: same fields and values, same hash, whatever the key order. */
function hashRequest(body: unknown): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v as object)
              .sort()
              .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
          )
        : v;
  return createHash('sha256').update(JSON.stringify(canonical(body))).digest('hex');
}
