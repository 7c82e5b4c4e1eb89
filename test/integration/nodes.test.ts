/**
 * GET /nodes, GET /nodes/{id} and the drain/resume actions (admin only).
 * Node, GPU and allocation rows are written by the coordinator, so they are
 * inserted directly here; the coordinator's side of drain/resume is a
 * responder on the real NATS subject.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from '@nats-io/transport-node';
import { applyJobEvent } from '../helpers/job-events.ts';
import { encodeJson, nodeActionRequestSchema, type NodeActionReply, type NodeActionRequest } from '../../src/wire/messages.ts';
import type { NodeAction } from '../../src/wire/subjects.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { expectError, expectFieldError } from '../helpers/expect.ts';

let t: TestApp;
let user: { id: string; key: string };
const REQUEST_TIMEOUT_MS = 600;

beforeAll(async () => {
  t = await startTestApp({}, { nodes: { requestTimeoutMs: REQUEST_TIMEOUT_MS } });
  user = await t.newUser('not-an-admin');
});
afterAll(() => t?.close());

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

interface NodeSpec {
  id: string;
  pool?: 'fast' | 'flex';
  state?: 'registering' | 'ready' | 'draining' | 'lost';
  stateReason?: string | null;
  cpu?: number;
  ram?: number;
  gpus?: number;
  vram?: number;
  heartbeat?: boolean;
}

/** A node row and its GPU rows, as the coordinator writes them on registration. */
async function insertNode(n: NodeSpec): Promise<void> {
  const em = t.db.orm.em.fork();
  await em.execute(
    `insert into nodes (id, pool, state, state_reason, runtime, cpu_cores, ram_gb, drain_requested, registered_at, last_heartbeat_at, updated_at)
     values (?, ?, ?, ?, 'simulated', ?, ?, false, now(), ${n.heartbeat === false ? 'null' : 'now()'}, now())`,
    [n.id, n.pool ?? 'fast', n.state ?? 'ready', n.stateReason ?? null, n.cpu ?? 32, n.ram ?? 256],
  );
  for (let i = 0; i < (n.gpus ?? 4); i++) {
    await em.execute(`insert into gpus (node_id, "index", uuid, model, vram_gb) values (?, ?, ?, 'H100', ?)`, [
      n.id,
      i,
      `GPU-${n.id}-${i}`,
      n.vram ?? 80,
    ]);
  }
}

/** A job placed on `gpus` of `nodeId`, holding them (scheduled, with active allocation rows). */
async function placeJob(nodeId: string, gpus: number[], res: { cpu_cores: number; ram_gb: number }): Promise<string> {
  const created = await t.call({ method: 'POST', url: '/jobs', payload: { ...exampleJob(), gpu_count: gpus.length, ...res } });
  expect(created.statusCode, created.body).toBe(201);
  const id = created.json().id;
  for (const e of [{ type: 'admit' }, { type: 'place', node_id: nodeId, gpu_indices: gpus }] as const) {
    expect((await applyJobEvent(t.db.orm.em, id, e)).kind).toBe('applied');
  }
  const em = t.db.orm.em.fork();
  for (const g of gpus) {
    await em.execute(`insert into allocations (job_id, attempt, node_id, gpu_index, created_at) values (?, 1, ?, ?, now())`, [
      id,
      nodeId,
      g,
    ]);
  }
  return id;
}

const get = (url: string, key?: string) => t.call({ method: 'GET', url, ...(key ? { key } : {}) });

describe('GET /nodes/{id}', () => {
  it('shows each GPU with its holder, the jobs on the node and what is left free', async () => {
    await insertNode({ id: 'detail-1', cpu: 64, ram: 512, gpus: 4 });
    const a = await placeJob('detail-1', [0, 1], { cpu_cores: 8, ram_gb: 64 });
    const b = await placeJob('detail-1', [3], { cpu_cores: 2.5, ram_gb: 16 });
    // History: an earlier allocation of GPU 2, released, holds nothing.
    const done = await placeJob('detail-1', [2], { cpu_cores: 4, ram_gb: 4 });
    await t.db.orm.em.fork().execute('update allocations set released_at = now() where job_id = ?', [done]);

    const res = await get('/nodes/detail-1');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      id: 'detail-1',
      pool: 'fast',
      state: 'ready',
      state_reason: null,
      drain_requested: false,
      runtime: 'simulated',
      cpu_cores: 64,
      ram_gb: 512,
      last_heartbeat_at: expect.stringMatching(ISO),
      registered_at: expect.stringMatching(ISO),
      gpus: [
        { index: 0, uuid: 'GPU-detail-1-0', model: 'H100', vram_gb: 80, job_id: a, attempt: 1 },
        { index: 1, uuid: 'GPU-detail-1-1', model: 'H100', vram_gb: 80, job_id: a, attempt: 1 },
        { index: 2, uuid: 'GPU-detail-1-2', model: 'H100', vram_gb: 80, job_id: null, attempt: null },
        { index: 3, uuid: 'GPU-detail-1-3', model: 'H100', vram_gb: 80, job_id: b, attempt: 1 },
      ],
      free: { gpus: 1, cpu_cores: 64 - 8 - 2.5, ram_gb: 512 - 64 - 16 },
      jobs: [a, b],
    });
  });

  it('an idle node is all free; a node never heard from has no heartbeat', async () => {
    await insertNode({ id: 'idle-1', pool: 'flex', state: 'registering', cpu: 16, ram: 128, gpus: 2, heartbeat: false });
    const node = (await get('/nodes/idle-1')).json();
    expect(node).toMatchObject({ pool: 'flex', state: 'registering', last_heartbeat_at: null, jobs: [] });
    expect(node.free).toEqual({ gpus: 2, cpu_cores: 16, ram_gb: 128 });
  });

  it.each(['no-such-node', 'bad.id', 'x'.repeat(70), '-starts-with-dash'])('%s → 404 node_not_found naming it', async (id) => {
    const err = expectError(await get(`/nodes/${encodeURIComponent(id)}`), 404, 'node_not_found');
    expect(err.details).toEqual({ node_id: id });
    expect(err.message).toContain(id);
  });
});

describe('GET /nodes', () => {
  beforeAll(async () => {
    await insertNode({ id: 'list-a', pool: 'fast', state: 'ready' });
    await insertNode({ id: 'list-b', pool: 'flex', state: 'ready' });
    await insertNode({ id: 'list-c', pool: 'fast', state: 'draining', stateReason: 'maintenance' });
    await insertNode({ id: 'list-d', pool: 'flex', state: 'lost', stateReason: 'no heartbeat for 6 s' });
    await insertNode({ id: 'list-e', pool: 'fast', state: 'ready' });
  });

  /** Every page with `query`, following next_cursor; only nodes of this block. */
  async function walk(query: string): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(`/nodes?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      ids.push(...body.nodes.map((n: { id: string }) => n.id));
      cursor = body.next_cursor;
      pages++;
    } while (cursor !== null);
    return { ids: ids.filter((id) => id.startsWith('list-')), pages };
  }

  it('lists nodes by id with the same shape as GET /nodes/{id}', async () => {
    const res = await get('/nodes');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.next_cursor).toBeNull();
    const ids = body.nodes.map((n: { id: string }) => n.id);
    expect(ids).toEqual([...ids].sort());
    const one = body.nodes.find((n: { id: string }) => n.id === 'list-c');
    expect(one).toEqual((await get('/nodes/list-c')).json());
    expect(one).toMatchObject({ state: 'draining', state_reason: 'maintenance', gpus: expect.any(Array), free: expect.any(Object) });
  });

  it('pages with limit and cursor: each node exactly once', async () => {
    const all = await walk('limit=100');
    const paged = await walk('limit=2');
    expect(paged.ids).toEqual(all.ids);
    expect(all.ids).toEqual(['list-a', 'list-b', 'list-c', 'list-d', 'list-e']);
    expect(paged.pages).toBeGreaterThanOrEqual(3);
  });

  it('filters by state and pool', async () => {
    expect((await walk('state=ready')).ids).toEqual(['list-a', 'list-b', 'list-e']);
    expect((await walk('pool=flex')).ids).toEqual(['list-b', 'list-d']);
    expect((await walk('state=ready&pool=fast&limit=1')).ids).toEqual(['list-a', 'list-e']);
    expect((await walk('state=registering&pool=fast')).ids).toEqual([]);
  });

  it.each([
    ['state=up', 'state'],
    ['pool=FASTER', 'pool'],
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['cursor=garbage', 'cursor'],
    ['cursor=djE6MTA', 'cursor'], // a GET /jobs cursor
    ['sort=id', 'sort'],
  ])('?%s → 400 naming %s', async (q, field) => {
    expectFieldError(await get(`/nodes?${q}`), field);
  });
});

describe('admin only', () => {
  it.each([
    ['GET', '/nodes'],
    ['GET', '/nodes/list-a'],
    ['POST', '/nodes/list-a/drain'],
    ['POST', '/nodes/list-a/resume'],
  ] as const)('%s %s → 403 for a user key, 401 without one', async (method, url) => {
    expectError(await t.call({ method, url, key: user.key }), 403, 'forbidden');
    expectError(await t.call({ method, url, key: null }), 401, 'unauthorized');
  });
});

describe('POST /nodes/{id}/drain and /resume', () => {
  let sub: Subscription | undefined;
  afterEach(() => {
    sub?.unsubscribe();
    sub = undefined;
  });

  /** Stands in for the coordinator on the real subject; records what it was asked. */
  async function coordinator(action: NodeAction, answer: (req: NodeActionRequest) => Promise<NodeActionReply | string | null>) {
    const asked: NodeActionRequest[] = [];
    sub = t.bus.nc.subscribe(t.bus.t.subjects.coordNode(action), {
      callback: (_err, msg) => {
        const req = nodeActionRequestSchema.parse(msg.json());
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

  const post = (url: string, payload?: unknown, key?: string) =>
    t.call({ method: 'POST', url, ...(payload === undefined ? {} : { payload: payload as object }), ...(key ? { key } : {}) });

  it('with no coordinator running → 503 coordinator_unavailable, at once', async () => {
    await insertNode({ id: 'act-none' });
    const started = Date.now();
    const err = expectError(await post('/nodes/act-none/drain'), 503, 'coordinator_unavailable');
    expect(err.message).toMatch(/no coordinator answered; is `scalar coordinator` running\?/);
    expect(Date.now() - started).toBeLessThan(REQUEST_TIMEOUT_MS);
  });

  it('a coordinator that does not answer in time → 503 coordinator_unavailable', async () => {
    await insertNode({ id: 'act-slow' });
    const asked = await coordinator('drain', async () => null);
    const err = expectError(await post('/nodes/act-slow/drain'), 503, 'coordinator_unavailable');
    expect(err.message).toMatch(/scalar coordinator/);
    expect(asked).toHaveLength(1);
  });

  it('drain: the coordinator is asked with the node and reason; 200 with the node as it is now', async () => {
    await insertNode({ id: 'act-drain' });
    const asked = await coordinator('drain', async (req) => {
      // The coordinator writes the row, then answers.
      await t.db.orm.em
        .fork()
        .execute(`update nodes set state = 'draining', state_reason = ?, drain_requested = true where id = ?`, [
          req.reason ?? 'drained by an operator',
          req.node_id,
        ]);
      return { ok: true, state: 'draining' };
    });
    const res = await post('/nodes/act-drain/drain', { reason: 'replacing a fan' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id: 'act-drain', state: 'draining', state_reason: 'replacing a fan', drain_requested: true });
    expect(asked).toEqual([{ node_id: 'act-drain', reason: 'replacing a fan' }]);
  });

  it('resume without a body (or with an empty one) asks without a reason', async () => {
    await insertNode({ id: 'act-resume', state: 'draining' });
    const asked = await coordinator('resume', async (req) => {
      await t.db.orm.em.fork().execute(`update nodes set state = 'ready', state_reason = null where id = ?`, [req.node_id]);
      return { ok: true, state: 'ready' };
    });
    const res = await post('/nodes/act-resume/resume');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id: 'act-resume', state: 'ready', state_reason: null });
    expect((await post('/nodes/act-resume/resume', {})).statusCode).toBe(200);
    const empty = await t.call({
      method: 'POST',
      url: '/nodes/act-resume/resume',
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expect(empty.statusCode, empty.body).toBe(200);
    expect(asked).toEqual([{ node_id: 'act-resume' }, { node_id: 'act-resume' }, { node_id: 'act-resume' }]);
  });

  it("the coordinator's node_not_found → 404 node_not_found", async () => {
    await insertNode({ id: 'act-unknown' });
    await coordinator('drain', async () => ({ ok: false, error: 'node_not_found', message: 'node act-unknown is not known' }));
    const err = expectError(await post('/nodes/act-unknown/drain'), 404, 'node_not_found');
    expect(err.details).toEqual({ node_id: 'act-unknown' });
  });

  it("the coordinator's invalid_state → 409 invalid_state with its message", async () => {
    await insertNode({ id: 'act-ready' });
    await coordinator('resume', async () => ({ ok: false, error: 'invalid_state', message: 'node act-ready is ready, not draining' }));
    const err = expectError(await post('/nodes/act-ready/resume'), 409, 'invalid_state');
    expect(err.message).toBe('node act-ready is ready, not draining');
    expect(err.details).toMatchObject({ node_id: 'act-ready', action: 'resume' });
  });

  it('a reply it cannot read → 503, not a crash', async () => {
    await insertNode({ id: 'act-garbled' });
    await coordinator('drain', async () => 'not json');
    expectError(await post('/nodes/act-garbled/drain'), 503, 'coordinator_unavailable');
    sub?.unsubscribe();
    await coordinator('drain', async () => ({ ok: 'yes' }) as never);
    expectError(await post('/nodes/act-garbled/drain'), 503, 'coordinator_unavailable');
  });

  it('an unknown node → 404 without asking the coordinator', async () => {
    const asked = await coordinator('drain', async () => ({ ok: true, state: 'draining' }));
    const err = expectError(await post('/nodes/never-registered/drain'), 404, 'node_not_found');
    expect(err.details).toEqual({ node_id: 'never-registered' });
    expectError(await post('/nodes/bad.id/drain'), 404, 'node_not_found');
    expect(asked).toEqual([]);
  });

  it.each([
    [{ reason: 5 }, 'reason'],
    [{ reason: 'x'.repeat(1001) }, 'reason'],
    [{ reason: 'a\u0000b' }, 'reason'],
    [{ why: 'typo' }, 'why'],
  ])('body %j → 400 naming %s', async (body, field) => {
    expectFieldError(await post('/nodes/act-none/drain', body), field);
  });
});
