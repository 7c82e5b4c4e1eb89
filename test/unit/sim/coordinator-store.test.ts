/**
 * The coordinator-store contract on the simulator's in-memory store, wired
 * as `scalar simulate` wires it: block ends come from the in-memory
 * capacity record.
 */
import { MemoryCapacityStore } from '../../../src/sim/adapters/capacity-store.ts';
import { MemoryCoordinatorStore } from '../../../src/sim/adapters/coordinator-store.ts';
import { describeCoordinatorStoreContract } from '../../contract/coordinator-store.contract.ts';
import { blockRow, PRICES } from '../../contract/coordinator-store.fixtures.ts';

describeCoordinatorStoreContract('in memory (MemoryCoordinatorStore)', async () => ({
  async seed(seed) {
    const capacity = new MemoryCapacityStore();
    for (const b of seed.blocks ?? []) await capacity.insertBlock(blockRow(b), { action: 'buy', tier: 'fast', blockId: b.id, reason: 'seed', inputs: {} });
    const store = new MemoryCoordinatorStore(PRICES, () => capacity.blockEnds(), { keepEvents: true });
    for (const u of seed.users ?? []) store.setUserWeight(u.id, u.weight);
    store.insertJobs(seed.jobs ?? []);
    store.insertNodes(seed.nodes ?? []);
    // Released allocations are history, which the in-memory store does not keep.
    store.insertAllocations((seed.allocations ?? []).filter((a) => a.releasedAt === undefined));
    return {
      store,
      events: async (jobId) => store.events!.filter((e) => e.job_id === jobId).map(({ job_id: _, ...e }) => e),
      usage: async () => store.usage.map((u) => ({ ...u })),
    };
  },
}));
