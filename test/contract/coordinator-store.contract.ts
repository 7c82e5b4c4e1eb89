/**
 * The contract of CoordinatorStorePort (actors/coordinator/ports.ts): what
 * the coordinator may rely on from its durable record, whichever adapter
 * holds it. test/integration/coordinator-store.test.ts runs it on Postgres
 * (CoordinatorStore), test/unit/sim/coordinator-store.test.ts on the
 * simulator's MemoryCoordinatorStore. Writes are planned by the production
 * planWrites (fixtures' `plan`), so they are the ones a pass commits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyBatch } from '../../actors/coordinator/ports.ts';
import { aJob, aNode, aPlacedJob, T0, USER, uuid } from '../helpers/coordinator-records.ts';
import { plan, unseq, type SeededStore, type StoreFactory, type StoreSeed } from './coordinator-store.fixtures.ts';

const J = (n: number) => uuid('job', n);
const NOW = new Date(T0);

/**
 * The cluster most tests start from. Every live status, a finished job that
 * still holds a GPU, a gang on two nodes, a preempted FLEX job on its second
 * attempt, released allocations (history), and blocks in three states.
 */
const CLUSTER: StoreSeed = {
  users: [
    { id: USER, weight: 2 },
    { id: uuid('user', 2), weight: 1 },
    { id: uuid('user', 3), weight: 0.5 },
  ],
  nodes: [
    aNode('old-1', 'flex', 1),
    aNode('fast-1', 'fast', 8, { blockId: 'blk-1' }),
    // Given highest index first: stores hand GPUs back by index.
    { ...aNode('flex-1', 'flex', 4, { state: 'draining', stateReason: 'maintenance', drainRequested: true, addr: null }), gpus: aNode('flex-1', 'flex', 4).gpus.reverse() },
  ],
  jobs: [
    aJob(1),
    aJob(2, { status: 'queued', statusReason: 'waiting for 2 free GPUs', userId: uuid('user', 3), tier: 'FLEX' }),
    aPlacedJob(3, 'fast-1', [0, 1]),
    aJob(4, { status: 'completed', exitCode: 0, nodeId: 'flex-1', gpuIndices: [0], placements: [{ node_id: 'flex-1', gpu_indices: [0] }], scheduledAt: T0 - 1200_000 }),
    aJob(5, { status: 'failed', statusReason: 'exited with code 1', exitCode: 1, nodeId: 'flex-1', gpuIndices: [3], placements: [{ node_id: 'flex-1', gpu_indices: [3] }] }),
    aJob(6, { priority: 5, userId: uuid('user', 2) }),
    aJob(7, { status: 'cancelled', statusReason: 'cancelled by its owner' }),
    aPlacedJob(8, 'fast-1', [2, 3], {
      nodeCount: 2,
      placements: [
        { node_id: 'fast-1', gpu_indices: [2, 3] },
        { node_id: 'flex-1', gpu_indices: [1, 2] },
      ],
      memberFailure: { node_id: 'flex-1', code: 3, reason: 'gang member on flex-1 exited with code 3' },
    }),
    aPlacedJob(9, 'fast-1', [4], { status: 'scheduled', tier: 'FLEX', attempt: 2, preemptions: 1, preemptedBy: J(8), statusReason: `preempted by FAST job ${J(8)}; stopping` }),
  ],
  allocations: [
    { jobId: J(3), attempt: 1, nodeId: 'fast-1', gpuIndices: [0, 1], createdAt: T0 - 600_000 },
    { jobId: J(4), attempt: 1, nodeId: 'flex-1', gpuIndices: [0], createdAt: T0 - 1200_000 },
    { jobId: J(5), attempt: 1, nodeId: 'flex-1', gpuIndices: [3], createdAt: T0 - 7200_000, releasedAt: T0 - 3600_000 },
    { jobId: J(8), attempt: 1, nodeId: 'fast-1', gpuIndices: [2, 3], createdAt: T0 - 300_000 },
    { jobId: J(8), attempt: 1, nodeId: 'flex-1', gpuIndices: [2, 1], createdAt: T0 - 300_000 },
    { jobId: J(9), attempt: 1, nodeId: 'fast-1', gpuIndices: [5], createdAt: T0 - 5000_000, releasedAt: T0 - 4000_000 },
    { jobId: J(9), attempt: 2, nodeId: 'fast-1', gpuIndices: [4], createdAt: T0 - 60_000 },
  ],
  blocks: [
    { id: 'blk-1', endsAt: T0 + 86_400_000, status: 'active' },
    { id: 'blk-2', endsAt: null, status: 'pending' },
    { id: 'blk-3', endsAt: T0 - 1000, status: 'released' },
  ],
};

const seedOf = (id: string) => CLUSTER.jobs!.find((j) => j.id === id)!;
const seeded = (n: number) => seedOf(J(n));
const ids = (recs: { id: string }[]) => recs.map((r) => r.id);

export function describeCoordinatorStoreContract(name: string, open: () => Promise<StoreFactory>): void {
  describe(`CoordinatorStorePort contract: ${name}`, () => {
    let factory: StoreFactory;
    let s: SeededStore;
    beforeAll(async () => {
      factory = await open();
    });
    afterAll(async () => {
      await factory?.close?.();
    });
    const cluster = async () => (s = await factory.seed(CLUSTER));

    describe('reads', () => {
      beforeAll(cluster);

      it('loadLiveJobs: pending, queued, scheduled and running jobs in submission order, as stored', async () => {
        const live = await s.store.loadLiveJobs();
        expect(ids(live)).toEqual([J(1), J(2), J(3), J(6), J(8), J(9)]);
        expect(live.map(unseq)).toEqual([1, 2, 3, 6, 8, 9].map(seeded));
        const seqs = live.map((j) => j.seq);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
      });

      it('pendingIds: the oldest pending jobs first, up to the limit', async () => {
        expect(await s.store.pendingIds()).toEqual([J(1), J(6)]);
        expect(await s.store.pendingIds(1)).toEqual([J(1)]);
      });

      it('loadJobs: the named jobs whatever their status, once each; missing ids are left out', async () => {
        const got = await s.store.loadJobs([J(7), J(3), J(99), J(3)]);
        expect(got.map(unseq).sort((a, b) => a.id.localeCompare(b.id))).toEqual([seeded(3), seeded(7)]);
        expect(await s.store.loadJobs([])).toEqual([]);
      });

      it('loadPending: only those of the named jobs that are still pending', async () => {
        const got = await s.store.loadPending([J(1), J(2), J(6), J(7), J(99)]);
        expect(ids(got).sort()).toEqual([J(1), J(6)]);
        expect(got.map(unseq).sort((a, b) => a.id.localeCompare(b.id))).toEqual([seeded(1), seeded(6)]);
        expect(await s.store.loadPending([])).toEqual([]);
      });

      it('loadFinishedHoldingGpus: finished jobs with an unreleased allocation', async () => {
        expect(await s.store.loadFinishedHoldingGpus()).toEqual([J(4)]);
      });

      it('loadActiveAllocations: one entry per job, attempt and node, GPUs in index order, with the job', async () => {
        const got = await s.store.loadActiveAllocations();
        const key = (a: { job_id: string; nodeId: string }) => `${a.job_id}/${a.nodeId}`;
        expect(got.map((a) => ({ job_id: a.job_id, attempt: a.attempt, nodeId: a.nodeId, gpuIndices: a.gpuIndices })).sort((a, b) => key(a).localeCompare(key(b)))).toEqual([
          { job_id: J(3), attempt: 1, nodeId: 'fast-1', gpuIndices: [0, 1] },
          { job_id: J(4), attempt: 1, nodeId: 'flex-1', gpuIndices: [0] },
          { job_id: J(8), attempt: 1, nodeId: 'fast-1', gpuIndices: [2, 3] },
          { job_id: J(8), attempt: 1, nodeId: 'flex-1', gpuIndices: [1, 2] },
          { job_id: J(9), attempt: 2, nodeId: 'fast-1', gpuIndices: [4] },
        ]);
        for (const a of got) expect(unseq(a.job)).toEqual(seedOf(a.job_id));
      });

      it('loadNodes: every node by id, with its GPUs by index', async () => {
        const nodes = await s.store.loadNodes();
        expect(nodes.map((n) => n.id)).toEqual(['fast-1', 'flex-1', 'old-1']);
        expect(nodes[0]).toEqual(CLUSTER.nodes![1]);
        expect(nodes[1]).toEqual({ ...CLUSTER.nodes![2], gpus: aNode('flex-1', 'flex', 4).gpus });
      });

      it('loadBlockEnds: blocks not released, with their end (null: none)', async () => {
        expect(await s.store.loadBlockEnds()).toEqual(new Map([['blk-1', T0 + 86_400_000], ['blk-2', null]]));
      });

      it('loadUserWeights: fair-share weights other than 1', async () => {
        expect(await s.store.loadUserWeights()).toEqual(new Map([[USER, 2], [uuid('user', 3), 0.5]]));
      });

      it('an empty store reads empty', async () => {
        const e = (await factory.seed({})).store;
        expect([await e.loadLiveJobs(), await e.pendingIds(), await e.loadFinishedHoldingGpus(), await e.loadActiveAllocations(), await e.loadNodes()]).toEqual([[], [], [], [], []]);
        expect([await e.loadBlockEnds(), await e.loadUserWeights()]).toEqual([new Map(), new Map()]);
        s = await factory.seed(CLUSTER);
      });
    });

    describe('commit', () => {
      it('applies transitions with their job_events rows and returns their jobs; a diagnosis alone writes no event', async () => {
        await cluster();
        const batch = await plan(s.store, [[J(1), { type: 'admit' }], [J(2), { type: 'diagnose', reason: 'waiting for 4 free GPUs' }]]);
        expect(await s.store.commit(batch, NOW)).toEqual(new Set([J(1), J(2)]));
        const [j1, j2] = await s.store.loadJobs([J(1), J(2)]).then((r) => r.sort((a, b) => a.seq - b.seq));
        expect(unseq(j1!)).toEqual({ ...seeded(1), status: 'queued', statusReason: 'waiting for capacity' });
        expect(unseq(j2!)).toEqual({ ...seeded(2), statusReason: 'waiting for 4 free GPUs' });
        expect(await s.events(J(1))).toEqual([{ attempt: 1, from_status: 'pending', to_status: 'queued', event: 'admit', reason: 'waiting for capacity', failure_code: null, at: T0 }]);
        expect(await s.events(J(2))).toEqual([]);
        expect(await s.store.pendingIds()).toEqual([J(6)]);
        expect(await s.store.loadPending([J(1)])).toEqual([]);
      });

      it('a placement binds the job to its GPUs, stamps scheduled_at and inserts its allocations', async () => {
        await cluster();
        const gang = [
          { node_id: 'fast-1', gpu_indices: [6, 7] },
          { node_id: 'flex-1', gpu_indices: [3] },
        ];
        const batch = await plan(s.store, [[J(2), { type: 'place', node_id: 'fast-1', gpu_indices: [6, 7], placements: gang }]]);
        expect(await s.store.commit(batch, NOW)).toEqual(new Set([J(2)]));
        const [j2] = await s.store.loadJobs([J(2)]);
        expect(unseq(j2!)).toEqual({ ...seeded(2), status: 'scheduled', statusReason: 'starting on 2 nodes (fast-1, flex-1)', nodeId: 'fast-1', gpuIndices: [6, 7], placements: gang, scheduledAt: T0 });
        const mine = (await s.store.loadActiveAllocations()).filter((a) => a.job_id === J(2)).sort((a, b) => a.nodeId.localeCompare(b.nodeId));
        expect(mine.map((a) => [a.nodeId, a.attempt, a.gpuIndices, a.job.status])).toEqual([
          ['fast-1', 1, [6, 7], 'scheduled'],
          ['flex-1', 1, [3], 'scheduled'],
        ]);
        expect((await s.events(J(2))).map((e) => [e.from_status, e.to_status, e.event])).toEqual([['queued', 'scheduled', 'place']]);
      });

      it('an attempt that ends frees its allocations and writes a usage row per node, priced by tier', async () => {
        await cluster();
        const batch = await plan(s.store, [[J(3), { type: 'exit', code: 0 }], [J(9), { type: 'exit', code: 143 }]]);
        expect(await s.store.commit(batch, NOW)).toEqual(new Set([J(3), J(9)]));
        const rows = new Map((await s.store.loadJobs([J(3), J(9)])).map((r) => [r.id, unseq(r)]));
        expect(rows.get(J(3))).toEqual({ ...seeded(3), status: 'completed', exitCode: 0 });
        // A preempted attempt goes back to the queue: next attempt, one more preemption.
        expect(rows.get(J(9))).toMatchObject({ status: 'queued', attempt: 3, preemptions: 2, preemptedBy: null, statusReason: `preempted by FAST job ${J(8)}` });
        expect((await s.store.loadActiveAllocations()).filter((a) => a.job_id === J(3) || a.job_id === J(9))).toEqual([]);
        // 2 GPUs × 600 s = 1200 GPU-s at 3.6 $/h (FAST) = 1.2 $; 1 GPU × 60 s at 1.8 $/h (FLEX) = 0.03 $.
        expect(sortUsage(await s.usage())).toEqual([
          { jobId: J(3), attempt: 1, nodeId: 'fast-1', gpus: 2, gpuSeconds: 1200, costUsd: expect.closeTo(1.2, 9) },
          { jobId: J(9), attempt: 2, nodeId: 'fast-1', gpus: 1, gpuSeconds: 60, costUsd: expect.closeTo(0.03, 9) },
        ]);
        expect((await s.events(J(9))).map((e) => [e.attempt, e.from_status, e.to_status, e.event])).toEqual([[3, 'scheduled', 'queued', 'exit']]);
        // The code is stored with the row and with its transition.
        expect((await s.events(J(9)))[0]!.failure_code).toBe('preempted');
        expect(rows.get(J(9))!.failureCode).toBe('preempted');
      });

      it('a write whose row moved on (status or attempt) is left alone with its events, allocations and releases; others apply', async () => {
        await cluster();
        const late = await plan(s.store, [[J(3), { type: 'exit', code: 0 }], [J(9), { type: 'exit', code: 143 }], [J(1), { type: 'admit' }]]);
        // Meanwhile job 3 is cancelled (its GPUs stay held until the kill is confirmed).
        expect(await s.store.commit(await plan(s.store, [[J(3), { type: 'cancel', reason: 'cancelled by its owner' }]]), NOW)).toEqual(new Set([J(3)]));
        // And job 9's write names an attempt that is no longer current.
        late.writes.find((w) => w.jobId === J(9))!.expect.attempt = 1;
        expect(await s.store.commit(late, new Date(T0 + 1000))).toEqual(new Set([J(1)]));
        const rows = new Map((await s.store.loadJobs([J(1), J(3), J(9)])).map((r) => [r.id, unseq(r)]));
        expect(rows.get(J(3))).toEqual({ ...seeded(3), status: 'cancelled', statusReason: 'cancelled by its owner', failureCode: 'cancelled_by_user' });
        expect(rows.get(J(9))).toEqual(seeded(9));
        expect(rows.get(J(1))!.status).toBe('queued');
        expect((await s.events(J(3))).map((e) => e.to_status)).toEqual(['cancelled']);
        expect(await s.events(J(9))).toEqual([]);
        const held = (await s.store.loadActiveAllocations()).map((a) => `${a.job_id}/${a.attempt}`);
        expect(held).toContain(`${J(3)}/1`);
        expect(held).toContain(`${J(9)}/2`);
        expect(await s.usage()).toEqual([]);
        expect(await s.store.loadFinishedHoldingGpus().then((x) => x.sort())).toEqual([J(3), J(4)]);
      });

      it('releases without a transition always apply, to one node when named, to the attempt named only', async () => {
        await cluster();
        const batch = emptyBatch();
        batch.releases = [
          { job_id: J(4), attempt: 1 },
          { job_id: J(8), attempt: 1, node_id: 'flex-1' },
          // Attempt 1 of job 9 was released long ago; attempt 2 is not named.
          { job_id: J(9), attempt: 1 },
        ];
        expect(await s.store.commit(batch, NOW)).toEqual(new Set());
        expect(await s.store.loadFinishedHoldingGpus()).toEqual([]);
        const held = (await s.store.loadActiveAllocations()).map((a) => `${a.job_id}/${a.attempt}/${a.nodeId}`).sort();
        expect(held).toEqual([`${J(3)}/1/fast-1`, `${J(8)}/1/fast-1`, `${J(9)}/2/fast-1`]);
        // Job 4: 1 GPU × 1200 s, FAST; job 8 on flex-1: 2 GPUs × 300 s, FAST.
        expect(sortUsage(await s.usage())).toEqual([
          { jobId: J(4), attempt: 1, nodeId: 'flex-1', gpus: 1, gpuSeconds: 1200, costUsd: expect.closeTo(1.2, 9) },
          { jobId: J(8), attempt: 1, nodeId: 'flex-1', gpus: 2, gpuSeconds: 600, costUsd: expect.closeTo(0.6, 9) },
        ]);
        // The jobs themselves are untouched.
        expect((await s.store.loadJobs([J(4)])).map(unseq)).toEqual([seeded(4)]);
      });

      it('node rows: upserts insert or replace a node and its GPUs, state writes update known nodes, deletes remove', async () => {
        await cluster();
        const batch = emptyBatch();
        const fast2 = aNode('fast-2', 'fast', 2, { state: 'registering', stateReason: 'waiting for the agent to register', blockId: 'blk-2' });
        const flex1 = aNode('flex-1', 'flex', 2, { runtime: 'docker', cpuCores: 32, ramGb: 256, addr: '10.0.0.7' });
        batch.nodeUpserts = [fast2, flex1];
        batch.nodeStates = [
          { id: 'fast-1', state: 'draining', stateReason: 'operator drain', drainRequested: true },
          { id: 'ghost', state: 'lost', stateReason: 'never seen', drainRequested: false },
        ];
        batch.nodeDeletes = ['old-1'];
        batch.heartbeats = new Map([['fast-1', NOW]]);
        expect(await s.store.commit(batch, NOW)).toEqual(new Set());
        expect(await s.store.loadNodes()).toEqual([
          { ...CLUSTER.nodes![1], state: 'draining', stateReason: 'operator drain', drainRequested: true },
          fast2,
          flex1,
        ]);
      });

      it('a GPU gets at most one active holder: a batch that double-books one throws and writes nothing', async () => {
        await cluster();
        // Job 2 onto fast-1 GPU 1, which job 3 holds; with it, a valid admission and a node row.
        const batch = await plan(s.store, [[J(1), { type: 'admit' }], [J(2), { type: 'place', node_id: 'fast-1', gpu_indices: [1, 6] }]]);
        batch.nodeUpserts = [aNode('fast-2', 'fast', 1)];
        await expect(s.store.commit(batch, NOW)).rejects.toThrow();
        // Two placements of one pass on the same free GPU.
        const twice = await plan(s.store, [[J(2), { type: 'place', node_id: 'fast-1', gpu_indices: [6] }]]);
        twice.writes[0]!.allocations.push({ attempt: 1, node_id: 'fast-1', gpu_index: 6 });
        await expect(s.store.commit(twice, NOW)).rejects.toThrow();
        expect((await s.store.loadJobs([J(1), J(2)])).map(unseq).sort((a, b) => a.id.localeCompare(b.id))).toEqual([seeded(1), seeded(2)]);
        expect([await s.events(J(1)), await s.events(J(2))]).toEqual([[], []]);
        expect((await s.store.loadNodes()).map((n) => n.id)).toEqual(['fast-1', 'flex-1', 'old-1']);
        expect((await s.store.loadActiveAllocations()).filter((a) => a.job_id === J(2))).toEqual([]);
        // A GPU whose allocation was released (job 5's) is free again.
        expect(await s.store.commit(await plan(s.store, [[J(2), { type: 'place', node_id: 'flex-1', gpu_indices: [3] }]]), NOW)).toEqual(new Set([J(2)]));
      });

      it('an empty batch changes nothing', async () => {
        await cluster();
        expect(await s.store.commit(emptyBatch(), NOW)).toEqual(new Set());
        expect((await s.store.loadLiveJobs()).map(unseq)).toEqual([1, 2, 3, 6, 8, 9].map(seeded));
      });
    });
  });
}

function sortUsage<T extends { jobId: string; nodeId: string }>(rows: T[]): T[] {
  return [...rows].sort((a, b) => `${a.jobId}/${a.nodeId}`.localeCompare(`${b.jobId}/${b.nodeId}`));
}
