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
 * - A command runs only when it is signed by a coordinator key of
 *   `verifier`, for this node, and not expired (src/wire/signing.ts); the
 *   check holds whatever NATS permissions let through. Anything else is
 *   refused, logged and acked (refusals.ts). An expired run of an unknown
 *   attempt is answered launch_failed with code command_expired. A run of
 *   an attempt this node has taken never launches again (the seen runs,
 *   state.ts SEEN_FILE, outlive the attempt's entry until their signatures
 *   expire).
 *
 * Many agents can live in one process (`scalar dev`, benchmarks): no global
 * state, no process.exit, and stop() leaves the bus open and running
 * attempts running (the next agent on the same stateDir re-attaches them).
 *
 * This file holds the Agent itself: options, start/stop, registration,
 * heartbeat and the command consumer. Its parts: attempts.ts (the attempt
 * table, its persistence and retention), recovery.ts (re-reading the state at
 * start), executions.ts (run/kill and the executions they start),
 * reporting.ts (events, in order per attempt), logs.ts (log lines),
 * lifecycle.ts (the stop signal they share).
 */
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { JetStreamApiCodes, JetStreamApiError, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Bus } from '../../src/wire/connection.ts';
import { encodeJson, heartbeatSchema, nodeCommandSchema, type Heartbeat, type RegisteredEvent } from '../../src/wire/messages.ts';
import type { CommandVerifier } from '../../src/wire/signing.ts';
import { NODE_ID_PATTERN } from '../../src/wire/subjects.ts';
import { ensureNodeConsumer } from '../../src/wire/node-consumer.ts';
import type { AttemptRef, GpuInfo, Pool } from '../../src/domain/cluster.ts';
import type { Runtime } from '../../src/runtimes/types.ts';
import { AttemptTable } from './attempts.ts';
import { Executions } from './executions.ts';
import { claimNodeId } from './identity.ts';
import { Lifecycle, MAX_BACKOFF_MS } from './lifecycle.ts';
import { LogShipper } from './logs.ts';
import { recover } from './recovery.ts';
import { Refusals, type RefusalReason } from './refusals.ts';
import { Reporter } from './reporting.ts';
import type { StateFileContent } from './state.ts';

export interface AgentOptions {
  /** Must match NODE_ID_PATTERN. */
  nodeId: string;
  pool: Pool;
  gpus: GpuInfo[];
  cpuCores: number;
  ramGb: number;
  /** The capacity block this node belongs to, if it was bought as part of one. */
  blockId?: string | null;
  /** Where other gang members reach this node (their SCALAR_MASTER_ADDR when it is rank 0). Default: the host name. */
  addr?: string;
  runtime: Runtime;
  /** Holds state.json and jobs/<job_id>-<attempt>/ work directories. One agent per directory. */
  stateDir: string;
  heartbeatIntervalMs: number;
  /** The agent uses it and never closes it. */
  bus: Bus;
  /**
   * Accepts the commands signed by the coordinator keys it holds
   * (SCALAR_COORDINATOR_KEYS); every other command is refused, whatever
   * NATS let through.
   */
  verifier: CommandVerifier;
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

export class Agent {
  readonly nodeId: string;
  readonly stateDir: string;
  private readonly opts: AgentOptions;
  private readonly log: Logger;
  private readonly bus: Bus;
  private readonly runtime: Runtime;
  private readonly gpuIndices: Set<number>;
  private readonly lifecycle = new Lifecycle();
  private readonly shipper: LogShipper;
  private readonly attempts: AttemptTable;
  private readonly reporter: Reporter;
  private readonly executions: Executions;
  private readonly refusals: Refusals;

  private boot = '';
  private startCalled = false;
  private stopPromise: Promise<void> | null = null;
  /** The state file was read (or found absent): only then may it be written. */
  private loaded = false;

  private heartbeatTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private helloSub: Subscription | null = null;
  private whoisSub: Subscription | null = null;
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
    this.log = opts.log.child({ component: 'agent', node_id: opts.nodeId });
    this.bus = opts.bus;
    this.runtime = opts.runtime;
    this.gpuIndices = new Set(opts.gpus.map((g) => g.index));
    this.shipper = new LogShipper(this.bus.js, (jobId) => this.bus.t.subjects.logs(jobId, opts.nodeId), this.log, {
      window: opts.logWindow,
      maxQueuedBytes: opts.maxQueuedLogBytes,
      isClosed: () => this.bus.nc.isClosed(),
      nodeId: opts.nodeId,
    });
    this.attempts = new AttemptTable(this.stateDir, this.nodeId, this.shipper, this.lifecycle, this.log);
    this.reporter = new Reporter(this.bus, this.nodeId, this.attempts, this.shipper, this.lifecycle, this.log);
    this.refusals = new Refusals(this.log);
    this.executions = new Executions(
      this.nodeId,
      this.runtime,
      this.gpuIndices,
      this.attempts,
      this.reporter,
      this.shipper,
      this.lifecycle,
      this.refusals,
      this.log,
    );
  }

  /** The commands refused since start, by reason (refusals.ts): nothing of them ran. */
  get rejectedCommands(): Readonly<Record<RefusalReason, number>> {
    return this.refusals.snapshot();
  }

  /** Changes on every start(). Empty before. */
  get bootId(): string {
    return this.boot;
  }

  /** Attempts this node holds (launching or running). */
  runningAttempts(): AttemptRef[] {
    return this.attempts.runningAttempts();
  }

  /** A copy of the state as it would be written now: every attempt not yet reported (reported ones live in the done log). */
  snapshot(): StateFileContent {
    return this.attempts.snapshot();
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    if (this.startCalled) throw new Error('Agent.start() called twice; create a new Agent instead');
    this.startCalled = true;
    this.boot = randomUUID();
    this.whoisSub = await claimNodeId(this.bus, this.nodeId, this.boot);
    await this.attempts.init();
    await mkdir(this.attempts.jobsDir, { recursive: true });

    await recover({ nodeId: this.nodeId, runtime: this.runtime, attempts: this.attempts, executions: this.executions, log: this.log });
    this.loaded = true;
    await this.attempts.save();
    if (this.lifecycle.stopping) return;

    await this.ensureConsumer();
    if (this.lifecycle.stopping) return;

    const t = this.bus.t;
    this.helloSub = this.bus.nc.subscribe(t.subjects.nodeHello(this.nodeId), {
      callback: (err) => {
        if (err || this.lifecycle.stopping) return;
        this.log.info('hello from the coordinator: registering again');
        void this.register();
      },
    });
    const status = this.bus.nc.status();
    this.statusIter = status as unknown as { stop?: () => void };
    void (async () => {
      for await (const s of status) {
        if (this.lifecycle.stopping) break;
        if (s.type === 'reconnect') {
          this.log.info('NATS reconnected: registering again');
          void this.register();
        }
      }
    })().catch(() => undefined);

    if (!(await this.register())) return; // stopped meanwhile
    this.reporter.firstRegistrationDone();

    // Finished while no agent watched (or before their event was stored): report them now.
    const pending = [...this.attempts.entries.values()].filter((e) => e.status === 'exited' && !e.reported);
    await Promise.all(pending.map((e) => this.reporter.report(e)));
    if (this.lifecycle.stopping) return;

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
    this.lifecycle.stop();
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.heartbeatTimer = this.sweepTimer = null;
    try {
      this.helloSub?.unsubscribe();
      this.whoisSub?.unsubscribe();
    } catch {
      // connection already closed
    }
    this.statusIter?.stop?.();
    // Ends the loop's iterator (it settles as the loop drains it) after the command in hand.
    void this.messages?.close().catch(() => undefined);
    await this.consumeDone;
    // Leave running attempts to the next agent; stop watching those that can be detached.
    this.executions.detachAll();
    const flushed = await this.shipper.flush(this.opts.stopLogFlushMs ?? 3000);
    if (!flushed) this.log.warn({ outstanding: this.shipper.outstanding }, 'stopping with log lines not yet stored; the next agent re-reads them');
    this.shipper.abort();
    this.attempts.cancelSaveSoon();
    if (this.loaded) await this.attempts.save().catch((err) => this.log.error({ err }, 'could not persist the agent state'));
    this.log.info({ running: this.runningAttempts().length }, 'agent stopped');
  }

  // ---------------------------------------------------------------- NATS plumbing

  /**
   * On an open server the agent declares its own command consumer. On a
   * secured one its credential may not: the coordinator creates it when this
   * node registers, and the consume loop waits for it.
   */
  private async ensureConsumer(): Promise<void> {
    if (this.bus.secured) return;
    await ensureNodeConsumer(this.bus.jsm, this.bus.t, this.nodeId);
  }

  private async consumeLoop(): Promise<void> {
    const { t } = this.bus;
    let delay = 250;
    let askedForConsumerAt = 0;
    while (!this.lifecycle.stopping) {
      try {
        const consumer = await this.bus.js.consumers.get(t.streams.NODE_CMDS, t.consumers.node(this.nodeId));
        const msgs = await consumer.consume({ max_messages: 4, expires: 5000 });
        this.messages = msgs;
        // close() settles only once the iterator below runs: never await it before.
        if (this.lifecycle.stopping) void msgs.close();
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
          if (this.lifecycle.stopping) {
            m.nak(); // delivered to us but not handled: let the next agent have it at once
            continue;
          }
          await this.handleMessage(m);
          delay = 250;
        }
      } catch (err) {
        if (this.lifecycle.stopping) break;
        if (this.bus.secured && err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) {
          // The coordinator creates it when this node registers: ask again now and then (a registration is idempotent).
          if (Date.now() - askedForConsumerAt > 10_000) {
            if (askedForConsumerAt > 0) void this.register();
            askedForConsumerAt = Date.now();
            this.log.info('waiting for the coordinator to create this node\'s command consumer');
          }
        } else {
          this.log.warn({ err: (err as Error).message }, 'consuming commands failed; retrying');
        }
      }
      if (this.lifecycle.stopping) break;
      await this.lifecycle.sleep(delay);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      try {
        await this.ensureConsumer();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'cannot ensure the command consumer; retrying');
      }
    }
  }

  /**
   * One command: parsed, then its signature checked, before anything runs.
   * What is refused is acked, never redelivered (refusals.ts).
   */
  private async handleMessage(m: JsMsg): Promise<void> {
    let cmd;
    try {
      cmd = nodeCommandSchema.parse(m.json());
    } catch (err) {
      this.refusals.count('malformed');
      this.log.error({ err: (err as Error).message, seq: m.seq, data: m.string().slice(0, 500), reason: 'malformed' }, 'malformed command: dropped');
      // Acked rather than term()ed: on nats-server 2.9 a terminated message stays in a
      // work-queue stream (until max_age); an ack removes it. Either way it is never redelivered.
      m.ack();
      return;
    }
    const verdict = await this.opts.verifier.verify(this.nodeId, m.headers, m.data, Date.now());
    try {
      let done: boolean;
      if (verdict.ok) done = cmd.type === 'run' ? await this.executions.run(cmd, verdict.expMs) : await this.executions.kill(cmd);
      // An expired run says so to the coordinator (launch_failed); an expired kill is re-sent by it, signed afresh.
      else if (verdict.reason === 'expired' && cmd.type === 'run') done = await this.executions.expiredRun(cmd, verdict.detail);
      else {
        this.refusals.note(verdict.reason, cmd, verdict.detail);
        done = true;
      }
      if (done) m.ack();
      else m.nak(); // interrupted by stop(): the state says what was done, the redelivery finishes it
    } catch (err) {
      this.log.error({ err, job_id: cmd.job_id, attempt: cmd.attempt, type: cmd.type }, 'handling a command failed; it will be redelivered');
      m.nak(2000);
    }
  }

  // ---------------------------------------------------------------- registration, heartbeat, retention

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
      block_id: this.opts.blockId ?? null,
      addr: this.opts.addr ?? os.hostname(),
      time: new Date().toISOString(),
    };
  }

  private register(): Promise<boolean> {
    return this.reporter.publish(this.registeredEvent(), true);
  }

  private sendHeartbeat(): void {
    if (this.lifecycle.stopping) return;
    let gpus = 0;
    let cpu = 0;
    let ram = 0;
    const busy = this.attempts.busyGpus();
    gpus = [...busy].filter((i) => this.gpuIndices.has(i)).length;
    for (const e of this.attempts.entries.values()) {
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

  private sweep(): Promise<void> {
    return this.attempts.sweep(this.opts.workDirRetentionMs ?? 10 * 60_000, this.opts.entryRetentionMs ?? 2 * 3600_000);
  }
}
