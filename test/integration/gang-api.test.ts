/**
 * The job API's side of tier-aware placement: node_count on submit, and the
 * job object's placements, placement diagnosis, preemptions and cost_usd.
 * What the coordinator would write (jobs.placements, jobs.placement,
 * allocations, usage_records) is written here with SQL.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { applyJobEvent } from '../helpers/job-events.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { startCancelCoordinator, type CancelCoordinator } from '../helpers/coordinator.ts';
import { expectFieldError } from '../helpers/expect.ts';

let t: TestApp;
let cancels: CancelCoordinator | undefined;
let user: { id: string; key: string };

// Prices chosen so the arithmetic is easy to read: one FAST GPU-second costs
// 3.6 / 3600 = $0.001, one FLEX GPU-second 1.8 / 3600 = $0.0005.
const FAST_PER_GPU_SEC = 0.001;
const FLEX_PER_GPU_SEC = 0.0005;

beforeAll(async () => {
  t = await startTestApp({ SCALAR_PRICE_FAST_GPU_HOUR: '3.6', SCALAR_PRICE_FLEX_GPU_HOUR: '1.8' });
  // Cancel asks a coordinator; this one answers cancels only, so jobs stay as the tests leave them.
  cancels = await startCancelCoordinator(t);
  user = await t.newUser('gangs');
});
afterAll(async () => {
  await cancels?.stop();
  await t?.close();
});

const sql = (q: string, params: unknown[] = []) => t.db.orm.em.fork().execute(q, params);

async function submit(patch: Record<string, unknown> = {}, key = user.key) {
  const res = await t.call({ method: 'POST', url: '/jobs', key, payload: { ...exampleJob(), ...patch } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}
const getJob = async (id: string) => {
  const res = await t.call({ method: 'GET', url: `/jobs/${id}`, key: user.key });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
};

describe('POST /jobs: node_count', () => {
  it('defaults to 1 and is stored', async () => {
    const job = await submit();
    expect(job.node_count).toBe(1);
    expect((await getJob(job.id)).node_count).toBe(1);
    const [row] = await sql('select node_count from jobs where id = ?', [job.id]);
    expect(row!.node_count).toBe(1);
  });

  it('a gang: node_count 4 with per-node resources, stored as sent', async () => {
    const job = await submit({ node_count: 4, gpu_count: 8, vram_per_gpu_gb: 80, cpu_cores: 96, ram_gb: 1024 });
    expect(job).toMatchObject({ node_count: 4, gpu_count: 8, vram_per_gpu_gb: 80, cpu_cores: 96, ram_gb: 1024 });
    expect(await getJob(job.id)).toEqual(job);
    const [row] = await sql('select node_count, gpu_count from jobs where id = ?', [job.id]);
    expect(row).toEqual({ node_count: 4, gpu_count: 8 });
  });

  it.each([1, 64])('node_count %i is accepted', async (n) => {
    expect((await submit({ node_count: n })).node_count).toBe(n);
  });

  it.each([
    ['0', 0],
    ['65', 65],
    ['1.5', 1.5],
    ['-1', -1],
    ['a string', '2'],
    ['null', null],
    ['true', true],
    ['an array', [2]],
  ])('node_count %s → 400 naming node_count', async (_what, v) => {
    const res = await t.call({ method: 'POST', url: '/jobs', key: user.key, payload: { ...exampleJob(), node_count: v } });
    const [named] = expectFieldError(res, 'node_count');
    expect(named!.location).toBe('body');
  });

  it('a gang needs at least one GPU per node: gpu_count 0 → 400 naming gpu_count', async () => {
    const res = await t.call({ method: 'POST', url: '/jobs', key: user.key, payload: { ...exampleJob(), node_count: 2, gpu_count: 0 } });
    expect(expectFieldError(res, 'gpu_count')[0]!.message).toBe('must be from 1 to 64');
    const missing = { ...exampleJob(), node_count: 2 } as Record<string, unknown>;
    delete missing.gpu_count;
    const res2 = await t.call({ method: 'POST', url: '/jobs', key: user.key, payload: missing });
    expect(expectFieldError(res2, 'gpu_count')[0]!.message).toBe('is required');
  });

  it('none of the refused requests created a job', async () => {
    const [row] = await sql('select count(*)::int as n from jobs where node_count not between 1 and 64 or gpu_count < 1');
    expect(row!.n).toBe(0);
  });
});

describe('the job object: placements, placement, preemptions', () => {
  it('a job not yet placed: placements [], placement null, preemptions 0, cost_usd 0', async () => {
    const job = await submit();
    expect(job).toMatchObject({ node_id: null, gpu_indices: null, placements: [], placement: null, preemptions: 0, cost_usd: 0 });
  });

  it('a single-node job placed without jobs.placements reads as its one node', async () => {
    const job = await submit({ gpu_count: 2 });
    await applyJobEvent(t.db.orm.em, job.id, { type: 'admit' });
    await applyJobEvent(t.db.orm.em, job.id, { type: 'place', node_id: 'single-1', gpu_indices: [1, 3] });
    await sql('update jobs set placements = null where id = ?', [job.id]);
    const got = await getJob(job.id);
    expect(got).toMatchObject({ node_id: 'single-1', gpu_indices: [1, 3], placements: [{ node_id: 'single-1', gpu_indices: [1, 3] }] });
  });

  it('a gang lists every node in rank order; node_id/gpu_indices stay the first', async () => {
    const job = await submit({ node_count: 3, gpu_count: 2 });
    const placements = [
      { node_id: 'gang-b', gpu_indices: [0, 1] },
      { node_id: 'gang-a', gpu_indices: [6, 7] },
      { node_id: 'gang-c', gpu_indices: [2, 3] },
    ];
    await sql(
      `update jobs set status = 'running', node_id = 'gang-b', gpu_indices = '[0, 1]', placements = ?::jsonb where id = ?`,
      [JSON.stringify(placements), job.id],
    );
    const got = await getJob(job.id);
    expect(got).toMatchObject({ status: 'running', node_count: 3, node_id: 'gang-b', gpu_indices: [0, 1], placements });
    // The list shows the same.
    const listed = (await t.call({ method: 'GET', url: '/jobs?limit=1000', key: user.key })).json().jobs.find((j: { id: string }) => j.id === job.id);
    expect(listed.placements).toEqual(placements);
  });

  it('a requeued job (placements [] and no node) shows no placement', async () => {
    const job = await submit();
    await sql(`update jobs set status = 'queued', node_id = null, gpu_indices = null, placements = '[]' where id = ?`, [job.id]);
    expect((await getJob(job.id)).placements).toEqual([]);
  });

  it('the placement diagnosis is the stored object, as is (keys the API does not know included)', async () => {
    const job = await submit({ tier: 'FLEX', gpu_count: 4 });
    const diagnosis = {
      position: 3,
      nodes: 12,
      rejected: { node_ready: 1, pool: 4, reservation: 0, cpu_ram: 0, gpus: 7, block_time: 0, gang: 0 },
      best: [{ node_id: 'n-1', score: 71.5, scores: { best_fit: 80, fragmentation: 60, block_time: 75 } }],
      step: null,
      reason: '0 of 12 nodes have 4 free GPUs with ≥ 16 GB',
      at: '2026-11-29T12:00:00.000Z',
      extra: { something: ['new'] },
    };
    await sql('update jobs set placement = ?::jsonb where id = ?', [JSON.stringify(diagnosis), job.id]);
    expect((await getJob(job.id)).placement).toEqual(diagnosis);
  });

  it('a stored value that is not a diagnosis (another shape, a non-object) reads as null: clients only ever get the documented shape', async () => {
    const job = await submit();
    await sql(`update jobs set placement = '{"step": "warp", "nodes": "many"}'::jsonb where id = ?`, [job.id]);
    expect((await getJob(job.id)).placement).toBeNull();
    await sql(`update jobs set placement = '[1, 2]'::jsonb where id = ?`, [job.id]);
    expect((await getJob(job.id)).placement).toBeNull();
  });

  it('preemptions counts the attempts ended by preemption', async () => {
    const job = await submit({ tier: 'FLEX' });
    await sql('update jobs set preemptions = 2, attempt = 3 where id = ?', [job.id]);
    expect(await getJob(job.id)).toMatchObject({ preemptions: 2, attempt: 3 });
  });
});

describe('cost_usd', () => {
  /** An allocation row per GPU, created `ago` seconds before now (active unless released). */
  async function hold(jobId: string, attempt: number, nodeId: string, gpus: number[], agoSec: number, released = false) {
    for (const g of gpus) {
      await sql(
        `insert into allocations (job_id, attempt, node_id, gpu_index, created_at, released_at)
         values (?, ?, ?, ?, now() - make_interval(secs => ?), ${released ? 'now()' : 'null'})`,
        [jobId, attempt, nodeId, g, agoSec],
      );
    }
  }
  async function usage(jobId: string, attempt: number, nodeId: string, gpus: number, gpuSeconds: number, costUsd: number, tier = 'FAST') {
    await sql(
      `insert into usage_records (job_id, attempt, node_id, user_id, tier, gpu_count, gpu_seconds, cost_usd, started_at, ended_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, now() - interval '2 hours', now() - interval '1 hour')`,
      [jobId, attempt, nodeId, user.id, tier, gpus, gpuSeconds, costUsd],
    );
  }

  it('recorded usage plus the GPU-seconds held so far, at the tier price', async () => {
    const job = await submit({ tier: 'FAST', node_count: 2, gpu_count: 2 });
    // Attempt 1 ran on two nodes and was released: $1.00 + $0.50 recorded.
    await usage(job.id, 1, 'cost-a', 2, 1000, 1.0);
    await usage(job.id, 1, 'cost-b', 2, 500, 0.5);
    // Attempt 2 holds 2 GPUs on each of two nodes since 100 s ago:
    // 4 GPUs × 100 s = 400 GPU-seconds × $0.001 = $0.40.
    await hold(job.id, 2, 'cost-a', [0, 1], 100);
    await hold(job.id, 2, 'cost-b', [4, 5], 100);
    // Released allocations are counted by their usage record, not again here.
    await hold(job.id, 1, 'cost-a', [2, 3], 5000, true);
    // Another job's usage is not this job's.
    const other = await submit();
    await usage(other.id, 1, 'cost-a', 1, 100, 7);

    const cost = (await getJob(job.id)).cost_usd;
    // $1.00 + $0.50 + $0.40 = $1.90, plus the milliseconds between the inserts and the read (4 GPUs × $0.001/s).
    expect(cost).toBeGreaterThanOrEqual(1.9);
    expect(cost).toBeLessThan(1.9 + 4 * FAST_PER_GPU_SEC * 5);
    expect((await getJob(other.id)).cost_usd).toBe(7);
  });

  it('FLEX GPU-seconds are priced at the FLEX price', async () => {
    const job = await submit({ tier: 'FLEX', gpu_count: 1 });
    // 1 GPU × 1000 s × $0.0005 = $0.50.
    await hold(job.id, 1, 'cost-flex', [0], 1000);
    const cost = (await getJob(job.id)).cost_usd;
    expect(cost).toBeGreaterThanOrEqual(0.5);
    expect(cost).toBeLessThan(0.5 + FLEX_PER_GPU_SEC * 5);
  });

  it('a finished job costs exactly what was recorded, and cancel answers with the cost too', async () => {
    const job = await submit({ tier: 'FAST' });
    await usage(job.id, 1, 'cost-done', 1, 1234.5, 1.2345);
    expect((await getJob(job.id)).cost_usd).toBe(1.2345);
    const cancelled = await t.call({ method: 'POST', url: `/jobs/${job.id}/cancel`, key: user.key });
    expect(cancelled.json()).toMatchObject({ status: 'cancelled', cost_usd: 1.2345 });
  });

  it('GET /jobs costs a whole page in one query, with the same figures as GET /jobs/{id}', async () => {
    const key = (await t.newUser('cost-list')).key;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await t.call({ method: 'POST', url: '/jobs', key, payload: { ...exampleJob(), tier: 'FAST' } });
      ids.push(res.json().id);
    }
    // Job i has i recorded dollars: 0, 1, 2, 3, 4.
    for (let i = 1; i < 5; i++) await usage(ids[i]!, 1, 'cost-list', 1, 0, i);
    const costs = vi.spyOn(t.app.jobs, 'costs');
    try {
      const page = (await t.call({ method: 'GET', url: '/jobs?limit=3', key })).json();
      const rest = (await t.call({ method: 'GET', url: `/jobs?limit=3&cursor=${page.next_cursor}`, key })).json();
      const all = [...page.jobs, ...rest.jobs].reverse();
      expect(all.map((j: { id: string }) => j.id)).toEqual(ids);
      expect(all.map((j: { cost_usd: number }) => j.cost_usd)).toEqual([0, 1, 2, 3, 4]);
      // One cost query per page, each for the whole page.
      expect(costs.mock.calls.map(([, jobs]) => jobs.length)).toEqual([3, 2]);
    } finally {
      costs.mockRestore();
    }
  });
});
