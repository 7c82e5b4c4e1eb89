/**
 * Jobs run for real, end to end, as a user runs Scalar: `scalar api`,
 * `scalar coordinator` and two `scalar agent --runtime process` nodes as
 * child processes over one test database and one NATS prefix, driven over
 * HTTP. The jobs are real child processes of the agents.
 *
 * Heartbeats every 300 ms (a node is lost after ~1 s) and a 2 s kill grace
 * keep the failure scenarios short. The tests run in order and share the
 * cluster: the fourth kills an agent (a third one replaces it for the
 * fifth), the fifth kills and replaces the coordinator.
 *
 * E2E_LOG_LEVEL=info (or debug) echoes every child's output to stderr; a
 * failed test prints the last lines of each child anyway.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster, GiveUp, pidGone, until, type AgentProcess, type ScalarProcess } from './helpers/cluster.ts';
import { Jobs, type E2eJob } from './helpers/jobs.ts';

const HEARTBEAT_MS = 300;
const KILL_GRACE_SEC = 2;

const cluster = new Cluster({
  SCALAR_HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS),
  SCALAR_KILL_GRACE_SEC: String(KILL_GRACE_SEC),
});
let coordinator: ScalarProcess;
const agents = new Map<string, AgentProcess>();
const runId = cluster.prefix.slice(5); // test_<8 hex>: node ids unique per run

type Job = E2eJob;

/** A FAST job with small CPU and RAM needs, so GPUs are what limits placement. */
const jobs = new Jobs(cluster, { tier: 'FAST', gpu_count: 1, cpu_cores: 1, ram_gb: 1, expected_duration_sec: 60, image: 'none' });
const submit = (command: string[], over: Record<string, unknown> = {}): Promise<Job> => jobs.submit({ command, ...over });
const job = (id: string): Promise<Job> => jobs.get(id);
const waitStatus = (id: string, status: string, timeoutMs = 15_000): Promise<Job> => jobs.waitStatus(id, status, timeoutMs);
const logs = (id: string) => jobs.logs(id);

async function nodeState(id: string): Promise<{ state: string; gpus: { index: number; job_id: string | null }[]; jobs: string[] }> {
  const res = await cluster.http('GET', `/nodes/${id}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

async function startAgent(name: string): Promise<AgentProcess> {
  const a = await cluster.startAgent(`e2e-${runId}-${name}`);
  agents.set(a.nodeId, a);
  return a;
}

const liveAgents = () => [...agents.values()].filter((a) => a.running);

/**
 * Call first in each test: a failure prints every child's last lines, and
 * `errors()` lists what any child logged at level error or worse since.
 */
function startTest(): { errors: () => string[] } {
  onTestFailed(() => cluster.dump());
  const mark = cluster.errorMark();
  return { errors: () => cluster.errorsSince(mark) };
}

beforeAll(async () => {
  ({ coordinator } = await cluster.boot(['a', 'b'], startAgent));
}, 90_000);

afterAll(async () => {
  await cluster.close();
}, 60_000);

describe('scalar api + coordinator + process agents, end to end', () => {
  it('a failing command ends failed with its exit code, and both output streams are in its logs', async () => {
    const t = startTest();
    const submitted = await submit(['sh', '-c', 'echo hello; echo oops >&2; exit 3']);
    expect(submitted.status).toBe('pending');

    const done = await waitStatus(submitted.id, 'failed');
    expect(done.exit_code).toBe(3);
    expect(done.failure_code).toBe('exit_nonzero');
    expect(liveAgents().map((a) => a.nodeId)).toContain(done.node_id);
    expect(done.gpu_indices).toHaveLength(1);
    expect(done.attempt).toBe(1);

    // `exited` is reported only after every line is stored: the lines are there once the job ended.
    const lines = (await logs(submitted.id)).map((l) => ({ stream: l.stream, line: l.line, attempt: l.attempt }));
    expect(lines).toContainEqual({ stream: 'stdout', line: 'hello', attempt: 1 });
    expect(lines).toContainEqual({ stream: 'stderr', line: 'oops', attempt: 1 });
    expect(lines).toHaveLength(2);
    expect(t.errors()).toEqual([]);
  }, 30_000);

  it('a two-GPU job sees exactly its two GPUs in CUDA_VISIBLE_DEVICES', async () => {
    const t = startTest();
    const { id } = await submit(['sh', '-c', 'echo "gpus=$CUDA_VISIBLE_DEVICES"'], { gpu_count: 2 });
    const done = await waitStatus(id, 'completed');
    expect(done.exit_code).toBe(0);
    expect(done.gpu_indices).toHaveLength(2);
    expect(new Set(done.gpu_indices).size).toBe(2);
    for (const g of done.gpu_indices!) expect(g >= 0 && g < 4).toBe(true);
    const lines = (await logs(id)).filter((l) => l.stream === 'stdout').map((l) => l.line);
    expect(lines).toEqual([`gpus=${done.gpu_indices!.join(',')}`]);
    expect(t.errors()).toEqual([]);
  }, 30_000);

  it('cancelling a running job kills its process within the grace period and frees its GPUs', async () => {
    const t = startTest();
    const { id } = await submit(['sh', '-c', 'echo pid=$$; exec sleep 300']);
    const running = await waitStatus(id, 'running');
    const pidLine = await until(async () => (await logs(id)).find((l) => /^pid=\d+$/.test(l.line)), 10_000, 'pid line in the logs');
    const pid = Number(pidLine.line.slice(4));
    expect(pidGone(pid)).toBe(false);

    const cancelled = await cluster.http<Job>('POST', `/jobs/${id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    const t0 = Date.now();
    await until(() => pidGone(pid), KILL_GRACE_SEC * 1000 + 2000, `pid ${pid} gone after the cancel`, 25);
    const killMs = Date.now() - t0;
    expect(killMs).toBeLessThan(KILL_GRACE_SEC * 1000 + 2000);

    // The GPUs stay held until the agent confirms the end, then they are free.
    const nodeId = running.node_id!;
    await until(
      async () => {
        const n = await nodeState(nodeId);
        return !n.jobs.includes(id) && n.gpus.filter((g) => running.gpu_indices!.includes(g.index)).every((g) => g.job_id === null);
      },
      10_000,
      `GPUs of ${id} free on ${nodeId}`,
    );
    const active = await cluster.query('select gpu_index from allocations where job_id = $1 and released_at is null', [id]);
    expect(active).toEqual([]);
    const after = await job(id);
    expect(after.status).toBe('cancelled');
    expect(t.errors()).toEqual([]);
  }, 30_000);

  it('a job on an agent killed with kill -9 is requeued and completes on the other node', async () => {
    const t = startTest();
    const { id } = await submit(['sh', '-c', 'echo start; sleep 4; echo done']);
    const running = await waitStatus(id, 'running');
    const victim = agents.get(running.node_id!);
    expect(victim, `agent of ${running.node_id}`).toBeDefined();
    const other = liveAgents().find((a) => a !== victim)!;
    expect(other).toBeDefined();

    await victim!.crash();
    const done = await waitStatus(id, 'completed', 25_000);
    expect(done.attempt).toBe(2);
    expect(done.node_id).toBe(other.nodeId);
    expect(done.exit_code).toBe(0);
    expect((await nodeState(victim!.nodeId)).state).toBe('lost');

    const events = await cluster.query<{ attempt: number; to_status: string; event: string }>(
      'select attempt, to_status, event from job_events where job_id = $1 order by id',
      [id],
    );
    expect(events.map((e) => `${e.attempt}:${e.event}:${e.to_status}`)).toContain('2:requeue:queued');
    expect(events.filter((e) => e.to_status === 'completed').map((e) => e.attempt)).toEqual([2]);
    const attempt2 = (await logs(id)).filter((l) => l.attempt === 2).map((l) => l.line);
    expect(attempt2).toEqual(['start', 'done']);

    // The dead agent's attempt 1 is orphaned (it outlives its agent by design): end it.
    const state = JSON.parse(readFileSync(path.join(victim!.stateDir, 'state.json'), 'utf8')) as {
      executions: { job_id: string; attempt: number; record?: { pgid?: number; workDir?: string } }[];
    };
    const orphan = state.executions.find((e) => e.job_id === id && e.attempt === 1);
    expect(orphan?.record?.pgid).toBeGreaterThan(1);
    try {
      // Its group, only while the group leader is still that wrapper (its command line names the work dir).
      const cmdline = readFileSync(`/proc/${orphan!.record!.pgid}/cmdline`, 'utf8');
      if (cmdline.includes(orphan!.record!.workDir!)) process.kill(-orphan!.record!.pgid!, 'SIGKILL');
    } catch {
      // already gone
    }
    expect(t.errors()).toEqual([]);
  }, 45_000);

  it('a coordinator killed with kill -9 mid-burst loses nothing: 200 jobs complete exactly once, no GPU is double-booked', async () => {
    const t = startTest();
    // Two live nodes again (8 GPUs).
    while (liveAgents().length < 2) {
      const a = await startAgent(`r${agents.size}`);
      await until(async () => (await nodeState(a.nodeId)).state === 'ready', 15_000, `${a.nodeId} ready`);
    }

    const TOTAL = 200;
    const CONCURRENCY = 20;
    const ids: string[] = [];
    const statuses: number[] = [];
    const burst = async (count: number, onResponse?: (n: number) => void) => {
      let next = 0;
      let answered = 0;
      const worker = async () => {
        while (next < count) {
          next++;
          const res = await cluster.http<Job>('POST', '/jobs', {
            tier: 'FAST',
            gpu_count: 1,
            cpu_cores: 1,
            ram_gb: 1,
            expected_duration_sec: 10,
            image: 'none',
            command: ['true'],
          });
          statuses.push(res.status);
          if (res.status === 201) ids.push(res.body.id);
          onResponse?.(++answered);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    };

    // First half: the coordinator dies (kill -9) while submissions are in flight and jobs are being placed and run.
    let killed: Promise<unknown> | undefined;
    await burst(TOTAL / 2, (n) => {
      if (n === 60) killed = coordinator.crash();
    });
    await killed;
    expect(coordinator.exit?.signal).toBe('SIGKILL');

    // Second half: no coordinator at all; the API still accepts every job.
    const firstHalf = ids.length;
    await burst(TOTAL / 2);
    expect(statuses).toHaveLength(TOTAL);
    expect(statuses.filter((s) => s !== 201)).toEqual([]);
    expect(new Set(ids).size).toBe(TOTAL);
    const secondHalf = ids.slice(firstHalf);
    const stillPending = await cluster.query<{ n: string }>(
      `select count(*) as n from jobs where id = any($1::uuid[]) and status = 'pending'`,
      [secondHalf],
    );
    expect(Number(stillPending[0]!.n)).toBe(secondHalf.length);

    // A new coordinator takes over from Postgres and the unacked messages.
    coordinator = await cluster.startCoordinator('coordinator-2');
    await until(
      async () => {
        const rows = await cluster.query<{ status: string; n: string }>(
          'select status, count(*) as n from jobs where id = any($1::uuid[]) group by status',
          [ids],
        );
        const by = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
        const errors = t.errors();
        if (errors.length > 0) throw new GiveUp(`a process logged errors:\n${errors.slice(0, 5).join('\n')}`);
        if ((by.failed ?? 0) + (by.cancelled ?? 0) > 0) throw new GiveUp(`jobs ended badly: ${JSON.stringify(by)}`);
        return by.completed === TOTAL;
      },
      90_000,
      `all ${TOTAL} jobs completed`,
      250,
    ).catch(async (err: Error) => {
      const rows = await cluster.query('select status, count(*) as n from jobs where id = any($1::uuid[]) group by status', [ids]);
      throw new Error(`${err.message}; now ${JSON.stringify(rows)}`);
    });

    // Exactly one `completed` transition per job, and each job's row says completed with exit code 0.
    const completions = await cluster.query<{ job_id: string; n: string }>(
      `select j.id as job_id, count(e.id) as n from jobs j
         left join job_events e on e.job_id = j.id and e.to_status = 'completed'
        where j.id = any($1::uuid[]) group by j.id`,
      [ids],
    );
    expect(completions).toHaveLength(TOTAL);
    expect(completions.filter((c) => Number(c.n) !== 1)).toEqual([]);
    const rows = await cluster.query<{ status: string; exit_code: number; attempt: number }>(
      'select status, exit_code, attempt from jobs where id = any($1::uuid[])',
      [ids],
    );
    expect(rows.filter((r) => r.status !== 'completed' || r.exit_code !== 0)).toEqual([]);

    // Every allocation of these jobs was released.
    const open = await cluster.query(
      'select job_id, attempt, node_id, gpu_index from allocations where job_id = any($1::uuid[]) and released_at is null',
      [ids],
    );
    expect(open).toEqual([]);
    const allocated = await cluster.query<{ n: string }>('select count(distinct job_id) as n from allocations where job_id = any($1::uuid[])', [ids]);
    expect(Number(allocated[0]!.n)).toBe(TOTAL);

    // The whole allocation history (every test's jobs): no GPU was ever held by two attempts at once.
    const history = await cluster.query<{ node_id: string; gpu_index: number; job_id: string; attempt: number; created_at: Date; released_at: Date | null }>(
      'select node_id, gpu_index, job_id, attempt, created_at, released_at from allocations order by node_id, gpu_index, created_at, id',
    );
    const overlaps: string[] = [];
    for (let i = 1; i < history.length; i++) {
      const prev = history[i - 1]!;
      const cur = history[i]!;
      if (prev.node_id !== cur.node_id || prev.gpu_index !== cur.gpu_index) continue;
      if (prev.released_at === null || prev.released_at.getTime() > cur.created_at.getTime()) {
        overlaps.push(
          `${cur.node_id}/${cur.gpu_index}: ${prev.job_id}#${prev.attempt} [${prev.created_at.toISOString()}, ${prev.released_at?.toISOString() ?? 'open'}] ` +
            `overlaps ${cur.job_id}#${cur.attempt} from ${cur.created_at.toISOString()}`,
        );
      }
    }
    expect(overlaps).toEqual([]);
    expect(history.length).toBeGreaterThanOrEqual(TOTAL);
    // Nor did any agent get a run for GPUs that one of its attempts still used.
    const doubleBooked = [...agents.values()].flatMap((a) => a.warnings.filter((l) => l.includes('still used by another attempt')));
    expect(doubleBooked).toEqual([]);
    expect(t.errors()).toEqual([]);
  }, 120_000);

  it('a standby coordinator takes over within seconds when the leader is killed with kill -9', async () => {
    startTest();
    const standby = cluster.spawn('coordinator-standby', ['coordinator']);
    await standby.waitForLine(/standing by/, 30_000);
    const before = await submit(['true']);
    await until(async () => (await job(before.id)).status === 'completed', 30_000, 'a job under the old leader');

    await coordinator.crash();
    const t0 = Date.now();
    await standby.waitForLine(/"msg":"Scalar coordinator ready"/, 15_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    coordinator = standby;
    const after = await submit(['true']);
    await until(async () => (await job(after.id)).status === 'completed', 30_000, 'a job under the new leader');
  }, 60_000);
});

