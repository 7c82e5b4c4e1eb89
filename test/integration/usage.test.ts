/**
 * GET /usage: GPU usage and cost per tier, from usage_records (which the
 * coordinator writes when an attempt's GPUs are released; inserted here).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { expectError, expectFieldError } from '../helpers/expect.ts';

let t: TestApp;
let alice: { id: string; key: string };
let bob: { id: string; key: string };
let carol: { id: string; key: string };
let adminId: string;
const DAY_MS = 24 * 3600 * 1000;

const sql = (q: string, params: unknown[] = []) => t.db.orm.em.fork().execute(q, params);

async function submit(key: string, tier: 'FAST' | 'FLEX'): Promise<string> {
  const res = await t.call({ method: 'POST', url: '/jobs', key, payload: { ...exampleJob(), tier } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}

/** One usage_records row: `endedAt` is SQL (e.g. "now() - interval '1 day'") so the default period is relative to the database clock. */
async function record(r: { job: string; user: string; tier: string; attempt: number; node: string; gpuSeconds: number; cost: number; endedAt: string }) {
  await sql(
    `insert into usage_records (job_id, attempt, node_id, user_id, tier, gpu_count, gpu_seconds, cost_usd, started_at, ended_at)
     values (?, ?, ?, ?, ?, 1, ?, ?, (${r.endedAt}) - interval '1 hour', ${r.endedAt})`,
    [r.job, r.attempt, r.node, r.user, r.tier, r.gpuSeconds, r.cost],
  );
}

beforeAll(async () => {
  t = await startTestApp();
  alice = await t.newUser('alice');
  bob = await t.newUser('bob');
  carol = await t.newUser('carol'); // never ran anything
  const [row] = await sql("select user_id from api_keys where name = 'SCALAR_BOOTSTRAP_KEY'");
  adminId = row!.user_id;

  const aFast = await submit(alice.key, 'FAST');
  const aFlex = await submit(alice.key, 'FLEX');
  const bFast = await submit(bob.key, 'FAST');
  const a = { user: alice.id };
  // Alice, FAST: attempt 1 was a gang on two nodes (two records, one attempt), attempt 2 ran on one.
  await record({ ...a, job: aFast, tier: 'FAST', attempt: 1, node: 'n-a', gpuSeconds: 3600, cost: 2.5, endedAt: "now() - interval '1 day'" });
  await record({ ...a, job: aFast, tier: 'FAST', attempt: 1, node: 'n-b', gpuSeconds: 3600, cost: 2.5, endedAt: "now() - interval '1 day'" });
  await record({ ...a, job: aFast, tier: 'FAST', attempt: 2, node: 'n-a', gpuSeconds: 1800, cost: 1.25, endedAt: "now() - interval '2 days'" });
  // Alice, FLEX: one attempt in the last 30 days, one before.
  await record({ ...a, job: aFlex, tier: 'FLEX', attempt: 1, node: 'n-c', gpuSeconds: 7200, cost: 2, endedAt: "now() - interval '3 days'" });
  await record({ ...a, job: aFlex, tier: 'FLEX', attempt: 2, node: 'n-c', gpuSeconds: 3600, cost: 1, endedAt: "now() - interval '31 days'" });
  // Bob, FAST.
  await record({ user: bob.id, job: bFast, tier: 'FAST', attempt: 1, node: 'n-d', gpuSeconds: 36000, cost: 25, endedAt: "now() - interval '5 days'" });
  // For explicit periods: Alice FLEX, ended exactly on 2026-01-10 and 2026-01-20.
  await record({ ...a, job: aFlex, tier: 'FLEX', attempt: 3, node: 'n-c', gpuSeconds: 100, cost: 0.1, endedAt: "'2026-01-10T00:00:00Z'::timestamptz" });
  await record({ ...a, job: aFlex, tier: 'FLEX', attempt: 4, node: 'n-c', gpuSeconds: 200, cost: 0.2, endedAt: "'2026-01-20T00:00:00Z'::timestamptz" });
});
afterAll(() => t?.close());

const usage = async (qs = '', key?: string) => {
  const res = await t.call({ method: 'GET', url: `/usage${qs}`, ...(key ? { key } : {}) });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
};

const none = { attempts: 0, gpu_seconds: 0, gpu_hours: 0, cost_usd: 0 };
// Alice in the last 30 days. FAST: attempts 1 (gang, 2 records) + 2 = 2; 3600 + 3600 + 1800 = 9000 GPU-s = 2.5 GPU-h;
// $2.50 + $2.50 + $1.25 = $6.25. FLEX: attempt 1 only (attempt 2 ended 31 days ago): 7200 GPU-s = 2 GPU-h, $2.
const aliceTotals = {
  FAST: { attempts: 2, gpu_seconds: 9000, gpu_hours: 2.5, cost_usd: 6.25 },
  FLEX: { attempts: 1, gpu_seconds: 7200, gpu_hours: 2, cost_usd: 2 },
};
// Bob: 36000 GPU-s = 10 GPU-h, $25.
const bobTotals = { FAST: { attempts: 1, gpu_seconds: 36000, gpu_hours: 10, cost_usd: 25 }, FLEX: none };

describe('GET /usage for a user', () => {
  it('their own totals per tier over the last 30 days, with the prices; no one else’s', async () => {
    const before = Date.now();
    const body = await usage('', alice.key);
    expect(body).toEqual({
      from: expect.any(String),
      to: expect.any(String),
      prices: { FAST: t.cfg.SCALAR_PRICE_FAST_GPU_HOUR, FLEX: t.cfg.SCALAR_PRICE_FLEX_GPU_HOUR },
      user_id: alice.id,
      totals: aliceTotals,
    });
    expect(Date.parse(body.to)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(body.to)).toBeLessThanOrEqual(Date.now() + 1000);
    expect(Date.parse(body.to) - Date.parse(body.from)).toBe(30 * DAY_MS);
  });

  it('a user without usage gets zeros', async () => {
    expect((await usage('', carol.key)).totals).toEqual({ FAST: none, FLEX: none });
  });

  it('naming themselves is allowed; naming someone else is 403', async () => {
    expect((await usage(`?user_id=${alice.id}`, alice.key)).totals).toEqual(aliceTotals);
    const err = expectError(await t.call({ method: 'GET', url: `/usage?user_id=${bob.id}`, key: alice.key }), 403, 'forbidden');
    expect(err.details).toEqual({ user_id: bob.id });
  });

  it('a period is [from, to): a record ending exactly at `from` counts, one ending exactly at `to` does not', async () => {
    const body = await usage('?from=2026-01-10&to=2026-01-20', alice.key);
    expect(body.from).toBe('2026-01-10T00:00:00.000Z');
    expect(body.to).toBe('2026-01-20T00:00:00.000Z');
    expect(body.totals).toEqual({ FAST: none, FLEX: { attempts: 1, gpu_seconds: 100, gpu_hours: 0.027778, cost_usd: 0.1 } });
    const both = await usage('?from=2026-01-10T00:00:00Z&to=2026-01-20T00:00:00.001Z', alice.key);
    expect(both.totals.FLEX).toEqual({ attempts: 2, gpu_seconds: 300, gpu_hours: 0.083333, cost_usd: 0.3 });
  });

  it('an empty period (from = to) is allowed and empty', async () => {
    const body = await usage('?from=2026-01-10T00:00:00Z&to=2026-01-10T00:00:00Z', alice.key);
    expect(body.totals).toEqual({ FAST: none, FLEX: none });
  });

  it('with only `to`, the period is the 30 days before it; offsets are honoured', async () => {
    const body = await usage('?to=2026-01-20T01:00:00%2B01:00', alice.key);
    expect(body.to).toBe('2026-01-20T00:00:00.000Z');
    expect(body.from).toBe('2025-12-21T00:00:00.000Z');
    expect(body.totals.FLEX.attempts).toBe(1);
  });
});

describe('GET /usage for an admin', () => {
  it('their own totals, every user with usage (most expensive first) and the sum', async () => {
    const body = await usage();
    expect(body.user_id).toBe(adminId);
    expect(body.totals).toEqual({ FAST: none, FLEX: none });
    expect(body.users).toEqual([
      { user_id: bob.id, name: 'bob', ...bobTotals },
      { user_id: alice.id, name: 'alice', ...aliceTotals },
    ]);
    // 2 + 1 attempts, 9000 + 36000 GPU-s = 12.5 GPU-h, $6.25 + $25 = $31.25; FLEX is Alice's alone.
    expect(body.all).toEqual({
      FAST: { attempts: 3, gpu_seconds: 45000, gpu_hours: 12.5, cost_usd: 31.25 },
      FLEX: aliceTotals.FLEX,
    });
  });

  it('?user_id= shows one user', async () => {
    const body = await usage(`?user_id=${alice.id}`);
    expect(body.user_id).toBe(alice.id);
    expect(body.totals).toEqual(aliceTotals);
    expect(body.users).toEqual([{ user_id: alice.id, name: 'alice', ...aliceTotals }]);
    expect(body.all).toEqual(aliceTotals);
    const quiet = await usage(`?user_id=${carol.id}`);
    expect(quiet.totals).toEqual({ FAST: none, FLEX: none });
    expect(quiet.users).toEqual([]);
  });

  it('an unknown user_id → 404 not_found', async () => {
    const id = '3f2b8c1e-9d4a-4b7e-8f00-123456789abc';
    const err = expectError(await t.call({ method: 'GET', url: `/usage?user_id=${id}` }), 404, 'not_found');
    expect(err.details).toEqual({ user_id: id });
  });
});

describe('GET /usage: bad parameters', () => {
  it.each([
    ['from=yesterday', 'from'],
    ['from=2026-02-30', 'from'],
    ['from=2026-01-01T10:00:00', 'from'], // no offset: ambiguous
    ['from=1700000000', 'from'],
    ['from=', 'from'],
    ['to=2026-13-01', 'to'],
    ['to=2026-01-01T24:00:00Z', 'to'],
    ['to=%00', 'to'],
    ['user_id=abc', 'user_id'],
    ['user_id=', 'user_id'],
    ['tier=FAST', 'tier'],
  ])('?%s → 400 naming %s', async (q, field) => {
    const [named] = expectFieldError(await t.call({ method: 'GET', url: `/usage?${q}`, key: alice.key }), field);
    expect(named!.location).toBe('querystring');
  });

  it('from after to → 400 naming from', async () => {
    const res = await t.call({ method: 'GET', url: '/usage?from=2026-02-01&to=2026-01-01', key: alice.key });
    expect(expectFieldError(res, 'from')[0]!.message).toBe('must not be after `to`');
    // The default `to` is now: a `from` in the future is after it.
    expectFieldError(await t.call({ method: 'GET', url: '/usage?from=2999-01-01', key: alice.key }), 'from');
  });

  it('needs a key', async () => {
    expectError(await t.call({ method: 'GET', url: '/usage', key: null }), 401, 'unauthorized');
  });
});
