import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { coordinatorMachine } from '../../machines/coordinator.machine.ts';

const stats = { passes: 3, placements: 2, liveJobs: 5, queued: 1, nodes: 2 };

describe('coordinator machine', () => {
  it('stands by until it leads, rebuilds, then leads and records each pass', () => {
    const a = createActor(coordinatorMachine).start();
    expect(a.getSnapshot().value).toBe('standby');
    a.send({ type: 'pass', stats }); // not leading: ignored
    expect(a.getSnapshot().context.passes).toBe(0);
    a.send({ type: 'leadership.acquired' });
    expect(a.getSnapshot().value).toBe('rebuilding');
    a.send({ type: 'rebuilt', stats: { ...stats, passes: 0 } });
    expect(a.getSnapshot().value).toBe('leading');
    a.send({ type: 'pass', stats });
    expect(a.getSnapshot().context).toMatchObject(stats);
  });

  it('stops for good when leadership is lost, and says why', () => {
    const a = createActor(coordinatorMachine).start();
    a.send({ type: 'leadership.acquired' });
    a.send({ type: 'rebuilt', stats });
    a.send({ type: 'leadership.lost', reason: 'leader lock connection closed' });
    expect(a.getSnapshot().value).toBe('stopped');
    expect(a.getSnapshot().status).toBe('done');
    expect(a.getSnapshot().context.stoppedBecause).toBe('leader lock connection closed');
    a.send({ type: 'leadership.acquired' });
    expect(a.getSnapshot().value).toBe('stopped');
  });

  it('a standby that is stopped never leads', () => {
    const a = createActor(coordinatorMachine).start();
    a.send({ type: 'stop' });
    a.send({ type: 'leadership.acquired' });
    expect(a.getSnapshot().value).toBe('stopped');
  });
});
