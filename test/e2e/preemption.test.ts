/**
 * Backfill and preemption, end to end with real processes: `scalar api`,
 * `scalar coordinator` and one `scalar agent --runtime process` in the fast
 * pool (2 GPUs), and no flex node at all.
 *
 *  1. Two FLEX jobs backfill the idle fast pool (one GPU each).
 *  2. A FAST job asking for both GPUs arrives.
 *  3. The coordinator preempts both FLEX jobs: each process sees SIGTERM
 *     (its trap writes that to its log), exits, and the job is requeued with
 *     "preempted by FAST job <id>", the attempt not counted.
 *  4. The FAST job starts within one second of the GPUs freeing.
 *  5. Once the FAST job is done, both FLEX jobs run again and complete.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster, until } from './helpers/cluster.ts';
import { Jobs, type E2eJob } from './helpers/jobs.ts';

const cluster = new Cluster({
  SCALAR_HEARTBEAT_INTERVAL_MS: '300',
  SCALAR_PREEMPT_GRACE_SEC: '5',
});
const runId = cluster.prefix.slice(5);
const NODE = `e2e-${runId}-fast`;

const jobs = new Jobs(cluster, { cpu_cores: 1, ram_gb: 1, image: 'none' });
const submit = (body: Record<string, unknown>) => jobs.submit(body);
const waitFor = (id: string, test: (j: E2eJob) => boolean, what: string, timeoutMs?: number) => jobs.waitFor(id, test, what, timeoutMs);

// A FLEX process that says when it starts and when it gets SIGTERM. The
// short sleeps let the shell run its trap promptly.
const flexCommand = [
  'sh',
  '-c',
  'trap "echo got SIGTERM; exit 143" TERM; echo started attempt $SCALAR_ATTEMPT; i=0; while [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; echo finished',
];

beforeAll(async () => {
  await cluster.boot([NODE], (id) => cluster.startAgent(id, { pool: 'fast', gpus: '2x80' }));
}, 90_000);

afterAll(async () => {
  await cluster.close();
}, 60_000);

describe('FLEX backfill on the fast pool, preempted by a FAST job', () => {
  it('preempts the backfilled FLEX jobs with SIGTERM, starts the FAST job within a second of the GPUs freeing, and completes the FLEX jobs later', async () => {
    onTestFailed(() => cluster.dump());

    // 1. FLEX backfill fills the fast pool.
    const flex = [
      await submit({ tier: 'FLEX', gpu_count: 1, expected_duration_sec: 3, command: flexCommand }),
      await submit({ tier: 'FLEX', gpu_count: 1, expected_duration_sec: 3, command: flexCommand }),
    ];
    for (const f of flex) await waitFor(f.id, (j) => j.status === 'running', 'running on the fast node');
    for (const f of flex) {
      await until(async () => {
        const res = await cluster.http<{ data: { line: string }[] }>('GET', `/jobs/${f.id}/logs`);
        return res.body.data.some((l) => l.line.startsWith('started'));
      }, 10_000, `${f.id} printed started`);
    }

    // 2. A FAST job that needs both GPUs.
    const fast = await submit({ tier: 'FAST', gpu_count: 2, expected_duration_sec: 2, command: ['sh', '-c', 'echo fast job; sleep 1'] });

    // 3. Each FLEX process sees SIGTERM, and the job goes back to the queue, uncounted.
    for (const f of flex) {
      const requeued = await waitFor(f.id, (j) => j.attempt === 2, 'requeued as attempt 2');
      expect(requeued.preemptions).toBe(1);
      const lines = (await cluster.http<{ data: { attempt: number; line: string }[] }>('GET', `/jobs/${f.id}/logs`)).body.data;
      expect(lines.filter((l) => l.attempt === 1).map((l) => l.line)).toContain('got SIGTERM');
      const events = (await cluster.http<{ events: { attempt: number; to: string; reason: string | null }[] }>('GET', `/jobs/${f.id}/events`)).body.events;
      expect(events).toContainEqual(expect.objectContaining({ attempt: 2, to: 'queued', reason: `preempted by FAST job ${fast.id}`, failure_code: 'preempted' }));
    }

    // 4. The FAST job started within one second of the GPUs freeing.
    const done = await waitFor(fast.id, (j) => j.status === 'completed', 'completed');
    expect(done.exit_code).toBe(0);
    const [freed] = await cluster.query<{ at: Date }>(
      `select max(released_at) as at from allocations where job_id = any($1::uuid[]) and attempt = 1`,
      [flex.map((f) => f.id)],
    );
    const [started] = await cluster.query<{ placed: Date; started: Date }>(
      `select (select min(created_at) from allocations where job_id = $1) as placed, started_at as started from jobs where id = $1`,
      [fast.id],
    );
    const placedAfter = started!.placed.getTime() - freed!.at.getTime();
    const startedAfter = started!.started.getTime() - freed!.at.getTime();
    expect(placedAfter).toBeGreaterThanOrEqual(0);
    expect(startedAfter, `FAST job started ${startedAfter} ms after the GPUs were freed`).toBeLessThan(1000);

    // 5. The FLEX jobs run again and complete; their second attempt is not a failure.
    for (const f of flex) {
      const j = await waitFor(f.id, (x) => x.status === 'completed', 'completed after the FAST job', 30_000);
      expect(j.attempt).toBe(2);
      expect(j.exit_code).toBe(0);
    }
    // FAST was never preempted; usage was recorded for every attempt, priced by tier.
    const usage = await cluster.query<{ job_id: string; attempt: number; tier: string; gpu_count: number }>(
      `select job_id, attempt, tier, gpu_count from usage_records where job_id = any($1::uuid[]) order by job_id, attempt`,
      [[fast.id, ...flex.map((f) => f.id)]],
    );
    expect(usage.filter((u) => u.job_id === fast.id)).toEqual([{ job_id: fast.id, attempt: 1, tier: 'FAST', gpu_count: 2 }]);
    for (const f of flex) expect(usage.filter((u) => u.job_id === f.id).map((u) => u.attempt)).toEqual([1, 2]);
  }, 90_000);
});
