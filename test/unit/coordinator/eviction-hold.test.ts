/**
 * Many nodes silent at once is a fault between them and the coordinator
 * (its network, NATS), not that many dead nodes: with more than
 * SCALAR_EVICTION_HOLD_SHARE of the nodes (and at least 2) missing the same
 * heartbeat, none is declared lost and no job restarts. One dead node among
 * many is still lost at once. Production's Coordinator, in virtual time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorHarness, HEARTBEAT_MS, type HarnessOptions } from '../../harness/coordinator-harness.ts';

let h: CoordinatorHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** Long enough for a silent node to be lost (3 missed intervals), and the next sweep. */
const LOST_SEC = (4 * HEARTBEAT_MS) / 1000 + 2;

async function fleetOfThree(opts?: HarnessOptions): Promise<CoordinatorHarness> {
  h = await CoordinatorHarness.start(opts);
  await h.addNodes({ id: 'n1', pool: 'fast' }, { id: 'n2', pool: 'fast' }, { id: 'n3', pool: 'fast' });
  // One 8-GPU job per node.
  await h.submit({ id: 'j1', tier: 'FAST', gpuCount: 8 }, { id: 'j2', tier: 'FAST', gpuCount: 8 }, { id: 'j3', tier: 'FAST', gpuCount: 8 });
  for (const j of ['j1', 'j2', 'j3']) expect(h.job(j)).toMatchObject({ status: 'running', attempt: 1 });
  return h;
}

const nodeOf = (id: string) => h!.job(id).nodeId!;

describe('holding evictions when most nodes go silent at once', () => {
  it('two of three nodes silent: neither is lost and their jobs keep attempt 1, for as long as it lasts', async () => {
    const h = await fleetOfThree();
    h.kill(nodeOf('j1'));
    h.kill(nodeOf('j2'));
    await h.advance(10 * LOST_SEC);
    for (const j of ['j1', 'j2', 'j3']) expect(h.job(j)).toMatchObject({ status: 'running', attempt: 1 });
    expect(h.failureCodes('j1').filter((c) => c !== null)).toEqual([]);
  });

  it('one of three nodes silent: it is lost and its job requeued, as before', async () => {
    const h = await fleetOfThree();
    const dead = nodeOf('j1');
    h.kill(dead);
    await h.advance(LOST_SEC);
    expect(h.job('j1')).toMatchObject({ attempt: 2, failureCode: 'node_lost' });
    expect(h.job('j2')).toMatchObject({ status: 'running', attempt: 1 });
  });

  it('SCALAR_EVICTION_HOLD_SHARE=1 never holds: two of three silent nodes are both lost', async () => {
    const h = await fleetOfThree({ evictionHoldShare: 1 });
    h.kill(nodeOf('j1'));
    h.kill(nodeOf('j2'));
    await h.advance(LOST_SEC);
    expect(h.job('j1')).toMatchObject({ attempt: 2, failureCode: 'node_lost' });
    expect(h.job('j2')).toMatchObject({ attempt: 2, failureCode: 'node_lost' });
  });
});
