/**
 * The API wakes the coordinator over NATS (real Postgres, real NATS): every
 * committed submit batch publishes its job ids on `jobsSubmitted`. The
 * coordinator is not running here: this file reads the JOBS stream as it
 * would. (Cancel is a request to the coordinator: test/integration/cancel.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { AckPolicy, type Consumer } from '@nats-io/jetstream';
import { applyJobEvent } from '../helpers/job-events.ts';
import { jobsSubmittedSchema } from '../../src/wire/messages.ts';
import type { JobEvent } from '../../machines/job.machine.ts';
import { buildApp } from '../../src/api/app.ts';
import { connectTestBus, dropTestBus, exampleJob, startTestApp, testNatsPrefix, type TestApp } from '../helpers/app.ts';
import { expectError } from '../helpers/expect.ts';

let t: TestApp;
let submitted: Consumer;

beforeAll(async () => {
  t = await startTestApp();
  const { jsm, js, t: topo } = t.bus;
  // JOBS is a work queue, acked as the coordinator would.
  await jsm.consumers.add(topo.streams.JOBS, {
    durable_name: 'test-submitted',
    ack_policy: AckPolicy.Explicit,
    filter_subject: topo.subjects.jobsSubmitted,
  });
  submitted = await js.consumers.get(topo.streams.JOBS, 'test-submitted');
});
afterAll(() => t?.close());

/** Reads (and acks) messages until `done` says enough, or fails after `timeoutMs`. */
async function readUntil<T>(c: Consumer, parse: (v: unknown) => T, done: (got: T[]) => boolean, timeoutMs = 5000): Promise<T[]> {
  const got: T[] = [];
  const deadline = Date.now() + timeoutMs;
  while (!done(got)) {
    if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(got)}`);
    const iter = await c.fetch({ max_messages: 100, expires: 1000 });
    for await (const m of iter) {
      got.push(parse(m.json()));
      m.ack();
      if (done(got)) break;
    }
  }
  return got;
}

/** Every message now waiting on the consumer (and acks them). */
async function readAll<T>(c: Consumer, parse: (v: unknown) => T): Promise<T[]> {
  const got: T[] = [];
  for (;;) {
    const { num_pending } = await c.info();
    if (num_pending === 0) return got;
    const iter = await c.fetch({ max_messages: num_pending, expires: 1000 });
    for await (const m of iter) {
      got.push(parse(m.json()));
      m.ack();
    }
  }
}

const parseSubmitted = (v: unknown) => jobsSubmittedSchema.parse(v);
const idsIn = (msgs: { job_ids: string[] }[]) => msgs.flatMap((m) => m.job_ids);

async function submit(headers: Record<string, string> = {}): Promise<string> {
  const res = await t.call({ method: 'POST', url: '/jobs', payload: exampleJob(), headers });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}

async function drive(id: string, events: JobEvent[]) {
  for (const e of events) expect((await applyJobEvent(t.db.orm.em, id, e)).kind).toBe('applied');
}

describe('jobsSubmitted', () => {
  it('a submit publishes its job id once it is committed', async () => {
    await readAll(submitted, parseSubmitted);
    const id = await submit();
    const msgs = await readUntil(submitted, parseSubmitted, (g) => idsIn(g).includes(id));
    expect(idsIn(msgs).filter((x) => x === id)).toHaveLength(1);
  });

  it('concurrent submits: every id is published exactly once, one message per committed batch', async () => {
    await readAll(submitted, parseSubmitted);
    const ids = await Promise.all(Array.from({ length: 60 }, () => submit()));
    const msgs = await readUntil(submitted, parseSubmitted, (g) => ids.every((id) => idsIn(g).includes(id)));
    const published = idsIn(msgs);
    expect(new Set(published)).toEqual(new Set(ids));
    expect(published).toHaveLength(ids.length);
    // Group commit: 60 requests share fewer transactions, each announced by one message.
    expect(msgs.length).toBeLessThanOrEqual(ids.length);
    for (const m of msgs) expect(m.job_ids.length).toBeGreaterThan(0);
  });

  it('an idempotent submit publishes its job once; a replay publishes nothing', async () => {
    await readAll(submitted, parseSubmitted);
    const id = await submit({ 'idempotency-key': 'dispatch-1' });
    expect(await submit({ 'idempotency-key': 'dispatch-1' })).toBe(id);
    const after = await submit();
    // Messages arrive in commit order: once `after` is in, the replay's would be too.
    const msgs = await readUntil(submitted, parseSubmitted, (g) => idsIn(g).includes(after));
    expect(idsIn(msgs).filter((x) => x === id)).toHaveLength(1);
  });
});

describe('/readyz with NATS', () => {
  it('is ready while NATS answers', async () => {
    const res = await t.call({ method: 'GET', url: '/readyz', key: null });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ status: 'ready' });
  });

  it('is not ready once its NATS connection is closed, and says so', async () => {
    const cfg = { ...t.cfg, SCALAR_NATS_PREFIX: testNatsPrefix(), SCALAR_LOG_MAX_MB: 8 };
    const bus = await connectTestBus(cfg);
    const app = await buildApp({ cfg, orm: t.db.orm, log: pino({ level: 'silent' }), bus });
    try {
      expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      await dropTestBus(bus);
      const res = await app.inject({ method: 'GET', url: '/readyz' });
      const err = expectError(res, 503, 'unavailable');
      expect(err.details).toEqual({ database: 'ok', nats: 'closed' });
      expect(err.message).toMatch(/NATS/);
    } finally {
      await app.close();
    }
  });

  it('without a bus (REST-only tests), submit works and nothing is published; cancel cannot ask a coordinator: 503', async () => {
    const app = await buildApp({ cfg: t.cfg, orm: t.db.orm, log: pino({ level: 'silent' }) });
    try {
      await readAll(submitted, parseSubmitted);
      const auth = { authorization: `Bearer ${t.adminKey}` };
      const res = await app.inject({ method: 'POST', url: '/jobs', payload: exampleJob(), headers: auth });
      expect(res.statusCode).toBe(201);
      const id = res.json().id;
      await drive(id, [{ type: 'admit' }, { type: 'place', node_id: 'node-a', gpu_indices: [0] }]);
      // Only the coordinator writes job status, and this API cannot reach one: the job stays as it is.
      const refused = await app.inject({ method: 'POST', url: `/jobs/${id}/cancel`, headers: auth });
      expectError(refused, 503, 'coordinator_unavailable');
      expect(refused.headers['retry-after']).toBe('2');
      expect((await app.inject({ method: 'GET', url: `/jobs/${id}`, headers: auth })).json().status).toBe('scheduled');
      expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      expectError(await app.inject({ method: 'GET', url: `/jobs/${id}/logs`, headers: auth }), 503, 'unavailable');
      expect(await readAll(submitted, parseSubmitted)).toEqual([]);
    } finally {
      await app.close();
    }
  });
});
