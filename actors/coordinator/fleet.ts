/**
 * The coordinator's nodes: one live node actor per node, their heartbeats
 * and missed-heartbeat ticks, registrations, drain and resume, losses, and
 * reconciliation of what each agent runs with what was placed on it.
 * Node rows to write are collected here and flushed into each pass's batch.
 */
import type { Logger } from 'pino';
import type { AnyActorRef } from 'xstate';
import { isTerminal } from '../../machines/job.machine.ts';
import { isSchedulable, type NodeState } from '../../machines/node.machine.ts';
import { attemptKey, type AttemptRef } from '../../src/domain/cluster.ts';
import type { CapacitySnapshot, NodeCapacity } from '../../src/placement/index.ts';
import type { Clock } from '../../src/domain/clock.ts';
import type { Heartbeat, NodeActionReply, RegisteredEvent } from '../../src/wire/messages.ts';
import type { NodeAction } from '../../src/wire/subjects.ts';
import type { Commands } from './commands.ts';
import type { NodeLink } from './ports.ts';
import { LiveNode, type JobTable, type LiveJob, type NodeInfo } from './live.ts';
import type { After, MemberEndInput } from './inputs.ts';
import type { Batch, StoredNode } from './ports.ts';

/** What the fleet needs from the coordinator around it. */
export interface FleetHost {
  link: NodeLink;
  log: Logger;
  clock: Clock;
  heartbeatIntervalMs: number;
  /** SCALAR_NODE_LOST_SEC in ms: a node silent this long is lost. */
  nodeLostAfterMs: number;
  /** More than this share of the nodes (and at least 2) silent in one interval: the misses do not count. */
  evictionHoldShare: number;
  root: AnyActorRef;
  jobs: JobTable;
  capacity: CapacitySnapshot;
  commands: Commands;
  /** A node was lost: its jobs are requeued in the next pass. */
  nodeLost(nodeId: string): void;
  /** One member of a job's current attempt ended on this node (here: the node was lost). */
  memberEnded(job: LiveJob, nodeId: string, end: MemberEndInput, batch: Batch, after: After): void;
  /** When a block ends (ms), or null: never; undefined: unknown block. */
  blockEnd(blockId: string): number | null | undefined;
  /** Whether a block still runs (a released block's nodes are stopped, so their silence is expected). */
  blockLive(blockId: string): boolean;
  /** Free capacity may have changed: place again in the next pass. */
  placementChanged(): void;
  /** Something must be written: run a pass soon. */
  kick(): void;
}

export class Fleet {
  readonly nodes = new Map<string, LiveNode>();
  /** Node ids by capacity block (the autoscaler asks whether a block is busy on every pass). */
  private readonly byBlock = new Map<string, Set<string>>();
  private readonly dirty = new Set<string>();
  private readonly heartbeatTimes = new Map<string, Date>();
  private lastHeartbeatFlush = 0;

  constructor(private readonly h: FleetHost) {}

  get size(): number {
    return this.nodes.size;
  }

  /** Rebuilds a node actor from its row (at start, or on a resync). */
  restore(n: StoredNode): void {
    const node = this.newNode(n.id, n, n.state, n.stateReason, n.drainRequested);
    this.h.capacity.upsertNode(this.capacityOf(node));
  }

  clear(): void {
    for (const n of this.nodes.values()) n.stop();
    this.nodes.clear();
    this.byBlock.clear();
    this.dirty.clear();
  }

  heartbeat(hb: Heartbeat): void {
    const node = this.nodes.get(hb.node_id);
    const now = this.h.clock.now();
    if (!node || node.state === 'lost' || node.state === 'registering' || (node.bootId && node.bootId !== hb.boot_id)) {
      // Unknown, lost, or restarted without us seeing its registration: ask it to register (again).
      if (!node || now - node.lastHelloAt > 2000) {
        if (node) node.lastHelloAt = now;
        this.h.link.hello(hb.node_id);
      }
      return;
    }
    node.lastHeartbeatAt = now;
    node.actor.send({ type: 'heartbeat' });
    this.heartbeatTimes.set(hb.node_id, new Date(now));
    if (now - node.lastReconcileAt >= 2 * this.h.heartbeatIntervalMs) {
      node.lastReconcileAt = now;
      this.reconcile(node, hb.running);
    }
    if (now - this.lastHeartbeatFlush >= 1000) this.h.kick();
  }

  /** Intervals without a heartbeat after which a node is lost: nodeLostAfterMs over the interval, at least 1. */
  private get lostAfterMissed(): number {
    return Math.max(1, Math.ceil(this.h.nodeLostAfterMs / this.h.heartbeatIntervalMs));
  }

  /** Whether evictions are held now (too many nodes silent at once). */
  private holdingEvictions = false;

  /**
   * Called once per heartbeat interval: a node that sent nothing since the
   * last tick missed one. When more than `evictionHoldShare` of the nodes
   * that are not lost (and at least 2) are silent in the same interval, no
   * miss counts: so many at once says the fault is between them and us (our
   * network, NATS), not in the nodes, and evicting them all would restart
   * every job for nothing. Kubernetes' node lifecycle controller stops
   * evicting in a zone that is fully disrupted for the same reason.
   */
  tick(): void {
    const now = this.h.clock.now();
    // Nodes of a released block were stopped on purpose: their silence is expected, and always counts.
    const expected = (n: LiveNode) => n.info.blockId !== null && !this.h.blockLive(n.info.blockId);
    const up = [...this.nodes.values()].filter((n) => n.state !== 'lost' && !expected(n));
    const silent = up.filter((n) => n.lastHeartbeatAt < n.lastTickAt);
    const hold = silent.length >= 2 && silent.length / up.length > this.h.evictionHoldShare;
    if (hold !== this.holdingEvictions) {
      this.holdingEvictions = hold;
      if (hold) {
        this.h.log.warn(
          { silent: silent.length, nodes: up.length, share: this.h.evictionHoldShare },
          `${silent.length} of ${up.length} nodes missed the same heartbeat: holding evictions (more than SCALAR_EVICTION_HOLD_SHARE=${this.h.evictionHoldShare} at once looks like a network or NATS fault, not ${silent.length} dead nodes)`,
        );
      } else this.h.log.info({ nodes: up.length }, 'heartbeats are back from most nodes: counting missed heartbeats again');
    }
    for (const node of this.nodes.values()) {
      if ((!hold || expected(node)) && node.state !== 'lost' && node.lastHeartbeatAt < node.lastTickAt) node.actor.send({ type: 'tick' });
      node.lastTickAt = now;
    }
  }

  /** Missed heartbeats count from `now` again: the last tick before an outage of ours is forgotten. */
  restartMissCounting(now: number): void {
    for (const node of this.nodes.values()) node.lastTickAt = now;
  }

  registered(ev: RegisteredEvent, batch: Batch, after: After): void {
    const info: NodeInfo = {
      pool: ev.pool,
      runtime: ev.runtime,
      cpuCores: ev.cpu_cores,
      ramGb: ev.ram_gb,
      gpus: ev.gpus,
      blockId: ev.block_id ?? null,
      addr: ev.addr ?? null,
    };
    let node = this.nodes.get(ev.node_id);
    if (!node) node = this.newNode(ev.node_id, info, 'registering', 'waiting for the agent to register', false);
    else {
      this.unindex(node);
      node.info = info;
      this.index(node);
    }
    node.bootId = ev.boot_id;
    node.lastHeartbeatAt = this.h.clock.now();
    node.actor.send({ type: 'registered' });
    this.h.capacity.upsertNode(this.capacityOf(node));
    this.h.placementChanged();
    this.dirty.delete(node.id);
    batch.nodeUpserts.push({
      id: node.id,
      pool: info.pool,
      runtime: info.runtime,
      cpuCores: info.cpuCores,
      ramGb: info.ramGb,
      gpus: info.gpus,
      state: node.state,
      stateReason: node.stateReason,
      drainRequested: node.drainRequested,
      blockId: info.blockId,
      addr: info.addr,
    });
    this.h.log.info({ node_id: node.id, pool: info.pool, gpus: info.gpus.length, state: node.state }, 'node registered');
    const n = node;
    after.push(() => this.reconcile(n, ev.running, true));
  }

  /** The node machine declared it lost: its members of live jobs ended (requeued), and what finished jobs held there is freed. */
  lost(nodeId: string, batch: Batch, after: After): void {
    const reason = `node ${nodeId} lost (no heartbeat for ${this.lostAfterMissed} intervals of ${this.h.heartbeatIntervalMs / 1000} s)`;
    for (const job of [...this.h.jobs.onNode(nodeId)]) this.h.memberEnded(job, nodeId, { code: null, reason, lost: true }, batch, after);
    this.h.log.warn({ node_id: nodeId }, 'node lost: requeueing its jobs');
    // Commands it never consumed are void now; a returning agent is reconciled instead.
    after.push(async () => {
      await this.h.link
        .forget(nodeId)
        .catch((err) => this.h.log.warn({ err, node_id: nodeId }, "could not purge the lost node's commands"));
    });
  }

  /** An operator's drain or resume; the reply goes out after the pass commits. */
  action(action: NodeAction, nodeId: string, reason: string | undefined, reply: (r: NodeActionReply) => void, replies: Array<() => void>): void {
    const node = this.nodes.get(nodeId);
    if (!node) {
      replies.push(() => reply({ ok: false, error: 'node_not_found', message: `node ${nodeId} not found` }));
      return;
    }
    node.actor.send(action === 'drain' ? { type: 'drain', reason } : { type: 'resume' });
    this.noteChange(node);
    replies.push(() => reply({ ok: true, state: node.state }));
  }

  /** Node rows due: changed states, and heartbeat times (at most once a second). */
  flush(batch: Batch): void {
    for (const id of this.dirty) {
      const node = this.nodes.get(id);
      if (node) batch.nodeStates.push({ id, state: node.state, stateReason: node.stateReason, drainRequested: node.drainRequested });
    }
    this.dirty.clear();
    if (this.h.clock.now() - this.lastHeartbeatFlush >= 1000 && this.heartbeatTimes.size > 0) {
      for (const [id, at] of this.heartbeatTimes) batch.heartbeats.set(id, at);
      this.heartbeatTimes.clear();
      this.lastHeartbeatFlush = this.h.clock.now();
    }
  }

  /** The pass did not commit: its node rows are due again. */
  unflush(batch: Batch): void {
    for (const [id, at] of batch.heartbeats) if (!this.heartbeatTimes.has(id)) this.heartbeatTimes.set(id, at);
    for (const n of batch.nodeStates) this.dirty.add(n.id);
    for (const n of batch.nodeUpserts) this.dirty.add(n.id);
  }

  private newNode(id: string, info: NodeInfo, state: NodeState, reason: string | null, drain: boolean): LiveNode {
    const node = new LiveNode(
      id,
      info,
      state,
      reason,
      drain,
      { nodeLost: (nodeId) => this.h.nodeLost(nodeId), nodeReady: () => this.h.placementChanged() },
      this.h.root,
      this.h.clock.now(),
      this.lostAfterMissed,
    );
    let last = `${node.state}|${node.stateReason}|${node.drainRequested}`;
    node.actor.subscribe((snap) => {
      const now = `${snap.value}|${snap.context.stateReason}|${snap.context.drainRequested}`;
      if (now === last) return;
      last = now;
      this.noteChange(node);
    });
    this.nodes.set(id, node);
    this.index(node);
    return node;
  }

  private index(node: LiveNode): void {
    const b = node.info.blockId;
    if (!b) return;
    let set = this.byBlock.get(b);
    if (!set) this.byBlock.set(b, (set = new Set()));
    set.add(node.id);
  }

  private unindex(node: LiveNode): void {
    const b = node.info.blockId;
    const set = b ? this.byBlock.get(b) : undefined;
    if (!set) return;
    set.delete(node.id);
    if (set.size === 0) this.byBlock.delete(b!);
  }

  private noteChange(node: LiveNode): void {
    this.dirty.add(node.id);
    this.h.capacity.setSchedulable(node.id, isSchedulable(node.state));
    this.h.placementChanged();
    this.h.kick();
  }

  private capacityOf(node: LiveNode): NodeCapacity {
    const blockId = node.info.blockId;
    return {
      nodeId: node.id,
      pool: node.info.pool,
      schedulable: isSchedulable(node.state),
      cpuTotal: node.info.cpuCores,
      ramTotal: node.info.ramGb,
      gpus: node.info.gpus.map((g) => ({ index: g.index, vramGb: g.vram_gb, heldBy: null })),
      blockId,
      endsAt: blockId ? (this.h.blockEnd(blockId) ?? null) : null,
    };
  }

  /** A block's end changed (bought, extended, or learnt after a restart): placement follows. */
  blockChanged(blockId: string, endsAt: number | null): void {
    for (const id of this.byBlock.get(blockId) ?? []) this.h.capacity.setEndsAt(id, endsAt);
    this.h.placementChanged();
  }

  /** Where gang members reach a node. */
  addrOf(nodeId: string): string {
    return this.nodes.get(nodeId)?.info.addr ?? nodeId;
  }

  /** Drains nodes on the capacity actor's behalf (a block being released); no reply is due. */
  drainAll(nodeIds: string[], reason: string): void {
    for (const id of nodeIds) {
      const node = this.nodes.get(id);
      if (!node || node.state === 'lost') continue;
      node.actor.send({ type: 'drain', reason });
      this.noteChange(node);
    }
  }

  /**
   * Forgets the lost nodes of released blocks that hold nothing any more:
   * their agents were stopped with the block, and a released block's nodes
   * never come back. Without this, GET /nodes and every pass would carry
   * them forever.
   */
  retireReleased(batch: Batch, blockLive: (blockId: string) => boolean): void {
    for (const node of [...this.nodes.values()]) {
      const blockId = node.info.blockId;
      if (!blockId || blockLive(blockId) || node.state !== 'lost') continue;
      if ((this.h.capacity.state(node.id)?.holds.length ?? 0) > 0) continue;
      node.stop();
      this.unindex(node);
      this.nodes.delete(node.id);
      this.dirty.delete(node.id);
      this.heartbeatTimes.delete(node.id);
      this.h.capacity.removeNode(node.id);
      batch.nodeDeletes.push(node.id);
      this.h.log.info({ node_id: node.id, block_id: blockId }, 'forgot a node of a released capacity block');
    }
  }

  /** Node ids that belong to a block. */
  nodesOfBlock(blockId: string): string[] {
    return [...(this.byBlock.get(blockId) ?? [])];
  }

  /**
   * Compares what an agent says it runs with what we placed there: it kills
   * attempts that are not current, and re-sends `run` for current ones it
   * does not know (a command lost between our commit and the publish).
   */
  private reconcile(node: LiveNode, running: AttemptRef[], registering = false): void {
    const theirs = new Set(running.map(attemptKey));
    for (const r of running) {
      const job = this.h.jobs.get(r.job_id);
      const current = job && !isTerminal(job.status) && job.rec.attempt === r.attempt && job.nodes().includes(node.id) && !job.endedMembers().has(node.id);
      if (!current) void this.h.commands.killStale(node.id, r);
    }
    const now = this.h.clock.now();
    for (const job of this.h.jobs.onNode(node.id)) {
      // Scheduled, or a running gang whose member on this node never started
      // (its run was lost while another member's arrived): the member would
      // otherwise never start and the others would wait for it forever.
      const gangMember = job.status === 'running' && job.nodes().length > 1;
      if (job.status !== 'scheduled' && !gangMember) continue;
      if (job.rec.preemptedBy || job.rec.memberFailure || job.endedMembers().has(node.id)) continue;
      if (theirs.has(attemptKey({ job_id: job.rec.id, attempt: job.rec.attempt }))) continue;
      if (registering || now - job.dispatchedAt > 3 * this.h.heartbeatIntervalMs) void this.h.commands.run(job, node.id);
    }
  }
}
