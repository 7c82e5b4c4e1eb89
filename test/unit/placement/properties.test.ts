/**
 * Properties over random fleets and queues (fast-check): jobs are placed
 * greedily with placeJob + hold, with some releases in between, and every
 * decision is checked against the rules and against a brute-force scan of
 * every node (which the index must never out-guess).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstReject, needOf } from '../../../src/placement/filters.ts';
import {
  CapacitySnapshot,
  expectedHoldTimes,
  FILTERS,
  placeJob,
  POOLS_OF,
  type JobRequest,
  type NodeCapacity,
  type NodeView,
  type PlacementContext,
  type Reservation,
} from '../../../src/placement/index.ts';
import { HOUR, NOW } from './builders.ts';

const VRAMS = [24, 40, 48, 80, 141] as const;

const nodeArb = (i: number) =>
  fc
    .record({
      pool: fc.constantFrom('fast' as const, 'flex' as const),
      vrams: fc.oneof(
        fc.tuple(fc.integer({ min: 0, max: 8 }), fc.constantFrom(...VRAMS)).map(([n, v]) => Array<number>(n).fill(v)),
        fc.array(fc.constantFrom<number>(...VRAMS), { maxLength: 8 }),
      ),
      cpu: fc.integer({ min: 8, max: 128 }),
      ram: fc.integer({ min: 32, max: 1024 }),
      schedulable: fc.integer({ min: 0, max: 9 }).map((x) => x < 8),
      endsInH: fc.option(fc.integer({ min: 0, max: 48 }), { nil: null }),
    })
    .map(
      (n): NodeCapacity => ({
        nodeId: `n${String(i).padStart(2, '0')}`,
        pool: n.pool,
        schedulable: n.schedulable,
        cpuTotal: n.cpu,
        ramTotal: n.ram,
        gpus: n.vrams.map((vramGb, index) => ({ index, vramGb, heldBy: null })),
        endsAt: n.endsInH === null ? null : NOW + n.endsInH * HOUR,
      }),
    );

const fleetArb = fc.integer({ min: 1, max: 24 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => nodeArb(i))));

const jobArb = (i: number) =>
  fc
    .record({
      tier: fc.constantFrom('FAST' as const, 'FLEX' as const),
      gpuCount: fc.constantFrom(0, 1, 1, 1, 2, 4, 8),
      vram: fc.constantFrom(0, ...VRAMS),
      cpu: fc.integer({ min: 0, max: 48 }),
      ram: fc.integer({ min: 0, max: 384 }),
      nodeCount: fc.constantFrom(1, 1, 1, 2, 3),
      durationH: fc.integer({ min: 0, max: 30 }),
      release: fc.boolean(),
    })
    .map((j) => ({
      job: {
        jobId: `j${i}`,
        tier: j.tier,
        priority: 0,
        seq: i,
        userId: `u${i % 3}`,
        gpuCount: j.gpuCount,
        vramPerGpuGb: j.vram,
        cpuCores: j.cpu,
        ramGb: j.ram,
        nodeCount: j.nodeCount,
        expectedDurationSec: j.durationH * 3600,
      } satisfies JobRequest,
      /** Release an earlier job before this one. */
      release: j.release,
    }));

const queueArb = fc.integer({ min: 1, max: 60 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => jobArb(i))));

const scenarioArb = fc.record({
  fleet: fleetArb,
  queue: queueArb,
  firstFit: fc.boolean(),
  /** Reserve some nodes for a phantom job, starting in this many hours. */
  reserve: fc.option(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 20 }), fc.boolean()), { nil: null }),
});

/** The nodes (any state) that placement may consider for the job, per the brute-force definition. */
function feasibleByScan(snap: CapacitySnapshot, job: JobRequest, ctx: PlacementContext): NodeView[] {
  const need = needOf(job, ctx);
  const out: NodeView[] = [];
  for (const pool of POOLS_OF[job.tier]) for (const n of snap.states(pool)) if (firstReject(n, need, ctx) === null) out.push(n);
  return out;
}

/** Could an empty node of this shape hold one member? */
function holdsWhenEmpty(n: NodeView, job: JobRequest): boolean {
  const fit = n.gpus.filter((g) => g.vramGb >= (job.gpuCount > 0 ? job.vramPerGpuGb : 0)).length;
  return fit >= job.gpuCount && job.cpuCores <= n.cpuTotal + 1e-9 && job.ramGb <= n.ramTotal + 1e-9;
}

describe('placement properties', () => {
  it('never over-commits, respects every rule, places whenever a scan says it can', () => {
    fc.assert(
      fc.property(scenarioArb, ({ fleet, queue, firstFit, reserve }) => {
        const snap = new CapacitySnapshot(fleet);
        const reservations = new Map<string, Reservation>();
        if (reserve) {
          const [count, inH, strict] = reserve;
          for (const n of fleet.slice(0, count)) {
            reservations.set(n.nodeId, { jobId: 'phantom', tier: 'FAST', nodeIds: [n.nodeId], startAt: NOW + inH * HOUR, strict });
          }
        }
        const ctx: PlacementContext = { now: NOW, blockMarginSec: 600, firstFit, reservations };
        const held: JobRequest[] = [];

        for (const { job, release } of queue) {
          if (release && held.length > 0) snap.release(held.shift()!.jobId);
          const feasible = feasibleByScan(snap, job, ctx);
          const d = placeJob(snap, job, ctx);
          expect(d.diagnosis.nodes).toBe(POOLS_OF[job.tier].reduce((n, p) => n + snap.nodeCount(p), 0));

          if (d.kind !== 'placed') {
            // The index never misses a fit the scan finds.
            expect(feasible.length).toBeLessThan(job.nodeCount);
            if (d.kind === 'waiting' && d.diagnosis.nodes > 0) {
              expect(FILTERS.reduce((n, f) => n + d.diagnosis.rejected[f], 0)).toBe(d.diagnosis.nodes);
            }
            const capable = POOLS_OF[job.tier].flatMap((p) => [...snap.states(p)]).filter((n) => holdsWhenEmpty(n, job)).length;
            if (d.kind === 'unschedulable') expect(capable).toBeLessThan(job.nodeCount);
            else if (d.diagnosis.nodes > 0) expect(capable).toBeGreaterThanOrEqual(job.nodeCount);
            continue;
          }

          const p = d.placement;
          // Gang: nodeCount distinct nodes, each a full slice.
          expect(p.nodes).toHaveLength(job.nodeCount);
          expect(new Set(p.nodes.map((s) => s.node_id)).size).toBe(job.nodeCount);
          const feasibleIds = new Set(feasible.map((n) => n.nodeId));
          for (const s of p.nodes) {
            const n = snap.state(s.node_id)!;
            // Passes every filter: ready, right pool, reservation, CPU/RAM, GPUs, block time.
            expect(feasibleIds.has(s.node_id), `${job.jobId} on ${s.node_id}`).toBe(true);
            expect(n.schedulable).toBe(true);
            if (job.tier === 'FAST') expect(n.pool).toBe('fast');
            else if (n.pool === 'fast') expect(n.fastJobs).toBe(0);
            if (n.endsAt !== null) expect(n.endsAt).toBeGreaterThanOrEqual(NOW + (job.expectedDurationSec + 600) * 1000);
            expect(s.gpu_indices).toHaveLength(job.gpuCount);
            expect([...s.gpu_indices].sort((a, b) => a - b)).toEqual(s.gpu_indices);
          }
          // FLEX: a fast node only once every feasible flex node is taken.
          if (job.tier === 'FLEX' && p.nodes.some((s) => snap.state(s.node_id)!.pool === 'fast')) {
            for (const n of feasible) if (n.pool === 'flex') expect(p.nodes.some((s) => s.node_id === n.nodeId)).toBe(true);
          }
          // First fit: exactly the smallest ids (flex first for FLEX).
          if (firstFit) {
            const rank = (n: NodeView) => (job.tier === 'FLEX' && n.pool === 'fast' ? 1 : 0);
            const want = feasible
              .sort((a, b) => rank(a) - rank(b) || (a.nodeId < b.nodeId ? -1 : 1))
              .slice(0, job.nodeCount)
              .map((n) => n.nodeId);
            expect(p.nodes.map((s) => s.node_id)).toEqual(want);
          }
          snap.hold(job, p, expectedHoldTimes(job, NOW));
          held.push(job);
        }

        // No over-commit, and the live free lists agree with a recount from the holds.
        for (const n of snap.states()) {
          const gpus = new Set<number>();
          let cpu = 0;
          let ram = 0;
          for (const h of n.holds) {
            for (const i of h.gpuIndices) {
              expect(gpus.has(i)).toBe(false);
              gpus.add(i);
            }
            cpu += h.cpu;
            ram += h.ram;
          }
          expect(cpu).toBeLessThanOrEqual(n.cpuTotal + 1e-9);
          expect(ram).toBeLessThanOrEqual(n.ramTotal + 1e-9);
          expect(n.freeGpus.map((g) => g.index).sort((a, b) => a - b)).toEqual(n.gpus.filter((g) => !gpus.has(g.index)).map((g) => g.index).sort((a, b) => a - b));
          for (const g of n.gpus) expect(g.heldBy !== null).toBe(gpus.has(g.index));
        }
        // Releasing everything gives back the empty fleet.
        for (const j of held) snap.release(j.jobId);
        expect(snap.nodes()).toEqual(new CapacitySnapshot(fleet).nodes());
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) },
    );
  });

  it('a gang holds all its slices or nothing', () => {
    fc.assert(
      fc.property(fleetArb, queueArb, (fleet, queue) => {
        const snap = new CapacitySnapshot(fleet);
        const ctx: PlacementContext = { now: NOW, blockMarginSec: 600 };
        for (const { job } of queue) {
          const d = placeJob(snap, job, ctx);
          if (d.kind === 'placed') snap.hold(job, d.placement, expectedHoldTimes(job, NOW));
          const h = snap.holding(job.jobId);
          if (d.kind === 'placed') expect(h?.nodes).toHaveLength(job.nodeCount);
          else expect(h).toBeUndefined();
        }
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 200) },
    );
  });
});
