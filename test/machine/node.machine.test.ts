import { describe, it, expect, vi } from 'vitest';
import { createActor, initialTransition, transition } from 'xstate';
import {
  NODE_EFFECTS,
  NODE_EVENT_TYPES,
  NODE_STATES,
  NodeState,
  isSchedulable,
  nodeMachine,
  restoreNodeSnapshot,
} from '../../machines/node.machine.ts';
import type { NodeContext, NodeEvent, NodeEventType, NodeSnapshot } from '../../machines/node.machine.ts';

// A context that is plausible for each state, as a node row would hold it.
function aNode(state: NodeState, overrides: Partial<NodeContext> = {}): NodeContext {
  const base: NodeContext = {
    nodeId: 'node-1',
    pool: 'fast',
    lostAfterMissed: 3,
    missedHeartbeats: 0,
    drainRequested: false,
    stateReason: null,
  };
  const byState: Record<NodeState, Partial<NodeContext>> = {
    registering: { stateReason: 'waiting for the agent to register' },
    ready: {},
    draining: { drainRequested: true, stateReason: 'drained by an operator' },
    lost: { missedHeartbeats: 3, stateReason: 'no heartbeat for 3 intervals' },
  };
  return { ...base, ...byState[state], ...overrides };
}

// One representative event of each type, for the refusal checks.
const sample: Record<NodeEventType, NodeEvent> = {
  registered: { type: 'registered' },
  heartbeat: { type: 'heartbeat' },
  tick: { type: 'tick' },
  drain: { type: 'drain' },
  resume: { type: 'resume' },
};

const lostReason = 'no heartbeat for 3 intervals';
const neverRegistered = 'the agent did not finish registering within 3 intervals';

interface Allowed {
  from: NodeState;
  /** Overrides on aNode(from). */
  given?: Partial<NodeContext>;
  event: NodeEvent;
  to: NodeState;
  /** Fields that change; every other field must stay as it was. */
  changes: Partial<NodeContext>;
  /** Action types transition() returns, in order. Assigns never appear. */
  actions: string[];
}

const allowed: Allowed[] = [
  // registering
  { from: 'registering', event: sample.registered, to: 'ready', changes: { stateReason: null }, actions: ['nodeReady'] },
  {
    from: 'registering',
    given: { drainRequested: true, missedHeartbeats: 2 },
    event: sample.registered,
    to: 'draining',
    changes: { missedHeartbeats: 0, stateReason: 'drained by an operator' },
    actions: ['nodeReady'],
  },
  { from: 'registering', event: sample.tick, to: 'registering', changes: { missedHeartbeats: 1 }, actions: [] },
  {
    from: 'registering',
    given: { missedHeartbeats: 2 },
    event: sample.tick,
    to: 'lost',
    changes: { missedHeartbeats: 3, stateReason: neverRegistered },
    actions: ['nodeLost'],
  },
  { from: 'registering', event: sample.drain, to: 'registering', changes: { drainRequested: true }, actions: [] },
  { from: 'registering', given: { drainRequested: true }, event: sample.resume, to: 'registering', changes: { drainRequested: false }, actions: [] },

  // ready
  { from: 'ready', given: { missedHeartbeats: 2 }, event: sample.registered, to: 'ready', changes: { missedHeartbeats: 0 }, actions: [] },
  { from: 'ready', given: { missedHeartbeats: 2 }, event: sample.heartbeat, to: 'ready', changes: { missedHeartbeats: 0 }, actions: [] },
  { from: 'ready', event: sample.tick, to: 'ready', changes: { missedHeartbeats: 1 }, actions: [] },
  { from: 'ready', given: { missedHeartbeats: 1 }, event: sample.tick, to: 'ready', changes: { missedHeartbeats: 2 }, actions: [] },
  {
    from: 'ready',
    given: { missedHeartbeats: 2 },
    event: sample.tick,
    to: 'lost',
    changes: { missedHeartbeats: 3, stateReason: lostReason },
    actions: ['nodeLost'],
  },
  {
    from: 'ready',
    given: { lostAfterMissed: 1 },
    event: sample.tick,
    to: 'lost',
    changes: { missedHeartbeats: 1, stateReason: 'no heartbeat for 1 intervals' },
    actions: ['nodeLost'],
  },
  {
    from: 'ready',
    event: sample.drain,
    to: 'draining',
    changes: { drainRequested: true, stateReason: 'drained by an operator' },
    actions: [],
  },
  {
    from: 'ready',
    event: { type: 'drain', reason: 'replacing GPU 3' },
    to: 'draining',
    changes: { drainRequested: true, stateReason: 'replacing GPU 3' },
    actions: [],
  },

  // draining
  { from: 'draining', given: { missedHeartbeats: 1 }, event: sample.registered, to: 'draining', changes: { missedHeartbeats: 0 }, actions: [] },
  { from: 'draining', given: { missedHeartbeats: 2 }, event: sample.heartbeat, to: 'draining', changes: { missedHeartbeats: 0 }, actions: [] },
  { from: 'draining', event: sample.tick, to: 'draining', changes: { missedHeartbeats: 1 }, actions: [] },
  {
    from: 'draining',
    given: { missedHeartbeats: 2 },
    event: sample.tick,
    to: 'lost',
    // drainRequested stays, so the node comes back draining.
    changes: { missedHeartbeats: 3, stateReason: lostReason },
    actions: ['nodeLost'],
  },
  { from: 'draining', event: sample.resume, to: 'ready', changes: { drainRequested: false, stateReason: null }, actions: [] },

  // lost
  { from: 'lost', event: sample.registered, to: 'ready', changes: { missedHeartbeats: 0, stateReason: null }, actions: ['nodeReady'] },
  {
    from: 'lost',
    given: { drainRequested: true },
    event: sample.registered,
    to: 'draining',
    changes: { missedHeartbeats: 0, stateReason: 'drained by an operator' },
    actions: ['nodeReady'],
  },
  { from: 'lost', event: sample.drain, to: 'lost', changes: { drainRequested: true }, actions: [] },
  { from: 'lost', given: { drainRequested: true }, event: sample.resume, to: 'lost', changes: { drainRequested: false }, actions: [] },
];

// Written out in full rather than derived, so that accepting a new event in a
// state is a deliberate edit here too.
const refused: Record<NodeState, NodeEventType[]> = {
  registering: ['heartbeat'],
  ready: ['resume'],
  draining: ['drain'],
  lost: ['heartbeat', 'tick'],
};

function label(row: Allowed): string {
  const { type, ...rest } = row.event;
  const args = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
  const given = row.given ? ` given ${JSON.stringify(row.given)}` : '';
  return `${row.from}${given} --${type}${args}--> ${row.to} [${row.actions.join(', ')}]`;
}

/** Send events one after another through the pure transition(), collecting every effect type. */
function run(snapshot: NodeSnapshot, events: NodeEvent[]): [NodeSnapshot, Array<{ type: string; params: unknown }>] {
  const effects: Array<{ type: string; params: unknown }> = [];
  let current = snapshot;
  for (const event of events) {
    const [next, actions] = transition(nodeMachine, current, event);
    for (const a of actions) effects.push({ type: a.type, params: a.params });
    current = next;
  }
  return [current, effects];
}

const ticks = (n: number): NodeEvent[] => Array.from({ length: n }, () => sample.tick);

describe('node machine: shape', () => {
  it('has exactly the four states, in lifecycle order, none final', () => {
    expect(Object.keys(nodeMachine.root.states)).toEqual([...NODE_STATES]);
    expect(NODE_STATES).toEqual(['registering', 'ready', 'draining', 'lost']);
    expect(Object.values(NodeState)).toEqual([...NODE_STATES]);
    for (const state of NODE_STATES) expect(nodeMachine.root.states[state]?.type, state).toBe('atomic');
  });

  it('lists every event type once', () => {
    expect([...NODE_EVENT_TYPES].sort()).toEqual(['drain', 'heartbeat', 'registered', 'resume', 'tick']);
  });

  it('lists the effects', () => {
    expect([...NODE_EFFECTS]).toEqual(['nodeLost', 'nodeReady']);
  });

  it('isSchedulable is true only for ready', () => {
    expect(NODE_STATES.filter(isSchedulable)).toEqual(['ready']);
  });
});

describe('node machine: initial snapshot', () => {
  it('starts registering, waiting for the agent, and runs no effect', () => {
    const [snapshot, actions] = initialTransition(nodeMachine, { nodeId: 'node-1', pool: 'fast' });
    expect(snapshot.value).toBe('registering');
    expect(snapshot.status).toBe('active');
    expect(snapshot.context).toEqual(aNode('registering'));
    expect(actions).toEqual([]);
  });

  it('takes the pool and an explicit lostAfterMissed', () => {
    const [snapshot] = initialTransition(nodeMachine, { nodeId: 'node-2', pool: 'flex', lostAfterMissed: 5 });
    expect(snapshot.context).toMatchObject({ nodeId: 'node-2', pool: 'flex', lostAfterMissed: 5 });
  });
});

describe('node machine: allowed transitions', () => {
  it.each(allowed.map((row) => [label(row), row] as const))('%s', (_, row) => {
    const before = aNode(row.from, row.given);
    const [next, actions] = transition(nodeMachine, restoreNodeSnapshot(row.from, before), row.event);

    expect(next.value).toBe(row.to);
    expect(next.context).toEqual({ ...before, ...row.changes });
    expect(next.status).toBe('active');
    expect(actions.map((a) => a.type)).toEqual(row.actions);
    for (const a of actions) {
      expect(NODE_EFFECTS).toContain(a.type);
      expect(a.params).toEqual({ nodeId: 'node-1' });
    }
  });

  it('covers every (state, event) pair the machine accepts', () => {
    for (const state of NODE_STATES) {
      for (const type of NODE_EVENT_TYPES) {
        const accepts = restoreNodeSnapshot(state, aNode(state)).can(sample[type]);
        const tabled = allowed.some((row) => row.from === state && row.event.type === type);
        expect(tabled, `${state} + ${type}`).toBe(accepts);
      }
    }
  });
});

describe('node machine: ignored events', () => {
  it.each(NODE_STATES.map((s) => [s] as const))('%s ignores exactly the events not in the allowed table', (state) => {
    const accepted = new Set(allowed.filter((r) => r.from === state).map((r) => r.event.type));
    const expectedRefused = NODE_EVENT_TYPES.filter((t) => !accepted.has(t));
    expect([...refused[state]].sort()).toEqual([...expectedRefused].sort());
  });

  const cases = NODE_STATES.flatMap((state) => refused[state].map((type) => [state, type] as const));
  it.each(cases)('%s ignores %s: same snapshot, no effects', (state, type) => {
    const before = aNode(state, { missedHeartbeats: state === 'lost' ? 3 : 1 });
    const snapshot = restoreNodeSnapshot(state, before);
    const [next, actions] = transition(nodeMachine, snapshot, sample[type]);

    expect(next.value).toBe(state);
    expect(next.context).toEqual(before);
    expect(actions).toEqual([]);
    // The runtime relies on this identity to skip the write.
    expect(next).toBe(snapshot);
  });

  it('a second drain does not overwrite the first reason', () => {
    const [next] = run(restoreNodeSnapshot('ready', aNode('ready')), [
      { type: 'drain', reason: 'replacing GPU 3' },
      { type: 'drain', reason: 'something else' },
    ]);
    expect(next.value).toBe('draining');
    expect(next.context.stateReason).toBe('replacing GPU 3');
  });
});

describe('node machine: missed heartbeats', () => {
  const ready = () => restoreNodeSnapshot('ready', aNode('ready'));

  it('two missed intervals are not enough to lose a node', () => {
    const [next, effects] = run(ready(), ticks(2));
    expect(next.value).toBe('ready');
    expect(next.context.missedHeartbeats).toBe(2);
    expect(effects).toEqual([]);
  });

  it('a heartbeat resets the count, so misses must be consecutive', () => {
    const [next, effects] = run(ready(), [...ticks(2), sample.heartbeat, ...ticks(2)]);
    expect(next.value).toBe('ready');
    expect(next.context.missedHeartbeats).toBe(2);
    expect(effects).toEqual([]);
  });

  it('three consecutive missed intervals lose the node and emit nodeLost with its id', () => {
    const [next, effects] = run(ready(), [...ticks(2), sample.heartbeat, ...ticks(3)]);
    expect(next.value).toBe('lost');
    expect(next.context).toMatchObject({ missedHeartbeats: 3, stateReason: lostReason });
    expect(effects).toEqual([{ type: 'nodeLost', params: { nodeId: 'node-1' } }]);
  });

  it('honours a custom lostAfterMissed', () => {
    const snapshot = restoreNodeSnapshot('ready', aNode('ready', { lostAfterMissed: 5 }));
    expect(run(snapshot, ticks(4))[0].value).toBe('ready');
    const [next, effects] = run(snapshot, ticks(5));
    expect(next.value).toBe('lost');
    expect(next.context.stateReason).toBe('no heartbeat for 5 intervals');
    expect(effects.map((e) => e.type)).toEqual(['nodeLost']);
  });

  it('a draining node is lost the same way', () => {
    const [next, effects] = run(restoreNodeSnapshot('draining', aNode('draining')), ticks(3));
    expect(next.value).toBe('lost');
    expect(next.context.drainRequested).toBe(true);
    expect(effects).toEqual([{ type: 'nodeLost', params: { nodeId: 'node-1' } }]);
  });

  it('an agent that announced itself and never registered is lost too', () => {
    const [snapshot] = initialTransition(nodeMachine, { nodeId: 'node-9', pool: 'flex' });
    const [next, effects] = run(snapshot, [sample.heartbeat, ...ticks(3)]);
    expect(next.value).toBe('lost');
    expect(next.context.stateReason).toBe(neverRegistered);
    expect(effects).toEqual([{ type: 'nodeLost', params: { nodeId: 'node-9' } }]);
  });

  it('a lost node counts nothing more and emits nodeLost only once', () => {
    const [next, effects] = run(ready(), [...ticks(3), ...ticks(3), sample.heartbeat]);
    expect(next.value).toBe('lost');
    expect(next.context.missedHeartbeats).toBe(3);
    expect(effects.map((e) => e.type)).toEqual(['nodeLost']);
  });
});

describe('node machine: coming back', () => {
  it('a lost node that registers again is ready, with the count reset, and emits nodeReady', () => {
    const [lost] = run(restoreNodeSnapshot('ready', aNode('ready')), ticks(3));
    const [next, effects] = run(lost, [sample.heartbeat, sample.registered]);
    expect(next.value).toBe('ready');
    expect(next.context).toEqual(aNode('ready'));
    expect(effects).toEqual([{ type: 'nodeReady', params: { nodeId: 'node-1' } }]);
    expect(isSchedulable(next.value)).toBe(true);
  });

  it('a drained node that is lost comes back draining', () => {
    const [next, effects] = run(restoreNodeSnapshot('ready', aNode('ready')), [
      { type: 'drain', reason: 'replacing GPU 3' },
      ...ticks(3),
      sample.registered,
    ]);
    expect(next.value).toBe('draining');
    expect(next.context).toMatchObject({ drainRequested: true, missedHeartbeats: 0, stateReason: 'drained by an operator' });
    expect(effects.map((e) => e.type)).toEqual(['nodeLost', 'nodeReady']);
    expect(isSchedulable(next.value)).toBe(false);
  });

  it('a drain requested while lost is remembered; a resume while lost forgets it', () => {
    const lost = restoreNodeSnapshot('lost', aNode('lost'));
    expect(run(lost, [sample.drain, sample.registered])[0].value).toBe('draining');
    expect(run(lost, [sample.drain, sample.resume, sample.registered])[0].value).toBe('ready');
  });

  it('a drain requested before the first registration is remembered', () => {
    const [snapshot] = initialTransition(nodeMachine, { nodeId: 'node-1', pool: 'fast' });
    const [next, effects] = run(snapshot, [sample.drain, sample.registered]);
    expect(next.value).toBe('draining');
    expect(effects.map((e) => e.type)).toEqual(['nodeReady']);
  });
});

describe('node machine: drain and resume', () => {
  it('drain then resume returns a ready node to where it was, without effects', () => {
    const before = aNode('ready', { missedHeartbeats: 1 });
    const [draining, drainEffects] = run(restoreNodeSnapshot('ready', before), [sample.drain]);
    expect(draining.value).toBe('draining');
    expect(isSchedulable(draining.value)).toBe(false);
    const [next, resumeEffects] = run(draining, [sample.resume]);
    expect(next.value).toBe('ready');
    expect(next.context).toEqual(before);
    expect([...drainEffects, ...resumeEffects]).toEqual([]);
  });
});

describe('node machine: restoreNodeSnapshot', () => {
  it.each(NODE_STATES.map((s) => [s] as const))('round-trips %s', (state) => {
    const context = aNode(state, { nodeId: 'node-x', pool: 'flex', lostAfterMissed: 4, missedHeartbeats: 2 });
    const snapshot = restoreNodeSnapshot(state, context);
    expect(snapshot.value).toBe(state);
    expect(snapshot.context).toEqual(context);
    expect(snapshot.status).toBe('active');
    // What the runtime would write back restores to the same thing.
    const again = restoreNodeSnapshot(snapshot.value, snapshot.context);
    expect(again.value).toBe(state);
    expect(again.context).toEqual(context);
  });

  it('restores a snapshot that a live actor would have reached', () => {
    const actor = createActor(nodeMachine, { input: { nodeId: 'node-1', pool: 'fast' } }).start();
    actor.send(sample.registered);
    actor.send(sample.tick);
    const live = actor.getSnapshot();
    actor.stop();
    const restored = restoreNodeSnapshot(live.value, live.context);
    expect(restored.value).toBe('ready');
    expect(restored.context).toEqual(live.context);
    expect(run(restored, ticks(2))[0].value).toBe('lost');
  });
});

describe('node machine: provide() swaps the effects', () => {
  it('runs the provided effects with the node id in a live actor', () => {
    const nodeLost = vi.fn();
    const nodeReady = vi.fn();
    const actor = createActor(nodeMachine.provide({ actions: { nodeLost, nodeReady } }), {
      input: { nodeId: 'node-7', pool: 'flex', lostAfterMissed: 2 },
    });
    actor.start();

    actor.send({ type: 'registered' });
    expect(actor.getSnapshot().value).toBe('ready');
    expect(nodeReady).toHaveBeenCalledTimes(1);
    expect(nodeReady.mock.calls[0]?.[1]).toEqual({ nodeId: 'node-7' });

    actor.send({ type: 'tick' });
    actor.send({ type: 'tick' });
    expect(actor.getSnapshot().value).toBe('lost');
    expect(nodeLost).toHaveBeenCalledTimes(1);
    expect(nodeLost.mock.calls[0]?.[1]).toEqual({ nodeId: 'node-7' });

    actor.send({ type: 'registered' });
    expect(actor.getSnapshot().value).toBe('ready');
    expect(nodeReady).toHaveBeenCalledTimes(2);
    actor.stop();
  });
});
