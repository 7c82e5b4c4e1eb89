/**
 * Cancel is a request to the coordinator, the only writer of job status
 * (real Postgres, real NATS, scripted agents): the API asks on
 * `<prefix>.coord.jobs.cancel` and answers once the leader has committed the
 * cancel and sent the kill. With no coordinator answering, the API answers
 * 503 `coordinator_unavailable` with Retry-After and the job is left as it was.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyJobEvent } from '../helpers/job-events.ts';
import { LEADER_LOCK_ID } from '../../actors/coordinator/leader.ts';
import type { RunningCoordinator } from '../../actors/coordinator/index.ts';
import { encodeJson, jobCancelReplySchema } from '../../src/wire/messages.ts';
import type { JobEvent } from '../../machines/job.machine.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { startTestCoordinator, stopAllAndReset, until } from '../helpers/coordinator.ts';
import { expectError } from '../helpers/expect.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';

const HB = 200;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

let t: TestApp;
const coordinators: RunningCoordinator[] = [];
const agents: ScriptedAgent[] = [];
let seq = 0;

beforeAll(async () => {
  t = await startTestApp({ SCALAR_HEARTBEAT_INTERVAL_MS: String(HB) });
});
afterEach(async () => {
  await stopAllAndReset(t, agents, coordinators);
});
afterAll(() => t?.close());

async function leader(): Promise<RunningCoordinator> {
  const c = startTestCoordinator(t, HB);
  coordinators.push(c);
  await c.leading;
  return c;
}

/** A ready FAST node with `gpus` GPUs of 80 GB. */
async function node(gpus = 1): Promise<ScriptedAgent> {
  const a = new ScriptedAgent(t.bus, `cancel-${++seq}`, { pool: 'fast', gpus, vramGb: 80 });
  agents.push(a);
  await a.register();
  a.heartbeats(HB);
  await until(async () => (await t.call({ method: 'GET', url: `/nodes/${a.nodeId}` })).json().state === 'ready');
  return a;
}

async function submit(key?: string): Promise<string> {
  const res = await t.call({ method: 'POST', url: '/jobs', payload: { ...exampleJob(), tier: 'FAST', gpu_count: 1 }, ...(key ? { key } : {}) });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}

const job = async (id: string) => (await t.call({ method: 'GET', url: `/jobs/${id}` })).json();
const statusIs = (id: string, status: string) => async () => (await job(id)).status === status;
const cancel = (id: string, key?: string) => t.call({ method: 'POST', url: `/jobs/${id}/cancel`, ...(key ? { key } : {}) });
const eventsOf = async (id: string): Promise<string[]> =>
  (await t.call({ method: 'GET', url: `/jobs/${id}/events` })).json().events.map((e: { event: string }) => e.event);

/** A job on the node, started: the node's one GPU is taken. */
async function running(a: ScriptedAgent): Promise<string> {
  const id = await submit();
  await a.expect('run');
  await a.started({ job_id: id, attempt: 1 });
  await until(statusIs(id, 'running'));
  return id;
}

/** A leader, a one-GPU node busy with a running job, and a job queued behind it. */
async function queuedJob(): Promise<string> {
  await leader();
  await running(await node(1));
  const id = await submit();
  await until(statusIs(id, 'queued'));
  return id;
}

describe('with a leading coordinator', () => {
  it('a queued job: 200 cancelled, with its cancel event, as GET then shows it', async () => {
    const waiting = await queuedJob();

    const res = await cancel(waiting);
    expect(res.statusCode, res.body).toBe(200);
    const got = res.json();
    expect(got).toMatchObject({ id: waiting, status: 'cancelled', status_reason: 'cancelled by user', node_id: null });
    expect(got.cancelled_at).toMatch(ISO);
    expect(got.finished_at).toBe(got.cancelled_at);
    expect(await job(waiting)).toEqual(got);
    expect(await eventsOf(waiting)).toEqual(['submit', 'admit', 'cancel']);
  });

  it('a running job: 200 cancelled, and the kill for its attempt is on its node queue by then', async () => {
    await leader();
    const a = await node(1);
    const id = await running(a);

    const res = await cancel(id);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ status: 'cancelled', node_id: a.nodeId, gpu_indices: [0] });
    expect(await a.expect('kill')).toMatchObject({ job_id: id, attempt: 1, reason: 'cancelled by user' });
  });

  it('is idempotent: a second cancel answers the same job and writes nothing', async () => {
    // A waiting job: nothing it holds keeps costing between the two answers.
    const id = await queuedJob();
    const first = await cancel(id);
    const second = await cancel(id);
    expect(first.statusCode).toBe(200);
    expect(second.statusCode).toBe(200);
    expect(second.json()).toEqual(first.json());
    expect(await eventsOf(id)).toEqual(['submit', 'admit', 'cancel']);
  });

  it('a completed job: 409 job_already_finished with its status, and it stays completed', async () => {
    await leader();
    const a = await node(1);
    const id = await running(a);
    await a.exited({ job_id: id, attempt: 1 }, 0);
    await until(statusIs(id, 'completed'));

    const err = expectError(await cancel(id), 409, 'job_already_finished');
    expect(err.details).toEqual({ job_id: id, status: 'completed' });
    const got = await job(id);
    expect(got.status).toBe('completed');
    expect(got.cancelled_at).toBeNull();
  });

  it("the kill names the job's current attempt and node (a job driven to its second attempt before the coordinator started)", async () => {
    const id = await submit();
    const drive: JobEvent[] = [
      { type: 'admit' },
      { type: 'place', node_id: 'cancel-node-a', gpu_indices: [0] },
      { type: 'requeue', code: 'node_lost', reason: 'cancel-node-a lost' },
      { type: 'place', node_id: 'cancel-node-b', gpu_indices: [3] },
      { type: 'start' },
    ];
    for (const e of drive) expect((await applyJobEvent(t.db.orm.em, id, e)).kind).toBe('applied');
    await leader();
    const b = new ScriptedAgent(t.bus, 'cancel-node-b', { pool: 'fast', gpus: 4, vramGb: 80 });

    expect((await cancel(id)).json()).toMatchObject({ status: 'cancelled', attempt: 2, node_id: 'cancel-node-b' });
    expect(await b.expect('kill')).toMatchObject({ job_id: id, attempt: 2 });
  });

  it("another user's job is a 404, and the job is untouched", async () => {
    await leader();
    const a = await node(1);
    const id = await running(a);
    const other = await t.newUser('cancel-other');
    const err = expectError(await cancel(id, other.key), 404, 'not_found');
    expect(err.details).toEqual({ job_id: id });
    expect((await job(id)).status).toBe('running');
  });

  it('a malformed request on the NATS subject is answered with an error, and the coordinator keeps working', async () => {
    await leader();
    const subject = t.bus.t.subjects.coordJobCancel;
    const ask = async (data: Uint8Array) => jobCancelReplySchema.parse((await t.bus.nc.request(subject, data, { timeout: 5000 })).json());
    for (const bad of [new TextEncoder().encode('not json'), encodeJson({ job_id: 'abc' }), encodeJson({}), encodeJson(null)]) {
      expect(await ask(bad)).toMatchObject({ ok: false, error: 'invalid_request' });
    }
    expect(await ask(encodeJson({ job_id: '00000000-0000-4000-8000-000000000000' }))).toMatchObject({ ok: false, error: 'job_not_found' });

    const a = await node(1);
    const id = await running(a);
    expect((await cancel(id)).json().status).toBe('cancelled');
  });
});

describe('with no coordinator answering', () => {
  it('503 coordinator_unavailable with Retry-After, and the job keeps its status', async () => {
    const id = await submit();
    for (const e of [{ type: 'admit' }, { type: 'place', node_id: 'cancel-node-c', gpu_indices: [1] }, { type: 'start' }] as JobEvent[]) {
      await applyJobEvent(t.db.orm.em, id, e);
    }
    const res = await cancel(id);
    const err = expectError(res, 503, 'coordinator_unavailable');
    expect(err.message).toMatch(/coordinator/);
    expect(res.headers['retry-after']).toBe('2');
    const got = await job(id);
    expect(got.status).toBe('running');
    expect(got.cancelled_at).toBeNull();
    expect(await eventsOf(id)).toEqual(['submit', 'admit', 'place', 'start']);
  });

  it('a standby does not answer; once it leads, the retry cancels', async () => {
    // A node the next leader finds in Postgres, so the job can wait for it rather than fail as unschedulable.
    const first = await leader();
    await node(1);
    await first.stop();
    // Someone else holds the leader lock: the coordinator started here waits as a standby.
    const holder = new pg.Client({ connectionString: t.testDb.url });
    await holder.connect();
    try {
      await holder.query('select pg_advisory_lock($1)', [LEADER_LOCK_ID]);
      const c = startTestCoordinator(t, HB);
      coordinators.push(c);
      const id = await submit();
      const res = await cancel(id);
      expectError(res, 503, 'coordinator_unavailable');
      expect(res.headers['retry-after']).toBe('2');
      expect((await job(id)).status).toBe('pending');

      await holder.query('select pg_advisory_unlock($1)', [LEADER_LOCK_ID]);
      await c.leading;
      const retry = await cancel(id);
      expect(retry.statusCode, retry.body).toBe(200);
      expect(retry.json().status).toBe('cancelled');
    } finally {
      await holder.end();
    }
  });

  it('a coordinator that stopped leading answers no more', async () => {
    const c = await leader();
    await c.stop();
    const id = await submit();
    expectError(await cancel(id), 503, 'coordinator_unavailable');
    expect((await job(id)).status).toBe('pending');
  });
});
