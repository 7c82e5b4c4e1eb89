import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { startCancelCoordinator, type CancelCoordinator } from '../helpers/coordinator.ts';

let t: TestApp;
let cancels: CancelCoordinator | undefined;
let key: string;
/** Ids of the jobs created before any walk, in submission order. */
const existing: string[] = [];
const cancelled = new Set<string>();

interface Job {
  id: string;
  status: string;
  tier: string;
  created_at: string;
}
interface Page {
  jobs: Job[];
  next_cursor: string | null;
}

let counter = 0;
async function submitMany(n: number, tier = 'FAST'): Promise<string[]> {
  const results = await Promise.all(
    Array.from({ length: n }, () =>
      t.call({ method: 'POST', url: '/jobs', key, payload: { ...exampleJob(), tier, env: { N: String(counter++) } } }),
    ),
  );
  for (const r of results) expect(r.statusCode, r.body).toBe(201);
  return results.map((r) => r.json().id as string);
}

async function page(qs: string): Promise<Page> {
  const res = await t.call({ method: 'GET', url: `/jobs?${qs}`, key });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

/** Follows next_cursor to the end, calling `between` after each page. */
async function walk(qs: string, between: () => Promise<unknown> = async () => {}): Promise<{ jobs: Job[]; pages: Page[] }> {
  const pages: Page[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 1000; i++) {
    const p = await page(cursor ? `${qs}&cursor=${encodeURIComponent(cursor)}` : qs);
    pages.push(p);
    if (p.next_cursor === null) return { jobs: pages.flatMap((x) => x.jobs), pages };
    cursor = p.next_cursor;
    await between();
  }
  throw new Error('the walk never ended');
}

function expectNewestFirst(jobs: Job[]) {
  for (let i = 1; i < jobs.length; i++) {
    const prev = Date.parse(jobs[i - 1]!.created_at);
    const cur = Date.parse(jobs[i]!.created_at);
    expect(cur, `job ${i} (${jobs[i]!.created_at}) is newer than job ${i - 1} (${jobs[i - 1]!.created_at})`).toBeLessThanOrEqual(prev);
  }
}

function expectExactlyOnce(jobs: Job[], expected: Iterable<string>) {
  const ids = jobs.map((j) => j.id);
  expect(new Set(ids).size, 'duplicates in the walk').toBe(ids.length);
  const seen = new Set(ids);
  const missing = [...expected].filter((id) => !seen.has(id));
  expect(missing, 'jobs the walk skipped').toEqual([]);
}

beforeAll(async () => {
  t = await startTestApp();
  // Cancel asks a coordinator; this one answers cancels only, so jobs stay as the tests leave them.
  cancels = await startCancelCoordinator(t);
  key = (await t.newUser('pager')).key;
  // 250 jobs, in waves of concurrent submissions like a busy client would send.
  for (let wave = 0; wave < 5; wave++) existing.push(...(await submitMany(50, wave % 2 ? 'FLEX' : 'FAST')));
  // Every third job is cancelled, for the filtered walks.
  for (let i = 0; i < existing.length; i += 3) {
    const res = await t.call({ method: 'POST', url: `/jobs/${existing[i]}/cancel`, key });
    expect(res.statusCode).toBe(200);
    cancelled.add(existing[i]!);
  }
});
afterAll(async () => {
  await cancels?.stop();
  await t?.close();
});

describe('walking GET /jobs with a cursor', () => {
  it('a quiet walk with limit 7 returns all 250 jobs once each, newest first, in full pages', async () => {
    const { jobs, pages } = await walk('limit=7');
    expect(jobs).toHaveLength(250);
    expectExactlyOnce(jobs, existing);
    expectNewestFirst(jobs);
    expect(pages).toHaveLength(Math.ceil(250 / 7));
    for (const p of pages.slice(0, -1)) {
      expect(p.jobs).toHaveLength(7);
      expect(p.next_cursor).toEqual(expect.any(String));
    }
    expect(pages.at(-1)!.jobs).toHaveLength(250 % 7);
    expect(pages.at(-1)!.next_cursor).toBeNull();
  });

  it('jobs submitted between page fetches neither duplicate nor push out existing ones', async () => {
    const before = new Set((await walk('limit=1000')).jobs.map((j) => j.id));
    const added: string[] = [];
    const { jobs, pages } = await walk('limit=7', async () => {
      added.push(...(await submitMany(3)));
    });
    expect(added.length).toBeGreaterThan(90);
    expectExactlyOnce(jobs, before);
    expectNewestFirst(jobs);
    // Jobs that arrived after the walk began are above its cursor: a later walk shows them.
    expect(jobs.filter((j) => added.includes(j.id))).toEqual([]);
    expect(jobs).toHaveLength(before.size);
    expect(pages.at(-1)!.next_cursor).toBeNull();
    const after = (await walk('limit=1000')).jobs.map((j) => j.id);
    expect(after.slice(0, added.length).sort()).toEqual([...added].sort());
    expect(after).toHaveLength(before.size + added.length);
  });

  it('jobs submitted while the pages are being fetched (in parallel) are never duplicated', async () => {
    const before = new Set((await walk('limit=1000')).jobs.map((j) => j.id));
    const pages: Page[] = [];
    let cursor: string | null = null;
    for (;;) {
      const [p]: [Page, string[]] = await Promise.all([
        page(cursor ? `limit=7&cursor=${encodeURIComponent(cursor)}` : 'limit=7'),
        submitMany(2),
      ]);
      pages.push(p);
      if (!p.next_cursor) break;
      cursor = p.next_cursor;
    }
    const jobs = pages.flatMap((p) => p.jobs);
    expectExactlyOnce(jobs, before);
    expectNewestFirst(jobs);
  });

  it('the same cursor gives the same page every time', async () => {
    const first = await page('limit=7');
    const a = await page(`limit=7&cursor=${first.next_cursor}`);
    await submitMany(5);
    const b = await page(`limit=7&cursor=${first.next_cursor}`);
    expect(b).toEqual(a);
    expect(a.jobs.map((j) => j.id)).not.toContain(first.jobs[0]!.id);
  });
});

describe('order under concurrent submissions', () => {
  it('jobs submitted concurrently, with and without Idempotency-Key, list newest first by created_at', async () => {
    const { key: k } = await t.newUser('mixed');
    const inFlight: Promise<Awaited<ReturnType<TestApp['call']>>>[] = [];
    for (let i = 0; i < 300; i++) {
      const headers: Record<string, string> = i % 3 === 0 ? { 'idempotency-key': `mixed-${i}` } : {};
      inFlight.push(t.call({ method: 'POST', url: '/jobs', key: k, headers, payload: exampleJob() }));
      // Spread the requests over several event-loop turns so they land in several batches.
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    const results = await Promise.all(inFlight);
    expect(results.every((r) => r.statusCode === 201)).toBe(true);
    const res = await t.call({ method: 'GET', url: '/jobs?limit=1000', key: k });
    const jobs: Job[] = res.json().jobs;
    expect(jobs).toHaveLength(300);
    expectNewestFirst(jobs);
    // What each submitter was told is what the list says.
    const told = new Map(results.map((r) => [r.json().id, r.json().created_at]));
    for (const j of jobs) expect(j.created_at).toBe(told.get(j.id));
  });
});

describe('walking with filters', () => {
  it('?status=cancelled walks exactly the cancelled jobs', async () => {
    const { jobs } = await walk('status=cancelled&limit=7');
    expect(jobs).toHaveLength(cancelled.size);
    expectExactlyOnce(jobs, cancelled);
    expectNewestFirst(jobs);
    for (const j of jobs) expect(j.status).toBe('cancelled');
  });

  it('?status=pending walks every pending job, even while some are cancelled mid-walk', async () => {
    const pending = existing.filter((id) => !cancelled.has(id));
    const queue = [...pending];
    const cancelledMidWalk = new Set<string>();
    const { jobs } = await walk('status=pending&limit=7', async () => {
      // Cancel the oldest pending job not yet reached: it must then not appear.
      const id = queue.shift();
      if (!id) return;
      const res = await t.call({ method: 'POST', url: `/jobs/${id}/cancel`, key });
      expect(res.statusCode).toBe(200);
      cancelledMidWalk.add(id);
    });
    for (const j of jobs) expect(j.status).toBe('pending');
    const ids = jobs.map((j) => j.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of pending) {
      if (!cancelledMidWalk.has(id)) expect(ids).toContain(id);
    }
    for (const id of cancelledMidWalk) cancelled.add(id);
  });

  it('?tier=FLEX&status=cancelled walks exactly the cancelled FLEX jobs', async () => {
    const all = (await walk('limit=1000')).jobs;
    const expected = all.filter((j) => j.tier === 'FLEX' && j.status === 'cancelled').map((j) => j.id);
    expect(expected.length).toBeGreaterThan(10);
    const { jobs } = await walk('tier=FLEX&status=cancelled&limit=4');
    expect(jobs.map((j) => j.id)).toEqual(expected);
  });

  it('a filter that matches nothing is one empty page', async () => {
    const p = await page('status=running&limit=7');
    expect(p).toEqual({ jobs: [], next_cursor: null });
  });
});
