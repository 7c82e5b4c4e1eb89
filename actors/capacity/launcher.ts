/**
 * How a bought block's machines become Scalar nodes. A real provider's
 * launcher would boot `scalar agent` on each machine (cloud-init, an SSH
 * step, a DaemonSet); the simulated one starts simulated agents in this
 * process, over the real NATS, exactly as `scalar dev` starts its nodes.
 *
 * Either way the nodes then register like any other: the agent's
 * `registered` event carries `block_id`, and the coordinator records it in
 * nodes.block_id. The capacity actor never writes node rows itself.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { Agent } from '../agent/agent.ts';
import { startSimulatedAgents } from '../agent/simulated-fleet.ts';
import type { Bus } from '../../src/wire/connection.ts';
import type { CommandVerifier } from '../../src/wire/signing.ts';
import type { CapacityTier } from '../../src/capacity/provider.ts';

/** What a launcher needs to know about the block. */
export interface LaunchBlock {
  id: string;
  pool: CapacityTier;
  gpusPerNode: number;
  vramPerGpuGb: number;
  cpuPerNode: number;
  ramPerNodeGb: number;
}

export interface NodeLauncher {
  /**
   * Start (or re-attach to) one agent per node id, each registering with
   * `block_id = block.id`. Idempotent: a node id that already runs is left as
   * is, so a restarted capacity actor may call it again for every live block.
   * Throws if a node cannot be started; the nodes it did start are stopped.
   */
  launch(block: LaunchBlock, nodeIds: readonly string[]): Promise<void>;
  /** Stop these nodes' agents. Unknown or already stopped ids are ignored. */
  stop(nodeIds: readonly string[]): Promise<void>;
}

export interface SimulatedLauncherOptions {
  bus: Bus;
  /** What the block's agents accept: the public key of the coordinator that starts them. */
  verifier: CommandVerifier;
  log: Logger;
  /** Each agent keeps its state under `<stateRoot>/<node id>`, so a relaunched agent re-attaches its attempts. */
  stateRoot: string;
  heartbeatIntervalMs: number;
  /** Simulated runtime speed-up (as `scalar dev --speed`). Default 1. */
  speed?: number;
}

/** Simulated agents in this process, one per node of the block. */
export class SimulatedLauncher implements NodeLauncher {
  private readonly agents = new Map<string, Agent>();
  private readonly log: Logger;

  constructor(private readonly o: SimulatedLauncherOptions) {
    this.log = o.log.child({ component: 'capacity-launcher' });
  }

  async launch(block: LaunchBlock, nodeIds: readonly string[]): Promise<void> {
    const fresh = nodeIds.filter((id) => !this.agents.has(id));
    if (fresh.length === 0) return;
    const started = await startSimulatedAgents(
      fresh.map((id) => ({
        id,
        pool: block.pool,
        gpus: `${block.gpusPerNode}x${block.vramPerGpuGb}`,
        cpu: block.cpuPerNode,
        ramGb: block.ramPerNodeGb,
        blockId: block.id,
      })),
      { bus: this.o.bus, verifier: this.o.verifier, log: this.o.log, stateRoot: this.o.stateRoot, heartbeatIntervalMs: this.o.heartbeatIntervalMs, speed: this.o.speed ?? 1 },
    );
    for (const a of started) this.agents.set(a.nodeId, a);
    this.log.info({ block_id: block.id, nodes: fresh }, 'started simulated agents for the block');
  }

  async stop(nodeIds: readonly string[]): Promise<void> {
    const agents = nodeIds.flatMap((id) => {
      const a = this.agents.get(id);
      this.agents.delete(id);
      return a ? [a] : [];
    });
    // An agent that fails to stop cleanly is gone from our map either way;
    // the coordinator will see it as lost if it keeps silent.
    const results = await Promise.allSettled(agents.map((a) => a.stop()));
    results.forEach((r, i) => {
      if (r.status === 'rejected') this.log.warn({ err: r.reason, node_id: agents[i]!.nodeId }, 'simulated agent did not stop cleanly');
    });
  }

  /** Node ids whose agents run now. */
  running(): string[] {
    return [...this.agents.keys()];
  }

  /** The agent of a node, for tests. */
  agent(nodeId: string): Agent | undefined {
    return this.agents.get(nodeId);
  }

  /** A directory for the agents' state, under SCALAR_DATA_DIR. */
  static stateRootFor(dataDir: string): string {
    return path.join(dataDir, 'block-agents');
  }
}
