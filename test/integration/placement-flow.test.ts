/**
 * Placement as a user sees it through the API, with the real coordinator
 * (startTestCoordinator, no capacity provider: no offers) over the real Postgres
 * and NATS, and scripted agents:
 *
 *  - a job no node shape can ever hold fails fast as `unschedulable:`; one
 *    that merely waits stays queued with its `placement` diagnosis;
 *  - queue positions;
 *  - weighted fair share (DRF) between users, with weights set through the API;
 *  - EASY backfill behind a reservation;
 *  - gangs: all or nothing, and every member told its rank;
 *  - usage and cost of a finished job.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningCoordinator } from '../../actors/coordinator/index.ts';
import { schedulingFromConfig } from '../../actors/coordinator/settings.ts';
import { startTestApp, exampleJob, type TestApp } from '../helpers/app.ts';
import { startTestCoordinator, stopAllAndReset, until } from '../helpers/coordinator.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';

const HB = 200; // heartbeat interval (ms): a node is lost after 3 missed

// Prices chosen so the arithmetic is easy to read: one FAST GPU-second costs
// 3.6 / 3600 = $0.001, one FLEX GPU-second 1.8 / 3600 = $0.0005.
const PRICE_FAST_GPU_HOUR = 3.6;
const PRICE_FLEX_GPU_HOUR = 1.8;

let t: TestApp;
const coordinators: RunningCoordinator[] = [];
const agents: ScriptedAgent[] = [];
let seq = 0;

interface Job {
  id: string;
  user_id: string;
  status: string;
  status_reason: string | null;
  failure_code: string | null;
  node_id: string | null;
  gpu_indices: number[] | null;
  placements: { node_id: string; gpu_indices: number[] }[];
  placement: {
    position: number | null;
    step: string | null;
    nodes: number;
    rejected: Record<string, number>;
    best: { node_id: string; score: number }[];
    reason: string | null;
    at: string;
  } | null;
  cost_usd: number;
  exit_code: number | null;
}

/** The coordinator as `scalar coordinator` runs it, minus capacity: no provider, so no offers. */
async function coordinator(): Promise<RunningCoordinator> {
  const c = startTestCoordinator(t, HB, { scheduling: schedulingFromConfig(t.cfg) });
  coordinators.push(c);
  await c.leading;
  return c;
}

/** A node with a unique id, registered, heartbeating and ready. */
async function node(pool: 'fast' | 'flex', gpus = 8, vramGb = 80): Promise<ScriptedAgent> {
  const a = unregistered(pool, gpus, vramGb);
  await a.register();
  a.heartbeats(HB);
  await until(async () => (await nodeState(a.nodeId)) === 'ready');
  return a;
}

/** A node object that has not registered yet. */
function unregistered(pool: 'fast' | 'flex', gpus = 8, vramGb = 80): ScriptedAgent {
  const a = new ScriptedAgent(t.bus, `${pool}-${++seq}`, { pool, gpus, vramGb });
  agents.push(a);
  return a;
}

const nodeState = async (id: string): Promise<string> => (await t.call({ method: 'GET', url: `/nodes/${id}` })).json().state;

/** Submits a job (as the admin unless `key` is given) and returns its id. */
async function submit(over: Record<string, unknown> = {}, key?: string): Promise<string> {
  const res = await t.call({
    method: 'POST',
    url: '/jobs',
    ...(key ? { key } : {}),
    payload: { ...exampleJob(), gpu_count: 1, vram_per_gpu_gb: 40, ...over },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}

/** A FAST gang of 2 × 8 GPUs on two fresh fast nodes, scheduled; its members in rank order. */
async function scheduledGang(): Promise<{ id: string; rank0: ScriptedAgent; rank1: ScriptedAgent }> {
  const a = await node('fast');
  const b = await node('fast');
  const id = await submit({ tier: 'FAST', node_count: 2, gpu_count: 8 });
  const scheduled = await until(statusIs(id, 'scheduled'));
  const [rank0, rank1] = scheduled.placements.map((p) => (p.node_id === a.nodeId ? a : b));
  return { id, rank0: rank0!, rank1: rank1! };
}

/** Every member takes its run and starts; the job is running. */
async function startMembers(id: string, members: ScriptedAgent[]): Promise<void> {
  for (const n of members) {
    await n.expect('run');
    await n.started({ job_id: id, attempt: 1 });
  }
  await until(statusIs(id, 'running'));
}

const job = async (id: string): Promise<Job> => (await t.call({ method: 'GET', url: `/jobs/${id}` })).json();
const statusIs = (id: string, status: string) => async () => {
  const j = await job(id);
  return j.status === status ? j : false;
};

/** Runs a placed job to its end through its agent: started, then exited with `code`. */
async function finish(agent: ScriptedAgent, id: string, code = 0): Promise<void> {
  await agent.started({ job_id: id, attempt: 1 });
  await agent.exited({ job_id: id, attempt: 1 }, code);
}

beforeAll(async () => {
  t = await startTestApp({
    SCALAR_HEARTBEAT_INTERVAL_MS: String(HB),
    SCALAR_PRICE_FAST_GPU_HOUR: String(PRICE_FAST_GPU_HOUR),
    SCALAR_PRICE_FLEX_GPU_HOUR: String(PRICE_FLEX_GPU_HOUR),
  });
});

afterEach(async () => {
  // Each test starts from an empty cluster: no jobs, nodes or undelivered messages.
  await stopAllAndReset(t, agents, coordinators);
});

afterAll(async () => {
  await t?.close();
});

describe('unschedulable fails fast; waiting explains itself', () => {
  it('no node shape can hold it: failed within a couple of seconds with an unschedulable: reason', async () => {
    await coordinator();
    await node('fast', 8, 80);

    // 16 GPUs on one node, and the only shape has 8.
    let started = Date.now();
    const tooMany = await submit({ tier: 'FAST', gpu_count: 16 });
    const failed = await until(statusIs(tooMany, 'failed'), 5000);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(failed.status_reason).toMatch(/^unschedulable: /);
    expect(failed).toMatchObject({ failure_code: 'unschedulable', failure_retryable: false, failure_fault: 'user' });
    expect(failed.status_reason).toMatch(/^unschedulable: no fast node is large enough: needs 16 GPUs with ≥ 40 GB, the largest has 8\b/);
    expect(failed.node_id).toBeNull();
    expect(failed.placement).toMatchObject({ step: null, nodes: 1, reason: failed.status_reason });

    // 120 GB per GPU, and the largest GPU has 80.
    started = Date.now();
    const tooLarge = await submit({ tier: 'FAST', vram_per_gpu_gb: 120 });
    const failed2 = await until(statusIs(tooLarge, 'failed'), 5000);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(failed2.status_reason).toMatch(/^unschedulable: no fast node is large enough: needs 1 GPU with ≥ 120 GB, the largest has 8 with 80 GB\b/);
    const events = (await t.call({ method: 'GET', url: `/jobs/${tooLarge}/events` })).json().events;
    expect(events.map((e: { to: string }) => e.to)).toEqual(['pending', 'failed']);
  });

  it('a job that merely waits (every GPU busy) stays queued with its placement diagnosis', async () => {
    await coordinator();
    const fast = await node('fast', 8, 80);
    const big = await submit({ tier: 'FAST', gpu_count: 8 });
    expect((await fast.expect('run')).job_id).toBe(big);
    await fast.started({ job_id: big, attempt: 1 });

    const waiting = await submit({ tier: 'FAST', gpu_count: 1 });
    const queued = await until(async () => {
      const j = await job(waiting);
      return j.status === 'queued' && j.placement ? j : false;
    });
    // Still queued after several passes: not failed, not placed.
    await new Promise((r) => setTimeout(r, 1000));
    expect((await job(waiting)).status).toBe('queued');
    expect(queued.status_reason).toMatch(/^0 of 1 ready fast node can hold it: 1 has no free GPU with ≥ 40 GB/);
    expect(queued.placement).toMatchObject({
      position: 1,
      step: null,
      nodes: 1,
      // The one node, counted once, under the filter that rejected it.
      rejected: { node_ready: 0, pool: 0, reservation: 0, cpu_ram: 0, gpus: 1, block_time: 0, gang: 0 },
      best: [],
      reason: queued.status_reason,
    });
    expect(Date.parse(queued.placement!.at)).not.toBeNaN();
  });
});

describe('queue position', () => {
  it('three jobs behind a full fleet are at positions 1, 2, 3; when the first starts, the next moves up', async () => {
    await coordinator();
    const fast = await node('fast', 8, 80);
    const running = await submit({ tier: 'FAST', gpu_count: 8 });
    await fast.expect('run');
    await fast.started({ job_id: running, attempt: 1 });
    await until(statusIs(running, 'running'));

    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await submit({ tier: 'FAST', gpu_count: 8 }));
    const positions = async () => Promise.all(ids.map(async (id) => (await job(id)).placement?.position ?? null));
    await until(async () => (await positions()).every((p) => p !== null));
    expect(await positions()).toEqual([1, 2, 3]);
    for (const id of ids) expect((await job(id)).status).toBe('queued');

    // The running job ends: the first in line is placed, and the second is
    // told (at the next diagnosis refresh, REASON_REFRESH_MS = 5 s) that it
    // is now first.
    await fast.exited({ job_id: running, attempt: 1 }, 0);
    expect((await fast.expect('run')).job_id).toBe(ids[0]);
    const second = await until(
      async () => {
        const j = await job(ids[1]!);
        return j.placement?.position === 1 ? j : false;
      },
      12_000,
      'the second job shows position 1',
    );
    expect(second.status).toBe('queued');
    // Nothing is reserved for a job ahead of it any more: it is blocked by GPUs (and holds the reservation itself).
    expect(second.status_reason).toMatch(/1 has fewer than 8 free GPUs with ≥ 40 GB; expected to start by .* \(reserved\)$/);
  }, 25_000);
});

describe('fair share through the API', () => {
  /** Which of `ids` are placed now (scheduled), by owner. */
  async function placedBy(ids: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const id of ids) {
      const j = await job(id);
      if (j.status === 'scheduled') out.set(j.user_id, (out.get(j.user_id) ?? 0) + 1);
    }
    return out;
  }

  it('equal weights: the user who already holds GPUs is placed after the one who holds none', async () => {
    const a = await t.newUser('fs-holder');
    const b = await t.newUser('fs-newcomer');
    await coordinator();
    const flex = await node('flex', 8, 80);
    // A already holds 4 of the node's 8 GPUs.
    const held = await submit({ tier: 'FLEX', gpu_count: 4 }, a.key);
    await flex.expect('run');
    await flex.started({ job_id: held, attempt: 1 });
    await until(statusIs(held, 'running'));

    // Both submit 4 one-GPU FLEX jobs of equal priority while the node is
    // drained (A first), so one pass decides them all when it is resumed.
    expect((await t.call({ method: 'POST', url: `/nodes/${flex.nodeId}/drain` })).statusCode).toBe(200);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await submit({ tier: 'FLEX' }, a.key));
    for (let i = 0; i < 4; i++) ids.push(await submit({ tier: 'FLEX' }, b.key));
    for (const id of ids) await until(statusIs(id, 'queued'));
    expect((await t.call({ method: 'POST', url: `/nodes/${flex.nodeId}/resume` })).statusCode).toBe(200);

    // DRF over 8 GPUs, weights 1: A's share starts at 4/8, B's at 0. B's
    // jobs go first while B's share is below A's: B 1/8, 2/8, 3/8, 4/8 —
    // and then the 4 free GPUs are gone. A gets none.
    await until(async () => [...(await placedBy(ids)).values()].reduce((x, y) => x + y, 0) === 4);
    await new Promise((r) => setTimeout(r, 500)); // and no more
    const placed = await placedBy(ids);
    expect(Object.fromEntries(placed)).toEqual({ [b.id]: 4 });
    // A's jobs still wait, and say why: no longer "no ready node" (the node is
    // back) but GPUs (within REASON_REFRESH_MS = 5 s of the change). The
    // first of them holds the EASY reservation; the rest wait behind it.
    const reasons = await until(
      async () => {
        const rs = await Promise.all(ids.slice(0, 4).map(async (id) => (await job(id)).status_reason ?? ''));
        return rs.every((r) => r.startsWith('0 of 1 ready flex or fast node can hold it: ')) ? rs : false;
      },
      8000,
      "A's jobs explain their wait with the node back",
    );
    expect(reasons[0]).toMatch(/1 has no free GPU with ≥ 40 GB; expected to start by .* \(reserved\)$/);
    for (const r of reasons.slice(1)) expect(r).toBe('0 of 1 ready flex or fast node can hold it: 1 is reserved for a higher job');
    for (const id of ids.slice(0, 4)) expect((await job(id)).status).toBe('queued');
  });

  it('weights 3 : 1 from an empty fleet: 8 GPUs split 6 : 2', async () => {
    const heavy = await t.newUser('fs-heavy');
    const light = await t.newUser('fs-light');
    const patched = await t.call({ method: 'PATCH', url: `/users/${heavy.id}`, payload: { fair_share_weight: 3 } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json().fair_share_weight).toBe(3);
    // Weights are read when the coordinator starts (and on every sweep).
    await coordinator();

    // Eight one-GPU FLEX jobs each, the light user first, before any node exists: they wait.
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await submit({ tier: 'FLEX' }, light.key));
    for (let i = 0; i < 8; i++) ids.push(await submit({ tier: 'FLEX' }, heavy.key));
    for (const id of ids) await until(statusIs(id, 'queued'));
    expect((await job(ids[0]!)).status_reason).toBe('no ready flex or fast node');

    // One flex node of 8 GPUs registers; one pass places 8 jobs. Weighted
    // DRF, share = GPUs / 8 / weight, ties to the older head job (light's):
    //   light 0 = heavy 0        → light (1/8)
    //   heavy 0     < 1/8        → heavy (1/24), heavy (2/24), heavy (3/24 = 1/8)
    //   light 1/8  = heavy 1/8   → light (2/8)
    //   heavy 3/24  < 6/24       → heavy (4/24), heavy (5/24), heavy (6/24)
    // light 2, heavy 6: the GPUs split as the weights, 1 : 3.
    const flex = unregistered('flex', 8, 80);
    await flex.register();
    flex.heartbeats(HB);
    await until(async () => [...(await placedBy(ids)).values()].reduce((x, y) => x + y, 0) === 8);
    await new Promise((r) => setTimeout(r, 500));
    expect(Object.fromEntries(await placedBy(ids))).toEqual({ [light.id]: 2, [heavy.id]: 6 });
  });
});

describe('EASY backfill', () => {
  it('a blocked job gets a reservation; a short job that ends before it is backfilled, a long one waits', async () => {
    await coordinator();
    const fast = await node('fast', 8, 80);
    // 2 of the 8 GPUs are held for 600 s: the node is expected to be whole again then.
    const running = await submit({ tier: 'FAST', gpu_count: 2, expected_duration_sec: 600 });
    await fast.expect('run');
    await fast.started({ job_id: running, attempt: 1 });
    await until(statusIs(running, 'running'));

    // A high-priority job needing all 8 is blocked; it gets the node reserved from the running job's expected end.
    const high = await submit({ tier: 'FAST', gpu_count: 8, priority: 10, expected_duration_sec: 3600 });
    const blocked = await until(async () => {
      const j = await job(high);
      return j.status === 'queued' && j.status_reason?.includes('(reserved)') ? j : false;
    });
    expect(blocked.status_reason).toMatch(/1 has fewer than 8 free GPUs with ≥ 40 GB; expected to start by \d\d:\d\d UTC \(reserved\)$/);

    // Later, lower jobs that fit in the 6 free GPUs now:
    //   short: 60 s, ends by now + 60 s < the reserved start (≈ now + 600 s) → backfilled;
    //   long: 3600 s, would still run at the reserved start → waits.
    const short = await submit({ tier: 'FAST', gpu_count: 2, expected_duration_sec: 60 });
    const long = await submit({ tier: 'FAST', gpu_count: 2, expected_duration_sec: 3600 });
    const run = await fast.expect('run');
    expect(run.job_id).toBe(short);
    await fast.started({ job_id: short, attempt: 1 }); // (a run never started would be re-sent)
    const backfilled = await until(statusIs(short, 'running'));
    expect(backfilled.placement).toMatchObject({ step: 'backfill', position: null });
    expect(backfilled.placement!.best[0]!.node_id).toBe(fast.nodeId);

    const waits = await until(async () => {
      const j = await job(long);
      return j.status === 'queued' && j.placement ? j : false;
    });
    expect(waits.status_reason).toBe('0 of 1 ready fast node can hold it: 1 is reserved for a higher job');
    expect(waits.placement).toMatchObject({ rejected: { reservation: 1, gpus: 0 } });
    expect(await fast.nextCommand(1000)).toBeNull();
    expect((await job(high)).status).toBe('queued');
  });
});

describe('gangs through the coordinator', () => {
  it('a gang larger than every node shape the fleet ever had fails fast', async () => {
    await coordinator();
    await node('fast');
    await node('fast');
    const id = await submit({ tier: 'FAST', node_count: 3, gpu_count: 4 });
    const failed = await until(statusIs(id, 'failed'), 5000);
    expect(failed.status_reason).toBe(
      'unschedulable: too few fast nodes are large enough: a gang of 3 needs 3 nodes that can each hold a member, 2 can',
    );
  });

  it('all or nothing: with 2 of 3 nodes ready it waits, naming the gang; once the third registers, all 3 start with ranks 0..2', async () => {
    await coordinator();
    const a = await node('fast');
    const b = await node('fast');
    const c = await node('fast');
    // The third node goes silent and is lost: its shape is known, but it cannot take work.
    c.stopHeartbeats();
    await until(async () => (await nodeState(c.nodeId)) === 'lost');

    const id = await submit({ tier: 'FAST', node_count: 3, gpu_count: 4, expected_duration_sec: 60 });
    const queued = await until(async () => {
      const j = await job(id);
      return j.status === 'queued' && j.placement ? j : false;
    });
    expect(queued.status_reason).toBe(
      '0 of 2 ready fast nodes can hold it: a gang of 3 needs 3 nodes, 2 can hold a member now',
    );
    expect(queued.placement).toMatchObject({ nodes: 3, rejected: { node_ready: 1, gang: 2 } });
    // Nothing was started on the two free nodes (all or nothing).
    expect(await a.nextCommand(500)).toBeNull();
    expect(await b.nextCommand(500)).toBeNull();
    expect(queued.placements).toEqual([]);

    // The third node comes back and registers again.
    c.heartbeats(HB);
    await c.register();
    const scheduled = await until(statusIs(id, 'scheduled'));
    expect(scheduled.placements).toHaveLength(3);
    expect(new Set(scheduled.placements.map((p) => p.node_id))).toEqual(new Set([a.nodeId, b.nodeId, c.nodeId]));
    expect(scheduled.node_id).toBe(scheduled.placements[0]!.node_id);
    expect(scheduled.gpu_indices).toEqual(scheduled.placements[0]!.gpu_indices);

    // Every member gets its own run command: its rank is its place in `placements`.
    const byNode = new Map([a, b, c].map((n) => [n.nodeId, n]));
    const master = scheduled.placements[0]!.node_id; // scripted agents report no addr: the node id stands in
    for (const [rank, p] of scheduled.placements.entries()) {
      const run = await byNode.get(p.node_id)!.expect('run');
      expect(run).toMatchObject({ job_id: id, attempt: 1, gpu_indices: p.gpu_indices });
      expect(run.gpu_indices).toHaveLength(4);
      expect(run.env).toMatchObject({ SCALAR_NODE_RANK: String(rank), SCALAR_NODE_COUNT: '3', SCALAR_MASTER_ADDR: master });
    }

    // The attempt completes once every member has exited 0.
    for (const n of [a, b, c]) await n.started({ job_id: id, attempt: 1 });
    await until(statusIs(id, 'running'));
    await a.exited({ job_id: id, attempt: 1 }, 0);
    await b.exited({ job_id: id, attempt: 1 }, 0);
    await new Promise((r) => setTimeout(r, 300));
    expect((await job(id)).status).toBe('running');
    await c.exited({ job_id: id, attempt: 1 }, 0);
    expect((await until(statusIs(id, 'completed'))).exit_code).toBe(0);
  });
});

describe('gang failure', () => {
  it('the first member to fail decides: rank 1 exits 3, rank 0 is killed (143), the job fails with code 3', async () => {
    await coordinator();
    const { id, rank0, rank1 } = await scheduledGang();
    await startMembers(id, [rank0, rank1]);

    await rank1.exited({ job_id: id, attempt: 1 }, 3);
    // Rank 0 is told to stop at once; rank 1's GPUs are free already, rank 0's only once it is gone.
    const kill = await rank0.expect('kill');
    expect(kill).toMatchObject({ job_id: id, attempt: 1, grace_sec: 1, reason: `gang member on ${rank1.nodeId} exited with code 3` });
    const heldOn = async () =>
      (
        await t.db.orm.em
          .fork()
          .execute<{ node_id: string }[]>(`select distinct node_id from allocations where job_id = ? and released_at is null`, [id])
      ).map((r) => r.node_id);
    await until(async () => (await heldOn()).length === 1);
    expect(await heldOn()).toEqual([rank0.nodeId]);
    expect((await job(id)).status).toBe('running');

    await rank0.exited({ job_id: id, attempt: 1 }, 143, true);
    const failed = await until(statusIs(id, 'failed'));
    expect(failed.exit_code).toBe(3);
    expect(failed.status_reason).toBe('exited with code 3');
    expect(failed.failure_code).toBe('gang_member_failed');
    expect(await heldOn()).toEqual([]);
  });
});

describe('a gang member whose run was lost', () => {
  it('is sent its run again once the node\'s heartbeats show it never started, even though the other member runs', async () => {
    await coordinator();
    const { id, rank0, rank1 } = await scheduledGang();
    await rank0.expect('run');
    await rank0.started({ job_id: id, attempt: 1 });
    await until(statusIs(id, 'running'));
    // Rank 1's run is taken off its queue and dropped (as if lost): its heartbeats say it runs nothing.
    const lost = await rank1.expect('run');
    expect(lost.env.SCALAR_NODE_RANK).toBe('1');
    // After three heartbeat intervals the coordinator sends it again, to rank 1 only.
    const again = await rank1.expect('run', 5000);
    expect(again).toMatchObject({ job_id: id, attempt: 1, env: expect.objectContaining({ SCALAR_NODE_RANK: '1', SCALAR_NODE_COUNT: '2' }) });
    expect(await rank0.nextCommand(300)).toBeNull();
  });
});

describe('gang failure across a coordinator restart', () => {
  it('the recorded first failure still decides after a new coordinator takes over: the surviving member is killed again, and its exit 0 does not complete the job', async () => {
    const first = await coordinator();
    const { id, rank0, rank1 } = await scheduledGang();
    await startMembers(id, [rank0, rank1]);

    // Rank 1 fails; the failure is in the row (the user sees it) before rank 0 is gone.
    await rank1.exited({ job_id: id, attempt: 1 }, 3);
    await rank0.expect('kill');
    const failing = await until(async () => {
      const j = await job(id);
      return j.status_reason === `gang member on ${rank1.nodeId} exited with code 3; stopping the other members` ? j : false;
    });
    expect(failing.status).toBe('running');
    expect(failing.failure_code).toBe('gang_member_failed');

    // The coordinator goes away; its successor rebuilds from Postgres and kills rank 0 again.
    await first.stop();
    await coordinator();
    expect(await rank0.expect('kill')).toMatchObject({ job_id: id, attempt: 1, reason: `gang member on ${rank1.nodeId} exited with code 3` });

    // Rank 0 ends cleanly (it caught SIGTERM and exited 0): the gang still failed, with rank 1's code.
    await rank0.exited({ job_id: id, attempt: 1 }, 0);
    const failed = await until(statusIs(id, 'failed'));
    expect(failed.exit_code).toBe(3);
    // The code written before the takeover is the one the failed job keeps.
    expect(failed.failure_code).toBe('gang_member_failed');
  });
});

describe('usage and cost', () => {
  it('a finished job shows in GET /usage with its GPU-seconds and cost, and its cost_usd matches', async () => {
    const u = await t.newUser('usage-flow');
    await coordinator();
    const fast = await node('fast');
    const submittedAt = Date.now();
    const id = await submit({ tier: 'FAST', gpu_count: 2 }, u.key);
    await fast.expect('run');
    await fast.started({ job_id: id, attempt: 1 });
    await until(statusIs(id, 'running'));
    await new Promise((r) => setTimeout(r, 1000));
    await fast.exited({ job_id: id, attempt: 1 }, 0);
    await until(statusIs(id, 'completed'));
    const elapsedSec = (Date.now() - submittedAt) / 1000;

    const res = await t.call({ method: 'GET', url: '/usage', key: u.key });
    expect(res.statusCode, res.body).toBe(200);
    const usage = res.json();
    expect(usage.prices).toEqual({ FAST: PRICE_FAST_GPU_HOUR, FLEX: PRICE_FLEX_GPU_HOUR });
    const fastUsage = usage.totals.FAST;
    expect(fastUsage.attempts).toBe(1);
    // 2 GPUs held for at least the 1 s it ran, at most as long as the test waited.
    expect(fastUsage.gpu_seconds).toBeGreaterThanOrEqual(2 * 1.0);
    expect(fastUsage.gpu_seconds).toBeLessThanOrEqual(2 * elapsedSec);
    expect(fastUsage.gpu_hours).toBeCloseTo(fastUsage.gpu_seconds / 3600, 6);
    // cost = gpu_seconds / 3600 × 3.6 $/GPU-hour = gpu_seconds × $0.001
    expect(fastUsage.cost_usd).toBeCloseTo(fastUsage.gpu_seconds * 0.001, 6);
    expect(usage.totals.FLEX).toEqual({ attempts: 0, gpu_seconds: 0, gpu_hours: 0, cost_usd: 0 });

    // The record itself: one row for the attempt on its node.
    const records = await t.db.orm.em
      .fork()
      .execute(`select node_id, tier, gpu_count, gpu_seconds, cost_usd from usage_records where job_id = ?`, [id]);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ node_id: fast.nodeId, tier: 'FAST', gpu_count: 2 });
    expect(Number(records[0]!.gpu_seconds)).toBeCloseTo(fastUsage.gpu_seconds, 5);

    // The job's own cost is the recorded one (nothing is held any more).
    const done = await job(id);
    expect(done.cost_usd).toBe(fastUsage.cost_usd);
    expect(done.cost_usd).toBeCloseTo(Number(records[0]!.cost_usd), 6);
  });
});
