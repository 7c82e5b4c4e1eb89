/**
 * What the coordinator needs from the world, as interfaces: the durable
 * record (Postgres in production, CoordinatorStore) and the way commands
 * reach node agents (JetStream in production, natsNodeLink). `scalar
 * simulate` runs the same Coordinator with in-memory implementations of both
 * (src/sim/adapters/) and a virtual clock: only the transports and the
 * clock change, never the scheduling code.
 */
import type { Bus } from '../../src/wire/connection.ts';
import { encodeJson, type KillCommand, type RunCommand } from '../../src/wire/messages.ts';
import type { ActiveAllocation, Batch, JobRecord, StoredNode } from './store.ts';

/** The coordinator's reads and its one write per pass (see CoordinatorStore for the Postgres one). */
export interface CoordinatorStorePort {
  loadLiveJobs(): Promise<JobRecord[]>;
  /** Ids of the oldest pending jobs. */
  pendingIds(limit?: number): Promise<string[]>;
  /** These jobs as they are now (missing ids left out). */
  loadJobs(ids: string[]): Promise<JobRecord[]>;
  /** Those of these jobs that are still pending. */
  loadPending(ids: string[]): Promise<JobRecord[]>;
  /** Finished jobs whose allocations are not released yet. */
  loadFinishedHoldingGpus(): Promise<string[]>;
  loadActiveAllocations(): Promise<ActiveAllocation[]>;
  loadNodes(): Promise<StoredNode[]>;
  /** When each live capacity block ends (ms; null: never). */
  loadBlockEnds(): Promise<Map<string, number | null>>;
  /** Fair-share weights that differ from 1, by user id. */
  loadUserWeights(): Promise<Map<string, number>>;
  /**
   * Writes a pass atomically; returns the jobs whose change applied (a row
   * that no longer holds the expected status and attempt is left alone).
   */
  commit(batch: Batch, now: Date): Promise<Set<string>>;
}

/** How commands reach the agents. */
export interface NodeLink {
  /** Delivers a command to the node's durable command queue. `msgID` de-duplicates re-sends. */
  send(nodeId: string, cmd: RunCommand | KillCommand, msgID?: string): Promise<void>;
  /** Asks an agent the coordinator does not know (or lost) to register again. */
  hello(nodeId: string): void;
  /** Drops commands a lost node never consumed. */
  forget(nodeId: string): Promise<void>;
}

/** Commands over JetStream: `<prefix>.node.<id>.cmd` in the NODE_CMDS stream, hellos over core NATS. */
export function natsNodeLink(bus: Bus): NodeLink {
  return {
    async send(nodeId, cmd, msgID) {
      await bus.js.publish(bus.t.subjects.nodeCmd(nodeId), encodeJson(cmd), msgID ? { msgID } : undefined);
    },
    hello(nodeId) {
      bus.nc.publish(bus.t.subjects.nodeHello(nodeId), encodeJson({ reason: 'unknown node' }));
    },
    async forget(nodeId) {
      await bus.jsm.streams.purge(bus.t.streams.NODE_CMDS, { filter: bus.t.subjects.nodeCmd(nodeId) });
    },
  };
}
