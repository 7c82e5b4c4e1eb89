/**
 * The capacity actor against the real PostgreSQL and NATS: buys from the
 * simulated marketplace, starts simulated agents for the block's nodes (their
 * `registered` events are read from the NODE_EVENTS stream, as the
 * coordinator reads them), releases, drains and records every decision. The
 * test plays the coordinator's part: it says which blocks are busy and
 * records the drain requests.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CapacityActor, type DemandView } from '../../actors/capacity/actor.ts';
import { CapacityError } from '../../actors/capacity/errors.ts';
import { SimulatedLauncher } from '../../actors/capacity/launcher.ts';
import { CapacityStore } from '../../actors/capacity/store.ts';
import { nodeEventSchema, type RegisteredEvent } from '../../src/wire/messages.ts';
import type { Bus } from '../../src/wire/connection.ts';
import { SimulatedMarketplace, simulatedMarketplaceFromConfig } from '../../src/capacity/marketplace.ts';
import { parseConfig, type Config } from '../../src/config/index.ts';
import { systemClock } from '../../src/domain/clock.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { connectTestBus, dropTestBus, testNatsPrefix } from '../helpers/app.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { testVerifier } from '../helpers/signing.ts';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let testDb: TestDatabase;
let db: Database;
let bus: Bus;
let cfg: Config;
let stateRoot: string;
let registrations: RegisteredEvent[] = [];
let messages: ConsumerMessages | null = null;
const actors: CapacityActor[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
  cfg = parseConfig({
    DATABASE_URL: testDb.url,
    LOG_LEVEL: 'silent',
    SCALAR_NATS_PREFIX: testNatsPrefix(),
    SCALAR_LOG_MAX_MB: '64',
    SCALAR_SIM_PROVISION_DELAY_SEC: '0.2',
    SCALAR_AUTOSCALE_INTERVAL_SEC: '0.1',
    SCALAR_HEARTBEAT_INTERVAL_MS: '200',
  });
  db = await openDatabase(cfg, log);
  bus = await connectTestBus(cfg, log);
  stateRoot = await mkdtemp(join(tmpdir(), 'scalar-capacity-test-'));
  // Reads every node's events, as the coordinator's consumer would.
  await bus.jsm.consumers.add(bus.t.streams.NODE_EVENTS, {
    durable_name: 'test-capacity-events',
    filter_subject: bus.t.subjects.allNodeEvents,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
  });
  const consumer = await bus.js.consumers.get(bus.t.streams.NODE_EVENTS, 'test-capacity-events');
  messages = await consumer.consume({ max_messages: 100, expires: 2000 });
  void (async () => {
    for await (const m of messages!) {
      const e = nodeEventSchema.parse(m.json());
      if (e.type === 'registered') registrations.push(e);
      m.ack();
    }
  })();
});

afterAll(async () => {
  for (const a of actors.splice(0)) await a.stop();
  await messages?.close();
  if (bus) await dropTestBus(bus);
  await db?.close();
  await testDb?.drop();
  if (stateRoot) await rm(stateRoot, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const idleDemand = (): DemandView => ({
  fast: { gpusUsed: 0, gpusQueued: 0, warmGpusOutsideBlocks: 0 },
  flex: { waitingJobs: 0, waitingGpus: 0, oldestWaitSec: 0, canBackfill: false },
});

interface Harness {
  actor: CapacityActor;
  launcher: SimulatedLauncher;
  market: SimulatedMarketplace;
  busy: Set<string>;
  drained: string[][];
  demand: { view: DemandView };
  store: CapacityStore;
}

async function startActor(over: Partial<Config> = {}, o: { market?: SimulatedMarketplace; now?: () => number } = {}): Promise<Harness> {
  const market = o.market ?? simulatedMarketplaceFromConfig(cfg);
  const launcher = new SimulatedLauncher({ bus, verifier: testVerifier, log, stateRoot, heartbeatIntervalMs: 200 });
  const busy = new Set<string>();
  const drained: string[][] = [];
  const demand = { view: idleDemand() };
  const actor = new CapacityActor({
    store: new CapacityStore(db.orm),
    log,
    provider: market,
    launcher,
    config: { ...cfg, ...over },
    clock: o.now ? { ...systemClock, now: o.now } : undefined,
    demand: () => demand.view,
    drainNodes: async (ids) => void drained.push(ids),
    blockBusy: (id) => busy.has(id),
  });
  actors.push(actor);
  await actor.start();
  return { actor, launcher, market, busy, drained, demand, store: new CapacityStore(db.orm) };
}

async function stopActor(h: Harness): Promise<void> {
  await h.actor.stop();
  actors.splice(actors.indexOf(h.actor), 1);
}

const statusOf = async (h: Harness, id: string) => (await h.store.block(id))?.status;
/** The block's agents that run now. (A new actor also relaunches the live blocks of earlier tests.) */
const runningOf = (h: Harness, blockId: string) => h.launcher.running().filter((n) => n.startsWith(`${blockId}-`)).sort();
const purchased = (h: Harness, externalId: string | null) => h.market.purchases().some((p) => p.externalId === externalId);

describe('capacity actor: manual buy', () => {
  it('buy → pending row → agents register over NATS with the block id → active', async () => {
    const h = await startActor();
    const block = await h.actor.buy({ instanceType: '8xA100-40', nodes: 2, hours: 1, tier: 'flex' }, 'admin:u1');
    expect(block).toMatchObject({
      status: 'pending',
      provider: 'simulated',
      instance_type: '8xA100-40',
      tier: 'flex',
      pool: 'flex',
      nodes: 2,
      gpus_per_node: 8,
      vram_per_gpu_gb: 40,
      cpu_per_node: 96,
      ram_per_node_gb: 768,
      gpus: 16,
      created_by: 'admin:u1',
      node_ids: [`${block.id}-n1`, `${block.id}-n2`],
    });
    expect(block.id).toMatch(/^blk_[0-9a-f]{16}$/);
    // starts_at is when the nodes are ready; ends_at one hour later.
    expect(Date.parse(block.ends_at!) - Date.parse(block.starts_at)).toBe(3600_000);
    expect(block.cost_per_hour).toBeCloseTo(16 * h.market.pricePerGpuHour('8xA100-40', 'flex', Date.parse(block.created_at)), 3);
    expect(await statusOf(h, block.id)).toBe('pending');

    const mine = () => registrations.filter((r) => r.block_id === block.id);
    await waitUntil(() => mine().length >= 2, 'both agents to register');
    const regs = mine();
    expect(regs.map((r) => r.node_id).sort()).toEqual(block.node_ids);
    for (const r of regs) {
      expect(r).toMatchObject({ pool: 'flex', runtime: 'simulated', cpu_cores: 96, ram_gb: 768 });
      expect(r.gpus.map((g) => g.vram_gb)).toEqual(Array(8).fill(40));
    }
    await waitUntil(async () => (await statusOf(h, block.id)) === 'active', 'the block to become active');
    expect((await h.actor.block(block.id)).status_reason).toBeNull();
    expect(runningOf(h, block.id)).toEqual(block.node_ids);

    const events = (await h.store.events({ blockId: block.id })).reverse();
    expect(events.map((e) => e.action)).toEqual(['buy', 'provisioned']);
    expect(events[0]!.inputs).toMatchObject({ by: 'admin:u1', instance_type: '8xA100-40', nodes: 2, hours: 1, price_per_hour: block.cost_per_hour });
    expect(events[1]!.inputs).toMatchObject({ event: 'provisioned', from: 'pending', to: 'active' });
    await h.actor.release(block.id, 'test');
    await stopActor(h);
  });

  it('refuses an unknown instance type or a bad size with a stable code, and buys nothing', async () => {
    const h = await startActor();
    const before = (await h.actor.blocks()).length;
    await expect(h.actor.buy({ instanceType: '1xTPU', nodes: 1, tier: 'fast' }, 'admin:u1')).rejects.toMatchObject({ code: 'unknown_instance_type' });
    const err = await h.actor.buy({ instanceType: '8xH100-80', nodes: 65, tier: 'fast' }, 'admin:u1').catch((e) => e);
    expect(err).toBeInstanceOf(CapacityError);
    expect(err).toMatchObject({ code: 'validation_failed', details: { field: 'nodes' } });
    // A domain error: the HTTP status is the API's to choose (capacity-api.test.ts checks the 400).
    expect(err).not.toHaveProperty('status');
    expect((await h.actor.blocks()).length).toBe(before);
    expect(h.market.purchases()).toEqual([]);
    await stopActor(h);
  });
});

describe('capacity actor: release', () => {
  async function activeBlock(h: Harness, tier: 'fast' | 'flex' = 'fast') {
    const block = await h.actor.buy({ instanceType: '4xL40S-48', nodes: 1, hours: 2, tier }, 'admin:u2');
    await waitUntil(async () => (await statusOf(h, block.id)) === 'active', 'the block to become active');
    return block;
  }

  it('an idle block is released at once: agents stopped, purchase handed back, rows kept', async () => {
    const h = await startActor();
    const block = await activeBlock(h);
    expect(purchased(h, block.external_id)).toBe(true);
    const released = await h.actor.release(block.id, 'admin:u2');
    expect(released).toMatchObject({ id: block.id, status: 'released', status_reason: 'release requested by admin:u2' });
    expect(released.released_at).not.toBeNull();
    // The effects ran before release() returned.
    expect(runningOf(h, block.id)).toEqual([]);
    expect(purchased(h, block.external_id)).toBe(false);
    expect(h.drained).toEqual([]);
    const events = (await h.store.events({ blockId: block.id })).reverse();
    expect(events.map((e) => [e.action, e.inputs.from ?? null, e.inputs.to ?? null])).toEqual([
      ['buy', null, null],
      ['provisioned', 'pending', 'active'],
      ['release', 'active', 'released'],
    ]);
    expect(events[2]!.inputs).toMatchObject({ by: 'admin:u2', busy: false });

    await expect(h.actor.release(block.id, 'admin:u2')).rejects.toMatchObject({ code: 'block_released' });
    await expect(h.actor.release('blk_0000000000000000', 'admin:u2')).rejects.toMatchObject({ code: 'block_not_found' });
    await stopActor(h);
  });

  it('a busy block drains (drainNodes called, agents kept) and is released once it is idle', async () => {
    const h = await startActor();
    const block = await activeBlock(h);
    h.busy.add(block.id);
    const draining = await h.actor.release(block.id, 'admin:u2');
    expect(draining.status).toBe('draining');
    expect(draining.status_reason).toBe('release requested by admin:u2; draining: waiting for the running jobs to finish before release');
    expect(h.drained).toEqual([block.node_ids]);
    expect(runningOf(h, block.id)).toEqual(block.node_ids);
    // A second release while jobs still run changes nothing.
    expect((await h.actor.release(block.id, 'admin:u3')).status_reason).toBe(draining.status_reason);
    // Passes keep running (every 0.1 s): still busy, still draining.
    await sleep(400);
    expect(await statusOf(h, block.id)).toBe('draining');
    expect(purchased(h, block.external_id)).toBe(true);

    h.busy.delete(block.id);
    await waitUntil(async () => (await statusOf(h, block.id)) === 'released', 'the drained block to be released');
    // The row is written first, then the agents are stopped and the purchase handed back.
    await waitUntil(() => runningOf(h, block.id).length === 0 && !purchased(h, block.external_id), 'the effects of the release');
    const events = (await h.store.events({ blockId: block.id })).reverse();
    expect(events.map((e) => [e.action, e.inputs.to ?? null])).toEqual([
      ['buy', null],
      ['provisioned', 'active'],
      ['release', 'draining'],
      ['idle', 'released'],
    ]);
    expect((await h.store.block(block.id))!.statusReason).toBe('released: the last job on the draining block finished');
    await stopActor(h);
  });

  it('a block past its end drains if busy, then is released', async () => {
    // The actor's clock is injected: an hour passes in one assignment.
    let skew = 0;
    const now = () => Date.now() + skew;
    const h = await startActor({}, { now, market: new SimulatedMarketplace({ seed: 1, provisionDelaySec: 0, clock: now }) });
    const block = await h.actor.buy({ instanceType: '4xL40S-48', nodes: 1, hours: 0.5, tier: 'flex' }, 'admin:u4');
    await waitUntil(async () => (await statusOf(h, block.id)) === 'active', 'active');
    h.busy.add(block.id);
    skew = 3600_000;
    await waitUntil(async () => (await statusOf(h, block.id)) === 'draining', 'expiry to drain the busy block');
    expect((await h.store.block(block.id))!.statusReason).toBe('the block reached its end time; draining: waiting for the running jobs to finish before release');
    expect(h.drained).toEqual([block.node_ids]);
    h.busy.delete(block.id);
    await waitUntil(async () => (await statusOf(h, block.id)) === 'released', 'the expired block to be released');
    const events = (await h.store.events({ blockId: block.id })).reverse();
    expect(events.map((e) => [e.action, e.inputs.to ?? null])).toEqual([
      ['buy', null],
      ['provisioned', 'active'],
      ['expire', 'draining'],
      // The next pass finds it idle and still past its end: expire again, now to released.
      ['expire', 'released'],
    ]);
    await stopActor(h);
  });
});

describe('capacity actor: restart and the autoscaler', () => {
  it('a new actor rebuilds from the rows: active blocks get their agents back, which register again', async () => {
    const h = await startActor();
    const block = await h.actor.buy({ instanceType: '4xL40S-48', nodes: 1, hours: 1, tier: 'fast' }, 'admin:u5');
    await waitUntil(async () => (await statusOf(h, block.id)) === 'active', 'active');
    const boots = () => new Set(registrations.filter((r) => r.block_id === block.id).map((r) => r.boot_id));
    await waitUntil(() => boots().size === 1, 'the first registration');
    await stopActor(h);
    // Stopping keeps the row as it was.
    expect(await statusOf(h, block.id)).toBe('active');

    const h2 = await startActor();
    await waitUntil(() => boots().size === 2, 'the relaunched agent to register with a new boot id');
    expect(runningOf(h2, block.id)).toEqual(block.node_ids);
    expect((await h2.actor.release(block.id, 'admin:u5')).status).toBe('released');
    await stopActor(h2);
  });

  it('with SCALAR_AUTOSCALE=1 it buys the FAST minimum by itself and records the decision with its inputs', async () => {
    // Cooldown 0: the admin buys of earlier tests are in capacity_events, and a
    // new actor keeps their cooldowns (that is the point of reading them back).
    const h = await startActor({ SCALAR_AUTOSCALE: true, SCALAR_FAST_MIN_GPUS: 4, SCALAR_AUTOSCALE_BUY_COOLDOWN_SEC: 0 });
    const buy = await waitUntil(async () => (await h.store.events({ limit: 50 })).find((e) => e.action === 'buy' && e.inputs.by === 'autoscaler'), 'an autoscaler buy');
    // No demand: target = max(min 4, ceil(1.25 × 0)) = 4 GPUs. FAST buys the
    // largest GPUs (80 GB), whole nodes: 1 node of 8.
    expect(buy).toMatchObject({ tier: 'fast', inputs: { rule: 'fast_deficit', target_gpus: 4, demand_gpus: 0, min_gpus: 4, supply_gpus: 0, nodes: 1 } });
    expect(buy.reason).toMatch(/^FAST target 4 GPUs/);
    const block = await h.actor.block(buy.blockId!);
    expect(block).toMatchObject({ created_by: 'autoscaler', tier: 'fast', pool: 'fast', vram_per_gpu_gb: 80 });
    await waitUntil(async () => (await statusOf(h, block.id)) === 'active', 'the autoscaled block to become active');
    // Passes go on (no cooldown): the pending, then active block is supply, so it never buys twice.
    await sleep(300);
    expect((await h.store.events({ limit: 100 })).filter((e) => e.action === 'buy' && e.inputs.by === 'autoscaler')).toHaveLength(1);
    await stopActor(h);
    // Leave no live block behind for the next test.
    const h2 = await startActor();
    expect((await h2.actor.release(block.id, 'test')).status).toBe('released');
    await stopActor(h2);
  });

  it('writes a repeated hold once, and a new one at once', async () => {
    // FAST quiet (min 0); FLEX's maximum price far below any quote.
    const h = await startActor({ SCALAR_FAST_MIN_GPUS: 0, SCALAR_FLEX_MAX_PRICE: 0.01, SCALAR_AUTOSCALE_BUY_COOLDOWN_SEC: 0 });
    const holds = async () => (await h.store.events({ limit: 100 })).filter((e) => e.action === 'hold' && e.tier === 'flex');
    h.demand.view = { ...idleDemand(), flex: { waitingJobs: 2, waitingGpus: 8, oldestWaitSec: 30, canBackfill: true } };
    for (let i = 0; i < 3; i++) await h.actor.autoscale();
    expect((await holds()).map((e) => e.inputs.rule)).toEqual(['flex_can_backfill']);
    expect((await holds())[0]).toMatchObject({ blockId: null, inputs: { waiting_jobs: 2, can_backfill: true } });
    h.demand.view = { ...idleDemand(), flex: { waitingJobs: 2, waitingGpus: 8, oldestWaitSec: 30, canBackfill: false } };
    for (let i = 0; i < 2; i++) await h.actor.autoscale();
    expect((await holds()).map((e) => e.inputs.rule)).toEqual(['flex_price_above_max', 'flex_can_backfill']);
    expect((await holds())[0]!.inputs).toMatchObject({ max_price: 0.01, need_gpus: 8 });
    expect(h.market.purchases()).toEqual([]);
    await stopActor(h);
  });
});
