/**
 * Properties of a scheduling pass over random fleets, holds and queues.
 * Small fleets (≤ 6 nodes, ≤ 12 holds) so that brute force stays cheap.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { NodeSlice, Pool, Tier } from '../../../src/domain/cluster.ts';
import { placeJob } from '../../../src/placement/pipeline.ts';
import { earliestStart, planPreemption, runQueue, scheduleQueue } from '../../../src/placement/queue/index.ts';
import { CapacitySnapshot } from '../../../src/placement/snapshot.ts';
import type { QueueOutcome } from '../../../src/placement/decision.ts';
import { SCALAR_POLICY, type JobRequest, type QueueContext, type Reservation } from '../../../src/placement/types.ts';
import { T0 } from './builders.ts';

interface NodeSpec {
  pool: Pool;
  gpus: number;
  vram: number;
  cpu: number;
  ram: number;
  down: boolean;
  /** Seconds after T0 its block ends, or null. */
  endsAt: number | null;
}
interface HoldSpec {
  job: JobRequest;
  started: number;
  ends: number;
  /** Where the first-fit search for its nodes starts. */
  at: number;
}
interface Scenario {
  nodes: NodeSpec[];
  holds: HoldSpec[];
  jobs: JobRequest[];
  /** Preemptible holds already being killed for the first FAST job of the queue (by index among them). */
  preempting: number[];
}

const tier = fc.constantFrom<Tier>('FAST', 'FLEX');
const jobArb = () =>
  fc.record({
    tier,
    priority: fc.integer({ min: 0, max: 2 }),
    userId: fc.constantFrom('alice', 'bob', 'carol'),
    gpuCount: fc.integer({ min: 0, max: 8 }),
    vramPerGpuGb: fc.constantFrom(40, 80),
    cpuCores: fc.integer({ min: 1, max: 24 }),
    ramGb: fc.constantFrom(8, 32, 128),
    nodeCount: fc.constantFrom(1, 1, 1, 2),
    expectedDurationSec: fc.integer({ min: 60, max: 8000 }),
  });

/**
 * `busy`: a fleet mostly of fast nodes crowded with small FLEX holds, where
 * preemption has real choices to make; otherwise a mixed fleet.
 */
const scenarioOf = (busy: boolean): fc.Arbitrary<Scenario> =>
  fc
    .record({
      nodes: fc.array(
        fc.record({
          pool: busy ? fc.constantFrom<Pool>('fast', 'fast', 'fast', 'flex') : fc.constantFrom<Pool>('fast', 'fast', 'flex'),
          gpus: fc.integer({ min: busy ? 4 : 1, max: 8 }),
          vram: fc.constantFrom(40, 80),
          cpu: fc.constantFrom(16, 64),
          ram: fc.constantFrom(128, 512),
          down: fc.integer({ min: 0, max: 9 }).map((x) => x < (busy ? 1 : 2)),
          endsAt: fc.option(fc.integer({ min: 600, max: 20_000 }), { freq: busy ? 5 : 3 }),
        }),
        { minLength: 1, maxLength: busy ? 4 : 6 },
      ),
      holds: fc.array(
        fc.record({
          spec: jobArb(),
          flex: fc.integer({ min: 0, max: 9 }).map((x) => x < (busy ? 8 : 5)),
          started: fc.integer({ min: -5000, max: 0 }),
          ends: fc.integer({ min: -100, max: 10_000 }),
          at: fc.nat(5),
        }),
        { minLength: busy ? 3 : 0, maxLength: 12 },
      ),
      jobs: fc.array(jobArb(), { minLength: 1, maxLength: 15 }),
      preempting: fc.array(fc.nat(11), { maxLength: 3 }),
    })
    .map(({ nodes, holds, jobs, preempting }) => ({
      nodes,
      holds: holds.map((h, i) => ({
        job: {
          ...h.spec,
          tier: h.flex ? ('FLEX' as const) : ('FAST' as const),
          jobId: `h${i}`,
          seq: -1 - i,
          gpuCount: Math.min(h.spec.gpuCount, busy ? 2 : 4),
          cpuCores: Math.min(h.spec.cpuCores, 8),
        },
        started: h.started,
        ends: Math.max(h.ends, h.started + 1),
        at: h.at,
      })),
      jobs: jobs.map((j, i) => ({ ...j, jobId: `j${i}`, seq: i })),
      preempting,
    }));

const scenarioArb = fc.oneof(scenarioOf(false), scenarioOf(true));

const nodeId = (n: NodeSpec, i: number): string => `${n.pool}-${i}`;

/** A fresh snapshot for the scenario: holds go on the first nodes (from `at`) with room; a hold with no room is dropped. */
function build(sc: Scenario): { snap: CapacitySnapshot; ctx: QueueContext } {
  const snap = new CapacitySnapshot(
    sc.nodes.map((n, i) => ({
      nodeId: nodeId(n, i),
      pool: n.pool,
      schedulable: !n.down,
      cpuTotal: n.cpu,
      ramTotal: n.ram,
      gpus: Array.from({ length: n.gpus }, (_, g) => ({ index: g, vramGb: n.vram, heldBy: null })),
      blockId: n.endsAt === null ? null : 'b',
      endsAt: n.endsAt === null ? null : T0 + n.endsAt * 1000,
    })),
  );
  const ids = sc.nodes.map(nodeId);
  for (const h of sc.holds) {
    const slices: NodeSlice[] = [];
    for (let k = 0; k < ids.length && slices.length < h.job.nodeCount; k++) {
      const s = snap.state(ids[(h.at + k) % ids.length]!)!;
      const free = s.freeGpus.filter((g) => g.vramGb >= h.job.vramPerGpuGb).map((g) => g.index);
      if (free.length >= h.job.gpuCount && s.cpuFree >= h.job.cpuCores && s.ramFree >= h.job.ramGb) {
        slices.push({ node_id: s.nodeId, gpu_indices: free.slice(0, h.job.gpuCount).sort((a, b) => a - b) });
      }
    }
    if (slices.length === h.job.nodeCount) {
      snap.hold(h.job, { jobId: h.job.jobId, nodes: slices }, { startedAt: T0 + h.started * 1000, endsAt: T0 + h.ends * 1000 });
    }
  }
  const preemptible = [...snap.heldJobs()].filter((id) => snap.holdsOf(id).some((v) => v.preemptible)).sort();
  const fast = sc.jobs.find((j) => j.tier === 'FAST');
  const preempting = new Map<string, string>();
  if (fast) for (const i of sc.preempting) if (preemptible[i]) preempting.set(preemptible[i]!, fast.jobId);
  return { snap, ctx: { now: T0, blockMarginSec: 60, preemptGraceSec: 30, policy: SCALAR_POLICY, preempting } };
}

const RUNS = { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) };

describe('scheduleQueue properties', () => {
  it('(a) backfill never delays a reservation made ahead of it', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const { snap, ctx } = build(sc);
        const out = scheduleQueue(snap, sc.jobs, ctx);
        const byNode = new Map<string, Reservation>();
        for (const r of out.reservations) for (const n of r.nodeIds) byNode.set(n, r);
        const endsBy = new Map<string, number>();
        for (const v of ctx.preempting!.keys()) endsBy.set(v, T0 + 30_000);
        for (const p of out.preemptions) for (const v of p.victims) endsBy.set(v, T0 + 30_000);
        for (const r of out.reservations.filter((x) => !x.strict)) {
          const job = sc.jobs.find((j) => j.jobId === r.jobId)!;
          const again = earliestStart(snap, job, { now: T0, blockMarginSec: 60, reservations: byNode, endsBy });
          expect(again, `reservation of ${r.jobId}`).toBeDefined();
          expect(again!.startAt).toBeLessThanOrEqual(r.startAt);
        }
      }),
      RUNS,
    );
  });

  it('(b) only preemptible FLEX holds are victims, only for FAST jobs, never twice', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const { snap, ctx } = build(sc);
        const before = new Map([...snap.heldJobs()].map((id) => [id, snap.holdsOf(id).map((v) => ({ ...v }))]));
        const out = scheduleQueue(snap, sc.jobs, ctx);
        const seen = new Set<string>();
        for (const p of out.preemptions) {
          expect(sc.jobs.find((j) => j.jobId === p.forJobId)!.tier).toBe('FAST');
          expect(p.victims.length).toBeGreaterThan(0);
          const reserved = out.reservations.find((r) => r.jobId === p.forJobId)!;
          for (const v of p.victims) {
            // A FLEX gang with a member on a fast node is a victim as a whole, its flex-node members included.
            const views = before.get(v)!;
            expect(views.every((x) => x.tier === 'FLEX')).toBe(true);
            expect(views.some((x) => x.preemptible)).toBe(true);
            expect(reserved.strict).toBe(true);
            expect(ctx.preempting!.has(v)).toBe(false);
            expect(seen.has(v)).toBe(false);
            seen.add(v);
          }
        }
      }),
      RUNS,
    );
  });

  it('(c) once its victims are gone, the FAST job fits on its reserved nodes', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const { snap, ctx } = build(sc);
        const out = scheduleQueue(snap, sc.jobs, ctx);
        for (const r of out.reservations.filter((x) => x.strict)) {
          // Fresh copy of the pass's end state, then kill r's victims and leave only r's nodes ready.
          const { snap: s2, ctx: c2 } = build(sc);
          scheduleQueue(s2, sc.jobs, c2);
          const victims = [...(out.preemptions.find((p) => p.forJobId === r.jobId)?.victims ?? [])];
          for (const [v, f] of ctx.preempting!) if (f === r.jobId) victims.push(v);
          for (const v of victims) s2.release(v);
          for (const n of s2.states()) if (!r.nodeIds.includes(n.nodeId)) s2.setSchedulable(n.nodeId, false);
          const job = sc.jobs.find((j) => j.jobId === r.jobId)!;
          const d = placeJob(s2, job, { now: T0 + 30_000, blockMarginSec: 60 });
          expect(d.kind, `FAST job ${job.jobId} on ${r.nodeIds}`).toBe('placed');
        }
      }),
      RUNS,
    );
  });

  it('(c) no cheaper victim set exists (brute force, single-node FAST jobs)', () => {
    fc.assert(
      fc.property(scenarioOf(true), jobArb(), (sc, spec) => {
        const { snap, ctx } = build(sc);
        const job: JobRequest = { ...spec, tier: 'FAST', nodeCount: 1, jobId: sc.jobs.find((j) => j.tier === 'FAST')?.jobId ?? 'f', seq: 99 };
        const opts = { now: T0, blockMarginSec: 60, graceSec: 30, preempting: ctx.preempting! };
        const brute = bruteForce(snap, job, opts.preempting);
        fc.pre(brute !== 'fits-already');
        const plan = planPreemption(snap, job, opts);
        if (brute === undefined) expect(plan).toBeUndefined();
        else {
          expect(plan).toBeDefined();
          expect(plan!.lostGpuSeconds).toBeCloseTo(brute, 6);
        }
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 500) },
    );
  });

  it('(d) no over-commit, gangs all or nothing, every job accounted for once', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const { snap, ctx } = build(sc);
        const out = scheduleQueue(snap, sc.jobs, ctx);
        for (const { placement } of out.placed) {
          const job = sc.jobs.find((j) => j.jobId === placement.jobId)!;
          expect(placement.nodes.length).toBe(job.nodeCount);
          expect(new Set(placement.nodes.map((s) => s.node_id)).size).toBe(job.nodeCount);
          for (const slice of placement.nodes) {
            const node = snap.state(slice.node_id)!;
            expect(slice.gpu_indices.length).toBe(job.gpuCount);
            for (const i of slice.gpu_indices) {
              const g = node.gpus.find((x) => x.index === i)!;
              expect(g.heldBy).toBe(job.jobId);
              expect(g.vramGb).toBeGreaterThanOrEqual(job.vramPerGpuGb);
            }
            if (job.tier === 'FAST') expect(node.pool).toBe('fast');
          }
        }
        for (const n of snap.states()) {
          expect(n.cpuFree).toBeGreaterThanOrEqual(-1e-9);
          expect(n.ramFree).toBeGreaterThanOrEqual(-1e-9);
        }
        const ids = [...out.placed.map((p) => p.placement.jobId), ...out.waiting.keys(), ...out.unschedulable.keys()];
        expect(ids.sort()).toEqual(sc.jobs.map((j) => j.jobId).sort());
        expect([...out.waiting.values()].map((w) => w.position)).toEqual([...out.waiting.keys()].map((_, i) => i + 1));
      }),
      RUNS,
    );
  });

  it('the failure cache changes no decision', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const a = build(sc);
        const b = build(sc);
        const cached = runQueue(a.snap, sc.jobs, a.ctx, placeJob);
        const plain = runQueue(b.snap, sc.jobs, b.ctx, placeJob, { cache: false });
        expect(summary(cached)).toEqual(summary(plain));
      }),
      RUNS,
    );
  });

  it('stopping once the fleet is full (stopWhenFull) places and preempts exactly as a full pass; the jobs it decided get the same answers', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const a = build(sc);
        const b = build(sc);
        const full = scheduleQueue(a.snap, sc.jobs, a.ctx);
        const early = scheduleQueue(b.snap, sc.jobs, { ...b.ctx, stopWhenFull: true });
        expect(early.placed.map((p) => p.placement)).toEqual(full.placed.map((p) => p.placement));
        expect(early.preemptions).toEqual(full.preemptions);
        // Every job the early pass decided, it decided as the full pass did, in the same order.
        for (const [id, w] of early.waiting) {
          expect(full.waiting.get(id)?.reason).toBe(w.reason);
          expect(full.waiting.get(id)?.position).toBe(w.position);
        }
        for (const id of early.unschedulable.keys()) expect(full.unschedulable.has(id)).toBe(true);
        // The ones it left out could not have been placed.
        const decided = new Set([...early.placed.map((p) => p.placement.jobId), ...early.waiting.keys(), ...early.unschedulable.keys()]);
        for (const j of sc.jobs) if (!decided.has(j.jobId)) expect(full.placed.some((p) => p.placement.jobId === j.jobId)).toBe(false);
      }),
      RUNS,
    );
  });
});

function summary(o: QueueOutcome) {
  return {
    placed: o.placed.map((p) => [p.placement, p.diagnosis.step]),
    waiting: [...o.waiting].map(([id, w]) => [id, w.position, w.diagnosis.step]),
    unschedulable: [...o.unschedulable.keys()],
    preemptions: o.preemptions,
    reservations: o.reservations,
  };
}

/**
 * The cheapest lost GPU-seconds over every subset of choosable victims (all
 * nodes) after which `job` fits one ready fast node; 'fits-already' when it
 * needs nothing at all; undefined when no subset helps. Written apart from
 * preemption.ts on purpose.
 */
function bruteForce(snap: CapacitySnapshot, job: JobRequest, preempting: ReadonlyMap<string, string>): number | undefined | 'fits-already' {
  const now = T0;
  const choosable = [...snap.heldJobs()].filter((id) => !preempting.has(id) && snap.holdsOf(id).some((v) => v.preemptible && v.tier === 'FLEX'));
  const mine = [...preempting].filter(([, f]) => f === job.jobId).map(([v]) => v);
  const costOf = (id: string): number => {
    const views = snap.holdsOf(id);
    const gpus = views.reduce((n, v) => n + v.gpuIndices.length, 0);
    return (gpus * Math.max(0, now - views[0]!.startedAt)) / 1000;
  };
  const fitsWith = (gone: Set<string>): boolean => {
    for (const n of snap.states('fast')) {
      if (!n.schedulable) continue;
      if (n.endsAt !== null && n.endsAt < now + 30_000 + (job.expectedDurationSec + 60) * 1000) continue;
      let gpus = n.freeGpus.filter((g) => g.vramGb >= job.vramPerGpuGb).length;
      let cpu = n.cpuFree;
      let ram = n.ramFree;
      for (const h of n.holds) {
        if (!gone.has(h.jobId)) continue;
        // Only preemptible slices may be freed on this node: a FAST slice of the same id cannot exist (tier is per job).
        gpus += h.gpuIndices.filter((i) => n.gpus.find((g) => g.index === i)!.vramGb >= job.vramPerGpuGb).length;
        cpu += h.cpu;
        ram += h.ram;
      }
      if (gpus >= job.gpuCount && job.cpuCores <= cpu + 1e-9 && job.ramGb <= ram + 1e-9) return true;
    }
    return false;
  };
  if (fitsWith(new Set())) return 'fits-already';
  let best: number | undefined;
  for (let mask = 0; mask < 1 << choosable.length; mask++) {
    const gone = new Set(mine);
    let cost = 0;
    choosable.forEach((id, i) => {
      if (mask & (1 << i)) {
        gone.add(id);
        cost += costOf(id);
      }
    });
    if ((best === undefined || cost < best) && fitsWith(gone)) best = cost;
  }
  return best;
}
