/**
 * Helpers for integration tests that run a real coordinator against the
 * test app's Postgres and NATS: polling, and a clean cluster between tests.
 */
import pino from 'pino';
import { createActor } from 'xstate';
import { answerCancels, startCoordinator, type CoordinatorRuntimeOptions, type RunningCoordinator } from '../../actors/coordinator/index.ts';
import { Coordinator } from '../../actors/coordinator/coordinator.ts';
import { natsNodeLink } from '../../actors/coordinator/nats-link.ts';
import { DEFAULT_SCHEDULING } from '../../actors/coordinator/settings.ts';
import { CoordinatorStore } from '../../actors/coordinator/store.ts';
import { coordinatorMachine } from '../../machines/coordinator.machine.ts';
import { systemClock } from '../../src/domain/clock.ts';
import type { TestApp } from './app.ts';
import { testSigner } from './signing.ts';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/**
 * A coordinator on the test app's Postgres and NATS, as `scalar coordinator`
 * runs it but quicker for tests: heartbeats every `heartbeatIntervalMs`, a
 * 1 s kill grace, leadership polled every 100 ms and its loss ignored,
 * commands signed with the test key (helpers/signing.ts).
 * `extra` adds or overrides options (scheduling, capacity).
 */
export function startTestCoordinator(
  t: TestApp,
  heartbeatIntervalMs: number,
  extra: Partial<CoordinatorRuntimeOptions> = {},
): RunningCoordinator {
  return startCoordinator({
    orm: t.db.orm,
    databaseUrl: t.testDb.url,
    bus: t.bus,
    signer: testSigner,
    log,
    heartbeatIntervalMs,
    killGraceSec: 1,
    leaderPollMs: 100,
    onLeadershipLost: () => undefined,
    ...extra,
  });
}

/**
 * A coordinator that acts only on cancel requests: the real Coordinator and
 * its passes on the test app's Postgres and NATS, answering
 * `<prefix>.coord.jobs.cancel`, but without leadership, timers, JetStream
 * feeds or a rebuild. It holds nothing until a cancel names a job, so nothing
 * admits, places or sweeps jobs behind a test's back: tests that drive a
 * job's states themselves (applyJobEvent, as the coordinator would) or that
 * need jobs to stay pending can still cancel through the API, which asks a
 * coordinator. Stop it before the test app closes.
 */
export interface CancelCoordinator {
  coordinator: Coordinator;
  stop(): Promise<void>;
}

export async function startCancelCoordinator(t: TestApp): Promise<CancelCoordinator> {
  const root = createActor(coordinatorMachine, { id: 'coordinator' }).start();
  const s = DEFAULT_SCHEDULING;
  const coordinator = new Coordinator({
    store: new CoordinatorStore(t.db.orm, s.prices),
    link: natsNodeLink(t.bus, testSigner),
    clock: systemClock,
    log,
    heartbeatIntervalMs: 1000,
    killGraceSec: 1,
    queue: { policy: s.policy, blockMarginSec: s.blockMarginSec, preemptGraceSec: s.preemptGraceSec },
    overrun: s.overrun,
    root,
  });
  const sub = answerCancels(t.bus, coordinator);
  await t.bus.nc.flush(); // the server has the subscription before the first cancel
  return {
    coordinator,
    async stop() {
      sub.unsubscribe();
      await coordinator.stop();
      root.stop();
    },
  };
}

/** Polls `fn` every 25 ms until it returns something truthy (errors count as "not yet"); throws after `timeoutMs`. */
export async function until<T>(fn: () => Promise<T | false | undefined | null>, timeoutMs = 10_000, what?: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms: ${what ?? fn.toString().slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * An empty cluster for the next test: no jobs, nodes, allocations (and the
 * `extraTables`), no undelivered job or node messages, and no node command
 * consumers left from nodes of earlier tests.
 */
export async function resetCluster(t: TestApp, extraTables: string[] = []): Promise<void> {
  await t.db.orm.em.fork().execute(`truncate ${['jobs', 'nodes', 'allocations', ...extraTables].join(', ')} cascade`);
  for (const s of [t.bus.t.streams.JOBS, t.bus.t.streams.NODE_CMDS, t.bus.t.streams.NODE_EVENTS]) await t.bus.jsm.streams.purge(s);
  for (const name of await t.bus.jsm.consumers.list(t.bus.t.streams.NODE_CMDS).next().then((l) => l.map((c) => c.name))) {
    await t.bus.jsm.consumers.delete(t.bus.t.streams.NODE_CMDS, name);
  }
}

/**
 * After each test: stops the test's agents and coordinators (emptying both
 * lists), then resets the cluster, so the next test starts from nothing.
 */
export async function stopAllAndReset(t: TestApp, agents: Array<{ stop(): unknown }>, coordinators: RunningCoordinator[]): Promise<void> {
  for (const a of agents.splice(0)) a.stop();
  for (const c of coordinators.splice(0)) await c.stop();
  await resetCluster(t);
}
