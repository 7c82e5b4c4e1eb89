/**
 * How the members of an attempt end (actors/coordinator/members.ts), as the
 * batch a pass would write: machine events, GPU releases, kills.
 * Pure bookkeeping; the commands are recorded, not sent.
 */
import { describe, expect, it } from 'vitest';
import type { Commands } from '../../../actors/coordinator/commands.ts';
import type { After } from '../../../actors/coordinator/inputs.ts';
import { JobTable, LiveJob } from '../../../actors/coordinator/live.ts';
import { memberEnded, type MemberUndo } from '../../../actors/coordinator/members.ts';
import { emptyBatch, type JobRecord } from '../../../actors/coordinator/ports.ts';
import type { JobStatus } from '../../../machines/job.machine.ts';
import { CapacitySnapshot } from '../../../src/placement/index.ts';

const T0 = 1_700_000_000_000;

function gang(nodes: string[], status: JobStatus = 'running') {
  const placements = nodes.map((n) => ({ node_id: n, gpu_indices: [0] }));
  const rec: JobRecord = {
    id: 'job-1', seq: 1, userId: 'u1', tier: 'FAST', status, statusReason: null, failureCode: null, priority: 0,
    gpuCount: 1, vramPerGpuGb: 40, cpuCores: 1, ramGb: 1, expectedDurationSec: 600,
    image: 'x', command: ['x'], env: {}, attempt: 1, maxAttempts: 3, nodeId: nodes[0]!, gpuIndices: [0],
    exitCode: null, nodeCount: nodes.length, placements, preemptedBy: null, preemptions: 0, memberFailure: null,
    createdAt: T0, scheduledAt: T0,
  };
  const jobs = new JobTable();
  const job = new LiveJob(rec);
  jobs.set(rec.id, job);
  const capacity = new CapacitySnapshot(
    nodes.map((n) => ({ nodeId: n, pool: 'fast' as const, schedulable: true, cpuTotal: 8, ramTotal: 64, gpus: [{ index: 0, vramGb: 80, heldBy: null }] })),
  );
  capacity.hold(job.request(), { jobId: rec.id, nodes: nodes.map((n) => ({ node_id: n, gpu_indices: [0] })) }, { startedAt: T0, endsAt: T0 + 600_000 });
  const kills: { nodes: string[] | undefined; reason: string }[] = [];
  const commands = { kill: async (_j: LiveJob, reason: string, nodes?: string[]) => void kills.push({ nodes, reason }) } as unknown as Commands;
  const end = async (node: string, e: { code: number | null; reason: string | null; lost?: boolean }) => {
    const batch = emptyBatch();
    const after: After = [];
    const undo: MemberUndo = [];
    memberEnded({ capacity, commands }, job, node, e, batch, after, undo);
    for (const f of after) await f();
    return { batch, undo };
  };
  return { job, capacity, kills, end };
}

describe('members of an attempt', () => {
  it('a single-node job: its exit goes straight to the machine', async () => {
    const g = gang(['n1']);
    const { batch } = await g.end('n1', { code: 0, reason: null });
    expect(batch.items).toEqual([{ jobId: 'job-1', attempt: 1, events: [{ type: 'exit', code: 0 }] }]);
    expect(batch.releases).toEqual([]); // the machine's releaseGpus frees it
  });

  it('a gang: a member that exits 0 frees its own GPUs; the attempt ends with the last member', async () => {
    const g = gang(['n1', 'n2']);
    const first = await g.end('n2', { code: 0, reason: null });
    expect(first.batch.items).toEqual([]);
    expect(first.batch.releases).toEqual([{ job_id: 'job-1', attempt: 1, node_id: 'n2' }]);
    expect(g.kills).toEqual([]);
    const last = await g.end('n1', { code: 0, reason: null });
    expect(last.batch.items).toEqual([{ jobId: 'job-1', attempt: 1, events: [{ type: 'exit', code: 0 }] }]);
  });

  it('a gang: the first failure is recorded and kills the others; the attempt ends with its code, not the killed ones\' 143', async () => {
    const g = gang(['n1', 'n2', 'n3']);
    const failed = await g.end('n3', { code: 3, reason: null });
    expect(failed.batch.items).toEqual([
      {
        jobId: 'job-1',
        attempt: 1,
        events: [{ type: 'member_failed', node_id: 'n3', code: 3, reason: 'gang member on n3 exited with code 3' }],
      },
    ]);
    expect(g.kills).toEqual([{ nodes: ['n1', 'n2'], reason: 'gang member on n3 exited with code 3' }]);
    await g.end('n1', { code: 143, reason: null });
    expect(g.kills).toHaveLength(1); // later failures find the others being killed already
    const last = await g.end('n2', { code: 143, reason: null });
    expect(last.batch.items).toEqual([{ jobId: 'job-1', attempt: 1, events: [{ type: 'exit', code: 3 }] }]);
  });

  it('a gang member\'s lost node is recorded as lost, and requeues the attempt once the others are gone', async () => {
    const g = gang(['n1', 'n2']);
    const lost = await g.end('n1', { code: null, reason: 'node n1 lost (no heartbeat for 3 intervals)', lost: true });
    expect(lost.batch.items[0]!.events).toEqual([
      { type: 'member_failed', node_id: 'n1', code: null, reason: 'gang member on n1 lost', lost: true },
    ]);
    const last = await g.end('n2', { code: 143, reason: null });
    expect(last.batch.items[0]!.events).toEqual([{ type: 'requeue', code: 'node_lost', reason: 'node n1 lost (no heartbeat for 3 intervals)' }]);
  });

  it('a duplicate report of a member that already ended changes nothing', async () => {
    const g = gang(['n1', 'n2']);
    await g.end('n2', { code: 0, reason: null });
    const again = await g.end('n2', { code: 0, reason: null });
    expect(again.batch.items).toEqual([]);
    expect(again.batch.releases).toEqual([]);
  });

  it('cancelled while its exit was being taken: the exit the agent sends again for the kill still frees the GPUs', async () => {
    // The pass took the exit while memory said running (the member is now
    // marked ended), and the API's cancel won the row: the job is cancelled
    // and still holds the GPUs. The agent answers the cancel's kill with its
    // exit once more; that must release the allocation.
    const g = gang(['n1']);
    await g.end('n1', { code: 0, reason: null });
    g.job.rec.status = 'cancelled';
    const again = await g.end('n1', { code: 0, reason: null });
    expect(again.batch.releases).toEqual([{ job_id: 'job-1', attempt: 1, node_id: 'n1' }]);
  });

  it('a pass that does not commit can be undone: the member is not marked ended', async () => {
    const g = gang(['n1', 'n2']);
    const { undo } = await g.end('n2', { code: 0, reason: null });
    for (const u of undo) u();
    const redelivered = await g.end('n2', { code: 0, reason: null });
    expect(redelivered.batch.releases).toEqual([{ job_id: 'job-1', attempt: 1, node_id: 'n2' }]);
  });
});
