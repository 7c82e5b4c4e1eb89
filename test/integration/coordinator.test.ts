/**
 * The coordinator against the real Postgres and NATS, with scripted agents:
 * placement onto specific GPUs, the run/started/exited round trip, cancel
 * holding GPUs until the kill is confirmed, lost nodes, drain, restart and
 * leader failover.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningCoordinator } from '../../actors/coordinator/index.ts';
import { startTestApp, exampleJob, type TestApp } from '../helpers/app.ts';
import { startTestCoordinator, stopAllAndReset, until } from '../helpers/coordinator.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';

const HB = 200; // heartbeat interval (ms): a node is lost after 3 missed

let t: TestApp;
const coordinators: RunningCoordinator[] = [];
const agents: ScriptedAgent[] = [];
let seq = 0;

function coordinator(): RunningCoordinator {
  const c = startTestCoordinator(t, HB);
  coordinators.push(c);
  return c;
}

/** A node with a unique id, registered and heartbeating. */
async function node(pool: 'fast' | 'flex', gpus = 8, vramGb = 80): Promise<ScriptedAgent> {
  const a = new ScriptedAgent(t.bus, `${pool}-${++seq}`, { pool, gpus, vramGb });
  agents.push(a);
  await a.register();
  a.heartbeats(HB);
  await until(async () => (await t.call({ method: 'GET', url: `/nodes/${a.nodeId}` })).json().state === 'ready');
  return a;
}

async function submit(over: Record<string, unknown> = {}): Promise<string> {
  const res = await t.call({ method: 'POST', url: '/jobs', payload: { ...exampleJob(), gpu_count: 1, vram_per_gpu_gb: 40, ...over } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}

const job = async (id: string) => (await t.call({ method: 'GET', url: `/jobs/${id}` })).json();
const statusIs = (id: string, status: string) => async () => {
  const j = await job(id);
  return j.status === status ? j : false;
};
const activeAllocations = async (jobId: string) =>
  (await t.db.orm.em.fork().execute(`select node_id, gpu_index from allocations where job_id = ? and released_at is null`, [jobId])) as {
    node_id: string;
    gpu_index: number;
  }[];

beforeAll(async () => {
  t = await startTestApp({ SCALAR_HEARTBEAT_INTERVAL_MS: String(HB) });
});

afterEach(async () => {
  // Each test starts from an empty cluster: no jobs, nodes or undelivered messages.
  await stopAllAndReset(t, agents, coordinators);
});

afterAll(async () => {
  await t?.close();
});

describe('coordinator: placement and the run round trip', () => {
  it('places a FAST job on specific GPUs, binds them, and follows started → exited to completed', async () => {
    await coordinator().leading;
    const fast = await node('fast');
    const id = await submit({ tier: 'FAST', gpu_count: 2 });

    const run = await fast.expect('run');
    expect(run.job_id).toBe(id);
    expect(run.attempt).toBe(1);
    expect(run.gpu_indices).toHaveLength(2);
    expect(new Set(run.gpu_indices).size).toBe(2);
    expect(run.command).toEqual(exampleJob().command);

    const scheduled = await until(statusIs(id, 'scheduled'));
    expect(scheduled.node_id).toBe(fast.nodeId);
    expect(scheduled.gpu_indices).toEqual(run.gpu_indices);
    expect((await activeAllocations(id)).map((a) => a.gpu_index).sort()).toEqual([...run.gpu_indices].sort());

    await fast.started({ job_id: id, attempt: 1 });
    const running = await until(statusIs(id, 'running'));
    expect(running.started_at).toBeTruthy();

    await fast.exited({ job_id: id, attempt: 1 }, 0);
    const done = await until(statusIs(id, 'completed'));
    expect(done.exit_code).toBe(0);
    expect(done.finished_at).toBeTruthy();
    expect(await activeAllocations(id)).toEqual([]);

    const events = (await t.call({ method: 'GET', url: `/jobs/${id}/events` })).json().events.map((e: { to: string }) => e.to);
    expect(events).toEqual(expect.arrayContaining(['pending', 'queued', 'scheduled', 'running', 'completed']));
  });

  it('a non-zero exit fails the job with its exit code, and a launch failure fails it with the reason', async () => {
    await coordinator().leading;
    const fast = await node('fast');
    const a = await submit({ tier: 'FAST' });
    await fast.expect('run');
    await fast.started({ job_id: a, attempt: 1 });
    await fast.exited({ job_id: a, attempt: 1 }, 3);
    const failed = await until(statusIs(a, 'failed'));
    expect(failed.exit_code).toBe(3);
    expect(failed.status_reason).toMatch(/code 3/);
    expect(failed).toMatchObject({ failure_code: 'exit_nonzero', failure_retryable: false, failure_fault: 'user' });

    const b = await submit({ tier: 'FAST' });
    await fast.expect('run');
    await fast.launchFailed({ job_id: b, attempt: 1 }, 'docker engine unavailable');
    const lf = await until(statusIs(b, 'failed'));
    expect(lf.status_reason).toContain('docker engine unavailable');
    expect(lf).toMatchObject({ failure_code: 'launch_failed', failure_retryable: true, failure_fault: 'system' });
    expect(await activeAllocations(b)).toEqual([]);
  });

  it('a run that reached its agent expired (launch_failed, code command_expired) is requeued at once, not failed', async () => {
    await coordinator().leading;
    const fast = await node('fast');
    const id = await submit({ tier: 'FAST' });
    await fast.expect('run');
    await fast.launchFailed({ job_id: id, attempt: 1 }, 'the run command expired before node x took it', 'command_expired');
    // Requeued as for a lost node: attempt 2, placed again at once (the node is free), with the agent's words.
    const second = await fast.expect('run');
    expect(second).toMatchObject({ job_id: id, attempt: 2 });
    const job = (await t.call({ method: 'GET', url: `/jobs/${id}` })).json();
    expect(job).toMatchObject({ attempt: 2, status: 'scheduled' });
    const events = (await t.call({ method: 'GET', url: `/jobs/${id}/events` })).json().events;
    expect(events.find((e: { to: string; failure_code?: string }) => e.to === 'queued' && e.failure_code === 'node_lost')?.reason ?? '').toContain('expired');
  });

  it('a running attempt that died with its host (launch_failed, code node_rebooted) is requeued with the reason "node rebooted"', async () => {
    await coordinator().leading;
    const fast = await node('fast');
    const id = await submit({ tier: 'FAST' });
    await fast.expect('run');
    await fast.started({ job_id: id, attempt: 1 });
    await until(statusIs(id, 'running'));
    await fast.launchFailed({ job_id: id, attempt: 1 }, 'node rebooted: the host restarted while the attempt ran', 'node_rebooted');
    expect(await fast.expect('run')).toMatchObject({ job_id: id, attempt: 2 });
    const events = (await t.call({ method: 'GET', url: `/jobs/${id}/events` })).json().events as Array<{ to: string; failure_code?: string; reason?: string }>;
    const requeue = events.find((e) => e.to === 'queued' && e.failure_code === 'node_lost');
    expect(requeue?.reason).toMatch(/^node rebooted/);
    expect((await job(id)).exit_code ?? null).toBeNull();
  });

  it('a job whose wake-up message never arrived is found by the sweep and placed', async () => {
    await coordinator().leading;
    const fast = await node('fast');
    const first = await submit({ tier: 'FAST' });
    await fast.expect('run');
    await fast.started({ job_id: first, attempt: 1 });
    // A second pending job committed without any message (as if its API process died right after the commit).
    const [row] = await t.db.orm.em.fork().execute(
      `insert into jobs (id, user_id, tier, status, status_reason, gpu_count, vram_per_gpu_gb, cpu_cores, ram_gb,
         expected_duration_sec, priority, image, command, env, attempt, max_attempts, created_at, updated_at)
       select gen_random_uuid(), user_id, tier, 'pending', 'waiting for the coordinator to admit it', gpu_count, vram_per_gpu_gb,
         cpu_cores, ram_gb, expected_duration_sec, priority, image, command, env, 1, max_attempts, now(), now()
       from jobs where id = ? returning id`,
      [first],
    );
    const run = await fast.expect('run', 8000);
    expect(run.job_id).toBe(row!.id);
  });

  it('a queued job says why it waits, and FAST never lands on a flex node', async () => {
    await coordinator().leading;
    await node('flex', 8, 40);
    const id = await submit({ tier: 'FAST', gpu_count: 1, vram_per_gpu_gb: 40 });
    const queued = await until(async () => {
      const j = await job(id);
      return j.status === 'queued' && j.status_reason?.includes('fast') ? j : false;
    });
    expect(queued.node_id).toBeNull();
    expect(queued.status_reason).toMatch(/no ready fast node/);
  });

  it('never gives one GPU to two jobs: 8 one-GPU jobs fill a node, the 9th waits until one ends', async () => {
    await coordinator().leading;
    const fast = await node('fast');
    const ids = await Promise.all(Array.from({ length: 9 }, () => submit({ tier: 'FAST', gpu_count: 1 })));
    const runs: { job_id: string; gpu_indices: number[] }[] = [];
    for (let i = 0; i < 8; i++) {
      const run = await fast.expect('run');
      runs.push(run);
      await fast.started({ job_id: run.job_id, attempt: 1 });
    }
    expect(new Set(runs.map((r) => r.gpu_indices[0])).size).toBe(8);
    expect(await fast.nextCommand(1000)).toBeNull();
    const waiting = ids.find((id) => !runs.some((r) => r.job_id === id))!;
    expect((await until(statusIs(waiting, 'queued'))).status_reason).toMatch(/no free GPU|fewer than/);

    await fast.exited({ job_id: runs[0]!.job_id, attempt: 1 }, 0);
    const next = await fast.expect('run');
    expect(next.job_id).toBe(waiting);
    expect(next.gpu_indices).toEqual(runs[0]!.gpu_indices);
  });
});

describe('coordinator: cancel, lost nodes, drain', () => {
  it('cancelling a running job sends kill and frees its GPUs only once the agent confirms', async () => {
    await coordinator().leading;
    const fast = await node('fast');
    const id = await submit({ tier: 'FAST', gpu_count: 8 });
    await fast.expect('run');
    await fast.started({ job_id: id, attempt: 1 });
    await until(statusIs(id, 'running'));

    const res = await t.call({ method: 'POST', url: `/jobs/${id}/cancel` });
    expect(res.json().status).toBe('cancelled');
    const kill = await fast.expect('kill');
    expect(kill).toMatchObject({ job_id: id, attempt: 1 });

    // Not confirmed yet: the 8 GPUs stay held and a new job waits.
    const next = await submit({ tier: 'FAST', gpu_count: 1 });
    await until(statusIs(next, 'queued'));
    expect(await activeAllocations(id)).toHaveLength(8);

    await fast.exited({ job_id: id, attempt: 1 }, 143, true);
    await until(async () => (await activeAllocations(id)).length === 0);
    expect((await fast.expect('run')).job_id).toBe(next);
  });

  it('a lost node has its jobs requeued with attempt + 1 onto another node; a stale start is killed', async () => {
    await coordinator().leading;
    const a = await node('fast');
    const id = await submit({ tier: 'FAST', gpu_count: 1 });
    await a.expect('run');
    await a.started({ job_id: id, attempt: 1 });
    await until(statusIs(id, 'running'));

    const b = await node('fast');
    a.stopHeartbeats(); // the agent dies
    const run2 = await b.expect('run', 10_000);
    expect(run2).toMatchObject({ job_id: id, attempt: 2 });
    const requeued = await job(id);
    expect(requeued.attempt).toBe(2);
    expect(requeued.node_id).toBe(b.nodeId);
    expect((await t.call({ method: 'GET', url: `/nodes/${a.nodeId}` })).json().state).toBe('lost');

    // The old agent comes back still running attempt 1: it is told to kill it.
    a.heartbeats(HB);
    await a.register();
    expect(await a.expect('kill')).toMatchObject({ job_id: id, attempt: 1 });
    // Its report of attempt 1 changes nothing.
    await a.exited({ job_id: id, attempt: 1 }, 0);
    await b.started({ job_id: id, attempt: 2 });
    await b.exited({ job_id: id, attempt: 2 }, 0);
    const done = await until(statusIs(id, 'completed'));
    expect(done.attempt).toBe(2);
  });

  it('after the last attempt a lost node fails the job with a reason', async () => {
    await coordinator().leading;
    const id = await submit({ tier: 'FAST', gpu_count: 1 });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const n = await node('fast');
      expect(await n.expect('run', 10_000)).toMatchObject({ job_id: id, attempt });
      n.stopHeartbeats();
      await until(async () => (await t.call({ method: 'GET', url: `/nodes/${n.nodeId}` })).json().state === 'lost');
    }
    const failed = await until(statusIs(id, 'failed'));
    expect(failed.status_reason).toMatch(/lost.*gave up after 3 attempts/);
    expect(failed).toMatchObject({ failure_code: 'max_attempts', failure_retryable: true, failure_fault: 'system' });
  });

  it('a drained node takes no new jobs until resumed', async () => {
    await coordinator().leading;
    const fast = await node('fast');
    const drained = await t.call({ method: 'POST', url: `/nodes/${fast.nodeId}/drain`, payload: { reason: 'maintenance' } });
    expect(drained.statusCode, drained.body).toBe(200);
    expect(drained.json().state, drained.body).toBe('draining');
    const id = await submit({ tier: 'FAST' });
    await until(statusIs(id, 'queued'));
    expect(await fast.nextCommand(1000)).toBeNull();

    const resumed = await t.call({ method: 'POST', url: `/nodes/${fast.nodeId}/resume` });
    expect(resumed.json().state, resumed.body).toBe('ready');
    expect((await fast.expect('run')).job_id).toBe(id);
  });
});

describe('coordinator: restart and leadership', () => {
  it('a restarted coordinator rebuilds from Postgres and goes on', async () => {
    const first = coordinator();
    await first.leading;
    const fast = await node('fast');
    const a = await submit({ tier: 'FAST' });
    await fast.expect('run');
    await fast.started({ job_id: a, attempt: 1 });
    await until(statusIs(a, 'running'));
    await first.stop();

    // Reported while no coordinator ran: handled by the next one.
    await fast.exited({ job_id: a, attempt: 1 }, 0);
    const b = await submit({ tier: 'FAST' });
    await coordinator().leading;
    await until(statusIs(a, 'completed'));
    expect((await fast.expect('run')).job_id).toBe(b);
  });

  it('a standby takes over within seconds when the leader stops', async () => {
    const leader = coordinator();
    await leader.leading;
    const standby = coordinator();
    let standbyLeads = false;
    void standby.leading.then(() => (standbyLeads = true));
    await new Promise((r) => setTimeout(r, 500));
    expect(standbyLeads).toBe(false);

    const fast = await node('fast');
    await leader.stop();
    const started = Date.now();
    await standby.leading;
    expect(Date.now() - started).toBeLessThan(5000);
    const id = await submit({ tier: 'FAST' });
    expect((await fast.expect('run')).job_id).toBe(id);
  });
});
