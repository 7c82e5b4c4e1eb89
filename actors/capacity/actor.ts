/**
 * The capacity actor: where blocks meet the world. The coordinator creates it
 * while it leads. It
 *
 * - runs one block-machine actor per live block (machines/block.machine.ts),
 *   and writes each transition to capacity_blocks with its capacity_events
 *   row, in one transaction, before it runs the transition's effects (drain
 *   the nodes, stop the agents, hand the block back to the provider);
 * - buys: quote → provider.buy → a pending row → at readyAt the launcher
 *   starts the nodes → active;
 * - every SCALAR_AUTOSCALE_INTERVAL_SEC: expires blocks whose ends_at has
 *   passed, releases draining blocks that have become idle, and (with
 *   SCALAR_AUTOSCALE=1) asks the pure policy (src/capacity/autoscaler.ts)
 *   what to buy or release, executes that, and records every decision with
 *   the numbers it was made on;
 * - serves the admin's manual buy and release.
 *
 * Operations on one block are serialised through its own queue, so a timer,
 * the autoscaler and an admin can never interleave two transitions of it.
 */
import type { Logger } from 'pino';
import { createActor, transition, type Actor } from 'xstate';
import {
  DEFAULT_REASONS,
  blockMachine,
  type BlockEffect,
  type BlockEffectParams,
  type BlockEvent,
  type BlockStatus,
} from '../../machines/block.machine.ts';
import {
  autoscalerConfig,
  decide,
  initialAutoscalerState,
  type AutoscalerState,
  type CapacityDecision,
  type DemandView,
} from '../../src/capacity/autoscaler.ts';
import { ProviderError, type CapacityProvider, type CapacityTier, type Quote } from '../../src/capacity/provider.ts';
import type { Config } from '../../src/config/index.ts';
import { systemClock, type Clock, type Timer } from '../../src/domain/clock.ts';
import { CapacityError, asCapacityError } from './errors.ts';
import type { NodeLauncher } from './launcher.ts';
import { blockNodeIds, newBlockId, pendingBlockRow, toBlockApi, toBlockView, type BlockApi, type BlockRow, type CapacityEventInput, type CapacityStorePort } from './ports.ts';

export type { DemandView } from '../../src/capacity/autoscaler.ts';
export type { BlockApi } from './ports.ts';

export interface CapacityActorOptions {
  /** capacity_blocks and capacity_events: CapacityStore (Postgres) in production. */
  store: CapacityStorePort;
  log: Logger;
  provider: CapacityProvider;
  launcher: NodeLauncher;
  config: Config;
  /** Time and timers. Default: the wall clock. */
  clock?: Clock;
  /** Ids for new blocks. Default: random (newBlockId); the simulator counts, so replays repeat. */
  newBlockId?: () => string;
  /** What the coordinator's live state says about demand, read on every autoscaler pass. */
  demand: () => DemandView;
  /** Mark these nodes draining (no new placements; their jobs keep running). */
  drainNodes(nodeIds: string[]): Promise<void>;
  /** Does any node of the block hold a job now? */
  blockBusy(blockId: string): boolean;
  /**
   * Before a block is released or expires: stop placing on its nodes (drain
   * them), then say whether any job still holds them, in one step with
   * placement, so no job lands on a node between the check and the release.
   * Absent: `blockBusy` alone (a job placed in between would be stranded).
   */
  closeNodes?(blockId: string, nodeIds: string[]): Promise<boolean>;
}

export interface BuyRequest {
  instanceType: string;
  nodes: number;
  /** Default SCALAR_BLOCK_HOURS. */
  hours?: number;
  tier: CapacityTier;
}

type Effect = { type: BlockEffect; params: BlockEffectParams };

type ProvidedBlockMachine = ReturnType<typeof blockMachine.provide>;

interface LiveBlock {
  row: BlockRow;
  /** blockMachine with this block's effects provided. */
  machine: ProvidedBlockMachine;
  actor: Actor<ProvidedBlockMachine>;
  /** Filled by the actor's effects while it handles an event; run after the commit. */
  effects: Effect[];
  queue: Promise<unknown>;
  readyTimer: Timer | null;
  provisioning: boolean;
}

/**
 * A repeated hold (same tier and rule) is written again at most this often;
 * each new one at once. A price above the maximum holds on every pass (every
 * 10 s by default): one row per pass would bury the decisions that matter.
 */
const HOLD_REPEAT_MS = 10 * 60_000;

export class CapacityActor {
  private readonly store: CapacityStorePort;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly now: () => number;
  private readonly live = new Map<string, LiveBlock>();
  private policyState: AutoscalerState = initialAutoscalerState();
  private readonly lastHold = new Map<CapacityTier, { rule: string; at: number }>();
  private timer: Timer | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly o: CapacityActorOptions) {
    this.store = o.store;
    this.log = o.log.child({ component: 'capacity' });
    this.clock = o.clock ?? systemClock;
    this.now = () => this.clock.now();
  }

  /** Rebuilds the live blocks from their rows, relaunches their nodes, and starts the timer. */
  async start(): Promise<void> {
    const last = await this.store.lastChanges();
    this.policyState = { ...initialAutoscalerState(), ...last };
    for (const row of await this.store.liveBlocks()) {
      const b = this.track(row);
      if (row.status === 'pending') {
        this.scheduleProvisioning(b);
      } else {
        // Simulated agents lived in the previous process; a real launcher
        // finds its nodes still running and leaves them be (launch is idempotent).
        await this.o.launcher.launch(row, blockNodeIds(row)).catch((err) => this.log.warn({ err, block_id: row.id }, 'could not relaunch the nodes of a block'));
        if (row.status === 'draining') await this.o.drainNodes(blockNodeIds(row)).catch((err) => this.log.warn({ err, block_id: row.id }, 'could not re-drain the nodes of a block'));
      }
    }
    const ms = this.o.config.SCALAR_AUTOSCALE_INTERVAL_SEC * 1000;
    this.timer = this.clock.setInterval(() => void this.tick(), ms);
    this.log.info({ blocks: this.live.size, autoscale: this.o.config.SCALAR_AUTOSCALE, provider: this.o.provider.name }, 'capacity actor started');
  }

  /** Stops the timers and the agents it launched. Rows stay as they are: a new leader picks them up. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.ticking;
    const blocks = [...this.live.values()];
    for (const b of blocks) b.readyTimer?.cancel();
    await Promise.allSettled(blocks.map((b) => b.queue));
    await this.o.launcher.stop(blocks.flatMap((b) => blockNodeIds(b.row)));
    for (const b of blocks) b.actor.stop();
    this.live.clear();
  }

  /**
   * Resolves once no pass and no block operation is in flight (the
   * simulator waits for this before it moves virtual time on).
   */
  async settled(): Promise<void> {
    for (;;) {
      const ticking = this.ticking;
      const queues = [...this.live.values()].map((b) => b.queue);
      await ticking;
      await Promise.all(queues);
      if (this.ticking === ticking && [...this.live.values()].every((b, i) => b.queue === queues[i])) return;
    }
  }

  /** Every block, newest first, released ones too. */
  async blocks(): Promise<BlockApi[]> {
    return (await this.store.allBlocks()).map(toBlockApi);
  }

  /** One block, or CapacityError('block_not_found'). */
  async block(blockId: string): Promise<BlockApi> {
    const row = this.live.get(blockId)?.row ?? (await this.store.block(blockId));
    if (!row) throw CapacityError.blockNotFound(blockId);
    return toBlockApi(row);
  }

  /** When a live block ends (ms), for placement's block-time filter; null: never, or not a live block. */
  blockEndsAt(blockId: string): number | null {
    return this.live.get(blockId)?.row.endsAt?.getTime() ?? null;
  }

  /** An admin's buy. Returns the pending block. */
  async buy(req: BuyRequest, by: string): Promise<BlockApi> {
    const hours = req.hours ?? this.o.config.SCALAR_BLOCK_HOURS;
    let quote: Quote;
    try {
      quote = this.o.provider.quote({ instanceType: req.instanceType, nodes: req.nodes, hours, tier: req.tier }, this.now());
    } catch (err) {
      throw asCapacityError(err);
    }
    const row = await this.purchase(quote, by, { action: 'buy', tier: req.tier, reason: `bought by ${by}`, inputs: { by } });
    return toBlockApi(row);
  }

  /**
   * An admin's release. An idle block is released at once; a busy one drains
   * first and is released when its last job ends. Releasing a draining block
   * again returns it unchanged.
   */
  async release(blockId: string, by: string): Promise<BlockApi> {
    return toBlockApi(await this.requestRelease(blockId, by, { reason: `release requested by ${by}`, inputs: { by } }));
  }

  /** One pass: housekeeping, then (with SCALAR_AUTOSCALE=1) the policy. Never runs twice at once. */
  async tick(): Promise<void> {
    if (this.ticking || this.stopped) return this.ticking ?? undefined;
    this.ticking = (async () => {
      try {
        await this.reconcile();
        if (this.o.config.SCALAR_AUTOSCALE) await this.autoscale();
      } catch (err) {
        this.log.error({ err }, 'capacity pass failed');
      } finally {
        this.ticking = null;
      }
    })();
    return this.ticking;
  }

  /**
   * Housekeeping that runs whether or not the autoscaler is on: provision
   * pending blocks whose time has come (a safety net for the timer), expire
   * blocks past ends_at, release draining blocks that have become idle. The
   * coordinator may call it when a job on a draining node ends, to release
   * the block without waiting for the next pass.
   */
  async reconcile(): Promise<void> {
    const now = this.now();
    const work = [...this.live.values()].map((b) => {
      const { status, endsAt, startsAt } = b.row;
      if (status === 'pending' && startsAt.getTime() <= now && !b.provisioning) return this.provision(b);
      if (endsAt !== null && endsAt.getTime() <= now) {
        return this.enqueue(b, async () => this.step(b, { type: 'expire', busy: await this.closeAndCheck(b) }, { action: 'expire' }));
      }
      if (status === 'draining' && !this.busy(b)) return this.enqueue(b, () => this.step(b, { type: 'idle' }, { action: 'idle' }));
      return undefined;
    });
    for (const r of await Promise.allSettled(work)) if (r.status === 'rejected') this.log.warn({ err: r.reason }, 'capacity housekeeping failed for a block');
  }

  /** Runs the policy once and executes its decisions. Returns them (for tests and the inspector). */
  async autoscale(): Promise<CapacityDecision[]> {
    const now = this.now();
    const blocks = [...this.live.values()].map((b) => toBlockView(b.row, this.busy(b)));
    const market = { instanceTypes: this.o.provider.instanceTypes(), quote: (r: Parameters<CapacityProvider['quote']>[0]) => this.o.provider.quote(r, now) };
    const { decisions, state } = decide({ demand: this.o.demand(), blocks, market, config: autoscalerConfig(this.o.config) }, this.policyState, now);
    this.policyState = state;
    for (const d of decisions) await this.execute(d, now);
    return decisions;
  }

  // --- decisions -------------------------------------------------------------------

  private async execute(d: CapacityDecision, now: number): Promise<void> {
    const record = { action: d.action, tier: d.tier, reason: d.reason, inputs: { rule: d.rule, ...d.inputs } };
    if (d.action === 'hold') {
      const last = this.lastHold.get(d.tier);
      const repeat = last !== undefined && last.rule === d.rule && now - last.at < HOLD_REPEAT_MS;
      this.log[repeat ? 'debug' : 'info']({ tier: d.tier, action: 'hold', rule: d.rule, inputs: d.inputs }, d.reason);
      if (repeat) return;
      this.lastHold.set(d.tier, { rule: d.rule, at: now });
      await this.store.appendEvents([{ ...record, blockId: null }], new Date(now)).catch((err) => this.log.warn({ err }, 'could not record a hold'));
      return;
    }
    this.lastHold.delete(d.tier);
    this.log.info({ tier: d.tier, action: d.action, rule: d.rule, block_id: d.blockId, inputs: d.inputs }, d.reason);
    try {
      if (d.action === 'buy') await this.purchase(d.quote!, 'autoscaler', record);
      else await this.requestRelease(d.blockId!, 'autoscaler', record);
    } catch (err) {
      this.log.warn({ err, tier: d.tier, action: d.action, block_id: d.blockId }, 'capacity decision failed');
      const failed: CapacityEventInput = { action: `${d.action}_failed`, tier: d.tier, blockId: d.blockId ?? null, reason: `${d.reason}; failed: ${(err as Error).message}`, inputs: record.inputs };
      await this.store.appendEvents([failed], new Date(this.now())).catch(() => undefined);
    }
  }

  /** Buys what the quote offers and records the pending block. */
  private async purchase(quote: Quote, by: string, event: Omit<CapacityEventInput, 'blockId'>): Promise<BlockRow> {
    const now = this.now();
    const type = this.o.provider.instanceTypes().find((t) => t.name === quote.instanceType);
    if (!type) throw new CapacityError('unknown_instance_type', `unknown instance type ${JSON.stringify(quote.instanceType)}`);
    let bought;
    try {
      bought = await this.o.provider.buy(quote, now);
    } catch (err) {
      throw asCapacityError(err);
    }
    const row = pendingBlockRow({ id: (this.o.newBlockId ?? newBlockId)(), provider: this.o.provider.name, type, quote, purchase: bought, by, now: new Date(now), statusReason: DEFAULT_REASONS.pending });
    const id = row.id;
    const inputs = { ...event.inputs, by, external_id: bought.externalId, ready_at: new Date(bought.readyAt).toISOString(), instance_type: type.name, nodes: quote.nodes, hours: quote.hours, price_per_hour: quote.pricePerHour, price_per_gpu_hour: quote.pricePerGpuHour };
    try {
      await this.store.insertBlock(row, { ...event, blockId: id, inputs });
    } catch (err) {
      // No row, no block: hand it back rather than pay for capacity nobody knows about.
      await this.o.provider.release(bought.externalId, now).catch((e) => this.log.error({ err: e, external_id: bought.externalId }, 'could not hand back an unrecorded purchase'));
      throw err;
    }
    this.policyState.lastBuyAt[quote.tier] = now;
    this.policyState.lastChangeAt[quote.tier] = now;
    this.log.info({ block_id: id, by, tier: quote.tier, instance_type: type.name, nodes: quote.nodes, price_per_hour: quote.pricePerHour, ready_at: row.startsAt.toISOString() }, 'bought a capacity block');
    this.scheduleProvisioning(this.track(row));
    return row;
  }

  private async requestRelease(blockId: string, by: string, event: Pick<CapacityEventInput, 'reason' | 'inputs'> & { action?: string }): Promise<BlockRow> {
    const b = this.live.get(blockId);
    if (!b) {
      const row = await this.store.block(blockId);
      if (!row) throw CapacityError.blockNotFound(blockId);
      if (row.status === 'released') throw CapacityError.blockReleased(blockId, row.releasedAt);
      throw new CapacityError('invalid_state', `capacity block ${blockId} is ${row.status} but not managed by this coordinator; retry shortly`, { block_id: blockId });
    }
    return this.enqueue(b, async () => {
      if (b.row.status === 'released') throw CapacityError.blockReleased(blockId, b.row.releasedAt);
      const now = this.now();
      const busy = await this.closeAndCheck(b);
      const changed = await this.step(b, { type: 'release', busy, reason: event.reason }, { action: event.action ?? 'release', inputs: event.inputs });
      if (changed) {
        this.policyState.lastChangeAt[b.row.tier] = now;
      }
      return b.row;
    });
  }

  // --- block lifecycle -----------------------------------------------------------

  private track(row: BlockRow): LiveBlock {
    const effects: Effect[] = [];
    // The effects only collect: they run after the transition is committed (step()).
    const collect = (type: BlockEffect) => (_: unknown, params: BlockEffectParams) => void effects.push({ type, params });
    const machine = blockMachine.provide({ actions: { drainNodes: collect('drainNodes'), stopNodes: collect('stopNodes'), releaseFromProvider: collect('releaseFromProvider') } });
    // The row is the truth: the actor starts from the snapshot it implies (`input` is required by the types, and ignored).
    const input = { blockId: row.id, tier: row.tier, externalId: row.externalId, nodeIds: blockNodeIds(row) };
    const snapshot = machine.resolveState({ value: row.status, context: { ...input, statusReason: row.statusReason } });
    const actor = createActor(machine, { snapshot, input, id: row.id }).start();
    const b: LiveBlock = { row, machine, actor, effects, queue: Promise.resolve(), readyTimer: null, provisioning: false };
    this.live.set(row.id, b);
    return b;
  }

  private scheduleProvisioning(b: LiveBlock): void {
    const delay = Math.max(0, b.row.startsAt.getTime() - this.now());
    b.readyTimer = this.clock.setTimeout(() => void this.provision(b), delay);
  }

  /** At readyAt: start the nodes, then `provisioned`; if they cannot start, `provision_failed`. */
  private provision(b: LiveBlock): Promise<unknown> {
    if (b.provisioning || this.stopped) return Promise.resolve();
    b.provisioning = true;
    return this.enqueue(b, async () => {
      if (b.row.status !== 'pending' || this.stopped) return;
      try {
        await this.o.launcher.launch(b.row, blockNodeIds(b.row));
      } catch (err) {
        await this.step(b, { type: 'provision_failed', reason: (err as Error).message }, { action: 'provision_failed' });
        return;
      }
      await this.step(b, { type: 'provisioned' }, { action: 'provisioned' });
    }).finally(() => {
      b.provisioning = false;
    });
  }

  /**
   * One transition: computed with the pure `transition()`, written (row and
   * event, one transaction), then fed to the block's actor, whose effects run
   * only now, in order. Returns false when the machine refuses the event.
   */
  private async step(b: LiveBlock, event: BlockEvent, e: { action: string; inputs?: Record<string, unknown> }): Promise<boolean> {
    const before = b.actor.getSnapshot();
    const [next] = transition(b.machine, before, event);
    if (next === before) return false;
    const from = before.value as BlockStatus;
    const to = next.value as BlockStatus;
    const at = new Date(this.now());
    const reason = next.context.statusReason ?? (to === 'active' ? 'the nodes are up' : to);
    b.row = await this.store.writeStatus(b.row.id, { from, to, statusReason: next.context.statusReason, at }, {
      action: e.action,
      tier: b.row.tier,
      blockId: b.row.id,
      reason,
      inputs: { ...e.inputs, event: event.type, from, to, ...('busy' in event ? { busy: event.busy } : {}) },
    });
    b.effects.length = 0;
    b.actor.send(event);
    const effects = b.effects.splice(0);
    this.log.info({ block_id: b.row.id, from, to, event: event.type, reason }, 'capacity block transition');
    if (to === 'released') {
      b.readyTimer?.cancel();
      this.live.delete(b.row.id);
    }
    for (const fx of effects) await this.runEffect(b, fx);
    return true;
  }

  private async runEffect(b: LiveBlock, fx: Effect): Promise<void> {
    try {
      if (fx.type === 'drainNodes') await this.o.drainNodes(fx.params.nodeIds);
      else if (fx.type === 'stopNodes') await this.o.launcher.stop(fx.params.nodeIds);
      else if (fx.params.externalId !== null) await this.o.provider.release(fx.params.externalId, this.now());
    } catch (err) {
      // Effects are retried by nobody: say so loudly, and leave a row, because
      // a failed hand-back means paying for capacity nobody uses.
      this.log.error({ err, block_id: b.row.id, effect: fx.type }, 'capacity effect failed');
      const msg = err instanceof ProviderError ? `${err.code}: ${err.message}` : (err as Error).message;
      const inputs = { effect: fx.type, node_ids: fx.params.nodeIds, external_id: fx.params.externalId };
      const row = { action: 'effect_failed', tier: b.row.tier, blockId: b.row.id, reason: `${fx.type} failed: ${msg}`, inputs };
      await this.store.appendEvents([row], new Date(this.now())).catch(() => undefined);
    }
  }

  /** Busy, after closing the nodes to new jobs (see CapacityActorOptions.closeNodes). */
  private async closeAndCheck(b: LiveBlock): Promise<boolean> {
    if (b.row.status === 'pending' || b.row.status === 'released') return false;
    if (!this.o.closeNodes) return this.busy(b);
    return this.o.closeNodes(b.row.id, blockNodeIds(b.row));
  }

  private busy(b: LiveBlock): boolean {
    // A pending block has no nodes yet, so nothing can run there.
    return b.row.status !== 'pending' && this.o.blockBusy(b.row.id);
  }

  private enqueue<T>(b: LiveBlock, fn: () => Promise<T>): Promise<T> {
    const run = b.queue.then(fn, fn);
    b.queue = run.catch(() => undefined);
    return run;
  }
}
