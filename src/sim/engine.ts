/**
 * One replay: the production Coordinator (placement, queue order, fair
 * share, backfill, preemption, the job and node machines) and, with
 * autoscaling, the production capacity actor with the simulated marketplace,
 * run in virtual time against in-memory transports.
 *
 * What differs from `scalar coordinator` is only what is plugged in:
 * - the clock is a VirtualClock: time jumps from one timer to the next, and
 *   the driver waits until the coordinator has settled (no pass running, an
 *   empty inbox) before it moves time on;
 * - the durable record is MemoryCoordinatorStore / MemoryCapacityStore;
 * - commands and node events travel through SimAgents instead of JetStream.
 *
 * Housekeeping runs on virtual timers at a coarser cadence than production's
 * (a sweep every SWEEP_SEC, heartbeats every HEARTBEAT_SEC): in-memory
 * transports lose no message, so what those timers guard against does not
 * happen, and two months of 2 s sweeps would be 2.6 million passes.
 */
import pino from 'pino';
import { createActor } from 'xstate';
import { attachCapacityActor } from '../../actors/coordinator/capacity.ts';
import { Coordinator } from '../../actors/coordinator/coordinator.ts';
import { schedulingFromConfig } from '../../actors/coordinator/settings.ts';
import type { JobRecord } from '../../actors/coordinator/ports.ts';
import type { CapacityActor } from '../../actors/capacity/actor.ts';
import { coordinatorMachine } from '../../machines/coordinator.machine.ts';
import { isTerminal } from '../../machines/job.machine.ts';
import { SimulatedMarketplace } from '../capacity/marketplace.ts';
import type { Config } from '../config/index.ts';
import { FIFO_FIRST_FIT_POLICY, SCALAR_POLICY, type QueuePolicy } from '../placement/index.ts';
import { SimAgents, SimLauncher } from './adapters/agents.ts';
import { MemoryCapacityStore, type MemoryCapacityEvent } from './adapters/capacity-store.ts';
import type { BlockRow } from '../../actors/capacity/ports.ts';
import { MemoryCoordinatorStore } from './adapters/coordinator-store.ts';
import { VirtualClock } from './clock.ts';
import { fleetCost } from './cost.ts';
import type { RunRecord } from './metrics.ts';
import { fastDemand, Sampler } from './observe.ts';
import type { FleetGroup, JobOutcome, SimJobSpec } from './types.ts';

/** The policies a replay can run: the names SCALAR_SCHEDULER_POLICY takes. */
export const POLICIES: Record<string, QueuePolicy> = { scalar: SCALAR_POLICY, 'fifo-first-fit': FIFO_FIRST_FIT_POLICY };

/** Virtual time 0: the trace's first submission. A fixed date, so the marketplace's daily price curve repeats. */
export const SIM_EPOCH_MS = Date.UTC(2021, 2, 4);
export const SWEEP_SEC = 300;
/** Waiting jobs' reasons (status_reason, placement) are rewritten at most this often: they are not part of the metrics. */
export const REASON_REFRESH_SEC = 3600;
export const HEARTBEAT_SEC = 1800;
/**
 * A replay stops early when every job was submitted, no job holds a GPU, and
 * nothing started or ended for this long since the later of the last start,
 * end or submission: the jobs still waiting can never run. They are reported
 * `unfinished`, and the makespan runs to the stop.
 */
export const STALL_SEC = 7 * 86_400;

export interface ReplayOptions {
  jobs: SimJobSpec[];
  fleet: FleetGroup[];
  policy: string;
  autoscale: boolean;
  seed: number;
  /** Prices, graces, overrun and autoscaler settings (SCALAR_* variables). */
  config: Config;
  meta: { trace: string; fleet: string; tierRule: string };
  onProgress?: (done: number, simSec: number) => void;
}

export interface ReplayResult {
  record: RunRecord;
  /** Every job's row as the replay left it (status, reason, last attempt's placements). */
  rows: Map<string, JobRecord>;
  /** Every capacity block bought, and the capacity actor's decisions (capacity_events), with autoscaling. */
  capacity: { blocks: BlockRow[]; events: MemoryCapacityEvent[] };
}

export async function replay(o: ReplayOptions): Promise<ReplayResult> {
  const policy = POLICIES[o.policy];
  if (!policy) throw new Error(`unknown policy ${JSON.stringify(o.policy)}; use one of ${Object.keys(POLICIES).join(', ')}`);
  const wallStart = performance.now();
  const clock = new VirtualClock(SIM_EPOCH_MS);
  const sched = schedulingFromConfig(o.config);
  const capacityStore = new MemoryCapacityStore();
  const store = new MemoryCoordinatorStore(sched.prices, () => capacityStore.blockEnds());
  // Virtual time 0 is the first submission, whatever the trace's clock.
  const origin = o.jobs.length > 0 ? Math.min(...o.jobs.map((j) => j.submitSec)) : 0;
  const jobs = o.jobs.map((j) => (origin === 0 ? j : { ...j, submitSec: j.submitSec - origin }));
  const spec = new Map(jobs.map((j) => [j.id, j]));
  const log = pino({ level: 'silent' });
  const root = createActor(coordinatorMachine, { id: 'coordinator' }).start();

  // A pass that fails would be retried after a (virtual) second that never
  // comes while the driver waits for it: in a replay a failure is a bug, so it ends the run.
  let failed: (err: unknown) => void = () => undefined;
  const failure = new Promise<never>((_, reject) => (failed = reject));
  failure.catch(() => undefined);
  // Agents report into the coordinator's inbox (they first speak when the fleet starts, below).
  const agents = new SimAgents({ clock, push: (input) => c.push(input), durationOf: (id) => spec.get(id)!.durationSec });
  const c = new Coordinator({
    store,
    link: agents,
    clock,
    log,
    heartbeatIntervalMs: HEARTBEAT_SEC * 1000,
    killGraceSec: o.config.SCALAR_KILL_GRACE_SEC,
    queue: { policy, blockMarginSec: sched.blockMarginSec, preemptGraceSec: sched.preemptGraceSec, reasonRefreshMs: REASON_REFRESH_SEC * 1000 },
    overrun: sched.overrun,
    root,
    onPassError: (err) => failed(err),
  });
  await c.rehydrate();

  let capacity: CapacityActor | undefined;
  let blockSeq = 0;
  if (o.autoscale) {
    capacity = await attachCapacityActor(c, {
      store: capacityStore,
      log,
      provider: new SimulatedMarketplace({ seed: o.config.SCALAR_SIM_PRICE_SEED, provisionDelaySec: o.config.SCALAR_SIM_PROVISION_DELAY_SEC, clock: () => clock.now() }),
      launcher: new SimLauncher(agents),
      config: { ...o.config, SCALAR_AUTOSCALE: true },
      clock,
      newBlockId: () => `blk_${String(++blockSeq).padStart(4, '0')}`,
    });
  }

  // The starting fleet registers at time 0.
  let n = 0;
  for (const g of o.fleet) {
    for (let i = 0; i < g.nodes; i++) {
      agents.start({ id: `${g.pool}-${String(++n).padStart(3, '0')}`, pool: g.pool, gpus: g.gpusPerNode, vramGb: g.vramGb, cpuCores: g.cpuCores, ramGb: g.ramGb, blockId: null });
    }
  }

  // Submissions: one timer per distinct submit time, as the API would commit a batch and wake the coordinator.
  const warm = new Map<string, boolean>();
  let submitted = 0;
  let lastActivity = 0;
  const bySubmit = new Map<number, SimJobSpec[]>();
  let lastSubmitSec = 0;
  for (const j of jobs) {
    const batch = bySubmit.get(j.submitSec);
    if (batch) batch.push(j);
    else bySubmit.set(j.submitSec, [j]);
  }
  for (const [sec, batch] of bySubmit) {
    clock.setTimeout(() => {
      let { warm: warmGpus, demand } = batch.some((j) => j.tier === 'FAST') ? fastDemand(c) : { warm: 0, demand: 0 };
      for (const j of batch) {
        if (j.tier !== 'FAST') continue;
        demand += j.gpuCount * j.nodeCount;
        warm.set(j.id, warmGpus >= demand);
      }
      store.insertJobs(batch.map((j) => jobRecord(j, o.config)));
      submitted += batch.length;
      lastSubmitSec = sec;
      c.push({ kind: 'submitted', ids: batch.map((j) => j.id) });
    }, sec * 1000);
  }

  clock.setInterval(() => c.push({ kind: 'sweep' }), SWEEP_SEC * 1000);
  clock.setInterval(() => {
    for (const { hb, nodeId } of agents.heartbeats()) c.heartbeat(hb, nodeId);
    c.tick();
  }, HEARTBEAT_SEC * 1000);

  const sampler = new Sampler();
  const settle = async () => {
    for (;;) {
      await Promise.race([c.settled(), failure]);
      await Promise.race([capacity?.settled(), failure]);
      if (c.idleNow()) return;
    }
  };
  await settle();
  let finished = 0;
  let lastProgress = 0;
  let t = 0;
  while (finished < jobs.length) {
    if (!clock.fireNext()) break;
    await settle();
    t = (clock.now() - SIM_EPOCH_MS) / 1000;
    sampler.observe(c, t);
    if (store.finished !== finished || store.started !== lastActivity) {
      finished = store.finished;
      lastActivity = store.started;
      lastProgress = t;
    }
    // Stalled: everything submitted, nothing holds a GPU (so no exit is due), and nothing started or ended for STALL_SEC.
    const idle = submitted === jobs.length && c.capacity.heldJobs().next().done === true;
    if (idle && t - Math.max(lastProgress, lastSubmitSec) > STALL_SEC) break;
    if (o.onProgress) o.onProgress(finished, t);
  }
  // The last end; a replay that stopped with jobs unfinished covers the time until it stopped.
  const lastEnd = Math.max(0, ...[...store.history.values()].map((h) => (h.finishedAt === null ? 0 : (h.finishedAt - SIM_EPOCH_MS) / 1000)));
  const makespanSec = finished < jobs.length ? Math.max(lastEnd, t) : lastEnd;

  await capacity?.stop();
  await c.stop();
  root.stop();

  const outcomes = outcomesOf(store, spec, warm);
  const cost = fleetCost(o.fleet, [...capacityStore.blocks.values()], makespanSec, SIM_EPOCH_MS);
  return {
    rows: new Map([...store.allJobs()].map((j) => [j.id, j])),
    capacity: { blocks: [...capacityStore.blocks.values()], events: capacityStore.events },
    record: {
      meta: { trace: o.meta.trace, policy: o.policy, autoscale: o.autoscale, seed: o.seed, fleet: o.meta.fleet, tierRule: o.meta.tierRule },
      outcomes,
      samples: sampler.samples,
      makespanSec,
      preemptions: outcomes.reduce((s, x) => s + x.preemptions, 0),
      capacity: cost,
      wallSec: (performance.now() - wallStart) / 1000,
    },
  };
}

function jobRecord(j: SimJobSpec, cfg: Config) {
  return {
    id: j.id,
    userId: j.user,
    tier: j.tier,
    status: 'pending' as const,
    statusReason: null,
    failureCode: null,
    priority: 0,
    gpuCount: j.gpuCount,
    vramPerGpuGb: j.vramPerGpuGb,
    cpuCores: j.cpuCores,
    ramGb: j.ramGb,
    expectedDurationSec: j.durationSec,
    image: 'simulated',
    command: ['simulated'],
    env: {},
    attempt: 1,
    maxAttempts: cfg.SCALAR_MAX_ATTEMPTS,
    nodeId: null,
    gpuIndices: null,
    exitCode: null,
    nodeCount: j.nodeCount,
    placements: null,
    preemptedBy: null,
    preemptions: 0,
    memberFailure: null,
    createdAt: SIM_EPOCH_MS + j.submitSec * 1000,
    scheduledAt: null,
  };
}

function outcomesOf(store: MemoryCoordinatorStore, spec: Map<string, SimJobSpec>, warm: Map<string, boolean>): JobOutcome[] {
  const used = new Map<string, number>();
  const lost = new Map<string, number>();
  for (const u of store.usage) {
    used.set(u.jobId, (used.get(u.jobId) ?? 0) + u.gpuSeconds);
    const row = store.job(u.jobId)!;
    // Replays end jobs only by exiting 0 or by preemption: an attempt before the last was preempted, its work thrown away.
    if (u.attempt < row.attempt) lost.set(u.jobId, (lost.get(u.jobId) ?? 0) + u.gpuSeconds);
  }
  const out: JobOutcome[] = [];
  for (const [id, j] of spec) {
    const row = store.job(id);
    const h = store.history.get(id);
    const gpus = j.gpuCount * j.nodeCount;
    const status = !row || !isTerminal(row.status) ? 'unfinished' : (row.status as JobOutcome['status']);
    out.push({
      id,
      tier: j.tier,
      gpus,
      submitSec: j.submitSec,
      firstStartSec: h?.firstStartedAt != null ? (h.firstStartedAt - SIM_EPOCH_MS) / 1000 : null,
      endSec: h?.finishedAt != null ? (h.finishedAt - SIM_EPOCH_MS) / 1000 : null,
      status,
      unschedulable: row?.failureCode === 'unschedulable',
      preemptions: row?.preemptions ?? 0,
      lostGpuSec: lost.get(id) ?? 0,
      usedGpuSec: used.get(id) ?? 0,
      needGpuSec: j.durationSec * gpus,
      warmCovered: j.tier === 'FAST' && (warm.get(id) ?? false),
    });
  }
  return out;
}
