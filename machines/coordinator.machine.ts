/**
 * The coordinator's own lifecycle, as the root of its actor system: the job
 * and node actors are its children, so the inspector shows one tree. It
 * decides nothing about jobs; it records whether this process leads, and
 * the counters of its passes, for inspection.
 */
import { assign, setup } from 'xstate';

export const CoordinatorState = {
  standby: 'standby',
  rebuilding: 'rebuilding',
  leading: 'leading',
  stopped: 'stopped',
} as const;
export type CoordinatorState = (typeof CoordinatorState)[keyof typeof CoordinatorState];

export interface CoordinatorStats {
  passes: number;
  placements: number;
  liveJobs: number;
  queued: number;
  nodes: number;
}

export type CoordinatorEvent =
  /** This process won the leader lock. */
  | { type: 'leadership.acquired' }
  /** The actors were rebuilt from Postgres; it acts from now on. */
  | { type: 'rebuilt'; stats: CoordinatorStats }
  /** A pass was committed. */
  | { type: 'pass'; stats: CoordinatorStats }
  /** The lock connection failed: another process may lead now. */
  | { type: 'leadership.lost'; reason: string }
  | { type: 'stop' };

export interface CoordinatorContext extends CoordinatorStats {
  stoppedBecause: string | null;
}

export const coordinatorMachine = setup({
  types: { context: {} as CoordinatorContext, events: {} as CoordinatorEvent },
  actions: {
    recordStats: assign(({ event }) => ('stats' in event ? { ...event.stats } : {})),
    recordLoss: assign(({ event }) => ({ stoppedBecause: event.type === 'leadership.lost' ? event.reason : null })),
  },
}).createMachine({
  id: 'coordinator',
  initial: 'standby',
  context: { passes: 0, placements: 0, liveJobs: 0, queued: 0, nodes: 0, stoppedBecause: null },
  states: {
    standby: { on: { 'leadership.acquired': 'rebuilding', stop: 'stopped' } },
    rebuilding: {
      on: {
        rebuilt: { target: 'leading', actions: 'recordStats' },
        'leadership.lost': { target: 'stopped', actions: 'recordLoss' },
        stop: 'stopped',
      },
    },
    leading: {
      on: {
        pass: { actions: 'recordStats' },
        'leadership.lost': { target: 'stopped', actions: 'recordLoss' },
        stop: 'stopped',
      },
    },
    stopped: { type: 'final' },
  },
});
