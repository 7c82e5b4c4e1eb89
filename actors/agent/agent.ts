/**
 * The node agent: runs the attempts the coordinator places on this node and
 * reports what happens to them. It talks only NATS (never Postgres) and acts
 * only for its own node: it consumes `<prefix>.node.<id>.cmd` and nothing
 * else.
 *
 * Wire behaviour (what the coordinator can rely on):
 * - `registered` is the first event of every agent start (fresh boot_id) and
 *   is published again on `hello` and after a NATS reconnect. Its `running`
 *   lists the attempts the node holds (launching or running). Attempts that
 *   ended while no agent ran are NOT in it; their exited/launch_failed follow.
 * - Per attempt, events are published in order and each awaits its PubAck:
 *   `started` before `exited`; never `started` after the final event.
 *   `exited` is published only after every log line of the attempt is stored
 *   in the LOGS stream.
 * - A command is acked only after the state file records its effect and its
 *   event (started / launch_failed / exited of a tombstone) is stored, so an
 *   agent crash at any point leads to a redelivery, which is answered from
 *   the state file: an attempt is never launched twice, a redelivered or
 *   re-sent `run` re-publishes the attempt's current status.
 * - Events may be duplicated (re-published on request, after restarts);
 *   every one carries (job_id, attempt).
 *
 * Many agents can live in one process (`scalar dev`, benchmarks): no global
 * state, no process.exit, and stop() leaves the bus open and running
 * attempts running (the next agent on the same stateDir re-attaches them).
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Bus } from '../bus/connection.ts';
import {
  encodeJson,
  heartbeatSchema,
  nodeCommandSchema,
  type ExitedEvent,
  type Heartbeat,
  type KillCommand,
  type LaunchFailedEvent,
  type NodeBusEvent,
  type RegisteredEvent,
  type RunCommand,
  type StartedEvent,
} from '../bus/messages.ts';
import { NODE_ID_PATTERN } from '../bus/subjects.ts';
import { attemptKey, type AttemptRef, type GpuInfo, type Pool } from '../../src/domain/cluster.ts';
import {
  LaunchError,
  type Execution,
  type ExitResult,
  type LogSink,
  type LogStream,
  type RunSpec,
  type Runtime,
} from '../../src/runtimes/types.ts';
import { LogShipper } from './logs.ts';
import { Sleepers } from './sleepers.ts';
import {
  appendDoneLog,
  readDoneLog,
  readStateFile,
  rewriteDoneLog,
  STATE_VERSION,
  StateWriter,
  type ExecutionEntry,
  type StateFileContent,
} from './state.ts';

export interface AgentOptions {
  /** Must match NODE_ID_PATTERN. */
  nodeId: string;
  pool: Pool;
  gpus: GpuInfo[];
  cpuCores: number;
  ramGb: number;
  runtime: Runtime;
  /** Holds state.json and jobs/<job_id>-<attempt>/ work directories. One agent per directory. */
  stateDir: string;
  heartbeatIntervalMs: number;
  /** The agent uses it and never closes it. */
  bus: Bus;
  log: Logger;
  /** Most log-line PubAcks outstanding. Default 256. */
  logWindow?: number;
  /** Most bytes of log lines queued before lines are dropped. Default 64 MiB. */
  maxQueuedLogBytes?: number;
  /** A reported attempt's work directory is removed this long after it ended. Default 10 min. */
  workDirRetentionMs?: number;
  /** A reported attempt (or tombstone) is forgotten this long after it ended. Default 2 h (at least 1 h is wise). */
  entryRetentionMs?: number;
  /** How often the retention sweep runs. Default 60 s. */
  sweepIntervalMs?: number;
  /** How long stop() waits for queued log lines to be stored. Default 3 s. */
  stopLogFlushMs?: number;
}

/** ack_wait of the node's command consumer. */
export const NODE_CMD_ACK_WAIT_MS = 30_000;
const RELAUNCH_REASON = 'agent restarted while launching';
const MAX_BACKOFF_MS = 5000;

/** Ended and reported: nothing more to do but remember it (to recognise a redelivered command). */
const isDone = (e: ExecutionEntry) => e.status === 'exited' && e.reported;

function isExecution(r: Execution | ExitResult): r is Execution {
  return typeof (r as Execution).kill === 'function';
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export class Agent {
  readonly nodeId: string;
  readonly stateDir: string;
  private readonly opts: AgentOptions;
  private readonly log: Logger;
  private readonly bus: Bus;
  private readonly runtime: Runtime;
  private readonly jobsDir: string;
  private readonly gpuIndices: Set<number>;
  private readonly state: StateWriter;
  private readonly shipper: LogShipper;

  private boot = '';
  private readonly entries = new Map<string, ExecutionEntry>();
  private readonly live = new Map<string, Execution>();
  /** Per attempt: the tail of its event chain, so its events go out one at a time, in order. */
  private readonly chains = new Map<string, Promise<unknown>>();

  private startCalled = false;
  private stopping = false;
  private stopPromise: Promise<void> | null = null;
  private readonly stopSignal = deferred();
  private readonly firstRegistration = deferred();
  private registeredOnce = false;
  /** The state file was read (or found absent): only then may it be written. */
  private loaded = false;
  private readonly sleepers = new Sleepers();

  private heartbeatTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private helloSub: Subscription | null = null;
  private statusIter: { stop?: () => void } | null = null;
  private messages: ConsumerMessages | null = null;
  private consumeDone: Promise<void> = Promise.resolve();

  constructor(opts: AgentOptions) {
    if (!NODE_ID_PATTERN.test(opts.nodeId)) {
      throw new Error(`invalid node id ${JSON.stringify(opts.nodeId)}: use letters, digits, _ and - (at most 63, starting with a letter or digit)`);
    }
    if (!(opts.heartbeatIntervalMs > 0)) throw new Error('heartbeatIntervalMs must be positive');
    if (!(opts.cpuCores > 0) || !(opts.ramGb > 0)) throw new Error('cpuCores and ramGb must be positive');
    this.opts = opts;
    this.nodeId = opts.nodeId;
    this.stateDir = resolve(opts.stateDir);
    this.jobsDir = join(this.stateDir, 'jobs');
    this.log = opts.log.child({ component: 'agent', node_id: opts.nodeId });
    this.bus = opts.bus;
    this.runtime = opts.runtime;
    this.gpuIndices = new Set(opts.gpus.map((g) => g.index));
    this.state = new StateWriter(this.stateDir, () => this.snapshot());
    this.shipper = new LogShipper(this.bus.js, (jobId) => this.bus.t.subjects.logs(jobId), this.log, {
      window: opts.logWindow,
      maxQueuedBytes: opts.maxQueuedLogBytes,
      isClosed: () => this.bus.nc.isClosed(),
    });
  }

  /** Changes on every start(). Empty before. */
  get bootId(): string {
    return this.boot;
  }

  /** Attempts this node holds (launching or running). */
  runningAttempts(): AttemptRef[] {
    const out: AttemptRef[] = [];
    for (const e of this.entries.values()) {
      if (e.status !== 'exited') out.push({ job_id: e.job_id, attempt: e.attempt });
    }
    return out;
  }

  /** A copy of the state as it would be written now: every attempt not yet reported (reported ones live in the done log). */
  snapshot(): StateFileContent {
    const executions = [...this.entries.values()].filter((e) => !isDone(e)).map((e) => this.snapshotEntry(e));
    return { version: STATE_VERSION, node_id: this.nodeId, updated_at: new Date().toISOString(), executions };
  }

  private snapshotEntry(e: ExecutionEntry): ExecutionEntry {
    const copy: ExecutionEntry = { ...e, gpu_indices: [...e.gpu_indices] };
    if (e.record) copy.record = this.persistableRecord(attemptKey(e), e.record);
    if (e.exit) copy.exit = { ...e.exit };
    return copy;
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    if (this.startCalled) throw new Error('Agent.start() called twice; create a new Agent instead');
    this.startCalled = true;
    this.boot = randomUUID();
    await this.state.init();
    await mkdir(this.jobsDir, { recursive: true });

    await this.recover();
    this.loaded = true;
    await this.state.save();
    if (this.stopping) return;

    await this.ensureConsumer();
    if (this.stopping) return;

    const t = this.bus.t;
    this.helloSub = this.bus.nc.subscribe(t.subjects.nodeHello(this.nodeId), {
      callback: (err) => {
        if (err || this.stopping) return;
        this.log.info('hello from the coordinator: registering again');
        void this.register();
      },
    });
    const status = this.bus.nc.status();
    this.statusIter = status as unknown as { stop?: () => void };
    void (async () => {
      for await (const s of status) {
        if (this.stopping) break;
        if (s.type === 'reconnect') {
          this.log.info('NATS reconnected: registering again');
          void this.register();
        }
      }
    })().catch(() => undefined);

    if (!(await this.register())) return; // stopped meanwhile
    this.registeredOnce = true;
    this.firstRegistration.resolve();

    // Finished while no agent watched (or before their event was stored): report them now.
    const pending = [...this.entries.values()].filter((e) => e.status === 'exited' && !e.reported);
    await Promise.all(pending.map((e) => this.report(e)));
    if (this.stopping) return;

    this.sendHeartbeat();
    this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), this.opts.heartbeatIntervalMs);
    this.sweepTimer = setInterval(() => void this.sweep().catch((err) => this.log.warn({ err }, 'retention sweep failed')), this.opts.sweepIntervalMs ?? 60_000);
    this.sweepTimer.unref();

    this.consumeDone = this.consumeLoop();
    this.log.info({ boot_id: this.boot, gpus: this.opts.gpus.length, runtime: this.runtime.kind, running: this.runningAttempts().length }, 'agent started');
  }

  /**
   * Stops consuming and heartbeating, waits for the command being handled,
   * persists the state and returns. Running attempts keep running; the bus
   * stays open.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    this.stopSignal.resolve();
    this.sleepers.wakeAll();
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.heartbeatTimer = this.sweepTimer = null;
    try {
      this.helloSub?.unsubscribe();
    } catch {
      // connection already closed
    }
    this.statusIter?.stop?.();
    // Ends the loop's iterator (it settles as the loop drains it) after the command in hand.
    void this.messages?.close().catch(() => undefined);
    await this.consumeDone;
    // Leave running attempts to the next agent; stop watching those that can be detached.
    for (const exec of this.live.values()) (exec as { detach?: () => void }).detach?.();
    const flushed = await this.shipper.flush(this.opts.stopLogFlushMs ?? 3000);
    if (!flushed) this.log.warn({ outstanding: this.shipper.outstanding }, 'stopping with log lines not yet stored; the next agent re-reads them');
    this.shipper.abort();
    if (this.loaded) await this.state.save().catch((err) => this.log.error({ err }, 'could not persist the agent state'));
    this.log.info({ running: this.runningAttempts().length }, 'agent stopped');
  }

  // ---------------------------------------------------------------- recovery

  private async recover(): Promise<void> {
    for (const e of await readDoneLog(this.stateDir)) if (isDone(e)) this.entries.set(attemptKey(e), e);
    const loaded = await readStateFile(this.stateDir);
    if (!loaded) return;
    if (loaded.node_id !== this.nodeId) {
      throw new Error(`state directory ${this.stateDir} belongs to node ${loaded.node_id}, not ${this.nodeId}`);
    }
    for (const e of loaded.executions) this.entries.set(attemptKey(e), e);
    const now = new Date().toISOString();
    for (const [key, e] of this.entries) {
      if (e.status === 'launching') {
        this.log.warn({ job_id: e.job_id, attempt: e.attempt }, 'found an attempt whose launch was interrupted: reporting launch_failed');
        Object.assign(e, { status: 'exited', launch_failed: RELAUNCH_REASON, reported: false, ended_at: now });
        continue;
      }
      if (e.status !== 'running') continue;
      let r: Execution | ExitResult | null = null;
      if (e.record) {
        try {
          r = await this.runtime.reattach(e.record, this.sinkFor(key, e));
        } catch (err) {
          this.log.error({ err, job_id: e.job_id, attempt: e.attempt }, 're-attaching failed');
        }
      }
      if (r && isExecution(r)) {
        e.record = r.record;
        this.log.info({ job_id: e.job_id, attempt: e.attempt, pid: r.pid }, 're-attached to a running attempt');
        this.watch(key, e, r);
        if (e.killRequested) void r.kill((e.kill_grace_sec ?? 10) * 1000).catch(() => undefined);
      } else {
        const res = r ?? { code: -1, signal: null };
        if (!r) this.log.warn({ job_id: e.job_id, attempt: e.attempt }, 'cannot re-attach to an attempt: reporting it ended with an unknown status');
        else this.log.info({ job_id: e.job_id, attempt: e.attempt, code: res.code }, 'an attempt ended while no agent ran');
        Object.assign(e, {
          status: 'exited',
          exit: { code: res.code, signal: res.signal, killed: !!e.killRequested },
          reported: false,
          ended_at: now,
        });
      }
    }
  }

  // ---------------------------------------------------------------- NATS plumbing

  private async ensureConsumer(): Promise<void> {
    const { t } = this.bus;
    const stream = t.streams.NODE_CMDS;
    const name = t.consumers.node(this.nodeId);
    const filter = t.subjects.nodeCmd(this.nodeId);
    const ackWait = nanos(NODE_CMD_ACK_WAIT_MS);
    try {
      const info = await this.bus.jsm.consumers.info(stream, name);
      if (info.config.filter_subject !== filter) {
        throw new Error(`consumer ${name} on ${stream} filters ${JSON.stringify(info.config.filter_subject)}, not ${filter}; delete it`);
      }
      if (info.config.ack_wait !== ackWait || (info.config.max_deliver ?? -1) !== -1) {
        await this.bus.jsm.consumers.update(stream, name, { ack_wait: ackWait, max_deliver: -1 });
      }
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
      await this.bus.jsm.consumers
        .add(stream, {
          durable_name: name,
          filter_subject: filter,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: ackWait,
          max_deliver: -1,
        })
        .catch((e: Error) => {
          if (!/already in use|exists/i.test(e.message)) throw e;
        });
    }
  }

  private async consumeLoop(): Promise<void> {
    const { t } = this.bus;
    let delay = 250;
    while (!this.stopping) {
      try {
        const consumer = await this.bus.js.consumers.get(t.streams.NODE_CMDS, t.consumers.node(this.nodeId));
        const msgs = await consumer.consume({ max_messages: 4, expires: 5000 });
        this.messages = msgs;
        // close() settles only once the iterator below runs: never await it before.
        if (this.stopping) void msgs.close();
        void (async () => {
          for await (const s of msgs.status()) {
            if (s.type === 'consumer_deleted' || s.type === 'consumer_not_found') {
              this.log.warn({ status: s.type }, 'command consumer vanished: re-creating it');
              void msgs.close();
              break;
            }
          }
        })().catch(() => undefined);
        for await (const m of msgs) {
          if (this.stopping) {
            m.nak(); // delivered to us but not handled: let the next agent have it at once
            continue;
          }
          await this.handleMessage(m);
          delay = 250;
        }
      } catch (err) {
        if (this.stopping) break;
        this.log.warn({ err: (err as Error).message }, 'consuming commands failed; retrying');
      }
      if (this.stopping) break;
      await this.sleep(delay);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      try {
        await this.ensureConsumer();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'cannot ensure the command consumer; retrying');
      }
    }
  }

  private async handleMessage(m: JsMsg): Promise<void> {
    let cmd;
    try {
      cmd = nodeCommandSchema.parse(m.json());
    } catch (err) {
      this.log.error({ err: (err as Error).message, seq: m.seq, data: m.string().slice(0, 500) }, 'malformed command: dropped');
      // Acked rather than term()ed: on nats-server 2.9 a terminated message stays in a
      // work-queue stream (until max_age); an ack removes it. Either way it is never redelivered.
      m.ack();
      return;
    }
    try {
      const done = cmd.type === 'run' ? await this.handleRun(cmd) : await this.handleKill(cmd);
      if (done) m.ack();
      else m.nak(); // interrupted by stop(): the state says what was done, the redelivery finishes it
    } catch (err) {
      this.log.error({ err, job_id: cmd.job_id, attempt: cmd.attempt, type: cmd.type }, 'handling a command failed; it will be redelivered');
      m.nak(2000);
    }
  }

  // ---------------------------------------------------------------- commands

  /** Returns true when the command may be acked. */
  private async handleRun(cmd: RunCommand): Promise<boolean> {
    const key = attemptKey(cmd);
    const known = this.entries.get(key);
    if (known) {
      this.log.info({ job_id: cmd.job_id, attempt: cmd.attempt, status: known.status, tombstone: !!known.tombstone }, 'run for a known attempt: re-publishing its status, not running it again');
      return this.republish(key, known);
    }
    const now = new Date().toISOString();
    const e: ExecutionEntry = {
      job_id: cmd.job_id,
      attempt: cmd.attempt,
      status: 'launching',
      reported: false,
      gpu_indices: [...cmd.gpu_indices],
      cpu_cores: cmd.cpu_cores,
      ram_gb: cmd.ram_gb,
      created_at: now,
    };
    this.entries.set(key, e);

    const missing = cmd.gpu_indices.filter((i) => !this.gpuIndices.has(i));
    const dupes = cmd.gpu_indices.filter((i, n) => cmd.gpu_indices.indexOf(i) !== n);
    if (missing.length || dupes.length) {
      const have = [...this.gpuIndices].sort((a, b) => a - b).join(',') || 'none';
      const reason = missing.length
        ? `GPU index ${missing.join(', ')} does not exist on node ${this.nodeId} (it has GPUs ${have})`
        : `gpu_indices lists GPU ${[...new Set(dupes)].join(', ')} more than once`;
      return this.failLaunch(key, e, reason);
    }
    const busy = this.busyGpus(key);
    const overlap = cmd.gpu_indices.filter((i) => busy.has(i));
    if (overlap.length) {
      this.log.warn({ job_id: cmd.job_id, attempt: cmd.attempt, gpus: overlap }, 'GPUs given to this attempt are still used by another attempt on this node');
    }

    const workDir = join(this.jobsDir, `${cmd.job_id}-${cmd.attempt}`);
    e.work_dir = workDir;
    await this.state.save(); // `launching` is durable before anything starts

    const spec: RunSpec = {
      jobId: cmd.job_id,
      attempt: cmd.attempt,
      gpuIndices: [...cmd.gpu_indices],
      image: cmd.image,
      command: cmd.command,
      env: cmd.env,
      cpuCores: cmd.cpu_cores,
      ramGb: cmd.ram_gb,
      expectedDurationSec: cmd.expected_duration_sec,
      workDir,
    };
    let exec: Execution;
    try {
      await mkdir(workDir, { recursive: true });
      exec = await this.runtime.launch(spec, this.sinkFor(key, e));
    } catch (err) {
      const reason = err instanceof LaunchError ? err.reason : `${this.runtime.kind} runtime: launch failed: ${(err as Error).message}`;
      this.log.warn({ job_id: cmd.job_id, attempt: cmd.attempt, reason }, 'launch failed');
      return this.failLaunch(key, e, reason);
    }
    e.status = 'running';
    e.record = exec.record;
    e.pid = exec.pid;
    this.log.info({ job_id: cmd.job_id, attempt: cmd.attempt, pid: exec.pid, gpus: cmd.gpu_indices }, 'attempt started');
    const saved = this.state.save();
    // On the chain before the exit watcher can add `exited`: started always goes first.
    const published = this.onChain(key, async () => {
      await saved;
      return this.publishEvent(this.startedEvent(e));
    });
    this.watch(key, e, exec);
    return published;
  }

  private async handleKill(cmd: KillCommand): Promise<boolean> {
    const key = attemptKey(cmd);
    const e = this.entries.get(key);
    if (!e) {
      // Killed before its run arrived (or after this node forgot it): remember, so a later run never starts.
      this.log.info({ job_id: cmd.job_id, attempt: cmd.attempt }, 'kill for an unknown attempt: keeping a tombstone');
      const now = new Date().toISOString();
      const tomb: ExecutionEntry = {
        job_id: cmd.job_id,
        attempt: cmd.attempt,
        status: 'exited',
        exit: { code: -1, signal: null, killed: true },
        killRequested: true,
        kill_grace_sec: cmd.grace_sec,
        tombstone: true,
        reported: false,
        gpu_indices: [],
        cpu_cores: 0,
        ram_gb: 0,
        created_at: now,
        ended_at: now,
      };
      this.entries.set(key, tomb);
      await this.state.save();
      return this.report(tomb);
    }
    if (e.status === 'exited') return this.republish(key, e);
    // launching (cannot happen: commands are handled one at a time) or running
    if (!e.killRequested) {
      e.killRequested = true;
      e.kill_grace_sec = cmd.grace_sec;
      await this.state.save();
    }
    const exec = this.live.get(key);
    if (exec) {
      this.log.info({ job_id: cmd.job_id, attempt: cmd.attempt, grace_sec: cmd.grace_sec, reason: cmd.reason }, 'killing attempt');
      // Sends SIGTERM now; the grace runs in the background and `exited` (killed: true) reports the end.
      void exec.kill(cmd.grace_sec * 1000).catch((err) => this.log.error({ err, job_id: cmd.job_id }, 'kill failed'));
    }
    return true;
  }

  private async failLaunch(key: string, e: ExecutionEntry, reason: string): Promise<boolean> {
    Object.assign(e, { status: 'exited', launch_failed: reason, ended_at: new Date().toISOString() });
    delete e.record;
    await this.state.save();
    return this.report(e);
  }

  /** Answers a run/kill for an attempt already known: its current status, once more. */
  private republish(key: string, e: ExecutionEntry): Promise<boolean> {
    if (e.status === 'running') return this.onChain(key, () => this.publishEvent(this.startedEvent(e)));
    if (e.status === 'exited' && e.reported) return this.onChain(key, () => this.publishEvent(this.finalEvent(e)));
    // Ended but not reported yet: its final event is on its way (after its logs).
    return Promise.resolve(true);
  }

  // ---------------------------------------------------------------- executions

  private sinkFor(key: string, e: ExecutionEntry): LogSink {
    return (line) => this.shipper.enqueue(key, e.job_id, e.attempt, line);
  }

  private watch(key: string, e: ExecutionEntry, exec: Execution): void {
    this.live.set(key, exec);
    exec.exited.then(
      (res) => this.onExit(key, e, exec, res).catch((err) => this.log.error({ err, job_id: e.job_id }, 'handling an exit failed')),
      () => undefined,
    );
  }

  private async onExit(key: string, e: ExecutionEntry, exec: Execution, res: ExitResult): Promise<void> {
    // A stopping agent leaves the end to the next one (it re-attaches and sees the end).
    if (this.stopping || this.live.get(key) !== exec || e.status !== 'running') return;
    this.live.delete(key);
    Object.assign(e, {
      status: 'exited',
      exit: { code: res.code, signal: res.signal, killed: !!e.killRequested },
      ended_at: new Date().toISOString(),
      record: exec.record,
    });
    this.log.info({ job_id: e.job_id, attempt: e.attempt, code: res.code, signal: res.signal, killed: !!e.killRequested }, 'attempt ended');
    await this.saveWithRetry();
    await this.report(e);
  }

  /** Publishes the final event once every log line is stored, then records that it was. */
  private report(e: ExecutionEntry): Promise<boolean> {
    const key = attemptKey(e);
    return this.onChain(key, async () => {
      if (e.reported) return this.publishEvent(this.finalEvent(e));
      await this.shipper.drained(key);
      if (this.stopping) return false;
      const dropped = this.shipper.dropped(key);
      if (dropped) this.log.warn({ job_id: e.job_id, attempt: e.attempt, dropped }, 'log lines were dropped for this attempt');
      if (!(await this.publishEvent(this.finalEvent(e)))) return false;
      e.reported = true;
      this.shipper.forget(key);
      // Into the done log first, then out of the state file: a crash in between only leaves it in both.
      await appendDoneLog(this.stateDir, [this.snapshotEntry(e)]).catch((err) =>
        this.log.warn({ err, job_id: e.job_id }, 'could not append to the done log; the attempt may be reported again after a restart'),
      );
      await this.saveWithRetry();
      return true;
    });
  }

  private onChain(key: string, fn: () => Promise<boolean>): Promise<boolean> {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const p = prev.then(fn, fn);
    const tail = p.catch(() => undefined);
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return p;
  }

  /** GPUs of the attempts this node holds, except `exceptKey`'s (an attempt does not compete with itself). */
  private busyGpus(exceptKey?: string): Set<number> {
    const busy = new Set<number>();
    for (const [key, e] of this.entries) {
      if (key !== exceptKey && e.status !== 'exited') for (const i of e.gpu_indices) busy.add(i);
    }
    return busy;
  }

  // ---------------------------------------------------------------- events

  private registeredEvent(): RegisteredEvent {
    return {
      type: 'registered',
      node_id: this.nodeId,
      boot_id: this.boot,
      pool: this.opts.pool,
      runtime: this.runtime.kind,
      cpu_cores: this.opts.cpuCores,
      ram_gb: this.opts.ramGb,
      gpus: this.opts.gpus.map((g) => ({ index: g.index, uuid: g.uuid, model: g.model, vram_gb: g.vram_gb })),
      running: this.runningAttempts(),
      time: new Date().toISOString(),
    };
  }

  private startedEvent(e: ExecutionEntry): StartedEvent {
    return { type: 'started', node_id: this.nodeId, job_id: e.job_id, attempt: e.attempt, pid: e.pid ?? null, time: new Date().toISOString() };
  }

  private finalEvent(e: ExecutionEntry): ExitedEvent | LaunchFailedEvent {
    const base = { node_id: this.nodeId, job_id: e.job_id, attempt: e.attempt, time: new Date().toISOString() };
    if (e.launch_failed !== undefined) return { type: 'launch_failed', ...base, reason: e.launch_failed };
    const x = e.exit ?? { code: -1, signal: null, killed: !!e.killRequested };
    return { type: 'exited', ...base, code: x.code, signal: x.signal, killed: x.killed };
  }

  private register(): Promise<boolean> {
    return this.publishEvent(this.registeredEvent(), true);
  }

  /**
   * Publishes to this node's events subject and awaits the PubAck, retrying
   * with backoff until it is stored. False when the agent stopped first.
   * Everything but `registered` waits for the first registration.
   */
  private async publishEvent(ev: NodeBusEvent, isRegistration = false): Promise<boolean> {
    if (!isRegistration && !this.registeredOnce) {
      await Promise.race([this.firstRegistration.promise, this.stopSignal.promise]);
    }
    const subject = this.bus.t.subjects.nodeEvents(this.nodeId);
    // One id per logical publish: a retry after a lost PubAck is not stored twice,
    // a deliberate re-publish (on request) is.
    const msgID = randomUUID();
    let delay = 100;
    for (;;) {
      if (this.stopping || this.bus.nc.isClosed()) return false;
      try {
        await this.bus.js.publish(subject, encodeJson(ev), { msgID });
        return true;
      } catch (err) {
        if (this.stopping || this.bus.nc.isClosed()) return false;
        this.log.warn({ err: (err as Error).message, type: ev.type }, 'publishing an event failed; retrying');
        await this.sleep(delay);
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      }
    }
  }

  private sendHeartbeat(): void {
    if (this.stopping) return;
    let gpus = 0;
    let cpu = 0;
    let ram = 0;
    const busy = this.busyGpus();
    gpus = [...busy].filter((i) => this.gpuIndices.has(i)).length;
    for (const e of this.entries.values()) {
      if (e.status === 'exited') continue;
      cpu += e.cpu_cores;
      ram += e.ram_gb;
    }
    const hb: Heartbeat = {
      node_id: this.nodeId,
      boot_id: this.boot,
      running: this.runningAttempts(),
      free: {
        gpus: Math.max(0, this.gpuIndices.size - gpus),
        cpu_cores: Math.max(0, this.opts.cpuCores - cpu),
        ram_gb: Math.max(0, this.opts.ramGb - ram),
      },
      used: { gpus, cpu_cores: cpu, ram_gb: ram },
      time: new Date().toISOString(),
    };
    try {
      this.bus.nc.publish(this.bus.t.subjects.nodeHeartbeat(this.nodeId), encodeJson(heartbeatSchema.parse(hb)));
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'heartbeat not sent');
    }
  }

  // ---------------------------------------------------------------- housekeeping

  private async sweep(): Promise<void> {
    if (this.stopping) return;
    const now = Date.now();
    const dirTtl = this.opts.workDirRetentionMs ?? 10 * 60_000;
    const entryTtl = this.opts.entryRetentionMs ?? 2 * 3600_000;
    let changed = false;
    for (const [key, e] of this.entries) {
      if (e.status !== 'exited' || !e.reported || !e.ended_at) continue;
      const age = now - Date.parse(e.ended_at);
      if (age >= dirTtl && e.work_dir && !e.work_dir_removed) {
        await this.removeWorkDir(e.work_dir);
        e.work_dir_removed = true;
        changed = true;
      }
      if (age >= entryTtl) {
        this.entries.delete(key);
        this.shipper.forget(key);
        changed = true;
      }
    }
    if (changed) {
      await this.state.save();
      await rewriteDoneLog(this.stateDir, [...this.entries.values()].filter(isDone).map((e) => this.snapshotEntry(e))).catch((err) =>
        this.log.warn({ err }, 'could not compact the done log'),
      );
    }
  }

  private async removeWorkDir(dir: string): Promise<void> {
    const abs = resolve(dir);
    // Only ever inside our own jobs directory, whatever the state file says.
    if (!abs.startsWith(this.jobsDir + sep)) return;
    await rm(abs, { recursive: true, force: true }).catch((err) => this.log.warn({ err, dir: abs }, 'cannot remove a work directory'));
  }

  /** The record as persisted: its log offsets no later than the first line not yet stored. */
  private persistableRecord(key: string, record: Record<string, unknown>): Record<string, unknown> {
    const offsets = record.offsets as Partial<Record<LogStream, unknown>> | undefined;
    if (!offsets || typeof offsets !== 'object') return { ...record };
    const out: Record<string, unknown> = { ...offsets };
    for (const s of ['stdout', 'stderr'] as const) {
      const cur = offsets[s];
      const first = this.shipper.firstPendingOffset(key, s);
      if (typeof cur === 'number' && first !== undefined && first < cur) out[s] = first;
    }
    return { ...record, offsets: out };
  }

  private async saveWithRetry(): Promise<void> {
    let delay = 200;
    for (let i = 0; ; i++) {
      try {
        await this.state.save();
        return;
      } catch (err) {
        if (this.stopping || i >= 5) {
          this.log.error({ err }, 'cannot persist the agent state');
          return;
        }
        await this.sleep(delay);
        delay *= 2;
      }
    }
  }

  /** Resolves after `ms`, or at once when the agent stops. */
  private sleep(ms: number): Promise<void> {
    return this.stopping ? Promise.resolve() : this.sleepers.sleep(ms);
  }

}
