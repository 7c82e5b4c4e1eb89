/**
 * The coordinator: admits jobs, places them on specific GPUs, binds the
 * placement in Postgres, sends `run` to the node, and follows what agents
 * report until the job ends.
 *
 * Everything happens in *passes*. Inputs (JetStream messages, heartbeats,
 * operator requests, timers) land in an inbox; one pass at a time takes the
 * whole inbox, decides (queue.ts: admission and placement; plan.ts: the
 * machine steps), writes every decision in one statement (store.commit), and only after the commit mirrors the result into the live
 * actors, sends commands and acks the messages it handled. A crash at any
 * point leaves either the old state or the new one in Postgres; unacked
 * messages are redelivered and every handler is idempotent per
 * (job_id, attempt).
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { isTerminal, type JobEvent, type JobStatus } from '../../machines/job.machine.ts';
import { CapacitySnapshot } from '../../src/placement/index.ts';
import type { Clock } from '../../src/domain/clock.ts';
import type { Heartbeat, NodeBusEvent } from '../../src/wire/messages.ts';
import type { Actor } from 'xstate';
import type { coordinatorMachine, CoordinatorStats } from '../../machines/coordinator.machine.ts';
import { Commands } from './commands.ts';
import { Fleet } from './fleet.ts';
import type { After, CancelInput, Input, MemberEndInput } from './inputs.ts';
import { JobTable, LiveJob } from './live.ts';
import { BlockLink } from './blocks.ts';
import { restoreHolds } from './rebuild.ts';
import { memberEnded, memberEndOf, type MemberUndo } from './members.ts';
import { overrunItems, type OverrunSettings } from './overrun.ts';
import { planWrites, type Plan } from './plan.ts';
import { admitAndPlace, type QueueSettings } from './queue.ts';
import { cancelAnswer, stoppingAnswer } from './cancel.ts';
import type { CoordinatorStorePort, NodeLink } from './ports.ts';
import { batchIsEmpty, emptyBatch, type Batch, type JobRecord, type ReleaseRef } from './ports.ts';

export interface CoordinatorOptions {
  /** The durable record: Postgres (CoordinatorStore) in production. */
  store: CoordinatorStorePort;
  /** How commands reach agents: JetStream (natsNodeLink) in production. */
  link: NodeLink;
  /** Time and timers: the wall clock in production, virtual time in `scalar simulate`. */
  clock: Clock;
  log: Logger;
  heartbeatIntervalMs: number;
  /** SCALAR_NODE_LOST_SEC in ms: a node that sends no heartbeat this long is lost. Default 3 intervals. */
  nodeLostAfterMs?: number;
  /**
   * SCALAR_EVICTION_HOLD_SHARE: when more than this share of the nodes (and
   * at least 2) miss the same heartbeat interval, none of the misses counts.
   * Default 0.5; 1 never holds.
   */
  evictionHoldShare?: number;
  killGraceSec: number;
  /** Queue discipline and placement (user weights are loaded from Postgres). */
  queue: Omit<QueueSettings, 'userWeights' | 'offers' | 'stopWhenFull'>;
  overrun: OverrunSettings;
  /** The root of the actor system (machines/coordinator.machine.ts); job and node actors are its children. */
  root: Actor<typeof coordinatorMachine>;
  /** Told of every failed pass (it is retried after 1 s): the simulator ends a replay on it. */
  onPassError?: (err: unknown) => void;
}

export class Coordinator {
  private readonly store: CoordinatorStorePort;
  private readonly clock: Clock;
  readonly jobs = new JobTable();
  readonly capacity = new CapacitySnapshot();
  private userWeights = new Map<string, number>();
  /** Instance shapes providers sell (set by the capacity actor), for the unschedulable check. */
  offers: QueueSettings['offers'] = [];
  /** Capacity blocks: their end times, and what the capacity actor asks of the coordinator. */
  readonly blocks: BlockLink;
  private inbox: Input[] = [];
  private placementDirty = true;
  private passRunning = false;
  private passQueued = false;
  private stopped = false;
  private idle: Promise<void> = Promise.resolve();
  /** This pass: jobs its cancels name (kept out of admission and placement), and finished ones read for them. */
  private cancelling = new Set<string>();
  private cancelRows = new Map<string, JobStatus>();
  readonly stats: CoordinatorStats = { passes: 0, placements: 0, liveJobs: 0, queued: 0, nodes: 0 };

  private readonly commands: Commands;
  readonly fleet: Fleet;

  constructor(private readonly o: CoordinatorOptions) {
    this.store = o.store;
    this.clock = o.clock;
    this.commands = new Commands(
      o.link,
      o.log,
      o.clock,
      { killSec: o.killGraceSec, preemptSec: o.queue.preemptGraceSec },
      (id) => this.capacity.holding(id)?.nodes.map((n) => n.node_id) ?? [],
      (nodeId) => this.fleet.addrOf(nodeId),
    );
    this.fleet = new Fleet({
      link: o.link,
      log: o.log,
      clock: o.clock,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      evictionHoldShare: o.evictionHoldShare ?? 0.5,
      nodeLostAfterMs: o.nodeLostAfterMs ?? 3 * o.heartbeatIntervalMs,
      root: o.root,
      jobs: this.jobs,
      capacity: this.capacity,
      commands: this.commands,
      nodeLost: (nodeId) => this.push({ kind: 'node-lost', nodeId }),
      memberEnded: (job, nodeId, end, batch, after) => this.memberEnded(job, nodeId, end, batch, after),
      blockEnd: (blockId) => this.blocks.end(blockId),
      blockLive: (blockId) => this.blocks.live(blockId),
      placementChanged: () => {
        this.placementDirty = true;
      },
      kick: () => this.kick(),
    });
    this.blocks = new BlockLink({
      jobs: this.jobs,
      capacity: this.capacity,
      fleet: () => this.fleet,
      blockMarginSec: o.queue.blockMarginSec,
      clock: o.clock,
      push: (input) => this.push(input),
      kick: () => this.kick(),
    });
  }

  // ---------------------------------------------------------------- startup

  /** Rebuilds every actor and the capacity snapshot from Postgres. */
  async rehydrate(): Promise<void> {
    this.blocks.sync(await this.store.loadBlockEnds(), true);
    this.userWeights = await this.store.loadUserWeights();
    for (const n of await this.store.loadNodes()) this.fleet.restore(n);
    for (const rec of await this.store.loadLiveJobs()) this.jobs.set(rec.id, new LiveJob(rec, this.o.root));
    restoreHolds(await this.store.loadActiveAllocations(), { jobs: this.jobs, capacity: this.capacity, root: this.o.root, log: this.o.log, now: this.clock.now() });
    // Commands sent just before a crash may never have left: send them again
    // (agents recognise an attempt they already have).
    const resend: Promise<void>[] = [];
    for (const job of this.jobs.values()) {
      // A kill in flight comes first: a victim or a failing gang must stop, not start.
      const stopping = job.stopping();
      if (stopping) resend.push(this.commands.kill(job, stopping));
      else if (job.status === 'scheduled') resend.push(this.commands.run(job));
      else if (isTerminal(job.status) && this.capacity.holding(job.rec.id)) resend.push(this.commands.kill(job, 'job finished'));
    }
    await Promise.all(resend);
    this.updateStats();
    this.o.root.send({ type: 'rebuilt', stats: { ...this.stats } });
    this.o.log.info(
      { live_jobs: this.jobs.size, nodes: this.fleet.size, resent: resend.length },
      'coordinator state rebuilt from Postgres',
    );
  }

  /** Drops every actor and the capacity view, and rebuilds them from Postgres. */
  private async resync(): Promise<void> {
    for (const j of this.jobs.values()) j.stop();
    this.jobs.clear();
    this.fleet.clear();
    for (const id of this.capacity.nodes().map((n) => n.nodeId)) this.capacity.removeNode(id);
    this.placementDirty = true;
    await this.rehydrate();
  }

  // ---------------------------------------------------------------- inputs

  push(input: Input): void {
    if (this.stopped) {
      if ('msg' in input) input.msg?.nak();
      return;
    }
    this.inbox.push(input);
    this.kick();
  }

  heartbeat(hb: Heartbeat, subjectNodeId: string): void {
    if (this.stopped) return;
    if (hb.node_id !== subjectNodeId) return this.rejectImpersonation('heartbeat', subjectNodeId, hb.node_id);
    this.fleet.heartbeat(hb);
  }

  /**
   * Messages a node's connection sent in another node's name, by kind. The
   * subject is the sender's identity (its NATS credential may publish only
   * under its own node id), so a body that names another node is refused.
   */
  readonly impersonations = { event: 0, heartbeat: 0 };

  private rejectImpersonation(kind: 'event' | 'heartbeat', subjectNode: string, claimed: string): void {
    const n = ++this.impersonations[kind];
    // Logged at the first and then every 100th, so a flood cannot flood the log too.
    if (n === 1 || n % 100 === 0) {
      this.o.log.warn({ kind, subject_node: subjectNode, claimed, rejected: n }, `a ${kind} from node ${subjectNode} claims to be from ${claimed}; refused`);
    }
  }

  /** Called once per heartbeat interval: a node that sent nothing since the last tick missed one. */
  tick(): void {
    // Cut off from NATS ourselves, we hear no node: that is our outage, not theirs.
    if (this.busConnected && this.clock.now() >= this.countMissesFrom) this.fleet.tick();
    this.kick();
  }

  private busConnected = true;
  /** After a reconnect, agents get this long to reconnect and heartbeat before a miss counts again. */
  private countMissesFrom = 0;

  /**
   * This coordinator's own NATS connection dropped: it stops counting missed
   * heartbeats, so an outage of NATS (or of this host's network) declares no
   * node lost and requeues no job.
   */
  busDisconnected(): void {
    if (!this.busConnected) return;
    this.busConnected = false;
    this.o.log.warn('NATS connection lost: not counting missed heartbeats until it is back (our outage is not a node loss)');
  }

  /**
   * The connection is back: miss counting starts again from now, after two
   * heartbeat intervals in which the agents reconnect and heartbeat (a
   * heartbeat clears what a node had missed before the outage).
   */
  busReconnected(): void {
    if (this.busConnected) return;
    this.busConnected = true;
    const now = this.clock.now();
    this.countMissesFrom = now + 2 * this.o.heartbeatIntervalMs;
    this.fleet.restartMissCounting(now);
    this.o.log.info({ resume_counting_in_ms: 2 * this.o.heartbeatIntervalMs }, 'NATS connection back: counting missed heartbeats again shortly');
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.passRunning) {
      this.passQueued = true;
      return;
    }
    this.passRunning = true;
    this.idle = new Promise<void>((resolve) => {
      setImmediate(() => {
        this.loop().finally(resolve);
      });
    });
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.passQueued = false;
        await this.pass();
        // GPUs freed by this pass's commit (a job ended, a victim exited) are
        // placed by a pass of their own at once, not at the next input.
      } while ((this.passQueued || this.inbox.length > 0 || this.placeAgain()) && !this.stopped);
    } finally {
      this.passRunning = false;
    }
  }

  /**
   * Resolves once no pass runs and nothing waits in the inbox. The simulator
   * waits for this before it moves virtual time on.
   */
  async settled(): Promise<void> {
    while (!this.idleNow()) await this.idle;
  }

  /** No pass runs and the inbox is empty. */
  idleNow(): boolean {
    return !this.passRunning && this.inbox.length === 0;
  }

  /** Capacity changed since the last placement and jobs wait for it. */
  private placeAgain(): boolean {
    return this.placementDirty && this.jobs.waiting.size > 0;
  }

  /** Stops taking inputs and waits for the pass in progress. Unhandled messages are nak'ed. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.idle;
    for (const input of this.inbox.splice(0)) {
      if ('msg' in input) input.msg?.nak();
      // A cancel is told at once to ask again (the API answers 503 with Retry-After).
      if (input.kind === 'cancel') input.reply(stoppingAnswer);
      // Operator requests get no answer: the API reports the coordinator unavailable (503), and the next leader takes them.
    }
    for (const j of this.jobs.values()) j.stop();
    this.fleet.clear();
  }

  // ---------------------------------------------------------------- a pass

  private async pass(): Promise<void> {
    const inputs = this.inbox.splice(0);
    const batch = emptyBatch();
    const msgs: JsMsg[] = [];
    const replies: Array<() => void> = [];
    const after: After = [];
    this.undo = [];
    this.cancelling = new Set();
    this.cancelRows = new Map();
    for (const i of inputs) if ('msg' in i && i.msg) msgs.push(i.msg);

    try {
      await this.loadInputs(inputs);
      for (const input of inputs) this.handle(input, batch, replies, after);
      if (inputs.some((i) => i.kind === 'sweep')) {
        batch.items.push(...overrunItems(this.jobs, this.capacity, this.o.overrun, this.clock.now()));
        this.fleet.retireReleased(batch, (blockId) => this.blocks.live(blockId));
        // The queue is re-run on every sweep even when no event changed the
        // capacity: a waiting job's diagnosis skipped by the rate limit
        // (REASON_REFRESH_MS) is only written by a later run, and time alone
        // moves decisions (holds extended above, reservations, block ends).
        this.placementDirty = true;
      }
      const placed = this.admitAndPlace(batch, inputs.some((i) => i.kind === 'sweep'));
      this.fleet.flush(batch);
      if (batchIsEmpty(batch)) {
        for (const m of msgs) m.ack();
        await Promise.all(after.map((f) => f()));
        for (const r of replies) r();
        return;
      }

      const plans = planWrites(batch, this.jobs);
      let applied: Set<string>;
      try {
        applied = await this.store.commit(batch, new Date(this.clock.now()));
      } catch (err) {
        // Nothing was written: give back what this pass held in memory, let
        // JetStream redeliver, and try again shortly.
        for (const p of placed) this.capacity.release(p);
        for (const u of this.undo) u();
        this.fleet.unflush(batch);
        this.placementDirty = true;
        throw err;
      }
      this.stats.passes++;
      for (const m of msgs) m.ack();
      let commands: Promise<void>[] = [];
      try {
        commands = this.mirror(plans, applied, new Set(placed));
        this.released(batch.releases);
        await this.refreshMissed(plans, applied);
      } catch (err) {
        // Postgres has the pass but memory may not: rebuild memory from Postgres.
        this.o.log.error({ err }, 'could not apply a committed pass in memory; rebuilding from Postgres');
        await this.resync();
      }
      await Promise.all([...commands, ...after.map((f) => f())]);
      // Answers go out once the pass is committed and its commands (a cancel's kill) are handed to the node queues.
      for (const r of replies) r();
      this.updateStats();
    } catch (err) {
      this.o.log.error({ err }, 'coordinator pass failed; retrying in 1 s');
      this.o.onPassError?.(err);
      for (const m of msgs) m.nak(1000);
      // Inputs without a message (sweeps, node losses, operator requests) are retried as they are.
      this.inbox.unshift(...inputs.filter((i) => !('msg' in i && i.msg)));
      await new Promise<void>((r) => this.clock.setTimeout(r, 1000));
    }
  }

  /** Reads from Postgres what this pass's inputs name: new pending jobs, jobs to cancel, finished ones holding GPUs. */
  private async loadInputs(inputs: Input[]): Promise<void> {
    const pendingIds = new Set<string>();
    const cancelIds = new Set<string>();
    let sweep = false;
    const refresh = new Set<string>();
    for (const i of inputs) {
      if (i.kind === 'submitted') for (const id of i.ids) if (!this.jobs.has(id)) pendingIds.add(id);
      if (i.kind === 'sweep') sweep = true;
      if (i.kind === 'cancel' && !this.jobs.has(i.jobId)) cancelIds.add(i.jobId);
    }
    const fresh: JobRecord[] = [];
    if (pendingIds.size > 0) fresh.push(...(await this.store.loadPending([...pendingIds])));
    // A job a cancel names that is not held here: a pending one not admitted yet joins this pass; a finished one is answered from its row.
    if (cancelIds.size > 0) {
      for (const rec of await this.store.loadJobs([...cancelIds])) {
        if (isTerminal(rec.status)) this.cancelRows.set(rec.id, rec.status);
        else fresh.push(rec);
      }
    }
    if (sweep) {
      this.userWeights = await this.store.loadUserWeights();
      // Blocks bought, extended or released since: their nodes' end times follow.
      this.blocks.sync(await this.store.loadBlockEnds());
      // Catches jobs whose wake-up message was lost (e.g. the API died right after its commit).
      const unknown = (await this.store.pendingIds()).filter((id) => !this.jobs.has(id) && !pendingIds.has(id));
      if (unknown.length > 0) fresh.push(...(await this.store.loadPending(unknown)));
      for (const id of await this.store.loadFinishedHoldingGpus()) refresh.add(id);
    }
    for (const rec of fresh) {
      if (!this.jobs.has(rec.id)) {
        this.jobs.set(rec.id, new LiveJob(rec, this.o.root));
        this.placementDirty = true;
      }
    }
    for (const rec of await this.store.loadJobs([...refresh])) {
      const job = this.jobs.get(rec.id);
      if (!job || job.status === rec.status) continue;
      // Changed outside this coordinator (an older API's cancel, an operator): take the row as it is now.
      job.refresh(rec);
      this.jobs.touch(job);
      if (isTerminal(rec.status)) this.finishOrHold(job, 'cancelled by its owner');
    }
  }

  private handle(input: Input, batch: Batch, replies: Array<() => void>, after: After): void {
    switch (input.kind) {
      case 'node-event':
        return this.handleNodeEvent(input.nodeId, input.event, batch, after);
      case 'node-lost':
        return this.fleet.lost(input.nodeId, batch, after);
      case 'node-action':
        return this.fleet.action(input.action, input.nodeId, input.reason, input.reply, replies);
      case 'call':
        return input.run(batch, after);
      case 'cancel':
        return this.cancel(input, batch, replies);
      default:
        return; // submitted and sweep were handled by loadInputs
    }
  }

  /** A user's cancel: the machine's `cancel` goes into this pass's batch; the answer waits for the commit. */
  private cancel(input: CancelInput, batch: Batch, replies: Array<() => void>): void {
    const job = this.jobs.get(input.jobId);
    if (!job || isTerminal(job.status)) {
      const status = job?.status ?? this.cancelRows.get(input.jobId) ?? null;
      replies.push(() => input.reply(cancelAnswer(input.jobId, status)));
      return;
    }
    batch.items.push({ jobId: input.jobId, events: [{ type: 'cancel' } satisfies JobEvent] });
    this.cancelling.add(input.jobId);
    // After the commit the job may have left the table (cancelled, nothing held): its record still says how it ended.
    replies.push(() => input.reply(cancelAnswer(input.jobId, (this.jobs.get(input.jobId) ?? job).status)));
  }

  private handleNodeEvent(nodeId: string, ev: NodeBusEvent, batch: Batch, after: After): void {
    if (ev.node_id !== nodeId) return this.rejectImpersonation('event', nodeId, ev.node_id);
    if (ev.type === 'registered') return this.fleet.registered(ev, batch, after);
    const node = this.fleet.nodes.get(nodeId);
    const job = this.jobs.get(ev.job_id);
    const ref = { job_id: ev.job_id, attempt: ev.attempt };
    const current = job && job.rec.attempt === ev.attempt && job.nodes().includes(nodeId);
    if (!job || !current) {
      // A stale attempt (requeued elsewhere, or unknown): make sure it is not left running.
      if (ev.type === 'started' && node) after.push(() => this.commands.killStale(nodeId, ref));
      return;
    }
    if (ev.type === 'started') {
      // The first member to start makes the job running; the machine ignores the rest.
      if (!isTerminal(job.status)) batch.items.push({ jobId: ev.job_id, attempt: ev.attempt, events: [{ type: 'start' } satisfies JobEvent] });
      return;
    }
    this.memberEnded(job, nodeId, memberEndOf(ev), batch, after);
  }

  private undo: MemberUndo = [];

  private memberEnded(job: LiveJob, nodeId: string, end: MemberEndInput, batch: Batch, after: After): void {
    memberEnded({ capacity: this.capacity, commands: this.commands }, job, nodeId, end, batch, after, this.undo);
  }

  /** Admission (pending → queued) and placement (queued → scheduled) for every waiting job. */
  /**
   * `fullPass`: explain every waiting job (the 2 s sweep). Other passes stop
   * once nothing more can be placed (QueueContext.stopWhenFull): with
   * thousands of jobs waiting on a full fleet, each GPU freed would otherwise
   * cost a walk over the whole queue. A pass that admits new jobs is always
   * full, so every job gets its first reason (or fails as unschedulable) at once.
   */
  private admitAndPlace(batch: Batch, fullPass: boolean): string[] {
    if (this.jobs.waiting.size === 0 || (!this.placementDirty && this.jobs.pending.size === 0)) return [];
    this.placementDirty = false;
    const decision = admitAndPlace(
      this.jobs,
      this.capacity,
      {
        ...this.o.queue,
        userWeights: this.userWeights,
        offers: this.offers,
        stopWhenFull: !fullPass && this.jobs.pending.size === 0,
        skip: this.cancelling,
      },
      this.clock.now(),
    );
    batch.items.push(...decision.items);
    if (decision.more) this.placementDirty = true;
    return decision.placed;
  }

  /** After the commit: actors follow the database, and commands go out. */
  private mirror(plans: Map<string, Plan>, applied: Set<string>, placedNow: Set<string>): Promise<void>[] {
    const commands: Promise<void>[] = [];
    const now = this.clock.now();
    for (const [id, plan] of plans) {
      const job = this.jobs.get(id);
      if (!job || !applied.has(id)) continue;
      job.commit(plan.applied, plan.after, now);
      this.jobs.touch(job);
      if (plan.applied.some((e) => e.type === 'place')) this.stats.placements++;
      for (const e of plan.effects) {
        if (e.type === 'releaseGpus') {
          this.capacity.release(id);
          this.placementDirty = true;
        } else if (e.type === 'dispatchRun') commands.push(this.commands.run(job));
        else if (e.type === 'dispatchKill') {
          const why = job.rec.preemptedBy && !isTerminal(job.status) ? `preempted by FAST job ${job.rec.preemptedBy}` : (job.rec.statusReason ?? 'cancelled');
          commands.push(this.commands.kill(job, why, job.nodes().filter((n) => !job.endedMembers().has(n))));
        }
      }
      if (isTerminal(job.status)) this.finishOrHold(job, job.rec.statusReason ?? 'finished');
    }
    // Held in memory for a placement the database did not take (the job was cancelled meanwhile).
    for (const id of placedNow) {
      if (!applied.has(id) && this.capacity.holding(id)) {
        this.capacity.release(id);
        this.placementDirty = true;
      }
    }
    return commands;
  }

  /** Jobs whose write missed (someone else changed the row): take the row as it is now. */
  private async refreshMissed(plans: Map<string, Plan>, applied: Set<string>): Promise<void> {
    const missed = [...plans.keys()].filter((id) => !applied.has(id));
    if (missed.length === 0) return;
    const rows = new Map((await this.store.loadJobs(missed)).map((r) => [r.id, r]));
    for (const id of missed) {
      const job = this.jobs.get(id);
      if (!job) continue;
      const rec = rows.get(id);
      if (!rec) {
        this.capacity.release(id);
        job.stop();
        this.jobs.delete(id);
        continue;
      }
      job.refresh(rec);
      this.jobs.touch(job);
      if (isTerminal(rec.status)) this.finishOrHold(job, rec.statusReason ?? 'finished');
    }
    this.placementDirty = true;
  }

  /** Allocations freed without a transition (a finished job's kill was confirmed, a gang member ended, its node was lost). */
  private released(refs: ReleaseRef[]): void {
    for (const ref of refs) {
      const job = this.jobs.get(ref.job_id);
      if (!job || job.rec.attempt !== ref.attempt) continue;
      if (ref.node_id) this.capacity.releaseSlice(ref.job_id, ref.node_id);
      else this.capacity.release(ref.job_id);
      this.placementDirty = true;
      if (isTerminal(job.status) && !this.capacity.holding(ref.job_id)) {
        job.stop();
        this.jobs.delete(ref.job_id);
      }
    }
  }

  /** A finished job leaves memory, unless its GPUs stay held until the agent confirms the kill. */
  private finishOrHold(job: LiveJob, reason: string): void {
    const hold = this.capacity.holding(job.rec.id);
    if (hold && (job.status === 'cancelled' || job.status === 'failed')) {
      // Cancelled or timed out: the GPUs stay held until every member's kill is confirmed.
      if (!job.killSentAt) void this.commands.kill(job, reason);
      return;
    }
    if (hold) this.capacity.release(job.rec.id);
    job.stop();
    this.jobs.delete(job.rec.id);
  }

  /** Periodic safety net: re-send kills that got no answer (see Commands.resendKills). */
  resendKills(): void {
    this.commands.resendKills(this.jobs.values());
  }

  private updateStats(): void {
    Object.assign(this.stats, { liveJobs: this.jobs.size, queued: this.jobs.waiting.size, nodes: this.fleet.size });
    this.o.root.send({ type: 'pass', stats: { ...this.stats } });
  }

}

