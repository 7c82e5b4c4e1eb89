import { readFileSync } from 'node:fs';
import { describe, it, expect, vi } from 'vitest';
import { createActor, initialTransition, transition } from 'xstate';
import {
  BLOCK_EFFECTS,
  BLOCK_EVENT_TYPES,
  BLOCK_STATUSES,
  BlockStatus,
  DEFAULT_REASONS,
  blockMachine,
  isLiveBlock,
  restoreBlockSnapshot,
} from '../../machines/block.machine.ts';
import type { BlockContext, BlockEvent, BlockEventType } from '../../machines/block.machine.ts';
import { replaceDiagramBlock, toMermaid } from '../../machines/mermaid.ts';

// A context that is plausible for each status, as a block row would hold it.
function aBlock(status: BlockStatus, overrides: Partial<BlockContext> = {}): BlockContext {
  const byStatus: Record<BlockStatus, Partial<BlockContext>> = {
    pending: { statusReason: DEFAULT_REASONS.pending },
    active: { statusReason: null },
    draining: { statusReason: DEFAULT_REASONS.draining },
    released: { statusReason: 'released' },
  };
  return {
    blockId: 'blk_test',
    tier: 'fast',
    externalId: 'sim-1',
    nodeIds: ['blk_test-n1', 'blk_test-n2'],
    statusReason: null,
    ...byStatus[status],
    ...overrides,
  };
}

const handBack = ['stopNodes', 'releaseFromProvider'];

interface Allowed {
  from: BlockStatus;
  event: BlockEvent;
  to: BlockStatus;
  reason: string | null;
  /** Effect types transition() returns, in order. Assigns never appear. */
  actions: string[];
}

const allowed: Allowed[] = [
  { from: 'pending', event: { type: 'provisioned' }, to: 'active', reason: null, actions: [] },
  {
    from: 'pending',
    event: { type: 'provision_failed', reason: 'no capacity in region' },
    to: 'released',
    reason: 'provisioning failed: no capacity in region',
    actions: handBack,
  },
  // A pending block runs nothing: busy is irrelevant, the purchase is cancelled.
  { from: 'pending', event: { type: 'release', busy: false, reason: 'released by admin:u1' }, to: 'released', reason: 'released by admin:u1', actions: handBack },
  { from: 'pending', event: { type: 'release', busy: true }, to: 'released', reason: 'released', actions: handBack },
  { from: 'pending', event: { type: 'expire', busy: false }, to: 'released', reason: DEFAULT_REASONS.expired, actions: handBack },
  { from: 'pending', event: { type: 'expire', busy: true }, to: 'released', reason: DEFAULT_REASONS.expired, actions: handBack },

  { from: 'active', event: { type: 'drain' }, to: 'draining', reason: DEFAULT_REASONS.draining, actions: ['drainNodes'] },
  { from: 'active', event: { type: 'drain', reason: 'too many FAST GPUs' }, to: 'draining', reason: `too many FAST GPUs; ${DEFAULT_REASONS.draining}`, actions: ['drainNodes'] },
  // The invariant: a busy block is drained, never released with jobs on it.
  { from: 'active', event: { type: 'release', busy: true }, to: 'draining', reason: DEFAULT_REASONS.draining, actions: ['drainNodes'] },
  { from: 'active', event: { type: 'release', busy: false }, to: 'released', reason: 'released', actions: handBack },
  {
    from: 'active',
    event: { type: 'expire', busy: true },
    to: 'draining',
    reason: `${DEFAULT_REASONS.expired}; ${DEFAULT_REASONS.draining}`,
    actions: ['drainNodes'],
  },
  { from: 'active', event: { type: 'expire', busy: false }, to: 'released', reason: DEFAULT_REASONS.expired, actions: handBack },

  { from: 'draining', event: { type: 'idle' }, to: 'released', reason: DEFAULT_REASONS.drained, actions: handBack },
  { from: 'draining', event: { type: 'release', busy: false, reason: 'released by admin:u2' }, to: 'released', reason: 'released by admin:u2', actions: handBack },
  { from: 'draining', event: { type: 'expire', busy: false }, to: 'released', reason: DEFAULT_REASONS.expired, actions: handBack },
];

// One representative event of each type, for the refusal sweep.
const samples: BlockEvent[] = [
  { type: 'provisioned' },
  { type: 'provision_failed', reason: 'x' },
  { type: 'drain' },
  { type: 'release', busy: true },
  { type: 'release', busy: false },
  { type: 'idle' },
  { type: 'expire', busy: true },
  { type: 'expire', busy: false },
];

const key = (from: BlockStatus, e: BlockEvent) => `${from}:${e.type}:${'busy' in e ? e.busy : '-'}`;

describe('blockMachine: lifecycle', () => {
  it('starts pending with the purchase in its context', () => {
    const [snap, actions] = initialTransition(blockMachine, { blockId: 'blk_a', tier: 'flex', externalId: 'ext', nodeIds: ['blk_a-n1'] });
    expect(snap.value).toBe('pending');
    expect(snap.context).toEqual({ blockId: 'blk_a', tier: 'flex', externalId: 'ext', nodeIds: ['blk_a-n1'], statusReason: DEFAULT_REASONS.pending });
    expect(actions.filter((a) => (BLOCK_EFFECTS as readonly string[]).includes(a.type))).toEqual([]);
  });

  it.each(allowed)('$from --$event.type--> $to', ({ from, event, to, reason, actions }) => {
    const before = aBlock(from);
    const [next, acts] = transition(blockMachine, restoreBlockSnapshot(from, before), event);
    expect(next.value).toBe(to);
    expect(next.context).toEqual({ ...before, statusReason: reason });
    expect(acts.map((a) => a.type)).toEqual(actions);
    // Every effect names the block, the purchase and all its nodes.
    for (const a of acts) expect(a.params).toEqual({ blockId: 'blk_test', externalId: 'sim-1', nodeIds: ['blk_test-n1', 'blk_test-n2'] });
  });

  it('refuses every other (status, event): same snapshot, no actions', () => {
    const ok = new Set(allowed.map((a) => key(a.from, a.event)));
    let refused = 0;
    for (const from of BLOCK_STATUSES) {
      for (const event of samples) {
        if (ok.has(key(from, event))) continue;
        const snap = restoreBlockSnapshot(from, aBlock(from));
        const [next, acts] = transition(blockMachine, snap, event);
        expect(next, key(from, event)).toBe(snap);
        expect(acts).toEqual([]);
        refused++;
      }
    }
    // 4 statuses × 8 samples = 32, minus the 14 distinct allowed pairs (the
    // table has drain twice, with and without a reason) = 18 refusals, among
    // them release/expire on a busy draining block (the first reason stays).
    expect(refused).toBe(18);
  });

  it('never releases a busy block: every release/expire with busy=true leaves a live block', () => {
    for (const from of [BlockStatus.active, BlockStatus.draining]) {
      for (const event of [{ type: 'release', busy: true }, { type: 'expire', busy: true }] as BlockEvent[]) {
        const [next] = transition(blockMachine, restoreBlockSnapshot(from, aBlock(from)), event);
        expect(next.value).toBe('draining');
      }
    }
  });

  it('released is final and the only non-live status', () => {
    expect(restoreBlockSnapshot('released', aBlock('released')).status).toBe('done');
    expect(BLOCK_STATUSES.filter((s) => !isLiveBlock(s))).toEqual(['released']);
  });

  it('lists every event type', () => {
    expect(new Set(samples.map((s) => s.type))).toEqual(new Set<BlockEventType>(BLOCK_EVENT_TYPES));
  });
});

describe('blockMachine.provide(): effects run in order with their params', () => {
  it('buy → provisioned → busy release drains → idle releases', () => {
    const calls: string[] = [];
    const fx = {
      drainNodes: vi.fn((_: unknown, p: { nodeIds: string[] }) => calls.push(`drain ${p.nodeIds.join(',')}`)),
      stopNodes: vi.fn((_: unknown, p: { nodeIds: string[] }) => calls.push(`stop ${p.nodeIds.join(',')}`)),
      releaseFromProvider: vi.fn((_: unknown, p: { externalId: string | null }) => calls.push(`release ${p.externalId}`)),
    };
    const actor = createActor(blockMachine.provide({ actions: fx }), {
      input: { blockId: 'blk_x', tier: 'fast', externalId: 'ext-9', nodeIds: ['blk_x-n1'] },
    }).start();
    actor.send({ type: 'provisioned' });
    expect(actor.getSnapshot().value).toBe('active');
    actor.send({ type: 'release', busy: true, reason: 'release requested by autoscaler' });
    expect(actor.getSnapshot().value).toBe('draining');
    const draining = 'release requested by autoscaler; draining: waiting for the running jobs to finish before release';
    expect(actor.getSnapshot().context.statusReason).toBe(draining);
    // Still busy: a second release changes nothing.
    actor.send({ type: 'release', busy: true, reason: 'again' });
    expect(actor.getSnapshot().context.statusReason).toBe(draining);
    actor.send({ type: 'idle' });
    expect(actor.getSnapshot().value).toBe('released');
    expect(actor.getSnapshot().status).toBe('done');
    expect(calls).toEqual(['drain blk_x-n1', 'stop blk_x-n1', 'release ext-9']);
  });

  it('can() tells the runtime whether an event would change anything', () => {
    const snap = restoreBlockSnapshot('draining', aBlock('draining'));
    expect(snap.can({ type: 'release', busy: true })).toBe(false);
    expect(snap.can({ type: 'idle' })).toBe(true);
  });
});

describe('the committed block diagram matches the machine (run `npm run machines:diagram` if this fails)', () => {
  const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

  it('machines/diagrams/block.mmd', () => {
    expect(read('machines/diagrams/block.mmd')).toBe(toMermaid(blockMachine));
  });

  it('the block block in machines/README.md', () => {
    const readme = read('machines/README.md');
    expect(replaceDiagramBlock(readme, 'block', toMermaid(blockMachine))).toBe(readme);
  });
});
