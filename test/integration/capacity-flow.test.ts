/**
 * Capacity blocks end to end through the API, with the real coordinator
 * running its capacity actor (the simulated marketplace, SCALAR_AUTOSCALE=0:
 * only an admin buys), over the real Postgres and NATS. A bought block's
 * nodes are simulated agents that register over NATS like any node; jobs
 * run on them with the simulated runtime (expected_duration_sec at speed 1).
 *
 * Each test starts from an empty fleet: its coordinator (and with it the
 * capacity actor and the block agents it launched) is stopped afterwards,
 * and jobs, nodes and blocks are truncated.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningCoordinator } from '../../actors/coordinator/index.ts';
import { schedulingFromConfig } from '../../actors/coordinator/settings.ts';
import { parseConfig, type Config } from '../../src/config/index.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { resetCluster, startTestCoordinator, until } from '../helpers/coordinator.ts';
import { expectError } from '../helpers/expect.ts';

const HB = 200;
const MARGIN_SEC = 60;

let t: TestApp;
let cfg: Config;
let dataDir: string;
let running: RunningCoordinator | undefined;

interface Block {
  id: string;
  status: string;
  status_reason: string | null;
  tier: string;
  pool: string;
  nodes: number;
  gpus_per_node: number;
  vram_per_gpu_gb: number;
  starts_at: string;
  ends_at: string | null;
  released_at: string | null;
  node_ids: string[];
}

interface Job {
  id: string;
  status: string;
  status_reason: string | null;
  node_id: string | null;
  exit_code: number | null;
  placement: { rejected: Record<string, number>; reason: string | null } | null;
}

beforeAll(async () => {
  t = await startTestApp({ SCALAR_HEARTBEAT_INTERVAL_MS: String(HB) });
  dataDir = await mkdtemp(join(tmpdir(), 'scalar-capacity-flow-'));
  cfg = parseConfig({
    DATABASE_URL: t.testDb.url,
    LOG_LEVEL: 'silent',
    SCALAR_NATS_PREFIX: t.cfg.SCALAR_NATS_PREFIX,
    SCALAR_LOG_MAX_MB: '64',
    SCALAR_DATA_DIR: dataDir,
    SCALAR_HEARTBEAT_INTERVAL_MS: String(HB),
    SCALAR_PROVIDER: 'simulated',
    // A bought block's nodes come up 1 s after the buy, so the buy is seen pending first.
    SCALAR_SIM_PROVISION_DELAY_SEC: '1',
    SCALAR_AUTOSCALE: '0',
    // Housekeeping (a draining block that became idle is released) every half second.
    SCALAR_AUTOSCALE_INTERVAL_SEC: '0.5',
    SCALAR_BLOCK_MARGIN_SEC: String(MARGIN_SEC),
  });
});

afterEach(async () => {
  await running?.stop();
  running = undefined;
  // Each test starts from an empty cluster: no jobs, nodes or undelivered messages.
  await resetCluster(t, ['capacity_blocks', 'capacity_events']);
});

afterAll(async () => {
  await t?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** The coordinator as `scalar coordinator` runs it, with its capacity actor. */
async function coordinator(): Promise<void> {
  running = startTestCoordinator(t, HB, {
    scheduling: schedulingFromConfig(cfg),
    capacity: { config: cfg, simulatedSpeed: 1 },
  });
  await running.leading;
}

const get = (url: string) => t.call({ method: 'GET', url });
const block = async (id: string): Promise<Block> => (await get(`/capacity/blocks/${id}`)).json();
const job = async (id: string): Promise<Job> => (await get(`/jobs/${id}`)).json();

/** POST /capacity/blocks; expects 201 and a pending block. */
async function buy(body: { instance_type: string; nodes: number; hours: number; tier: 'fast' | 'flex' }): Promise<Block> {
  const res = await t.call({ method: 'POST', url: '/capacity/blocks', payload: body });
  expect(res.statusCode, res.body).toBe(201);
  const b: Block = res.json();
  expect(res.headers.location).toBe(`/capacity/blocks/${b.id}`);
  expect(b.status).toBe('pending');
  return b;
}

/** Waits until the block is active and all its nodes are ready. */
async function active(id: string): Promise<Block> {
  const b = await until(async () => {
    const x = await block(id);
    return x.status === 'active' && x.node_ids.length === x.nodes ? x : false;
  }, 10_000, `block ${id} active with its nodes`);
  for (const n of b.node_ids) await until(async () => (await get(`/nodes/${n}`)).json().state === 'ready', 10_000, `${n} ready`);
  return b;
}

async function submit(over: Record<string, unknown>): Promise<string> {
  const res = await t.call({ method: 'POST', url: '/jobs', payload: { ...exampleJob(), tier: 'FLEX', gpu_count: 1, vram_per_gpu_gb: 40, ...over } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}

const statusIs = (id: string, status: string) => async () => {
  const j = await job(id);
  return j.status === status ? j : false;
};

describe('buying a block', () => {
  it('201 pending → its agents register over NATS → active with node_ids; the nodes are in the flex pool and run FLEX jobs', async () => {
    await coordinator();
    const bought = await buy({ instance_type: '8xA100-40', nodes: 2, hours: 1, tier: 'flex' });
    expect(bought).toMatchObject({ tier: 'flex', pool: 'flex', nodes: 2, gpus_per_node: 8, vram_per_gpu_gb: 40, node_ids: [] });
    // The block lasts `hours` from when its nodes are ready.
    expect(Date.parse(bought.ends_at!) - Date.parse(bought.starts_at)).toBe(3600_000);

    const b = await active(bought.id);
    expect(b.node_ids).toEqual([`${b.id}-n1`, `${b.id}-n2`]);

    // GET /nodes: both, flex, ready, 8 free GPUs of 40 GB each.
    const nodes = (await get('/nodes?pool=flex')).json().nodes as { id: string; pool: string; state: string; gpus: { vram_gb: number }[]; free: { gpus: number } }[];
    expect(nodes.map((n) => n.id).sort()).toEqual(b.node_ids);
    for (const n of nodes) {
      expect(n).toMatchObject({ pool: 'flex', state: 'ready', free: { gpus: 8 } });
      expect(n.gpus.map((g) => g.vram_gb)).toEqual(Array(8).fill(40));
    }

    // GET /capacity: the block's 2 × 8 GPUs are the flex pool.
    const overview = (await get('/capacity')).json();
    expect(overview.pools.flex).toEqual({ nodes: 2, nodes_ready: 2, gpus_total: 16, gpus_used: 0, gpus_free: 16 });
    expect(overview.pools.fast).toMatchObject({ nodes: 0, gpus_total: 0 });
    expect(overview.blocks).toEqual({ pending: 0, active: 1, draining: 0, released: 0 });

    // A FLEX job runs on one of them (simulated: 2 s) and completes.
    const id = await submit({ expected_duration_sec: 2 });
    const done = await until(statusIs(id, 'completed'), 10_000);
    expect(b.node_ids).toContain(done.node_id);
    expect(done.exit_code).toBe(0);
    const events = (await get('/capacity/events')).json().events as { action: string; block_id: string | null }[];
    expect(events.filter((e) => e.block_id === b.id).map((e) => e.action).sort()).toEqual(['buy', 'provisioned']);
  });

  it('refusals: an unknown instance type → 400 unknown_instance_type; releasing an unknown block → 404', async () => {
    await coordinator();
    const res = await t.call({ method: 'POST', url: '/capacity/blocks', payload: { instance_type: '8xB200-192', nodes: 1, hours: 1, tier: 'flex' } });
    const err = expectError(res, 400, 'unknown_instance_type');
    expect(err.message).toMatch(/8xB200-192/);
    expect((await get('/capacity/blocks')).json().blocks).toEqual([]);

    expectError(await t.call({ method: 'POST', url: '/capacity/blocks/blk_0123456789abcdef/release' }), 404, 'block_not_found');
  });
});

describe('placement keeps jobs off blocks that end too soon', () => {
  it('a job whose expected end (+ margin) is past the block end waits and says why; a short one runs there', async () => {
    await coordinator();
    // Waiting before the block exists, as a job the autoscaler would buy for.
    const early = await submit({ expected_duration_sec: 3600 });
    await until(statusIs(early, 'queued'));

    // 0.1 h = 360 s. A 3600 s job needs 3600 + 60 (margin) s of block: too long.
    const bought = await buy({ instance_type: '8xA100-40', nodes: 1, hours: 0.1, tier: 'flex' });
    expect(Date.parse(bought.ends_at!) - Date.parse(bought.starts_at)).toBe(360_000);
    const b = await active(bought.id);

    // Submitted once the block is up: it waits, the node counted under block_time.
    const late = await submit({ expected_duration_sec: 3600 });
    const waits = await until(async () => {
      const j = await job(late);
      return j.status === 'queued' && j.placement ? j : false;
    });
    expect(waits.status_reason).toBe('0 of 1 ready flex or fast node can hold it: 1 belongs to a block that ends too soon');
    expect(waits.placement!.rejected).toMatchObject({ block_time: 1, gpus: 0 });

    // The one that waited before the block came is not placed there either
    // (and its reason catches up with the new node within REASON_REFRESH_MS).
    const early2 = await until(
      async () => {
        const j = await job(early);
        return j.status_reason?.includes('ends too soon') ? j : j.status === 'queued' ? false : j;
      },
      8000,
      'the early job says the block ends too soon',
    );
    expect(early2.status, early2.status_reason ?? '').toBe('queued');
    expect(early2.node_id).toBeNull();

    // A short job (1 s + 60 s margin < 360 s) runs there.
    const short = await submit({ expected_duration_sec: 1 });
    const done = await until(statusIs(short, 'completed'), 10_000);
    expect(done.node_id).toBe(b.node_ids[0]);
    for (const id of [early, late]) expect((await job(id)).status).toBe('queued');
  });
});

describe('releasing a block', () => {
  it('a busy block answers 202 draining, takes no new jobs, and is released once its job ends; the events tell the story', async () => {
    await coordinator();
    const b = await active((await buy({ instance_type: '8xA100-40', nodes: 1, hours: 1, tier: 'flex' })).id);
    const nodeId = b.node_ids[0]!;
    const busy = await submit({ expected_duration_sec: 3 });
    await until(statusIs(busy, 'running'));

    const res = await t.call({ method: 'POST', url: `/capacity/blocks/${b.id}/release` });
    expect(res.statusCode, res.body).toBe(202);
    expect(res.json()).toMatchObject({ id: b.id, status: 'draining', node_ids: [nodeId] });
    await until(async () => (await get(`/nodes/${nodeId}`)).json().state === 'draining');

    // A job submitted now does not go there.
    const after = await submit({ expected_duration_sec: 1 });
    await until(statusIs(after, 'queued'));

    // The running job ends (3 s); the block is released soon after, and its node stops.
    await until(statusIs(busy, 'completed'), 10_000);
    const released = await until(async () => {
      const x = await block(b.id);
      return x.status === 'released' ? x : false;
    }, 5000, 'block released');
    expect(released.released_at).not.toBeNull();
    expect((await job(after)).status).toBe('queued');
    expect((await job(after)).node_id).toBeNull();

    const events = (await get('/capacity/events')).json().events as { action: string; block_id: string | null; inputs: Record<string, unknown> }[];
    const mine = events.filter((e) => e.block_id === b.id).reverse(); // oldest first
    expect(mine.map((e) => e.action)).toEqual(['buy', 'provisioned', 'release', 'idle']);
    expect(mine[2]!.inputs).toMatchObject({ from: 'active', to: 'draining', busy: true });
    expect(mine[3]!.inputs).toMatchObject({ from: 'draining', to: 'released' });

    // Releasing it again: 409 block_released.
    expectError(await t.call({ method: 'POST', url: `/capacity/blocks/${b.id}/release` }), 409, 'block_released');
  });

  it('an idle block is released at once: 200 released', async () => {
    await coordinator();
    const b = await active((await buy({ instance_type: '8xA100-40', nodes: 1, hours: 1, tier: 'flex' })).id);
    const [nodeId] = b.node_ids;
    const res = await t.call({ method: 'POST', url: `/capacity/blocks/${b.id}/release` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id: b.id, status: 'released' });
    // Its node was closed to new jobs before the release (a job submitted now must not land on it)...
    const node = await t.call({ method: 'GET', url: `/nodes/${nodeId}` });
    expect(node.statusCode === 404 || node.json().state !== 'ready', node.body).toBe(true);
    const late = await submit({ expected_duration_sec: 1 });
    // ...and once its agent is gone, the node is forgotten: GET /nodes no longer lists it.
    await until(async () => (await t.call({ method: 'GET', url: `/nodes/${nodeId}` })).statusCode === 404, 10_000);
    expect((await t.call({ method: 'GET', url: `/jobs/${late}` })).json()).toMatchObject({ status: 'queued', node_id: null });
  });
});
