/**
 * The coordinator's live actors: one job actor per live job, one node actor
 * per node. Both run the pure machines from machines/; Postgres stays the
 * truth, so a job actor is moved forward only with events the database has
 * just committed, and rebuilt from the row if the two ever disagree.
 */
import { createActor, type Actor, type AnyActorRef, type InspectionEvent, type Observer } from 'xstate';
import { jobMachine, restoreJobSnapshot, type JobEvent, type JobStatus } from '../../machines/job.machine.ts';
import { nodeMachine, type NodeState } from '../../machines/node.machine.ts';
import type { GpuInfo, Pool } from '../../src/domain/cluster.ts';
import { compareJobs, type JobRequest } from '../../src/placement/index.ts';
import { jobStateOf, type JobState } from '../job-transitions.ts';
import type { JobRecord } from './store.ts';

export type Inspect = Observer<InspectionEvent> | ((e: InspectionEvent) => void);

/**
 * Stops a child of the coordinator's root actor. xstate v5 refuses `stop()`
 * on an actor that has a parent; `_stop()` is what the parent's own
 * `stopChild` runs (it also unregisters the actor from the system).
 */
function stopChild(actor: AnyActorRef): void {
  (actor as unknown as { _stop(): void })._stop();
}

export class LiveJob {
  actor: Actor<typeof jobMachine>;
  /** When the current attempt's run command was last sent (ms), for re-sends. */
  dispatchedAt = 0;
  /** When a kill was last sent for a held attempt of a finished job (ms). */
  killSentAt = 0;
  /** When status_reason was last written (ms). */
  reasonAt = 0;

  constructor(
    public rec: JobRecord,
    /** The coordinator's root actor: job actors are its children, in its actor system. */
    private readonly parent?: AnyActorRef,
  ) {
    this.actor = this.spawn();
  }

  private spawn(): Actor<typeof jobMachine> {
    const snapshot = restoreJobSnapshot(this.rec.status, jobStateOf(this.rec).context);
    // `input` is required by the types but unused: the snapshot carries the context.
    const input = { jobId: this.rec.id, maxAttempts: this.rec.maxAttempts };
    return createActor(jobMachine, { snapshot, input, id: `job:${this.rec.id}`, parent: this.parent }).start();
  }

  get status(): JobStatus {
    return this.rec.status;
  }

  private req?: JobRequest;

  /** What placement needs; built once (none of these fields ever change). */
  request(): JobRequest {
    if (this.req) return this.req;
    const r = this.rec;
    return (this.req = {
      jobId: r.id,
      tier: r.tier,
      priority: r.priority,
      seq: r.seq,
      gpuCount: r.gpuCount,
      vramPerGpuGb: r.vramPerGpuGb,
      cpuCores: r.cpuCores,
      ramGb: r.ramGb,
    });
  }

  /** Mirrors a committed outcome: the events go to the actor, the row values to the record. */
  commit(applied: JobEvent[], after: JobState): void {
    for (const ev of applied) this.actor.send(ev);
    const c = after.context;
    Object.assign(this.rec, {
      status: after.status,
      statusReason: c.statusReason,
      attempt: c.attempt,
      nodeId: c.nodeId,
      gpuIndices: c.nodeId ? [...c.gpuIndices] : null,
      exitCode: c.exitCode,
    });
    if (this.actor.getSnapshot().value !== after.status || this.actor.getSnapshot().context.attempt !== c.attempt) {
      // Someone else (the API's cancel) changed the row since we last looked: rebuild from it.
      stopChild(this.actor);
      this.actor = this.spawn();
    }
  }

  /** Replaces the record with a fresh row (e.g. after the API cancelled it). */
  refresh(rec: JobRecord): void {
    this.rec = rec;
    stopChild(this.actor);
    this.actor = this.spawn();
  }

  stop(): void {
    stopChild(this.actor);
  }
}

/**
 * The live jobs, with an index of those waiting for placement (pending and
 * queued), so a pass looks at the queue rather than at every live job.
 * Call `touch` after a job's status changes.
 */
export class JobTable {
  private readonly all = new Map<string, LiveJob>();
  readonly waiting = new Map<string, LiveJob>();
  /** Waiting jobs in queue order (compareJobs), with stale entries removed lazily. */
  private order: LiveJob[] = [];
  private readonly inOrder = new Set<LiveJob>();
  private arrivals: LiveJob[] = [];
  private stale = 0;
  /** Ids of the pending jobs (admission is due). */
  readonly pending = new Set<string>();
  /** The jobs whose current attempt is on each node, and the node each job is indexed under. */
  private readonly byNode = new Map<string, Set<LiveJob>>();
  private readonly nodeOf = new Map<LiveJob, string>();

  get size(): number {
    return this.all.size;
  }
  get(id: string): LiveJob | undefined {
    return this.all.get(id);
  }
  has(id: string): boolean {
    return this.all.has(id);
  }
  values(): IterableIterator<LiveJob> {
    return this.all.values();
  }
  set(id: string, job: LiveJob): void {
    this.all.set(id, job);
    this.touch(job);
  }
  delete(id: string): void {
    const job = this.all.get(id);
    this.all.delete(id);
    this.pending.delete(id);
    if (job) this.index(job, null);
    if (job && this.waiting.delete(id) && this.inOrder.has(job)) this.stale++;
  }
  clear(): void {
    this.all.clear();
    this.waiting.clear();
    this.pending.clear();
    this.byNode.clear();
    this.nodeOf.clear();
    this.order = [];
    this.inOrder.clear();
    this.arrivals = [];
    this.stale = 0;
  }
  /** Live jobs whose current attempt is placed on `nodeId`. */
  onNode(nodeId: string): Iterable<LiveJob> {
    return this.byNode.get(nodeId) ?? [];
  }

  private index(job: LiveJob, nodeId: string | null): void {
    const was = this.nodeOf.get(job);
    if (was === nodeId) return;
    if (was !== undefined) {
      const set = this.byNode.get(was)!;
      set.delete(job);
      if (set.size === 0) this.byNode.delete(was);
      this.nodeOf.delete(job);
    }
    if (nodeId !== null) {
      let set = this.byNode.get(nodeId);
      if (!set) this.byNode.set(nodeId, (set = new Set()));
      set.add(job);
      this.nodeOf.set(job, nodeId);
    }
  }

  /** Call after a job's status (or placement) changed, so the indexes follow. */
  touch(job: LiveJob): void {
    const id = job.rec.id;
    this.index(job, job.rec.nodeId);
    if (job.status === 'pending') this.pending.add(id);
    else this.pending.delete(id);
    if (job.status === 'pending' || job.status === 'queued') {
      this.waiting.set(id, job);
      if (!this.inOrder.has(job)) {
        this.inOrder.add(job);
        this.arrivals.push(job);
      }
    } else if (this.waiting.delete(id) && this.inOrder.has(job)) {
      this.stale++;
    }
  }

  private isWaiting(job: LiveJob): boolean {
    return this.waiting.get(job.rec.id) === job;
  }

  /**
   * The waiting jobs in queue order. New arrivals are merged in (they sort
   * near the end: same tier and priority, newer), and left jobs are dropped
   * once they make up a quarter of the list, so a pass costs O(queue) at
   * worst and no full sort.
   */
  ordered(): LiveJob[] {
    if (this.stale > 0 && this.stale * 4 >= this.order.length) {
      const kept: LiveJob[] = [];
      for (const j of this.order) {
        if (this.isWaiting(j)) kept.push(j);
        else this.inOrder.delete(j);
      }
      this.order = kept;
      this.stale = 0;
    }
    if (this.arrivals.length > 0) {
      const fresh = this.arrivals.filter((j) => this.isWaiting(j));
      for (const j of this.arrivals) if (!this.isWaiting(j)) this.inOrder.delete(j);
      this.arrivals = [];
      fresh.sort((a, b) => compareJobs(a.request(), b.request()));
      const merged: LiveJob[] = [];
      let i = 0;
      let k = 0;
      // Fast path: every arrival sorts after the current tail.
      const tail = this.order[this.order.length - 1];
      if (!tail || !fresh[0] || compareJobs(tail.request(), fresh[0].request()) <= 0) {
        this.order.push(...fresh);
      } else {
        while (i < this.order.length || k < fresh.length) {
          if (k >= fresh.length || (i < this.order.length && compareJobs(this.order[i]!.request(), fresh[k]!.request()) <= 0)) {
            merged.push(this.order[i++]!);
          } else merged.push(fresh[k++]!);
        }
        this.order = merged;
      }
    }
    return this.order;
  }

  /** True if the job is (still) waiting; `ordered()` may hold jobs that left since. */
  stillWaiting(job: LiveJob): boolean {
    return this.isWaiting(job);
  }
}

export interface NodeInfo {
  pool: Pool;
  runtime: string;
  cpuCores: number;
  ramGb: number;
  gpus: GpuInfo[];
}

export class LiveNode {
  actor: Actor<typeof nodeMachine>;
  /** ms of the latest heartbeat (or of the coordinator's start). */
  lastHeartbeatAt = Date.now();
  lastTickAt = Date.now();
  lastHelloAt = 0;
  lastReconcileAt = 0;
  bootId: string | null = null;

  constructor(
    readonly id: string,
    public info: NodeInfo,
    state: NodeState,
    stateReason: string | null,
    drainRequested: boolean,
    effects: { nodeLost: (id: string) => void; nodeReady: (id: string) => void },
    parent?: AnyActorRef,
  ) {
    const machine = nodeMachine.provide({
      actions: {
        nodeLost: (_, p) => effects.nodeLost(p.nodeId),
        nodeReady: (_, p) => effects.nodeReady(p.nodeId),
      },
    });
    const snapshot = machine.resolveState({ value: state, context: {
      nodeId: id,
      pool: info.pool,
      lostAfterMissed: 3,
      missedHeartbeats: 0,
      drainRequested,
      stateReason,
    } });
    this.actor = createActor(machine, { snapshot, input: { nodeId: id, pool: info.pool }, id: `node:${id}`, parent }).start();
  }

  get state(): NodeState {
    return this.actor.getSnapshot().value as NodeState;
  }

  get stateReason(): string | null {
    return this.actor.getSnapshot().context.stateReason;
  }

  get drainRequested(): boolean {
    return this.actor.getSnapshot().context.drainRequested;
  }

  stop(): void {
    stopChild(this.actor);
  }
}
