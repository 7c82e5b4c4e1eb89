/**
 * Several simulated agents in one process, sharing one NATS connection and
 * one simulated runtime: the nodes of `scalar dev` and of the benchmark.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { Bus } from '../../src/wire/connection.ts';
import type { CommandVerifier } from '../../src/wire/signing.ts';
import type { Pool } from '../../src/domain/cluster.ts';
import { createRuntime, parseGpuSpec } from '../../src/runtimes/index.ts';
import { Agent } from './agent.ts';

export interface SimulatedNode {
  id: string;
  pool: Pool;
  /** e.g. `8x80`. */
  gpus: string;
  cpu: number;
  ramGb: number;
  /** The capacity block the node was bought in, if any. */
  blockId?: string | null;
}

export async function startSimulatedAgents(
  nodes: readonly SimulatedNode[],
  /** `verifier`: in-process agents accept the coordinator's own public key. */
  o: { bus: Bus; verifier: CommandVerifier; log: Logger; stateRoot: string; heartbeatIntervalMs: number; speed: number },
): Promise<Agent[]> {
  const runtime = createRuntime('simulated', { speed: o.speed });
  const agents = nodes.map(
    (n) =>
      new Agent({
        nodeId: n.id,
        pool: n.pool,
        gpus: parseGpuSpec(n.gpus),
        cpuCores: n.cpu,
        ramGb: n.ramGb,
        blockId: n.blockId ?? null,
        runtime,
        stateDir: path.join(o.stateRoot, n.id),
        heartbeatIntervalMs: o.heartbeatIntervalMs,
        bus: o.bus,
        verifier: o.verifier,
        log: o.log,
      }),
  );
  const started = await Promise.allSettled(agents.map((a) => a.start()));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(agents.map((a) => a.stop().catch(() => undefined)));
    throw failed.reason;
  }
  return agents;
}
