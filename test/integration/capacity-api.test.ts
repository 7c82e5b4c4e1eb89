/**
 * GET /capacity, the capacity blocks and events, and buy/release (admin only).
 * Nodes, GPUs, allocations, blocks and events are written by the coordinator
 * and its capacity actor, so they are inserted directly here; the capacity
 * actor's side of buy/release is a responder on the real NATS subject
 * (`<prefix>.coord.capacity`), which tests the API's contract with it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from '@nats-io/transport-node';
import {
  capacityRequestSchema,
  encodeJson,
  type CapacityBlockMessage,
  type CapacityReply,
  type CapacityRequest,
} from '../../src/wire/messages.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { expectError, expectFieldError } from '../helpers/expect.ts';

let t: TestApp;
let user: { id: string; key: string };
let adminId: string;
const REQUEST_TIMEOUT_MS = 600;

beforeAll(async () => {
  t = await startTestApp({}, { capacity: { requestTimeoutMs: REQUEST_TIMEOUT_MS } });
  user = await t.newUser('not-an-admin');
  const [row] = await sql("select user_id from api_keys where name = 'SCALAR_BOOTSTRAP_KEY'");
  adminId = row!.user_id;
});
afterAll(() => t?.close());

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const sql = (q: string, params: unknown[] = []) => t.db.orm.em.fork().execute(q, params);
const get = (url: string, key?: string) => t.call({ method: 'GET', url, ...(key ? { key } : {}) });
const post = (url: string, payload?: unknown, key?: string) =>
  t.call({ method: 'POST', url, ...(payload === undefined ? {} : { payload: payload as object }), ...(key ? { key } : {}) });

/** A node and its GPUs, as the coordinator writes them on registration. */
async function insertNode(n: { id: string; pool: 'fast' | 'flex'; state: string; gpus: number; blockId?: string }) {
  await sql(
    `insert into nodes (id, pool, state, runtime, cpu_cores, ram_gb, drain_requested, block_id, registered_at, last_heartbeat_at, updated_at)
     values (?, ?, ?, 'simulated', 32, 256, false, ?, now(), now(), now())`,
    [n.id, n.pool, n.state, n.blockId ?? null],
  );
  for (let i = 0; i < n.gpus; i++) {
    await sql(`insert into gpus (node_id, "index", uuid, model, vram_gb) values (?, ?, ?, 'H100', 80)`, [n.id, i, `GPU-${n.id}-${i}`]);
  }
}

/** A job (submitted through the API) in `status`, optionally `agoSec` old. */
async function job(patch: Record<string, unknown>, status: string, agoSec = 0): Promise<string> {
  const res = await t.call({ method: 'POST', url: '/jobs', payload: { ...exampleJob(), ...patch } });
  expect(res.statusCode, res.body).toBe(201);
  const id = res.json().id;
  await sql(`update jobs set status = ?, created_at = now() - make_interval(secs => ?) where id = ?`, [status, agoSec, id]);
  return id;
}

async function allocate(jobId: string, nodeId: string, gpus: number[], released = false) {
  for (const g of gpus) {
    await sql(
      `insert into allocations (job_id, attempt, node_id, gpu_index, created_at, released_at)
       values (?, 1, ?, ?, now(), ${released ? 'now()' : 'null'})`,
      [jobId, nodeId, g],
    );
  }
}

interface BlockSpec {
  id: string;
  tier?: 'fast' | 'flex';
  status?: 'pending' | 'active' | 'draining' | 'released';
  /** created_at, minutes before a fixed instant (so ties can be made on purpose). */
  minutesAgo?: number;
  nodes?: number;
}
const T0 = '2026-11-29T10:00:00.123456Z';

/** A capacity_blocks row as the capacity actor writes it. */
async function insertBlock(b: BlockSpec) {
  await sql(
    `insert into capacity_blocks (id, provider, external_id, instance_type, tier, pool, nodes, gpus_per_node, vram_per_gpu_gb,
       cpu_per_node, ram_per_node_gb, starts_at, ends_at, cost_per_hour, status, status_reason, created_by, created_at, updated_at, released_at)
     values (?, 'simulated', ?, 'sim-8xh100', ?, ?, ?, 8, 80, 96, 1024, ?::timestamptz, ?::timestamptz + interval '24 hours', 19.5, ?, ?,
       'autoscaler', ?::timestamptz - make_interval(mins => ?), ?::timestamptz, ${b.status === 'released' ? '?::timestamptz' : 'null'})`,
    [
      b.id,
      `ext-${b.id}`,
      b.tier ?? 'fast',
      b.tier ?? 'fast',
      b.nodes ?? 2,
      T0,
      T0,
      b.status ?? 'active',
      b.status === 'draining' ? 'released by an operator; waiting for 1 job' : null,
      T0,
      b.minutesAgo ?? 0,
      T0,
      ...(b.status === 'released' ? [T0] : []),
    ],
  );
}

describe('GET /capacity', () => {
  it('pools, queues and blocks, aggregated from Postgres', async () => {
    // fast: two ready nodes (4 + 2 GPUs), a draining one (2), a lost one (8: not counted).
    await insertNode({ id: 'ov-f1', pool: 'fast', state: 'ready', gpus: 4 });
    await insertNode({ id: 'ov-f2', pool: 'fast', state: 'ready', gpus: 2 });
    await insertNode({ id: 'ov-f3', pool: 'fast', state: 'draining', gpus: 2 });
    await insertNode({ id: 'ov-f4', pool: 'fast', state: 'lost', gpus: 8 });
    // flex: a ready node (2 GPUs) and one still registering (1).
    await insertNode({ id: 'ov-x1', pool: 'flex', state: 'ready', gpus: 2 });
    await insertNode({ id: 'ov-x2', pool: 'flex', state: 'registering', gpus: 1 });
    const running = await job({ tier: 'FAST', gpu_count: 2 }, 'running');
    await allocate(running, 'ov-f1', [0, 1]);
    await allocate(running, 'ov-f1', [2], true); // released: history, holds nothing
    const draining = await job({ tier: 'FAST', gpu_count: 1 }, 'running');
    await allocate(draining, 'ov-f3', [0]);
    const lost = await job({ tier: 'FAST', gpu_count: 1 }, 'running');
    await allocate(lost, 'ov-f4', [0]); // on a lost node: not counted
    const flex = await job({ tier: 'FLEX', gpu_count: 1 }, 'running');
    await allocate(flex, 'ov-x1', [1]);
    // Waiting: FAST pending 2 GPUs (waiting 120 s), FAST queued gang 3 × 2 GPUs, FLEX queued 1 GPU.
    await job({ tier: 'FAST', gpu_count: 2 }, 'pending', 120);
    await job({ tier: 'FAST', gpu_count: 2, node_count: 3 }, 'queued', 30);
    await job({ tier: 'FLEX', gpu_count: 1 }, 'queued', 10);
    await job({ tier: 'FLEX', gpu_count: 4 }, 'completed', 5000); // finished: not waiting
    // Blocks: 2 active, 1 draining, 3 released, 1 pending.
    for (const [i, status] of (['active', 'active', 'draining', 'released', 'released', 'released', 'pending'] as const).entries()) {
      await insertBlock({ id: `ov-b${i}`, status });
    }

    const res = await get('/capacity');
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body).toEqual({
      pools: {
        // total 4 + 2 + 2 = 8 (lost excluded); used 2 (f1) + 1 (f3) = 3; free on ready nodes (4 − 2) + 2 = 4.
        fast: { nodes: 4, nodes_ready: 2, gpus_total: 8, gpus_used: 3, gpus_free: 4 },
        // total 2 + 1 = 3; used 1; free on the ready node 2 − 1 = 1.
        flex: { nodes: 2, nodes_ready: 1, gpus_total: 3, gpus_used: 1, gpus_free: 1 },
      },
      queue: {
        // gpus_queued: 2 × 1 + 2 × 3 = 8.
        FAST: { pending: 1, queued: 1, gpus_queued: 8, oldest_wait_sec: expect.any(Number) },
        FLEX: { pending: 0, queued: 1, gpus_queued: 1, oldest_wait_sec: expect.any(Number) },
      },
      blocks: { pending: 1, active: 2, draining: 1, released: 3 },
      at: expect.stringMatching(ISO),
    });
    expect(body.queue.FAST.oldest_wait_sec).toBeGreaterThanOrEqual(120);
    expect(body.queue.FAST.oldest_wait_sec).toBeLessThan(180);
    expect(body.queue.FLEX.oldest_wait_sec).toBeGreaterThanOrEqual(10);
    expect(body.queue.FLEX.oldest_wait_sec).toBeLessThan(60);
  });

  it('with nothing waiting, oldest_wait_sec is null', async () => {
    await sql(`update jobs set status = 'cancelled' where status in ('pending', 'queued')`);
    const body = (await get('/capacity')).json();
    expect(body.queue).toEqual({
      FAST: { pending: 0, queued: 0, gpus_queued: 0, oldest_wait_sec: null },
      FLEX: { pending: 0, queued: 0, gpus_queued: 0, oldest_wait_sec: null },
    });
  });

  it('takes no query parameters', async () => {
    expectFieldError(await get('/capacity?pool=fast'), 'pool');
  });
});

describe('admin only', () => {
  it.each([
    ['GET', '/capacity'],
    ['GET', '/capacity/blocks'],
    ['GET', '/capacity/blocks/ov-b0'],
    ['POST', '/capacity/blocks'],
    ['POST', '/capacity/blocks/ov-b0/release'],
    ['GET', '/capacity/events'],
  ] as const)('%s %s → 403 for a user key, 401 without one', async (method, url) => {
    expectError(await t.call({ method, url, key: user.key }), 403, 'forbidden');
    expectError(await t.call({ method, url, key: null }), 401, 'unauthorized');
  });
});

describe('GET /capacity/blocks and /capacity/blocks/{id}', () => {
  beforeAll(async () => {
    // Newest first: ls-5 (0 min), then ls-3 and ls-4 at the same instant (id breaks the tie: ls-4 first), ls-2, ls-1.
    await insertBlock({ id: 'ls-1', minutesAgo: 40, tier: 'flex', status: 'released' });
    await insertBlock({ id: 'ls-2', minutesAgo: 30, tier: 'fast', status: 'active' });
    await insertBlock({ id: 'ls-3', minutesAgo: 20, tier: 'flex', status: 'active' });
    await insertBlock({ id: 'ls-4', minutesAgo: 20, tier: 'fast', status: 'draining' });
    await insertBlock({ id: 'ls-5', minutesAgo: 0, tier: 'fast', status: 'pending', nodes: 3 });
    await insertNode({ id: 'ls-2-n1', pool: 'fast', state: 'ready', gpus: 1, blockId: 'ls-2' });
    await insertNode({ id: 'ls-2-n0', pool: 'fast', state: 'ready', gpus: 1, blockId: 'ls-2' });
  });

  /** Every page with `query`, following next_cursor; only blocks of this describe. */
  async function walk(query: string): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(`/capacity/blocks?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      ids.push(...body.blocks.map((b: { id: string }) => b.id));
      cursor = body.next_cursor;
      pages++;
    } while (cursor !== null);
    return { ids: ids.filter((id) => id.startsWith('ls-')), pages };
  }

  it('a block with every field and the nodes that registered for it', async () => {
    const res = await get('/capacity/blocks/ls-2');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      id: 'ls-2',
      provider: 'simulated',
      instance_type: 'sim-8xh100',
      tier: 'fast',
      pool: 'fast',
      nodes: 2,
      gpus_per_node: 8,
      vram_per_gpu_gb: 80,
      cpu_per_node: 96,
      ram_per_node_gb: 1024,
      starts_at: '2026-11-29T10:00:00.123Z',
      ends_at: '2026-11-30T10:00:00.123Z',
      cost_per_hour: 19.5,
      status: 'active',
      status_reason: null,
      created_by: 'autoscaler',
      created_at: '2026-11-29T09:30:00.123Z',
      updated_at: '2026-11-29T10:00:00.123Z',
      released_at: null,
      node_ids: ['ls-2-n0', 'ls-2-n1'],
    });
    expect((await get('/capacity/blocks/ls-1')).json()).toMatchObject({ status: 'released', released_at: '2026-11-29T10:00:00.123Z', node_ids: [] });
  });

  it('lists newest first, in the same shape', async () => {
    const body = (await get('/capacity/blocks')).json();
    expect(body.next_cursor).toBeNull();
    expect(body.blocks.map((b: { id: string }) => b.id).filter((id: string) => id.startsWith('ls-'))).toEqual(['ls-5', 'ls-4', 'ls-3', 'ls-2', 'ls-1']);
    expect(body.blocks.find((b: { id: string }) => b.id === 'ls-2')).toEqual((await get('/capacity/blocks/ls-2')).json());
  });

  it('pages with limit and cursor: each block exactly once, ties included', async () => {
    const all = await walk('limit=1000');
    expect(all.ids).toEqual(['ls-5', 'ls-4', 'ls-3', 'ls-2', 'ls-1']);
    for (const limit of [1, 2, 3]) {
      const paged = await walk(`limit=${limit}`);
      expect(paged.ids).toEqual(all.ids);
    }
    expect((await walk('limit=1')).pages).toBeGreaterThanOrEqual(5);
  });

  it('a block inserted while paging does not shift the pages', async () => {
    const first = (await get('/capacity/blocks?limit=2&status=active')).json();
    await insertBlock({ id: 'ls-6', minutesAgo: -10, status: 'active' });
    const rest = (await get(`/capacity/blocks?limit=100&status=active&cursor=${first.next_cursor}`)).json();
    const ids = [...first.blocks, ...rest.blocks].map((b: { id: string }) => b.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).not.toContain('ls-6');
    await sql(`delete from capacity_blocks where id = 'ls-6'`);
  });

  it('filters by status and tier', async () => {
    expect((await walk('status=active')).ids).toEqual(['ls-3', 'ls-2']);
    expect((await walk('status=released')).ids).toEqual(['ls-1']);
    expect((await walk('tier=flex')).ids).toEqual(['ls-3', 'ls-1']);
    expect((await walk('tier=fast&status=draining&limit=1')).ids).toEqual(['ls-4']);
  });

  it.each([
    ['status=gone', 'status'],
    ['status=ACTIVE', 'status'],
    ['tier=FAST', 'tier'],
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['cursor=garbage', 'cursor'],
    ['cursor=djE6MTA', 'cursor'], // a GET /jobs cursor
    // The right shape with an impossible date (month 13, hour 25): PostgreSQL would refuse the cast.
    [`cursor=${Buffer.from('b1:2024-13-45T25:61:61.000000Z|blk_0123456789abcdef').toString('base64url')}`, 'cursor'],
    ['sort=id', 'sort'],
  ])('?%s → 400 naming %s', async (q, field) => {
    expectFieldError(await get(`/capacity/blocks?${q}`), field);
  });

  it.each(['no-such-block', 'bad id', 'a%00b', "x' or '1'='1", '-leading'])('GET /capacity/blocks/%s → 404 block_not_found', async (id) => {
    const err = expectError(await get(`/capacity/blocks/${encodeURIComponent(id)}`), 404, 'block_not_found');
    expect(err.details).toEqual({ block_id: id });
  });
});

describe('POST /capacity/blocks and /capacity/blocks/{id}/release', () => {
  let sub: Subscription | undefined;
  afterEach(() => {
    sub?.unsubscribe();
    sub = undefined;
  });

  /** Stands in for the coordinator's capacity actor on the real subject; records what it was asked. */
  async function actor(answer: (req: CapacityRequest) => Promise<CapacityReply | string | null>) {
    const asked: CapacityRequest[] = [];
    sub = t.bus.nc.subscribe(t.bus.t.subjects.coordCapacity, {
      callback: (_err, msg) => {
        const req = capacityRequestSchema.parse(msg.json());
        asked.push(req);
        void answer(req).then((reply) => {
          if (reply === null) return; // never answers
          msg.respond(typeof reply === 'string' ? reply : encodeJson(reply));
        });
      },
    });
    await t.bus.nc.flush();
    return asked;
  }

  /** The block as the actor would send it in its reply. */
  const blockMessage = (id: string, patch: Partial<CapacityBlockMessage> = {}): CapacityBlockMessage => ({
    id,
    provider: 'simulated',
    instance_type: 'sim-8xh100',
    tier: 'flex',
    pool: 'flex',
    nodes: 2,
    gpus_per_node: 8,
    vram_per_gpu_gb: 80,
    cpu_per_node: 96,
    ram_per_node_gb: 1024,
    starts_at: T0,
    ends_at: null,
    cost_per_hour: 12,
    status: 'pending',
    status_reason: 'waiting for 2 nodes to register',
    created_by: `admin:${adminId}`,
    created_at: T0,
    updated_at: T0,
    released_at: null,
    ...patch,
  });

  const buyBody = { instance_type: 'sim-8xh100', nodes: 2, hours: 1.5, tier: 'flex' };

  describe('buy', () => {
    it('with no coordinator running → 503 coordinator_unavailable, at once', async () => {
      const started = Date.now();
      const err = expectError(await post('/capacity/blocks', buyBody), 503, 'coordinator_unavailable');
      expect(err.message).toMatch(/no coordinator answered; is `scalar coordinator` running\?/);
      expect(Date.now() - started).toBeLessThan(REQUEST_TIMEOUT_MS);
    });

    it('a coordinator that does not answer in time → 503 coordinator_unavailable', async () => {
      const asked = await actor(async () => null);
      expectError(await post('/capacity/blocks', buyBody), 503, 'coordinator_unavailable');
      expect(asked).toHaveLength(1);
    });

    it('the actor is asked with the body and who asked; 201 with the block as stored, and its Location', async () => {
      const asked = await actor(async (req) => {
        // The actor writes the row, then answers.
        await insertBlock({ id: 'buy-1', tier: 'flex', status: 'pending' });
        await sql(`update capacity_blocks set created_by = ? where id = 'buy-1'`, [req.by]);
        return { ok: true, block: blockMessage('buy-1') };
      });
      const res = await post('/capacity/blocks', buyBody);
      expect(res.statusCode, res.body).toBe(201);
      expect(res.headers.location).toBe('/capacity/blocks/buy-1');
      expect(res.json()).toEqual((await get('/capacity/blocks/buy-1')).json());
      expect(res.json()).toMatchObject({ id: 'buy-1', status: 'pending', tier: 'flex', created_by: `admin:${adminId}` });
      expect(asked).toEqual([{ action: 'buy', instance_type: 'sim-8xh100', nodes: 2, hours: 1.5, tier: 'flex', by: `admin:${adminId}` }]);
    });

    it("a block the actor did not store (yet) is answered from its reply", async () => {
      await actor(async () => ({ ok: true, block: blockMessage('buy-unstored') }));
      const res = await post('/capacity/blocks', buyBody);
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json()).toEqual({ ...blockMessage('buy-unstored'), node_ids: [] });
    });

    it.each([
      ['unknown_instance_type', 400],
      ['provider_unavailable', 503],
      ['invalid_state', 409],
    ] as const)("the actor's %s → %i with its message", async (code, status) => {
      await actor(async () => ({ ok: false, code, message: `refused: ${code}` }));
      const err = expectError(await post('/capacity/blocks', buyBody), status, code);
      expect(err.message).toBe(`refused: ${code}`);
      expect(err.details).toEqual({ instance_type: 'sim-8xh100' });
    });

    it('a reply it cannot read → 503, not a crash', async () => {
      await actor(async () => 'not json');
      expectError(await post('/capacity/blocks', buyBody), 503, 'coordinator_unavailable');
      sub?.unsubscribe();
      await actor(async () => ({ ok: true, block: { id: 'half' } }) as never);
      expectError(await post('/capacity/blocks', buyBody), 503, 'coordinator_unavailable');
      sub?.unsubscribe();
      await actor(async () => ({ ok: false, code: 'out_of_coffee', message: 'x' }) as never);
      expectError(await post('/capacity/blocks', buyBody), 503, 'coordinator_unavailable');
    });

    it.each([
      [{ ...buyBody, nodes: 0 }, 'nodes'],
      [{ ...buyBody, nodes: 65 }, 'nodes'],
      [{ ...buyBody, nodes: 1.5 }, 'nodes'],
      [{ ...buyBody, nodes: '2' }, 'nodes'],
      [{ ...buyBody, hours: 0 }, 'hours'],
      [{ ...buyBody, hours: -1 }, 'hours'],
      [{ ...buyBody, hours: 721 }, 'hours'],
      [{ ...buyBody, hours: '24' }, 'hours'],
      [{ ...buyBody, tier: 'FAST' }, 'tier'],
      [{ ...buyBody, tier: 'slow' }, 'tier'],
      [{ ...buyBody, instance_type: '' }, 'instance_type'],
      [{ ...buyBody, instance_type: '  ' }, 'instance_type'],
      [{ ...buyBody, instance_type: 'a\u0000b' }, 'instance_type'],
      [{ ...buyBody, instance_type: 'i'.repeat(129) }, 'instance_type'],
      [{ nodes: 1, hours: 1, tier: 'fast' }, 'instance_type'],
      [{ instance_type: 'x', hours: 1, tier: 'fast' }, 'nodes'],
      [{ ...buyBody, region: 'eu' }, 'region'],
    ])('body %j → 400 naming %s, without asking the actor', async (body, field) => {
      const asked = await actor(async () => ({ ok: true, block: blockMessage('never') }));
      expectFieldError(await post('/capacity/blocks', body), field);
      expect(asked).toEqual([]);
    });

    it.each([[720], [0.25], [1]])('hours %s is accepted', async (hours) => {
      const asked = await actor(async () => ({ ok: true, block: blockMessage('buy-hours') }));
      expect((await post('/capacity/blocks', { ...buyBody, hours })).statusCode).toBe(201);
      expect(asked[0]).toMatchObject({ hours });
    });
  });

  describe('release', () => {
    beforeAll(async () => {
      for (const id of ['rel-busy', 'rel-idle', 'rel-none', 'rel-refused', 'rel-slow']) await insertBlock({ id, status: 'active' });
      await insertBlock({ id: 'rel-done', status: 'released' });
      await insertNode({ id: 'rel-busy-n0', pool: 'fast', state: 'ready', gpus: 1, blockId: 'rel-busy' });
    });

    it('an unknown block → 404 block_not_found without asking the actor', async () => {
      const asked = await actor(async () => ({ ok: true, block: blockMessage('x') }));
      const err = expectError(await post('/capacity/blocks/no-such-block/release'), 404, 'block_not_found');
      expect(err.details).toEqual({ block_id: 'no-such-block' });
      expectError(await post('/capacity/blocks/bad%20id/release'), 404, 'block_not_found');
      expect(asked).toEqual([]);
    });

    it('an already released block → 409 block_released without asking the actor', async () => {
      const asked = await actor(async () => ({ ok: true, block: blockMessage('x') }));
      const err = expectError(await post('/capacity/blocks/rel-done/release'), 409, 'block_released');
      expect(err.details).toEqual({ block_id: 'rel-done' });
      expect(asked).toEqual([]);
    });

    it('with no coordinator running → 503 coordinator_unavailable', async () => {
      expectError(await post('/capacity/blocks/rel-none/release'), 503, 'coordinator_unavailable');
      expect((await get('/capacity/blocks/rel-none')).json().status).toBe('active');
    });

    it('a coordinator that does not answer in time → 503 coordinator_unavailable', async () => {
      await actor(async () => null);
      expectError(await post('/capacity/blocks/rel-slow/release'), 503, 'coordinator_unavailable');
    });

    it('a block whose nodes run jobs drains first: 202 with the block draining', async () => {
      const asked = await actor(async (req) => {
        const id = (req as { block_id: string }).block_id;
        await sql(`update capacity_blocks set status = 'draining', status_reason = 'waiting for 1 job', updated_at = now() where id = ?`, [id]);
        return { ok: true, block: blockMessage(id, { status: 'draining' }) };
      });
      const res = await post('/capacity/blocks/rel-busy/release');
      expect(res.statusCode, res.body).toBe(202);
      expect(res.json()).toMatchObject({ id: 'rel-busy', status: 'draining', status_reason: 'waiting for 1 job', node_ids: ['rel-busy-n0'] });
      expect(asked).toEqual([{ action: 'release', block_id: 'rel-busy', by: `admin:${adminId}` }]);
    });

    it('an idle block is released at once: 200 with the block released', async () => {
      await actor(async (req) => {
        const id = (req as { block_id: string }).block_id;
        await sql(`update capacity_blocks set status = 'released', released_at = now(), updated_at = now() where id = ?`, [id]);
        return { ok: true, block: blockMessage(id, { status: 'released' }) };
      });
      const res = await post('/capacity/blocks/rel-idle/release');
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ id: 'rel-idle', status: 'released', released_at: expect.stringMatching(ISO) });
      // Releasing it again is answered without the actor.
      sub?.unsubscribe();
      sub = undefined;
      expectError(await post('/capacity/blocks/rel-idle/release'), 409, 'block_released');
    });

    it.each([
      ['block_not_found', 404],
      ['block_released', 409],
      ['invalid_state', 409],
      ['provider_unavailable', 503],
    ] as const)("the actor's %s → %i", async (code, status) => {
      await actor(async () => ({ ok: false, code, message: `refused: ${code}` }));
      const err = expectError(await post('/capacity/blocks/rel-refused/release'), status, code);
      expect(err.message).toBe(`refused: ${code}`);
      expect(err.details).toEqual({ block_id: 'rel-refused' });
    });

    it('takes no body fields', async () => {
      expectFieldError(await post('/capacity/blocks/rel-refused/release', { force: true }), 'force');
    });
  });
});

describe('GET /capacity/events', () => {
  const ids: number[] = [];
  beforeAll(async () => {
    const rows: [string, string, string | null, string | null, string, object][] = [
      ['2026-11-29T08:00:00Z', 'buy', 'fast', 'ev-b1', 'warm FAST GPUs 0 < 8 (SCALAR_FAST_MIN_GPUS)', { warm: 0, min: 8 }],
      ['2026-11-29T09:00:00Z', 'hold', 'flex', null, 'price 1.4 > 1.2 and the oldest FLEX job waited 10 min', { price: 1.4 }],
      ['2026-11-29T10:00:00Z', 'release', 'FAST', 'ev-b1', 'idle for 20 min above the target', { idle_gpus: 8 }],
      ['2026-11-29T11:00:00Z', 'buy', 'flex', 'ev-b2', 'bought by an admin', {}],
      ['2026-11-29T12:00:00Z', 'note', null, null, 'autoscaler started', { policy: 'scalar' }],
    ];
    for (const [at, action, tier, block, reason, inputs] of rows) {
      const [row] = await sql(
        `insert into capacity_events (created_at, action, tier, block_id, reason, inputs) values (?, ?, ?, ?, ?, ?::jsonb) returning id`,
        [at, action, tier, block, reason, JSON.stringify(inputs)],
      );
      ids.push(Number(row!.id));
    }
  });

  const list = async (q = '') => {
    const res = await get(`/capacity/events${q}`);
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };

  it('newest first, each with its inputs', async () => {
    const body = await list();
    expect(body.next_cursor).toBeNull();
    expect(body.events.map((e: { id: number }) => e.id)).toEqual([...ids].reverse());
    expect(body.events[2]).toEqual({
      id: ids[2],
      created_at: '2026-11-29T10:00:00.000Z',
      action: 'release',
      tier: 'FAST',
      block_id: 'ev-b1',
      reason: 'idle for 20 min above the target',
      inputs: { idle_gpus: 8 },
    });
    expect(body.events[0]).toMatchObject({ action: 'note', tier: null, block_id: null, inputs: { policy: 'scalar' } });
  });

  it('pages by id: each event exactly once', async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const body = await list(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(body.events.length).toBeLessThanOrEqual(2);
      seen.push(...body.events.map((e: { id: number }) => e.id));
      cursor = body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
  });

  it('since: events at or after that time', async () => {
    expect((await list('?since=2026-11-29T10:00:00Z')).events.map((e: { id: number }) => e.id)).toEqual([ids[4], ids[3], ids[2]]);
    expect((await list('?since=2026-11-29T11:00:00%2B01:00')).events.map((e: { id: number }) => e.id)).toEqual([ids[4], ids[3], ids[2]]);
    expect((await list('?since=2026-11-30')).events).toEqual([]);
  });

  it('tier: events about that tier, however the writer spelt it', async () => {
    expect((await list('?tier=fast')).events.map((e: { id: number }) => e.id)).toEqual([ids[2], ids[0]]);
    expect((await list('?tier=flex&since=2026-11-29T09:00:00Z&limit=1')).events.map((e: { id: number }) => e.id)).toEqual([ids[3]]);
  });

  it.each([
    ['since=yesterday', 'since'],
    ['since=2026-02-30', 'since'],
    ['since=2026-11-29T10:00:00', 'since'], // no offset: ambiguous
    ['since=2026-11-29T25:00:00Z', 'since'],
    ['tier=FAST', 'tier'],
    ['limit=0', 'limit'],
    ['cursor=garbage', 'cursor'],
    ['action=buy', 'action'],
  ])('?%s → 400 naming %s', async (q, field) => {
    expectFieldError(await get(`/capacity/events?${q}`), field);
  });
});
