import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyJobEvent } from '../helpers/job-events.ts';
import type { JobEvent } from '../../machines/job.machine.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { startCancelCoordinator, type CancelCoordinator } from '../helpers/coordinator.ts';
import { expectError, expectFieldError } from '../helpers/expect.ts';

let t: TestApp;
let cancels: CancelCoordinator | undefined;
beforeAll(async () => {
  t = await startTestApp();
  // Cancel asks a coordinator; this one answers cancels only, so jobs stay as the tests leave them.
  cancels = await startCancelCoordinator(t);
});
afterAll(async () => {
  await cancels?.stop();
  await t?.close();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const minimalJob = () => ({ tier: 'FLEX', gpu_count: 2, image: 'busybox:1.36', command: ['sleep', '1'] });

async function submit(body: object = exampleJob(), key?: string) {
  const res = await t.call({ method: 'POST', url: '/jobs', payload: body, ...(key ? { key } : {}) });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

/** Drives a job through the machine as the coordinator and agent would: admit, place, start, exit. */
async function runToExit(id: string, code: number) {
  const events: JobEvent[] = [
    { type: 'admit' },
    { type: 'place', node_id: 'node-a', gpu_indices: [0, 3] },
    { type: 'start' },
    { type: 'exit', code },
  ];
  for (const e of events) {
    const out = await applyJobEvent(t.db.orm.em, id, e);
    expect(out.kind).toBe('applied');
  }
}

describe('POST /jobs', () => {
  it('answers 201 with every field of the spec response, as submitted, plus the extra fields', async () => {
    const before = Date.now();
    const res = await t.call({ method: 'POST', url: '/jobs', payload: exampleJob() });
    expect(res.statusCode).toBe(201);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['idempotent-replayed']).toBeUndefined();
    const job = res.json();
    expect(res.headers.location).toBe(`/jobs/${job.id}`);

    const [admin] = await t.db.orm.em
      .fork()
      .execute<{ user_id: string }[]>("select user_id from api_keys where name = 'SCALAR_BOOTSTRAP_KEY'");
    expect(job).toEqual({
      id: expect.stringMatching(UUID),
      user_id: admin!.user_id,
      tier: 'FAST',
      status: 'pending',
      status_reason: expect.any(String),
      failure_code: null,
      failure_retryable: null,
      failure_fault: null,
      gpu_count: 1,
      node_count: 1,
      vram_per_gpu_gb: 40,
      cpu_cores: 4,
      ram_gb: 16,
      expected_duration_sec: 3600,
      priority: 0,
      image: 'nvidia/cuda:11.8.0-base-ubuntu22.04',
      command: ['python', 'train.py'],
      env: { MODEL_PATH: '/models/bert' },
      attempt: 1,
      node_id: null,
      gpu_indices: null,
      placements: [],
      placement: null,
      preemptions: 0,
      cost_usd: 0,
      exit_code: null,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
      queued_at: null,
      scheduled_at: null,
      started_at: null,
      completed_at: null,
      failed_at: null,
      cancelled_at: null,
      finished_at: null,
    });
    expect(job.updated_at).toBe(job.created_at);
    const created = Date.parse(job.created_at);
    expect(created).toBeGreaterThanOrEqual(before - 1000);
    expect(created).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('applies the documented defaults when optional fields are omitted', async () => {
    const job = await submit(minimalJob());
    expect(job).toMatchObject({
      tier: 'FLEX',
      status: 'pending',
      gpu_count: 2,
      priority: 0,
      env: {},
      cpu_cores: t.cfg.SCALAR_DEFAULT_CPU_CORES,
      ram_gb: t.cfg.SCALAR_DEFAULT_RAM_GB,
      vram_per_gpu_gb: t.cfg.SCALAR_DEFAULT_VRAM_PER_GPU_GB,
      expected_duration_sec: t.cfg.SCALAR_DEFAULT_EXPECTED_DURATION_SEC,
      image: 'busybox:1.36',
      command: ['sleep', '1'],
    });
    // The defaults are stored, not just echoed.
    const got = await t.call({ method: 'GET', url: `/jobs/${job.id}` });
    expect(got.json()).toEqual(job);
  });

  it('trims the image and keeps fractional resources and negative priorities exactly', async () => {
    const job = await submit({ ...minimalJob(), image: '  repo/img:tag  ', cpu_cores: 0.5, ram_gb: 1.25, vram_per_gpu_gb: 7.5, priority: -7 });
    expect(job).toMatchObject({ image: 'repo/img:tag', cpu_cores: 0.5, ram_gb: 1.25, vram_per_gpu_gb: 7.5, priority: -7 });
  });
});

describe('GET /jobs/{id}', () => {
  it('returns the job exactly as it was created', async () => {
    const job = await submit();
    const res = await t.call({ method: 'GET', url: `/jobs/${job.id}` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(job);
  });

  it('shows node_id and gpu_indices once the job is placed', async () => {
    const job = await submit();
    await applyJobEvent(t.db.orm.em, job.id, { type: 'admit' });
    await applyJobEvent(t.db.orm.em, job.id, { type: 'place', node_id: 'node-7', gpu_indices: [2] });
    await applyJobEvent(t.db.orm.em, job.id, { type: 'start' });
    const got = (await t.call({ method: 'GET', url: `/jobs/${job.id}` })).json();
    expect(got).toMatchObject({ status: 'running', node_id: 'node-7', gpu_indices: [2], exit_code: null });
    // A single-node placement written without jobs.placements reads as that one node.
    expect(got.placements).toEqual([{ node_id: 'node-7', gpu_indices: [2] }]);
    expect(got.queued_at).toMatch(ISO);
    expect(got.scheduled_at).toMatch(ISO);
    expect(got.started_at).toMatch(ISO);
    expect(got.finished_at).toBeNull();
  });
});

describe('GET /jobs filters', () => {
  let key: string;
  const ids = { fastPending: '', flexPending: '', fastCancelled: '', flexCancelled: '' };
  beforeAll(async () => {
    key = (await t.newUser('filters')).key;
    ids.fastPending = (await submit({ ...exampleJob(), tier: 'FAST' }, key)).id;
    ids.flexPending = (await submit({ ...exampleJob(), tier: 'FLEX' }, key)).id;
    ids.fastCancelled = (await submit({ ...exampleJob(), tier: 'FAST' }, key)).id;
    ids.flexCancelled = (await submit({ ...exampleJob(), tier: 'FLEX' }, key)).id;
    for (const id of [ids.fastCancelled, ids.flexCancelled]) {
      expect((await t.call({ method: 'POST', url: `/jobs/${id}/cancel`, key })).statusCode).toBe(200);
    }
    // Another user's jobs match the same filters; the lists below must not show them.
    const other = (await t.newUser('filters-other')).key;
    for (const tier of ['FAST', 'FLEX'] as const) {
      const theirs = (await submit({ ...exampleJob(), tier }, other)).id;
      expect((await t.call({ method: 'POST', url: `/jobs/${theirs}/cancel`, key: other })).statusCode).toBe(200);
    }
  });
  const list = async (qs: string) => {
    const res = await t.call({ method: 'GET', url: `/jobs${qs}`, key });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { jobs: { id: string; status: string; tier: string }[]; next_cursor: string | null };
  };

  it('lists all of the caller’s jobs newest first without filters', async () => {
    const page = await list('');
    expect(page.jobs.map((j) => j.id)).toEqual([ids.flexCancelled, ids.fastCancelled, ids.flexPending, ids.fastPending]);
    expect(page.next_cursor).toBeNull();
  });

  it.each([
    ['?status=pending', ['flexPending', 'fastPending']],
    ['?status=cancelled', ['flexCancelled', 'fastCancelled']],
    ['?status=running', []],
    ['?tier=FAST', ['fastCancelled', 'fastPending']],
    ['?tier=FLEX', ['flexCancelled', 'flexPending']],
    ['?status=cancelled&tier=FLEX', ['flexCancelled']],
    ['?status=pending&tier=FAST&limit=100', ['fastPending']],
    ['?failure_code=cancelled_by_user', ['flexCancelled', 'fastCancelled']],
    ['?failure_code=cancelled_by_user&tier=FAST', ['fastCancelled']],
    ['?failure_code=unschedulable', []],
  ] as const)('%s returns exactly the matching jobs', async (qs, names) => {
    const page = await list(qs);
    expect(page.jobs.map((j) => j.id)).toEqual(names.map((n) => ids[n]));
  });

  it.each(['?status=bogus', '?status=PENDING', '?tier=fast', '?tier=SLOW', '?failure_code=oom', '?failure_code=', `?failure_code=${'x'.repeat(5000)}`])('%s is a 400 naming the parameter', async (qs) => {
    const res = await t.call({ method: 'GET', url: `/jobs${qs}`, key });
    expectFieldError(res, qs.slice(1, qs.indexOf('=')));
  });
});

describe('GET /jobs limit and cursor', () => {
  let key: string;
  beforeAll(async () => {
    key = (await t.newUser('limits')).key;
    const results = await Promise.all(
      Array.from({ length: 105 }, () => t.call({ method: 'POST', url: '/jobs', payload: minimalJob(), key })),
    );
    expect(results.map((r) => r.statusCode)).toEqual(Array(105).fill(201));
  });

  it('defaults to 100 jobs per page, with a cursor to the rest', async () => {
    const res = await t.call({ method: 'GET', url: '/jobs', key });
    expect(res.statusCode).toBe(200);
    const page = res.json();
    expect(page.jobs).toHaveLength(100);
    expect(page.next_cursor).toEqual(expect.any(String));
    const rest = (await t.call({ method: 'GET', url: `/jobs?cursor=${page.next_cursor}`, key })).json();
    expect(rest.jobs).toHaveLength(5);
    expect(rest.next_cursor).toBeNull();
  });

  it('honours limit=1 and limit=1000', async () => {
    const one = (await t.call({ method: 'GET', url: '/jobs?limit=1', key })).json();
    expect(one.jobs).toHaveLength(1);
    expect(one.next_cursor).not.toBeNull();
    const all = (await t.call({ method: 'GET', url: '/jobs?limit=1000', key })).json();
    expect(all.jobs).toHaveLength(105);
    expect(all.next_cursor).toBeNull();
  });

  it.each(['0', '1001', 'abc', '-1', '1.5', '', '1e9'])('limit=%s is a 400 naming limit', async (v) => {
    expectFieldError(await t.call({ method: 'GET', url: `/jobs?limit=${v}`, key }), 'limit');
  });

  it.each([
    'garbage',
    Buffer.from('v1:abc').toString('base64url'),
    Buffer.from('v2:10').toString('base64url'),
    Buffer.from('v1:1234567890123456789').toString('base64url'),
    'x'.repeat(201),
  ])('cursor %s is a 400 naming cursor', async (c) => {
    expectFieldError(await t.call({ method: 'GET', url: `/jobs?cursor=${encodeURIComponent(c)}`, key }), 'cursor');
  });

  it('an unknown query parameter is a 400 naming it', async () => {
    const fields = expectFieldError(await t.call({ method: 'GET', url: '/jobs?state=running', key }), 'state');
    expect(fields[0]!.location).toBe('querystring');
  });
});

describe('POST /jobs/{id}/cancel', () => {
  it('cancels a pending job: 200, status cancelled, cancelled_at and finished_at set', async () => {
    const job = await submit();
    const res = await t.call({ method: 'POST', url: `/jobs/${job.id}/cancel` });
    expect(res.statusCode).toBe(200);
    const got = res.json();
    expect(got).toMatchObject({ id: job.id, status: 'cancelled', status_reason: 'cancelled by user' });
    // The same answer as a code a client can switch on, and what it means.
    expect(got).toMatchObject({ failure_code: 'cancelled_by_user', failure_retryable: false, failure_fault: 'user' });
    const { events } = (await t.call({ method: 'GET', url: `/jobs/${job.id}/events` })).json();
    expect(events.map((e: { to: string; failure_code: string | null }) => [e.to, e.failure_code])).toEqual([['pending', null], ['cancelled', 'cancelled_by_user']]);
    expect(got.cancelled_at).toMatch(ISO);
    expect(got.finished_at).toBe(got.cancelled_at);
    expect(got.updated_at).toBe(got.cancelled_at);
    expect(got.completed_at).toBeNull();
    expect(got.failed_at).toBeNull();
    expect((await t.call({ method: 'GET', url: `/jobs/${job.id}` })).json()).toEqual(got);
  });

  it('is idempotent: cancelling again answers 200 with the same job and records no new event', async () => {
    const job = await submit();
    const first = await t.call({ method: 'POST', url: `/jobs/${job.id}/cancel` });
    const second = await t.call({ method: 'POST', url: `/jobs/${job.id}/cancel` });
    expect(first.statusCode).toBe(200);
    expect(second.statusCode).toBe(200);
    expect(second.json()).toEqual(first.json());
    const events = (await t.call({ method: 'GET', url: `/jobs/${job.id}/events` })).json().events;
    expect(events.map((e: { event: string }) => e.event)).toEqual(['submit', 'cancel']);
  });

  it('accepts an empty body with a JSON content type', async () => {
    const job = await submit();
    const res = await t.call({
      method: 'POST',
      url: `/jobs/${job.id}/cancel`,
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().status).toBe('cancelled');
  });

  it.each([
    [0, 'completed'],
    [1, 'failed'],
  ])('a job that exited with code %i is %s and cannot be cancelled: 409 job_already_finished', async (code, status) => {
    const job = await submit();
    await runToExit(job.id, code);
    const res = await t.call({ method: 'POST', url: `/jobs/${job.id}/cancel` });
    const err = expectError(res, 409, 'job_already_finished');
    expect(err.details).toEqual({ job_id: job.id, status });
    // The refused cancel changed nothing.
    const got = (await t.call({ method: 'GET', url: `/jobs/${job.id}` })).json();
    expect(got.status).toBe(status);
    expect(got.exit_code).toBe(code);
    expect(got.cancelled_at).toBeNull();
    expect(got[`${status}_at`]).toMatch(ISO);
    expect(got.finished_at).toBe(got[`${status}_at`]);
  });

  it('cancels a running job', async () => {
    const job = await submit();
    await applyJobEvent(t.db.orm.em, job.id, { type: 'admit' });
    await applyJobEvent(t.db.orm.em, job.id, { type: 'place', node_id: 'n', gpu_indices: [0] });
    await applyJobEvent(t.db.orm.em, job.id, { type: 'start' });
    const res = await t.call({ method: 'POST', url: `/jobs/${job.id}/cancel` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'cancelled', node_id: 'n' });
  });
});

describe('GET /jobs/{id}/events', () => {
  it('lists every transition, oldest first, with from/to/event/reason/attempt/time', async () => {
    const job = await submit();
    await runToExit(job.id, 1);
    const res = await t.call({ method: 'GET', url: `/jobs/${job.id}/events` });
    expect(res.statusCode).toBe(200);
    const { events } = res.json();
    expect(events.map((e: Record<string, unknown>) => ({ from: e.from, to: e.to, event: e.event, reason: e.reason, attempt: e.attempt }))).toEqual([
      { from: null, to: 'pending', event: 'submit', reason: null, attempt: 1 },
      { from: 'pending', to: 'queued', event: 'admit', reason: 'waiting for capacity', attempt: 1 },
      { from: 'queued', to: 'scheduled', event: 'place', reason: 'starting on node-a (GPUs 0, 3)', attempt: 1 },
      { from: 'scheduled', to: 'running', event: 'start', reason: null, attempt: 1 },
      { from: 'running', to: 'failed', event: 'exit', reason: 'exited with code 1', attempt: 1 },
    ]);
    const ids = events.map((e: { id: number }) => e.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    const times = events.map((e: { time: string }) => {
      expect(e.time).toMatch(ISO);
      return Date.parse(e.time);
    });
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]);
    expect(events[0].time).toBe(job.created_at);
  });

  it('a new job has exactly its submit event', async () => {
    const job = await submit();
    const { events } = (await t.call({ method: 'GET', url: `/jobs/${job.id}/events` })).json();
    expect(events).toEqual([
      { id: expect.any(Number), from: null, to: 'pending', event: 'submit', reason: null, failure_code: null, attempt: 1, time: job.created_at },
    ]);
  });
});

describe('unknown and malformed job ids', () => {
  const malformed = [
    'abc',
    '123',
    'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz',
    '0000000g-0000-4000-8000-000000000000',
    '00000000-0000-4000-8000-0000000000001',
    encodeURIComponent("1' or '1'='1"),
    '%00',
    'a'.repeat(300),
  ];
  const routes = [
    ['GET', (id: string) => `/jobs/${id}`],
    ['POST', (id: string) => `/jobs/${id}/cancel`],
    ['GET', (id: string) => `/jobs/${id}/events`],
  ] as const;

  it.each(routes.flatMap(([method, url]) => malformed.map((id) => [method, url(id)] as const)))(
    '%s %s is 404 not_found, never 500',
    async (method, url) => {
      expectError(await t.call({ method, url }), 404, 'not_found');
    },
  );

  it.each(routes)('%s on an unknown uuid is 404 not_found naming the id', async (method, url) => {
    const id = '3f2b8c1e-9d4a-4b7e-8f00-123456789abc';
    const err = expectError(await t.call({ method, url: url(id) }), 404, 'not_found');
    expect(err.details).toEqual({ job_id: id });
  });

  it('a URL with malformed percent-encoding is a 400 in the API error shape', async () => {
    expectError(await t.call({ method: 'GET', url: '/jobs/%zz' }), 400, 'bad_request');
  });

  it('an upper-case uuid finds the job', async () => {
    const job = await submit();
    const res = await t.call({ method: 'GET', url: `/jobs/${job.id.toUpperCase()}` });
    expect(res.statusCode).toBe(200);
    expect(res.json().id).toBe(job.id);
  });
});
