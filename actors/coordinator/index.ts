/**
 * `scalar coordinator`: wins leadership, rebuilds the actors from Postgres,
 * then feeds the Coordinator from JetStream (jobs, node events), core NATS
 * (heartbeats, operator requests) and timers.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { nanos, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Bus } from '../../src/wire/connection.ts';
import { CommandVerifier, type CommandSigner } from '../../src/wire/signing.ts';
import {
  capacityRequestSchema,
  encodeJson,
  heartbeatSchema,
  jobCancelRequestSchema,
  jobsSubmittedSchema,
  nodeActionRequestSchema,
  nodeEventSchema,
  type JobCancelReply,
} from '../../src/wire/messages.ts';
import type { NodeAction } from '../../src/wire/subjects.ts';
import { ensureNodeConsumer } from '../../src/wire/node-consumer.ts';
import { createActor } from 'xstate';
import { coordinatorMachine } from '../../machines/coordinator.machine.ts';
import { Coordinator } from './coordinator.ts';
import { natsNodeLink } from './nats-link.ts';
import { CoordinatorStore } from './store.ts';
import { systemClock } from '../../src/domain/clock.ts';
import { electLeader } from './leader.ts';
import type { Inspect } from './live.ts';
import { DEFAULT_SCHEDULING, type SchedulingSettings } from './settings.ts';
import type { CapacityActor } from '../capacity/actor.ts';
import { attachCapacityActor } from './capacity.ts';
import { SimulatedLauncher } from '../capacity/launcher.ts';
import { CapacityStore } from '../capacity/store.ts';
import { StaleBlockWriteError } from '../capacity/ports.ts';
import { simulatedMarketplaceFromConfig } from '../../src/capacity/marketplace.ts';
import type { Config } from '../../src/config/index.ts';
import { CapacityError } from '../capacity/errors.ts';

export interface CoordinatorRuntimeOptions {
  orm: MikroORM;
  databaseUrl: string;
  bus: Bus;
  /** Signs every command sent to agents (SCALAR_SIGNING_KEY_FILE); the capacity actor's in-process agents accept its public key. */
  signer: CommandSigner;
  log: Logger;
  heartbeatIntervalMs: number;
  /** SCALAR_NODE_LOST_SEC in ms (see Coordinator's options). Default 3 heartbeat intervals. */
  nodeLostAfterMs?: number;
  /** SCALAR_EVICTION_HOLD_SHARE (see Coordinator's options). */
  evictionHoldShare?: number;
  killGraceSec: number;
  /** Queue discipline, preemption, overruns and prices; defaults as the config's. */
  scheduling?: SchedulingSettings;
  inspect?: Inspect;
  /** Called when leadership is lost after it was won (the process should exit). */
  onLeadershipLost: (err: Error) => void;
  /** How often standbys try the lock (default 1 s). */
  leaderPollMs?: number;
  /**
   * Capacity blocks and the autoscaler (the capacity actor), run by the
   * leader. Absent, or SCALAR_PROVIDER=none: no blocks are bought and
   * POST /capacity/blocks answers provider_unavailable.
   */
  capacity?: { config: Config; simulatedSpeed?: number };
}

export interface RunningCoordinator {
  /** Resolves once this process leads and has rebuilt its state. */
  leading: Promise<Coordinator>;
  stop(): Promise<void>;
}

/** Redelivery delay for a message the coordinator took but did not finish (a crash). */
const ACK_WAIT_MS = 10_000;

/**
 * A new leader re-creates its consumers. The streams are work queues, so
 * every message still in them is one nobody acked; a fresh consumer gets
 * them all at once, instead of after the ack wait of the dead leader's
 * deliveries. Only the leader consumes, so nobody else uses these consumers.
 */
async function recreateConsumer(bus: Bus, stream: string, durable: string): Promise<void> {
  await bus.jsm.consumers.delete(stream, durable).catch((err: Error) => {
    if (!/not found/i.test(err.message)) throw err;
  });
  await bus.jsm.consumers.add(stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ACK_WAIT_MS),
    max_ack_pending: 20_000,
    deliver_policy: DeliverPolicy.All,
  });
}

export function startCoordinator(o: CoordinatorRuntimeOptions): RunningCoordinator {
  const log = o.log;
  const t = o.bus.t;
  const sched = o.scheduling ?? DEFAULT_SCHEDULING;
  let coordinator: Coordinator | undefined;
  const feeds: ConsumerMessages[] = [];
  const subs: Subscription[] = [];
  const timers: NodeJS.Timeout[] = [];
  let stopping = false;
  let stopStatus = () => {};
  // The root of the actor system; job and node actors become its children.
  const root = createActor(coordinatorMachine, { id: 'coordinator', inspect: o.inspect }).start();

  const leadership = electLeader(o.databaseUrl, log, {
    pollMs: o.leaderPollMs,
    onLost: (err) => {
      root.send({ type: 'leadership.lost', reason: err.message });
      void stop().finally(() => o.onLeadershipLost(err));
    },
  });

  const consume = async (stream: string, durable: string, onMsg: (m: JsMsg) => void) => {
    await recreateConsumer(o.bus, stream, durable);
    const consumer = await o.bus.js.consumers.get(stream, durable);
    const messages = await consumer.consume({ max_messages: 2000 });
    feeds.push(messages);
    void (async () => {
      for await (const m of messages) onMsg(m);
    })().catch((err) => log.error({ err, stream }, 'consumer stopped'));
  };

  const bad = (m: JsMsg, err: unknown) => {
    log.warn({ subject: m.subject, err: (err as Error).message }, 'malformed message; dropped');
    m.term();
  };

  const leading = (async () => {
    await leadership.acquired;
    if (stopping) throw new Error('stopped');
    log.info('this coordinator is the leader');
    root.send({ type: 'leadership.acquired' });
    const c = new Coordinator({
      store: new CoordinatorStore(o.orm, sched.prices),
      link: natsNodeLink(o.bus, o.signer),
      clock: systemClock,
      log,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      evictionHoldShare: o.evictionHoldShare,
      nodeLostAfterMs: o.nodeLostAfterMs,
      killGraceSec: o.killGraceSec,
      queue: { policy: sched.policy, blockMarginSec: sched.blockMarginSec, preemptGraceSec: sched.preemptGraceSec },
      overrun: sched.overrun,
      root,
    });
    coordinator = c;
    await c.rehydrate();
    await startCapacity(c);

    await consume(t.streams.JOBS, t.consumers.coordinatorJobs, (m) => {
      try {
        if (m.subject === t.subjects.jobsSubmitted) c.push({ kind: 'submitted', ids: jobsSubmittedSchema.parse(m.json()).job_ids, msg: m });
        else bad(m, new Error('unknown subject'));
      } catch (err) {
        bad(m, err);
      }
    });
    await consume(t.streams.NODE_EVENTS, t.consumers.coordinatorEvents, (m) => {
      try {
        const nodeId = t.nodeIdOfSubject(m.subject);
        if (!nodeId) return bad(m, new Error('no node in subject'));
        const event = nodeEventSchema.parse(m.json());
        // On a secured server only the coordinator may create a node's command consumer; the agent waits for it.
        if (event.type === 'registered') {
          void ensureNodeConsumer(o.bus.jsm, t, nodeId).catch((err) => log.warn({ err, node_id: nodeId }, 'cannot create the node\'s command consumer'));
        }
        c.push({ kind: 'node-event', nodeId, event, msg: m });
      } catch (err) {
        bad(m, err);
      }
    });
    subs.push(
      o.bus.nc.subscribe(t.subjects.allHeartbeats, {
        callback: (err, m) => {
          if (err) return;
          const nodeId = t.nodeIdOfSubject(m.subject);
          const hb = heartbeatSchema.safeParse(safeJson(m.data));
          if (nodeId && hb.success) c.heartbeat(hb.data, nodeId);
        },
      }),
    );
    for (const action of ['drain', 'resume'] as NodeAction[]) {
      subs.push(
        o.bus.nc.subscribe(t.subjects.coordNode(action), {
          callback: (err, m) => {
            if (err) return;
            const req = nodeActionRequestSchema.safeParse(safeJson(m.data));
            if (!req.success) {
              m.respond(encodeJson({ ok: false, error: 'invalid_state', message: 'malformed request' }));
              return;
            }
            c.push({
              kind: 'node-action',
              action,
              nodeId: req.data.node_id,
              reason: req.data.reason,
              reply: (r) => m.respond(encodeJson(r)),
            });
          },
        }),
      );
    }
    // Only the leader subscribes (this runs once leadership is won), and stop() unsubscribes first:
    // a coordinator that lost leadership answers no more cancels.
    subs.push(answerCancels(o.bus, c));
    subs.push(
      o.bus.nc.subscribe(t.subjects.coordCapacity, {
        callback: (err, m) => {
          if (err) return;
          const req = capacityRequestSchema.safeParse(safeJson(m.data));
          if (!req.success) {
            m.respond(encodeJson({ ok: false, code: 'validation_failed', message: 'malformed capacity request' }));
            return;
          }
          void answerCapacity(req.data).then((reply) => m.respond(encodeJson(reply)));
        },
      }),
    );
    // Our own NATS outage is not the nodes' (docs/reliability.md): no misses count while we are cut off.
    const status = o.bus.nc.status();
    void (async () => {
      for await (const s of status) {
        if (s.type === 'disconnect') c.busDisconnected();
        else if (s.type === 'reconnect') c.busReconnected();
      }
    })().catch(() => undefined);
    stopStatus = () => (status as unknown as { stop?: () => void }).stop?.();
    timers.push(setInterval(() => c.tick(), o.heartbeatIntervalMs));
    timers.push(setInterval(() => c.push({ kind: 'sweep' }), 2000));
    timers.push(setInterval(() => c.resendKills(), 10_000));
    c.push({ kind: 'sweep' });
    log.info('coordinator ready');
    return c;
  })();
  leading.catch(() => undefined);

  let capacityActor: CapacityActor | undefined;

  /** The capacity actor, with this coordinator's view of demand and its nodes. */
  async function startCapacity(c: Coordinator): Promise<void> {
    const cfg = o.capacity?.config;
    if (!cfg || cfg.SCALAR_PROVIDER === 'none') return;
    capacityActor = await attachCapacityActor(c, {
      store: new CapacityStore(o.orm),
      log,
      provider: simulatedMarketplaceFromConfig(cfg),
      launcher: new SimulatedLauncher({
        bus: o.bus,
        verifier: new CommandVerifier([o.signer.publicKey]),
        log,
        stateRoot: SimulatedLauncher.stateRootFor(cfg.SCALAR_DATA_DIR),
        heartbeatIntervalMs: o.heartbeatIntervalMs,
        speed: o.capacity?.simulatedSpeed,
      }),
      config: cfg,
    });
  }

  async function answerCapacity(req: import('../../src/wire/messages.ts').CapacityRequest): Promise<import('../../src/wire/messages.ts').CapacityReply> {
    const actor = capacityActor;
    if (!actor) return { ok: false, code: 'provider_unavailable', message: 'no capacity provider is configured (SCALAR_PROVIDER=none)' };
    try {
      const block =
        req.action === 'buy'
          ? await actor.buy({ instanceType: req.instance_type, nodes: req.nodes, hours: req.hours, tier: req.tier }, req.by)
          : await actor.release(req.block_id, req.by);
      return { ok: true, block };
    } catch (err) {
      if (err instanceof CapacityError) return { ok: false, code: err.code, message: err.message };
      if (err instanceof StaleBlockWriteError) {
        return { ok: false, code: 'invalid_state', message: 'the block changed while this request was handled; look at it again and retry' };
      }
      // Anything else (the database, a bug) is logged here; the caller gets a 503 without internals.
      log.error({ err, action: req.action }, 'capacity request failed');
      return { ok: false, code: 'provider_unavailable', message: 'the capacity request failed on the coordinator; retry shortly (the coordinator log has the cause)' };
    }
  }

  async function stop(): Promise<void> {
    if (stopping) return;
    stopping = true;
    for (const t of timers) clearInterval(t);
    stopStatus();
    for (const s of subs) s.unsubscribe();
    for (const f of feeds) f.stop();
    await capacityActor?.stop();
    await coordinator?.stop();
    await leadership.release();
    root.send({ type: 'stop' });
    root.stop();
  }

  return { leading, stop };
}

/**
 * Answers cancel requests (`<prefix>.coord.jobs.cancel`) with `c`: each
 * becomes an input of its next pass, answered once committed. A malformed
 * request is answered `invalid_request` and never reaches the pass.
 */
export function answerCancels(bus: Bus, c: Coordinator): Subscription {
  return bus.nc.subscribe(bus.t.subjects.coordJobCancel, {
    callback: (err, m) => {
      if (err) return;
      const req = jobCancelRequestSchema.safeParse(safeJson(m.data));
      if (!req.success) {
        const reply: JobCancelReply = { ok: false, error: 'invalid_request', message: 'malformed cancel request: expected {"job_id": "<uuid>"}' };
        m.respond(encodeJson(reply));
        return;
      }
      const reply = (r: JobCancelReply) => {
        try {
          m.respond(encodeJson(r));
        } catch {
          // The connection closed (shutdown): the asker gets no answer and reports 503; its retry reads the committed state.
        }
      };
      c.push({ kind: 'cancel', jobId: req.data.job_id, reply });
    },
  });
}

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}
