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
import type { JobRequest } from '../../src/placement/index.ts';
import { jobStateOf, type JobState } from '../../machines/job.step.ts';
import type { JobRecord } from './ports.ts';

export type Inspect = Observer<InspectionEvent> | ((e: InspectionEvent) => void);

/**
 * Stops a child of the coordinator's root actor. xstate v5 refuses `stop()`
 * on an actor that has a parent; `_stop()` is what the parent's own
 * `stopChild` runs (it also unregisters the actor from the system).
 */
function stopChild(actor: AnyActorRef): void {
  (actor as unknown as { _stop(): void })._stop();
}

/** How one member of an attempt ended: `code` for an exit, `reason` for a launch failure or a lost node. */
export interface MemberEnd {
  code: number | null;
  reason: string | null;
}

export class LiveJob {
  actor: Actor<typeof jobMachine>;
  /** When the current attempt's run command was last sent (ms), for re-sends. */
  dispatchedAt = 0;
  /** When a kill was last sent for a held attempt of a finished job (ms). */
  killSentAt = 0;
  /** When status_reason was last written (ms). */
  reasonAt = 0;
  /** This (FAST) job had FLEX jobs preempted to make room: its placement's step is 'preempt'. */
  preempted = false;
  /**
   * Members of the current attempt that ended, by node: a gang's attempt
   * ends for the machine only once every member has (see members.ts).
   */
  ended = new Map<string, MemberEnd>();
  private endedAttempt = 0;

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
      userId: r.userId,
      gpuCount: r.gpuCount,
      vramPerGpuGb: r.vramPerGpuGb,
      cpuCores: r.cpuCores,
      ramGb: r.ramGb,
      nodeCount: r.nodeCount,
      expectedDurationSec: r.expectedDurationSec,
    });
  }

  /** Why the live attempt is being killed (preempted, or a gang member failed), if it is. */
  stopping(): string | null {
    if (this.status !== 'scheduled' && this.status !== 'running') return null;
    if (this.rec.preemptedBy) return `preempted by FAST job ${this.rec.preemptedBy}`;
    if (this.rec.memberFailure) return this.rec.memberFailure.reason;
    return null;
  }

  /** The nodes of the current attempt, rank order. */
  nodes(): string[] {
    const r = this.rec;
    if (r.placements && r.placements.length > 0) return r.placements.map((p) => p.node_id);
    return r.nodeId ? [r.nodeId] : [];
  }

  /** Members of the current attempt that ended (reset when the attempt changes). */
  endedMembers(): Map<string, MemberEnd> {
    if (this.endedAttempt !== this.rec.attempt) {
      this.ended = new Map();
      this.endedAttempt = this.rec.attempt;
    }
    return this.ended;
  }

  /** Mirrors a committed outcome (at `now`, ms): the events go to the actor, the row values to the record. */
  commit(applied: JobEvent[], after: JobState, now: number): void {
    for (const ev of applied) this.actor.send(ev);
    const c = after.context;
    const placedNow = applied.some((e) => e.type === 'place');
    Object.assign(this.rec, {
      status: after.status,
      statusReason: c.statusReason,
      failureCode: c.failureCode,
      attempt: c.attempt,
      nodeId: c.nodeId,
      gpuIndices: c.nodeId ? [...c.gpuIndices] : null,
      placements: c.placements.length > 0 ? c.placements.map((p) => ({ ...p, gpu_indices: [...p.gpu_indices] })) : null,
      preemptedBy: c.preemptedBy,
      preemptions: c.preemptions,
      memberFailure: c.memberFailure,
      exitCode: c.exitCode,
      scheduledAt: placedNow ? now : this.rec.scheduledAt,
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
  /** Ids of the pending jobs (admission is due). */
  readonly pending = new Set<string>();
  /** Jobs whose attempt is being preempted (kill in flight). */
  private readonly beingPreempted = new Set<LiveJob>();
  /** The jobs whose current attempt is on each node, and the nodes each job is indexed under. */
  private readonly byNode = new Map<string, Set<LiveJob>>();
  private readonly nodeOf = new Map<LiveJob, string[]>();

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
    if (job) {
      this.index(job, []);
      this.beingPreempted.delete(job);
    }
    this.waiting.delete(id);
  }
  clear(): void {
    this.all.clear();
    this.waiting.clear();
    this.pending.clear();
    this.beingPreempted.clear();
    this.byNode.clear();
    this.nodeOf.clear();
  }
  /** Live jobs whose current attempt is placed on `nodeId`. */
  onNode(nodeId: string): Iterable<LiveJob> {
    return this.byNode.get(nodeId) ?? [];
  }

  private index(job: LiveJob, nodeIds: string[]): void {
    const was = this.nodeOf.get(job) ?? [];
    if (was.length === nodeIds.length && was.every((n, i) => n === nodeIds[i])) return;
    for (const n of was) {
      const set = this.byNode.get(n);
      if (!set) continue;
      set.delete(job);
      if (set.size === 0) this.byNode.delete(n);
    }
    this.nodeOf.delete(job);
    if (nodeIds.length > 0) {
      for (const n of nodeIds) {
        let set = this.byNode.get(n);
        if (!set) this.byNode.set(n, (set = new Set()));
        set.add(job);
      }
      this.nodeOf.set(job, [...nodeIds]);
    }
  }

  /** Call after a job's status (or placement) changed, so the indexes follow. */
  touch(job: LiveJob): void {
    const id = job.rec.id;
    this.index(job, job.nodes());
    if (job.status === 'pending') this.pending.add(id);
    else this.pending.delete(id);
    if (job.status === 'pending' || job.status === 'queued') this.waiting.set(id, job);
    else this.waiting.delete(id);
    if (job.rec.preemptedBy && (job.status === 'scheduled' || job.status === 'running')) this.beingPreempted.add(job);
    else this.beingPreempted.delete(job);
  }

  /** Live jobs whose attempt is being preempted (kill in flight). */
  preempting(): Iterable<LiveJob> {
    return this.beingPreempted;
  }

}

export interface NodeInfo {
  pool: Pool;
  runtime: string;
  cpuCores: number;
  ramGb: number;
  gpus: GpuInfo[];
  blockId: string | null;
  /** Where gang members reach it (SCALAR_MASTER_ADDR); null: not reported (the node id is used). */
  addr: string | null;
}

export class LiveNode {
  actor: Actor<typeof nodeMachine>;
  /** ms of the latest heartbeat (or of when the coordinator learnt the node). */
  lastHeartbeatAt: number;
  lastTickAt: number;
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
    parent: AnyActorRef | undefined,
    now: number,
    /** Missed heartbeat intervals after which the node is lost (SCALAR_NODE_LOST_SEC / the interval). */
    lostAfterMissed = 3,
  ) {
    this.lastHeartbeatAt = now;
    this.lastTickAt = now;
    const machine = nodeMachine.provide({
      actions: {
        nodeLost: (_, p) => effects.nodeLost(p.nodeId),
        nodeReady: (_, p) => effects.nodeReady(p.nodeId),
      },
    });
    const snapshot = machine.resolveState({ value: state, context: {
      nodeId: id,
      pool: info.pool,
      lostAfterMissed,
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
