/**
 * A fast harness for the coordinator's pass loop, after Nomad's scheduler
 * Harness: the production Coordinator (queue, placement, preemption, gangs,
 * the job and node machines) over the in-memory adapters `scalar simulate`
 * uses (src/sim/engine.ts wires the same ones), in virtual time. No
 * Postgres, no NATS: a flow of minutes runs in milliseconds.
 *
 * - The store is MemoryCoordinatorStore (held to Postgres's behaviour by
 *   test/contract/coordinator-store.contract.ts), keeping job_events.
 * - Agents are SimAgents: `run` starts the attempt at once, it exits 0 after
 *   its `durationSec` (default: never), `kill` stops it with 143 after
 *   min(grace, SIGTERM_EXIT_SEC); `crash` makes it exit with any code.
 *   Every command the coordinator sends is recorded in `sent`.
 * - Time moves only through `advance`: each timer due fires in order (the
 *   2 s sweep, heartbeats, agents' exits), and the coordinator settles (no
 *   pass running, empty inbox) before the next one.
 */
import pino from 'pino';
import { createActor } from 'xstate';
import { Coordinator } from '../../actors/coordinator/coordinator.ts';
import { DEFAULT_SCHEDULING } from '../../actors/coordinator/settings.ts';
import type { JobRecord } from '../../actors/coordinator/ports.ts';
import { coordinatorMachine } from '../../machines/coordinator.machine.ts';
import type { NodeLink } from '../../actors/coordinator/ports.ts';
import { SimAgents, type AgentNode } from '../../src/sim/adapters/agents.ts';
import { MemoryCoordinatorStore, type MemoryJobEvent } from '../../src/sim/adapters/coordinator-store.ts';
import { VirtualClock } from '../../src/sim/clock.ts';
import type { JobCancelReply, KillCommand, RunCommand } from '../../src/wire/messages.ts';
import type { OverrunSettings } from '../../actors/coordinator/overrun.ts';
import { aJob, T0 } from '../helpers/coordinator-records.ts';

/** Production's cadences: the sweep every 2 s, heartbeats every 5 s. */
export const SWEEP_MS = 2000;
export const HEARTBEAT_MS = 5000;
export const KILL_GRACE_SEC = 10;
/** A job that is given no duration runs until it is killed or crashes. */
const FOREVER_SEC = 365 * 86_400;

export interface SentCommand {
  /** Seconds since the harness started. */
  t: number;
  nodeId: string;
  cmd: RunCommand | KillCommand;
}

/** A job to submit: an id and what differs from aJob's defaults; it exits 0 after `durationSec` unless killed. */
export type JobSpec = Partial<Omit<JobRecord, 'seq'>> & { id: string; durationSec?: number };

export interface HarnessOptions {
  /** SCALAR_OVERRUN_POLICY and _FACTOR; production's default (extend) otherwise. */
  overrun?: OverrunSettings;
  /** SCALAR_EVICTION_HOLD_SHARE; production's default (0.5) otherwise. */
  evictionHoldShare?: number;
}

export class CoordinatorHarness {
  readonly clock = new VirtualClock(T0);
  readonly store = new MemoryCoordinatorStore(DEFAULT_SCHEDULING.prices, () => new Map(), { keepEvents: true });
  readonly agents: SimAgents;
  readonly coordinator: Coordinator;
  /** Every command sent to an agent, in order. */
  readonly sent: SentCommand[] = [];
  private readonly root = createActor(coordinatorMachine, { id: 'coordinator' }).start();
  private readonly durations = new Map<string, number>();
  /** Rejects on the first failed pass: a harness flow has no reason to fail one. */
  private readonly failure: Promise<never>;

  private constructor(opts: HarnessOptions) {
    let failed: (err: unknown) => void = () => undefined;
    this.failure = new Promise<never>((_, reject) => (failed = reject));
    this.failure.catch(() => undefined);
    this.agents = new SimAgents({
      clock: this.clock,
      push: (input) => this.coordinator.push(input),
      durationOf: (id) => this.durations.get(id) ?? FOREVER_SEC,
    });
    const link: NodeLink = {
      send: (nodeId, cmd) => {
        this.sent.push({ t: this.seconds(), nodeId, cmd });
        return this.agents.send(nodeId, cmd);
      },
      hello: (nodeId) => this.agents.hello(nodeId),
      forget: () => this.agents.forget(),
    };
    const s = DEFAULT_SCHEDULING;
    this.coordinator = new Coordinator({
      store: this.store,
      link,
      clock: this.clock,
      log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
      heartbeatIntervalMs: HEARTBEAT_MS,
      evictionHoldShare: opts.evictionHoldShare,
      killGraceSec: KILL_GRACE_SEC,
      queue: { policy: s.policy, blockMarginSec: s.blockMarginSec, preemptGraceSec: s.preemptGraceSec },
      overrun: opts.overrun ?? s.overrun,
      root: this.root,
      onPassError: (err) => failed(err),
    });
    this.clock.setInterval(() => this.coordinator.push({ kind: 'sweep' }), SWEEP_MS);
    this.clock.setInterval(() => {
      for (const { hb, nodeId } of this.agents.heartbeats()) this.coordinator.heartbeat(hb, nodeId);
      this.coordinator.tick();
    }, HEARTBEAT_MS);
  }

  static async start(opts: HarnessOptions = {}): Promise<CoordinatorHarness> {
    const h = new CoordinatorHarness(opts);
    await h.coordinator.rehydrate();
    return h;
  }

  /** Starts agents; they register with the coordinator. Defaults: 8 GPUs of 80 GB, 64 cores, 512 GB. */
  async addNodes(...nodes: Array<Pick<AgentNode, 'id' | 'pool'> & Partial<AgentNode>>): Promise<void> {
    for (const n of nodes) this.agents.start({ gpus: 8, vramGb: 80, cpuCores: 64, ramGb: 512, blockId: null, ...n });
    await this.settle();
  }

  /** What POST /jobs does: insert pending rows and wake the coordinator. */
  async submit(...jobs: JobSpec[]): Promise<void> {
    for (const j of jobs) if (j.durationSec !== undefined) this.durations.set(j.id, j.durationSec);
    // A job's expected duration is its real one unless a test says otherwise.
    this.store.insertJobs(jobs.map(({ durationSec, ...j }) => aJob(0, { createdAt: this.clock.now(), ...(durationSec ? { expectedDurationSec: durationSec } : {}), ...j })));
    this.coordinator.push({ kind: 'submitted', ids: jobs.map((j) => j.id) });
    await this.settle();
  }

  /** Moves virtual time on by `sec`, firing every timer due on the way. */
  async advance(sec: number): Promise<void> {
    const until = this.clock.now() + sec * 1000;
    this.clock.setTimeout(() => undefined, sec * 1000);
    for (let at = this.clock.next(); at !== null && at <= until; at = this.clock.next()) {
      this.clock.fireNext();
      await this.settle();
    }
  }

  /** What POST /jobs/{id}/cancel asks of the leader: the cancel, answered once its pass has committed. */
  async cancel(jobId: string): Promise<JobCancelReply> {
    let answer: JobCancelReply | undefined;
    this.coordinator.push({ kind: 'cancel', jobId, reply: (r) => (answer = r) });
    await this.settle();
    if (!answer) throw new Error(`the cancel of ${jobId} was not answered`);
    return answer;
  }

  /** The node's agent dies: it stops heartbeating (its processes with it), and the coordinator finds it lost. */
  kill(nodeId: string): void {
    this.agents.stop([nodeId]);
  }

  /** The job's attempt on `nodeId` exits now with `code`. */
  async crash(nodeId: string, jobId: string, code: number): Promise<void> {
    this.agents.crash(nodeId, { job_id: jobId, attempt: this.job(jobId).attempt }, code);
    await this.settle();
  }

  job(id: string): JobRecord {
    const j = this.store.job(id);
    if (!j) throw new Error(`no job ${id}`);
    return j;
  }

  /** The failure_code of each of the job's job_events rows, oldest first. */
  failureCodes(id: string): Array<string | null> {
    return this.store.events!.filter((e: MemoryJobEvent) => e.job_id === id).map((e) => e.failure_code);
  }

  /** The job's job_events rows: `from→to (event)`, oldest first. */
  transitions(id: string): string[] {
    return this.store.events!.filter((e: MemoryJobEvent) => e.job_id === id).map((e) => `${e.from_status}→${e.to_status} (${e.event})`);
  }

  /** The job's active allocations: `node: gpus`. */
  async held(id: string): Promise<string[]> {
    return (await this.store.loadActiveAllocations()).filter((a) => a.job_id === id).map((a) => `${a.nodeId}: ${a.gpuIndices.join(',')}`).sort();
  }

  /** Commands sent for a job (`run@node` / `kill@node`). */
  commandsFor(jobId: string): SentCommand[] {
    return this.sent.filter((s) => s.cmd.job_id === jobId);
  }

  async stop(): Promise<void> {
    await this.coordinator.stop();
    this.root.stop();
  }

  private seconds(): number {
    return (this.clock.now() - T0) / 1000;
  }

  private async settle(): Promise<void> {
    do await Promise.race([this.coordinator.settled(), this.failure]);
    while (!this.coordinator.idleNow());
  }
}
