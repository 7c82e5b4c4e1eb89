/**
 * Attaches the capacity actor (actors/capacity/actor.ts) to a coordinator:
 * the actor reads the coordinator's demand and drains or closes the nodes of
 * blocks it releases; the coordinator learns which instance shapes could be
 * bought, and when a block it has not read yet ends. `scalar coordinator`
 * and `scalar simulate` attach it the same way.
 */
import { CapacityActor, type CapacityActorOptions } from '../capacity/actor.ts';
import type { CapacityProvider } from '../../src/capacity/provider.ts';
import type { Coordinator } from './coordinator.ts';
import type { QueueSettings } from './queue.ts';
import { POOLS } from '../../src/domain/cluster.ts';

/**
 * What could be bought counts for "could this job ever run?" only when the
 * autoscaler will buy it: without it, a job no node can hold would wait for
 * an admin forever, so it fails fast instead.
 */
export function offersOf(provider: CapacityProvider, autoscale: boolean): QueueSettings['offers'] {
  if (!autoscale) return [];
  return POOLS.flatMap((pool) =>
    provider.instanceTypes().map((it) => ({ pool, gpus: it.gpus, vramPerGpuGb: it.vramPerGpuGb, cpu: it.cpu, ram: it.ramGb, maxNodes: it.maxNodes })),
  );
}

export type AttachOptions = Omit<CapacityActorOptions, 'demand' | 'drainNodes' | 'blockBusy' | 'closeNodes'>;

/** Creates the actor wired to `c`, starts it, and returns it. */
export async function attachCapacityActor(c: Coordinator, o: AttachOptions): Promise<CapacityActor> {
  c.offers = offersOf(o.provider, o.config.SCALAR_AUTOSCALE);
  const actor = new CapacityActor({
    ...o,
    demand: () => c.blocks.demand(),
    drainNodes: async (nodeIds) => c.blocks.drainNodes(nodeIds, 'its capacity block is being released'),
    blockBusy: (blockId) => c.blocks.busy(blockId),
    closeNodes: (blockId, nodeIds) => c.blocks.closeNodes(blockId, nodeIds),
  });
  // A block's nodes may register before the next sweep reads its end: ask the actor.
  c.blocks.lookup = (blockId) => actor.blockEndsAt(blockId) ?? undefined;
  await actor.start();
  return actor;
}
