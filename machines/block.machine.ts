/**
 * The capacity block lifecycle as a pure xstate machine.
 *
 * A block is a lump of capacity bought from a provider (nodes × GPUs for a
 * time, at a price). This file decides *what* happens to one block and never
 * does anything: no I/O imports. The capacity actor (actors/capacity/actor.ts)
 * runs one actor of this machine per live block, with the effects supplied
 * through `.provide()`; it writes the block row before it runs them. See
 * machines/README.md ("Capacity block lifecycle").
 *
 * The one invariant: a block with running jobs is never released with them on
 * it. Every way out of `active` that would hand the nodes back checks the
 * `busy` flag the runtime puts on the event, and goes to `draining` instead;
 * `draining` leaves only when the block is idle.
 */
import { assign, not, setup } from 'xstate';
import type { SnapshotFrom } from 'xstate';

// Enums are `as const` objects with a derived union (STYLE.md). The values are
// what the `capacity_blocks.status` column holds and what the API shows. Keys
// are listed in lifecycle order, which BLOCK_STATUSES relies on.
export const BlockStatus = {
  pending: 'pending',
  active: 'active',
  draining: 'draining',
  released: 'released',
} as const;
export type BlockStatus = (typeof BlockStatus)[keyof typeof BlockStatus];

/** Every status, in lifecycle order (pending first). */
export const BLOCK_STATUSES: readonly BlockStatus[] = Object.freeze(Object.values(BlockStatus));

/** A status the block can still leave: it holds (or will hold) nodes and is paid for. */
export function isLiveBlock(status: BlockStatus): boolean {
  return status !== BlockStatus.released;
}

/** The pool a block's nodes join. Spelled out here so this file imports nothing but xstate. */
export type BlockTier = 'fast' | 'flex';

/** The part of a block row the lifecycle reads and writes. Field names mirror the columns in camelCase. */
export interface BlockContext {
  blockId: string;
  tier: BlockTier;
  /** The provider's id of the purchase; what `releaseFromProvider` hands back. Null if the buy never completed. */
  externalId: string | null;
  /** The block's nodes (`<blockId>-n<i>`), known from the purchase on. */
  nodeIds: string[];
  /** Plain-words answer to "why is this block in this status?". Null for an active block. */
  statusReason: string | null;
}

export interface BlockInput {
  blockId: string;
  tier: BlockTier;
  externalId?: string | null;
  nodeIds: string[];
}

export type BlockEvent =
  /** The provider's nodes are up and their agents started: pending -> active. */
  | { type: 'provisioned' }
  /** The provider could not deliver (or the nodes did not start): pending -> released. */
  | { type: 'provision_failed'; reason: string }
  /** Stop placing on the block's nodes; it is released once idle. active -> draining. */
  | { type: 'drain'; reason?: string }
  /**
   * Hand the block back. `busy`: some of its nodes still run jobs (the runtime
   * asks its live state when it sends the event). Busy: active -> draining;
   * idle: straight to released. A pending block has no jobs and is cancelled.
   */
  | { type: 'release'; busy: boolean; reason?: string }
  /** A draining block has no jobs left: draining -> released. */
  | { type: 'idle' }
  /** ends_at has passed. Same rule as release: busy blocks drain first. */
  | { type: 'expire'; busy: boolean };
export type BlockEventType = BlockEvent['type'];

// A record rather than a bare array so that adding an event to BlockEvent fails
// to compile until it is listed here (and so in the table tests).
const blockEventTypes: Record<BlockEventType, true> = {
  provisioned: true,
  provision_failed: true,
  drain: true,
  release: true,
  idle: true,
  expire: true,
};
export const BLOCK_EVENT_TYPES: readonly BlockEventType[] = Object.freeze(
  Object.keys(blockEventTypes) as BlockEventType[],
);

/** What every effect is told, resolved when the transition is computed. */
export interface BlockEffectParams {
  blockId: string;
  externalId: string | null;
  nodeIds: string[];
}

/** The effect actions, the only actions `transition()` returns for this machine (assigns are folded into the snapshot). */
export const BLOCK_EFFECTS = ['drainNodes', 'stopNodes', 'releaseFromProvider'] as const;
export type BlockEffect = (typeof BLOCK_EFFECTS)[number];

function effectParams({ context }: { context: BlockContext }): BlockEffectParams {
  return { blockId: context.blockId, externalId: context.externalId, nodeIds: [...context.nodeIds] };
}

const drainNodes = { type: 'drainNodes', params: effectParams } as const;
const stopNodes = { type: 'stopNodes', params: effectParams } as const;
const releaseFromProvider = { type: 'releaseFromProvider', params: effectParams } as const;

// Nodes are stopped before the provider takes them back, so the agents say
// goodbye on their own terms rather than vanishing mid-heartbeat (the
// coordinator would otherwise see them as lost and requeue what they ran).
const handBack = ['recordReleased', stopNodes, releaseFromProvider] as const;
const startDraining = ['recordDraining', drainNodes] as const;

export const DEFAULT_REASONS = {
  pending: 'provisioning: waiting for the provider to deliver the nodes',
  draining: 'draining: waiting for the running jobs to finish before release',
  released: 'released',
  expired: 'the block reached its end time',
  drained: 'released: the last job on the draining block finished',
} as const;

export const blockMachine = setup({
  types: {
    context: {} as BlockContext,
    events: {} as BlockEvent,
    input: {} as BlockInput,
  },
  actions: {
    // Effects. Empty on purpose: the machine only names them; the runtime
    // supplies them with `.provide()` (or reads them from `transition()`).
    /** Mark the block's nodes draining: they keep their jobs and get no new ones. */
    drainNodes: (_, _params: BlockEffectParams) => {},
    /** Stop the block's agents (the nodes go away). */
    stopNodes: (_, _params: BlockEffectParams) => {},
    /** Give the block back to the provider; billing stops. */
    releaseFromProvider: (_, _params: BlockEffectParams) => {},

    // Context updates, named so every transition reads as a list of names.
    recordActive: assign({ statusReason: null }),
    // Why it was asked to go, then what it waits for: "release requested by
    // admin:u1; draining: waiting for the running jobs to finish before release".
    recordDraining: assign(({ event }) => {
      const asked = event.type === 'expire' ? DEFAULT_REASONS.expired : 'reason' in event ? event.reason : undefined;
      return { statusReason: asked ? `${asked}; ${DEFAULT_REASONS.draining}` : DEFAULT_REASONS.draining };
    }),
    recordReleased: assign(({ event }) => {
      switch (event.type) {
        case 'provision_failed':
          return { statusReason: `provisioning failed: ${event.reason}` };
        case 'expire':
          return { statusReason: DEFAULT_REASONS.expired };
        case 'idle':
          return { statusReason: DEFAULT_REASONS.drained };
        case 'release':
          return { statusReason: event.reason ?? DEFAULT_REASONS.released };
        default:
          return { statusReason: DEFAULT_REASONS.released };
      }
    }),
  },
  guards: {
    /** The runtime found jobs on the block's nodes when it sent the event. */
    busy: ({ event }) => 'busy' in event && event.busy,
  },
}).createMachine({
  id: 'block',
  context: ({ input }) => ({
    blockId: input.blockId,
    tier: input.tier,
    externalId: input.externalId ?? null,
    nodeIds: [...input.nodeIds],
    statusReason: DEFAULT_REASONS.pending,
  }),
  initial: 'pending',
  // Each state lists only the events it accepts; xstate ignores any other
  // event (same snapshot, no actions).
  states: {
    pending: {
      on: {
        provisioned: { target: 'active', actions: 'recordActive' },
        // Whatever started is stopped and the purchase handed back, so a
        // failed provisioning does not keep billing.
        provision_failed: { target: 'released', actions: handBack },
        // A pending block runs nothing, so release and expire need no drain:
        // the purchase is cancelled.
        release: { target: 'released', actions: handBack },
        expire: { target: 'released', actions: handBack },
      },
    },
    active: {
      on: {
        drain: { target: 'draining', actions: startDraining },
        release: [
          { guard: 'busy', target: 'draining', actions: startDraining },
          { target: 'released', actions: handBack },
        ],
        expire: [
          { guard: 'busy', target: 'draining', actions: startDraining },
          { target: 'released', actions: handBack },
        ],
      },
    },
    draining: {
      on: {
        idle: { target: 'released', actions: handBack },
        // A repeated release (an admin, the autoscaler, expiry) while jobs
        // still run is refused: nothing changes and the first reason stays.
        // Once the jobs are gone it releases, as `idle` would.
        release: { guard: not('busy'), target: 'released', actions: handBack },
        expire: { guard: not('busy'), target: 'released', actions: handBack },
      },
    },
    released: { type: 'final' },
  },
});

export type BlockSnapshot = SnapshotFrom<typeof blockMachine>;

/**
 * Rebuild a snapshot from a stored block row. The row is the truth, so this is
 * how the capacity actor restores its block actors after a restart.
 */
export function restoreBlockSnapshot(status: BlockStatus, context: BlockContext): BlockSnapshot {
  return blockMachine.resolveState({ value: status, context });
}
