/**
 * Node agents in virtual time, and the in-memory transport between them and
 * the coordinator: a NodeLink (the coordinator's commands reach an agent at
 * once) and node events pushed straight into the coordinator's inbox, as the
 * JetStream consumer in actors/coordinator/index.ts would.
 *
 * An agent here behaves as `scalar agent` does towards the coordinator
 * (actors/agent/executions.ts):
 * - `run` starts the attempt (`started` now) and it exits 0 after the job's
 *   trace duration; a second `run` of a known attempt is ignored, or its exit
 *   is reported again;
 * - `kill` of a running attempt: the process gets SIGTERM and exits 143
 *   SIGTERM_EXIT_SEC later (a checkpoint), or at the grace if that is
 *   shorter, unless it ends (0) before then; `kill` of an attempt it never ran leaves a tombstone and
 *   reports it exited, so a late `run` never starts;
 * - every heartbeat interval it reports what it runs, and asked to
 *   register again (`hello`) it does, with the attempts it runs.
 * Launching is instant: the replay measures scheduling, not image pulls.
 */
import type { Input } from '../../../actors/coordinator/inputs.ts';
import type { NodeLink } from '../../../actors/coordinator/ports.ts';
import type { LaunchBlock, NodeLauncher } from '../../../actors/capacity/launcher.ts';
import type { Heartbeat, KillCommand, NodeBusEvent, RunCommand } from '../../wire/messages.ts';
import { attemptKey } from '../../domain/cluster.ts';
import type { Clock, Timer } from '../../domain/clock.ts';
import type { Pool } from '../types.ts';

/** How long a job takes to stop after SIGTERM (it checkpoints), unless the grace is shorter. */
export const SIGTERM_EXIT_SEC = 5;

export interface AgentNode {
  id: string;
  pool: Pool;
  gpus: number;
  vramGb: number;
  cpuCores: number;
  ramGb: number;
  blockId: string | null;
}

interface Execution {
  jobId: string;
  attempt: number;
  gpus: number;
  cpuCores: number;
  ramGb: number;
  exited: { code: number; killed: boolean } | null;
  exitTimer: Timer | null;
  /** When it exits 0 if nobody kills it (ms). */
  endsAt: number;
  killRequested: boolean;
}

interface Agent {
  node: AgentNode;
  bootId: string;
  running: Map<string, Execution>;
  done: Map<string, Execution>;
}

export interface SimAgentsOptions {
  clock: Clock;
  /** Where node events go (the coordinator's inbox). */
  push(input: Input): void;
  /** How long a job runs once started (s). */
  durationOf(jobId: string): number;
}

export class SimAgents implements NodeLink {
  private readonly agents = new Map<string, Agent>();
  private boots = 0;

  constructor(private readonly o: SimAgentsOptions) {}

  /** Starts an agent: it registers with the coordinator. */
  start(node: AgentNode): void {
    if (this.agents.has(node.id)) return;
    const agent: Agent = { node, bootId: `boot-${++this.boots}`, running: new Map(), done: new Map() };
    this.agents.set(node.id, agent);
    this.register(agent);
  }

  /** The `registered` event, with the attempts the agent runs. */
  private register(agent: Agent): void {
    const node = agent.node;
    this.emit(agent, {
      type: 'registered',
      node_id: node.id,
      boot_id: agent.bootId,
      pool: node.pool,
      runtime: 'simulated',
      cpu_cores: node.cpuCores,
      ram_gb: node.ramGb,
      gpus: Array.from({ length: node.gpus }, (_, index) => ({ index, uuid: `GPU-${node.id}-${index}`, model: `sim-${node.vramGb}GB`, vram_gb: node.vramGb })),
      running: [...agent.running.values()].map((e) => ({ job_id: e.jobId, attempt: e.attempt })),
      block_id: node.blockId,
      addr: node.id,
      time: this.iso(),
    });
  }

  /** Stops agents (their block was released): they stop heartbeating, and the coordinator finds them lost. */
  stop(nodeIds: readonly string[]): void {
    for (const id of nodeIds) {
      const agent = this.agents.get(id);
      if (!agent) continue;
      for (const e of agent.running.values()) e.exitTimer?.cancel();
      this.agents.delete(id);
    }
  }

  /** Every live agent's heartbeat (what it runs now). */
  heartbeats(): Array<{ hb: Heartbeat; nodeId: string }> {
    return [...this.agents.values()].map((a) => {
      const running = [...a.running.values()];
      const used = { gpus: 0, cpu_cores: 0, ram_gb: 0 };
      for (const e of running) {
        used.gpus += e.gpus;
        used.cpu_cores += e.cpuCores;
        used.ram_gb += e.ramGb;
      }
      const free = { gpus: a.node.gpus - used.gpus, cpu_cores: a.node.cpuCores - used.cpu_cores, ram_gb: a.node.ramGb - used.ram_gb };
      const hb: Heartbeat = { node_id: a.node.id, boot_id: a.bootId, running: running.map((e) => ({ job_id: e.jobId, attempt: e.attempt })), free, used, time: this.iso() };
      return { nodeId: a.node.id, hb };
    });
  }

  // ---------------------------------------------------------------- NodeLink

  async send(nodeId: string, cmd: RunCommand | KillCommand): Promise<void> {
    const agent = this.agents.get(nodeId);
    if (!agent) return; // a stopped node: the command waits in a queue nobody reads
    if (cmd.type === 'run') this.run(agent, cmd);
    else this.kill(agent, cmd);
  }

  hello(nodeId: string): void {
    const agent = this.agents.get(nodeId);
    // Asked to register again: the agent does, with what it runs.
    if (agent) this.register(agent);
  }

  async forget(): Promise<void> {
    // In-memory commands are delivered at once: nothing is left to drop.
  }

  // ---------------------------------------------------------------- executions

  private run(agent: Agent, cmd: RunCommand): void {
    const key = attemptKey(cmd);
    const known = agent.running.get(key) ?? agent.done.get(key);
    if (known) {
      if (known.exited) this.reportExit(agent, known);
      return;
    }
    const e: Execution = { jobId: cmd.job_id, attempt: cmd.attempt, gpus: cmd.gpu_indices.length, cpuCores: cmd.cpu_cores, ramGb: cmd.ram_gb, exited: null, exitTimer: null, killRequested: false, endsAt: 0 };
    agent.running.set(key, e);
    this.emit(agent, { type: 'started', node_id: agent.node.id, job_id: cmd.job_id, attempt: cmd.attempt, pid: null, time: this.iso() });
    const ms = this.o.durationOf(cmd.job_id) * 1000;
    e.endsAt = this.o.clock.now() + ms;
    e.exitTimer = this.o.clock.setTimeout(() => this.exit(agent, key, 0, false), ms);
  }

  private kill(agent: Agent, cmd: KillCommand): void {
    const key = attemptKey(cmd);
    const e = agent.running.get(key) ?? agent.done.get(key);
    if (!e) {
      const tomb: Execution = { jobId: cmd.job_id, attempt: cmd.attempt, gpus: 0, cpuCores: 0, ramGb: 0, exited: { code: -1, killed: true }, exitTimer: null, killRequested: true, endsAt: 0 };
      agent.done.set(key, tomb);
      this.reportExit(agent, tomb);
      return;
    }
    if (e.exited) return this.reportExit(agent, e);
    if (e.killRequested) return;
    e.killRequested = true;
    // It stops after its checkpoint (or at the grace); a job that would have ended sooner just ends.
    const stopAt = this.o.clock.now() + Math.min(cmd.grace_sec, SIGTERM_EXIT_SEC) * 1000;
    if (e.endsAt <= stopAt) return;
    e.exitTimer?.cancel();
    e.exitTimer = this.o.clock.setTimeout(() => this.exit(agent, key, 143, true), stopAt - this.o.clock.now());
  }

  private exit(agent: Agent, key: string, code: number, killed: boolean): void {
    const e = agent.running.get(key);
    if (!e || !this.agents.has(agent.node.id)) return;
    agent.running.delete(key);
    e.exited = { code, killed };
    e.exitTimer = null;
    agent.done.set(key, e);
    this.reportExit(agent, e);
  }

  private reportExit(agent: Agent, e: Execution): void {
    const x = e.exited!;
    this.emit(agent, {
      type: 'exited',
      node_id: agent.node.id,
      job_id: e.jobId,
      attempt: e.attempt,
      code: x.code,
      signal: x.killed ? 'SIGTERM' : null,
      killed: x.killed,
      time: this.iso(),
    });
  }

  private emit(agent: Agent, event: NodeBusEvent): void {
    this.o.push({ kind: 'node-event', nodeId: agent.node.id, event });
  }

  private iso(): string {
    return new Date(this.o.clock.now()).toISOString();
  }
}

/** The capacity actor's launcher for bought blocks: their nodes become simulated agents. */
export class SimLauncher implements NodeLauncher {
  constructor(private readonly agents: SimAgents) {}

  async launch(block: LaunchBlock, nodeIds: readonly string[]): Promise<void> {
    for (const id of nodeIds) {
      this.agents.start({ id, pool: block.pool, gpus: block.gpusPerNode, vramGb: block.vramPerGpuGb, cpuCores: block.cpuPerNode, ramGb: block.ramPerNodeGb, blockId: block.id });
    }
  }

  async stop(nodeIds: readonly string[]): Promise<void> {
    this.agents.stop(nodeIds);
  }
}
