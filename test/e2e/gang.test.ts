/**
 * Gangs end to end with real processes: `scalar api`, `scalar coordinator`
 * and two `scalar agent --runtime process` nodes in the fast pool, 2 GPUs
 * each.
 *
 *  1. A gang of 2 nodes × 2 GPUs runs one process per node; each learns its
 *     rank, the gang's size and where rank 0 is, and both print that.
 *  2. When one member fails, the gang fails as a whole: the other member is
 *     sent SIGTERM at once (its trap writes that to the log), the job fails
 *     with the failed member's exit code, and every GPU is free again.
 */
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster, until } from './helpers/cluster.ts';
import { Jobs } from './helpers/jobs.ts';

const KILL_GRACE_SEC = 2;
const cluster = new Cluster({
  SCALAR_HEARTBEAT_INTERVAL_MS: '300',
  SCALAR_KILL_GRACE_SEC: String(KILL_GRACE_SEC),
});
const runId = cluster.prefix.slice(5);
const NODES = [`e2e-${runId}-a`, `e2e-${runId}-b`];

interface NodeView {
  id: string;
  state: string;
  gpus: { index: number; job_id: string | null }[];
  free: { gpus: number };
  jobs: string[];
}

const jobs = new Jobs(cluster, { tier: 'FAST', cpu_cores: 1, ram_gb: 1, image: 'none', expected_duration_sec: 30 });
const submit = (body: Record<string, unknown>) => jobs.submit(body);
/** Waits until the job ends; `status` is the one expected. */
const ends = (id: string, status: string, timeoutMs = 20_000) => jobs.waitStatus(id, status, timeoutMs);
const logs = (id: string) => jobs.logs(id);
const nodeView = async (id: string): Promise<NodeView> => (await cluster.http<NodeView>('GET', `/nodes/${id}`)).body;

beforeAll(async () => {
  await cluster.boot(NODES, (id) => cluster.startAgent(id, { pool: 'fast', gpus: '2x80' }));
}, 90_000);

afterAll(async () => {
  await cluster.close();
}, 60_000);

describe('gang jobs with real processes', () => {
  it('a gang of 2 × 2 GPUs runs one process per node, each with its rank, the gang size and rank 0 as master', async () => {
    onTestFailed(() => cluster.dump());
    const gang = await submit({
      node_count: 2,
      gpu_count: 2,
      command: ['sh', '-c', 'echo rank=$SCALAR_NODE_RANK count=$SCALAR_NODE_COUNT master=$SCALAR_MASTER_ADDR gpus=$CUDA_VISIBLE_DEVICES'],
    });
    const done = await ends(gang.id, 'completed');
    expect(done.exit_code).toBe(0);

    // Both nodes, each with both its GPUs; node_id/gpu_indices are rank 0's.
    expect(done.placements).toHaveLength(2);
    expect(new Set(done.placements.map((p) => p.node_id))).toEqual(new Set(NODES));
    for (const p of done.placements) expect(p.gpu_indices).toEqual([0, 1]);
    expect(done.node_id).toBe(done.placements[0]!.node_id);
    expect(done.gpu_indices).toEqual(done.placements[0]!.gpu_indices);

    // One line from each member. The agents run on this host and report no
    // --addr, so rank 0's address is this host's name. The job is complete,
    // so every line was stored before its exit was reported; a short wait
    // covers the stream's read side only.
    const rankLines = async () => (await logs(gang.id)).map((l) => l.line).filter((l) => l.startsWith('rank='));
    const lines = await until(async () => ((await rankLines()).length >= 2 ? rankLines() : false), 3000).catch(() => rankLines());
    const master = os.hostname();
    expect(lines.sort()).toEqual([`rank=0 count=2 master=${master} gpus=0,1`, `rank=1 count=2 master=${master} gpus=0,1`]);
    // Each line says which member's node printed it.
    const byNode = (await logs(gang.id)).filter((l) => l.line.startsWith('rank=')).map((l) => `${l.node_id} ${l.line.slice(0, 6)}`);
    expect(byNode.sort()).toEqual([`${done.placements[0]!.node_id} rank=0`, `${done.placements[1]!.node_id} rank=1`].sort());
  }, 60_000);

  it('one member exits 3: the other gets SIGTERM at once, the job fails with code 3, and all 4 GPUs are free again', async () => {
    onTestFailed(() => cluster.dump());
    // Rank 1 fails half a second in; rank 0 would run a minute. The short
    // sleeps let rank 0's shell run its trap promptly.
    const script = [
      'if [ "$SCALAR_NODE_RANK" = 1 ]; then sleep 0.5; echo rank 1 fails >&2; exit 3; fi',
      'trap "echo rank 0 got SIGTERM; exit 143" TERM',
      'echo rank 0 running',
      'i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done',
      'echo rank 0 finished',
    ].join('\n');
    const gang = await submit({ node_count: 2, gpu_count: 2, expected_duration_sec: 60, command: ['sh', '-c', script] });
    const failed = await ends(gang.id, 'failed');
    expect(failed.exit_code, failed.status_reason ?? '').toBe(3);
    expect(failed.status_reason).toBe('exited with code 3');

    // Rank 0 was told to stop (SIGTERM, its trap ran), well within the kill
    // grace after rank 1's failure, and never ran to its end.
    const lines = await until(
      async () => {
        const ls = await logs(gang.id);
        return ls.some((l) => l.line === 'rank 0 got SIGTERM') ? ls : false;
      },
      10_000,
      "rank 0's SIGTERM line",
    );
    const at = (text: string) => Date.parse(lines.find((l) => l.line === text)!.time);
    expect(lines.map((l) => l.line)).toEqual(expect.arrayContaining(['rank 0 running', 'rank 1 fails', 'rank 0 got SIGTERM']));
    expect(lines.map((l) => l.line)).not.toContain('rank 0 finished');
    const sigtermAfter = at('rank 0 got SIGTERM') - at('rank 1 fails');
    expect(sigtermAfter, `SIGTERM ${sigtermAfter} ms after rank 1 failed`).toBeGreaterThanOrEqual(0);
    expect(sigtermAfter, `SIGTERM ${sigtermAfter} ms after rank 1 failed`).toBeLessThan(KILL_GRACE_SEC * 1000);

    // Every GPU is free: no holder on either node.
    await until(
      async () => {
        const views = await Promise.all(NODES.map(nodeView));
        return views.every((v) => v.free.gpus === 2 && v.jobs.length === 0 && v.gpus.every((g) => g.job_id === null));
      },
      10_000,
      'all 4 GPUs free',
    );
    const [open] = await cluster.query<{ n: number }>(`select count(*)::int as n from allocations where job_id = $1 and released_at is null`, [gang.id]);
    expect(open!.n).toBe(0);

    // And usable: a 2-GPU job lands on each node and completes.
    const next = [
      await submit({ gpu_count: 2, command: ['sh', '-c', 'echo next'] }),
      await submit({ gpu_count: 2, command: ['sh', '-c', 'echo next'] }),
    ];
    const finished = await Promise.all(next.map((j) => ends(j.id, 'completed')));
    expect(new Set(finished.map((j) => j.node_id))).toEqual(new Set(NODES));
    for (const j of finished) expect(j.gpu_indices).toEqual([0, 1]);
  }, 60_000);
});
