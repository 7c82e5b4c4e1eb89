/**
 * The node lifecycle as a pure xstate machine.
 *
 * Like the job machine, this file decides *what* happens to a node and never
 * does anything: no I/O imports. The coordinator restores a snapshot from the
 * node row with `restoreNodeSnapshot`, asks xstate's pure `transition()` for
 * the next snapshot and the effects it implies, writes the row, and only after
 * the commit executes the effects (requeue a lost node's jobs, reconcile a node
 * that came back). See machines/README.md.
 */
import { assertEvent, assign, setup } from 'xstate';
import type { SnapshotFrom } from 'xstate';

// Enums are `as const` objects with a derived union (STYLE.md). The values are
// what the `nodes.state` column holds and what the API shows. Keys are listed
// in lifecycle order, which NODE_STATES relies on.
export const NodeState = {
  registering: 'registering',
  ready: 'ready',
  draining: 'draining',
  lost: 'lost',
} as const;
export type NodeState = (typeof NodeState)[keyof typeof NodeState];

/** Every state, in lifecycle order (registering first). None is final: a lost node can come back. */
export const NODE_STATES: readonly NodeState[] = Object.freeze(Object.values(NodeState));

/** Only a ready node takes new placements; a draining node keeps running what it has. */
export function isSchedulable(state: NodeState): boolean {
  return state === NodeState.ready;
}

/** A node's pool (the `nodes.pool` column). Spelled out here so this file imports nothing but xstate. */
export type NodePool = 'fast' | 'flex';

/** The part of a node row the lifecycle reads and writes. Field names mirror the columns in camelCase. */
export interface NodeContext {
  nodeId: string;
  pool: NodePool;
  /** Consecutive heartbeat intervals without a heartbeat after which the node is lost. */
  lostAfterMissed: number;
  /** Consecutive intervals without a heartbeat so far; a heartbeat or a registration resets it. */
  missedHeartbeats: number;
  /** An operator asked for a drain. Remembered while registering or lost, so the node comes back draining. */
  drainRequested: boolean;
  /** Plain-words answer to "why is this node in this state?". Null for a ready node. */
  stateReason: string | null;
}

export interface NodeInput {
  nodeId: string;
  pool: NodePool;
  /** Defaults to 3. */
  lostAfterMissed?: number;
}

export type NodeEvent =
  /** The agent's registration arrived: registering|lost -> ready (draining if a drain was requested). */
  | { type: 'registered' }
  /** The agent is alive: resets the missed count in ready/draining. A lost node must register again. */
  | { type: 'heartbeat' }
  /** Sent by the coordinator once per heartbeat interval in which no heartbeat arrived. */
  | { type: 'tick' }
  /** Operator: stop placing on this node. ready -> draining; remembered while registering or lost. */
  | { type: 'drain'; reason?: string }
  /** Operator: undo a drain. draining -> ready; forgotten while registering or lost. */
  | { type: 'resume' };
export type NodeEventType = NodeEvent['type'];

// A record rather than a bare array so that adding an event to NodeEvent fails
// to compile until it is listed here (and so in the table tests).
const nodeEventTypes: Record<NodeEventType, true> = {
  registered: true,
  heartbeat: true,
  tick: true,
  drain: true,
  resume: true,
};
export const NODE_EVENT_TYPES: readonly NodeEventType[] = Object.freeze(
  Object.keys(nodeEventTypes) as NodeEventType[],
);

/** What every effect is told, resolved when the transition is computed. */
export interface NodeEffectParams {
  nodeId: string;
}

/** The effect actions, the only actions `transition()` returns for this machine (assigns are folded into the snapshot). */
export const NODE_EFFECTS = ['nodeLost', 'nodeReady'] as const;
export type NodeEffect = (typeof NODE_EFFECTS)[number];

function effectParams({ context }: { context: NodeContext }): NodeEffectParams {
  return { nodeId: context.nodeId };
}

// Effects come after the assigns of their transition, so their params see the
// context as the transition leaves it (today only nodeId, which never changes,
// but the order keeps that true if the params grow).
const nodeLost = { type: 'nodeLost', params: effectParams } as const;
const nodeReady = { type: 'nodeReady', params: effectParams } as const;

const DRAINED_BY_OPERATOR = 'drained by an operator';

/** Liveness while the node is up (ready or draining). */
const whileUp = {
  // A repeated registration (agent reconnect) proves it is alive, nothing more.
  registered: { actions: 'resetMissedHeartbeats' },
  heartbeat: { actions: 'resetMissedHeartbeats' },
  tick: [
    { guard: 'missedTooMany', target: 'lost', actions: ['recordLost', nodeLost] },
    { actions: 'recordMissedHeartbeat' },
  ],
} as const;

export const nodeMachine = setup({
  types: {
    context: {} as NodeContext,
    events: {} as NodeEvent,
    input: {} as NodeInput,
  },
  actions: {
    // Effects. Empty on purpose: the machine only names them. The runtime
    // either supplies real ones with `.provide()` or, with the pure
    // `transition()`, reads them from the returned actions and runs them after
    // the commit.
    /** The node is gone: requeue its jobs and purge the commands queued for it. */
    nodeLost: (_, _params: NodeEffectParams) => {},
    /** The node's agent is (back) in touch: re-send pending commands and reconcile what it runs. */
    nodeReady: (_, _params: NodeEffectParams) => {},

    // Context updates, named so every transition reads as a list of names.
    recordRegistration: assign(({ context }) => ({
      missedHeartbeats: 0,
      stateReason: context.drainRequested ? DRAINED_BY_OPERATOR : null,
    })),
    resetMissedHeartbeats: assign({ missedHeartbeats: 0 }),
    recordMissedHeartbeat: assign(({ context }) => ({ missedHeartbeats: context.missedHeartbeats + 1 })),
    recordLost: assign(({ context }) => ({
      missedHeartbeats: context.missedHeartbeats + 1,
      stateReason: `no heartbeat for ${context.missedHeartbeats + 1} intervals`,
    })),
    recordRegistrationTimeout: assign(({ context }) => ({
      missedHeartbeats: context.missedHeartbeats + 1,
      stateReason: `the agent did not finish registering within ${context.missedHeartbeats + 1} intervals`,
    })),
    recordDrain: assign(({ event }) => {
      assertEvent(event, 'drain');
      return { drainRequested: true, stateReason: event.reason ?? DRAINED_BY_OPERATOR };
    }),
    // While registering or lost the reason keeps saying why the node is not
    // up; the drain shows once it comes back (as 'drained by an operator').
    rememberDrain: assign({ drainRequested: true }),
    recordResume: assign({ drainRequested: false, stateReason: null }),
    forgetDrain: assign({ drainRequested: false }),
  },
  guards: {
    drainPending: ({ context }) => context.drainRequested,
    /** This tick is the lostAfterMissed-th in a row without a heartbeat. */
    missedTooMany: ({ context }) => context.missedHeartbeats + 1 >= context.lostAfterMissed,
  },
}).createMachine({
  id: 'node',
  context: ({ input }) => ({
    nodeId: input.nodeId,
    pool: input.pool,
    lostAfterMissed: input.lostAfterMissed ?? 3,
    missedHeartbeats: 0,
    drainRequested: false,
    stateReason: 'waiting for the agent to register',
  }),
  initial: 'registering',
  // Each state lists only the events it accepts; xstate ignores any other
  // event (same snapshot, no actions). A transition without a target stays in
  // its state and runs only its actions.
  states: {
    registering: {
      on: {
        registered: [
          { guard: 'drainPending', target: 'draining', actions: ['recordRegistration', nodeReady] },
          { target: 'ready', actions: ['recordRegistration', nodeReady] },
        ],
        // No heartbeat here: until it registers, the agent's heartbeats mean
        // nothing. Ticks still count, so an agent that announced itself and
        // vanished is eventually lost.
        tick: [
          { guard: 'missedTooMany', target: 'lost', actions: ['recordRegistrationTimeout', nodeLost] },
          { actions: 'recordMissedHeartbeat' },
        ],
        drain: { actions: 'rememberDrain' },
        resume: { actions: 'forgetDrain' },
      },
    },
    ready: {
      on: {
        ...whileUp,
        drain: { target: 'draining', actions: 'recordDrain' },
      },
    },
    draining: {
      on: {
        ...whileUp,
        // No drain: already draining, and a second one must not overwrite the first reason.
        resume: { target: 'ready', actions: 'recordResume' },
      },
    },
    // Not final: the agent may come back. It must register again (heartbeats
    // from a lost node are ignored), and ticks stop counting.
    lost: {
      on: {
        registered: [
          { guard: 'drainPending', target: 'draining', actions: ['recordRegistration', nodeReady] },
          { target: 'ready', actions: ['recordRegistration', nodeReady] },
        ],
        drain: { actions: 'rememberDrain' },
        resume: { actions: 'forgetDrain' },
      },
    },
  },
});

export type NodeSnapshot = SnapshotFrom<typeof nodeMachine>;

/**
 * Rebuild a snapshot from a stored node row. The row is the truth (the machine
 * keeps no state of its own), so this is how every transition starts.
 */
export function restoreNodeSnapshot(state: NodeState, context: NodeContext): NodeSnapshot {
  return nodeMachine.resolveState({ value: state, context });
}
