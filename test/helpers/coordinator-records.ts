/**
 * Builders for the coordinator's records (JobRecord, StoredNode) with
 * plausible defaults, for the store contract and the coordinator harness.
 */
import type { JobRecord, StoredNode } from '../../actors/coordinator/ports.ts';
import type { Pool } from '../../src/domain/cluster.ts';

/** A fixed instant, so times read back exactly. */
export const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);

/** Ids must be UUIDs (jobs.id, users.id are uuid in Postgres). */
export const uuid = (kind: 'job' | 'user', n: number) => `00000000-0000-4000-8000-${kind === 'job' ? '1' : '2'}${String(n).padStart(11, '0')}`;
export const USER = uuid('user', 1);

export function aJob(n: number, over: Partial<Omit<JobRecord, 'seq'>> = {}): Omit<JobRecord, 'seq'> {
  return {
    id: uuid('job', n),
    userId: USER,
    tier: 'FAST',
    status: 'pending',
    statusReason: null,
    failureCode: null,
    priority: 0,
    gpuCount: 2,
    vramPerGpuGb: 40,
    cpuCores: 4,
    ramGb: 32,
    expectedDurationSec: 3600,
    image: 'ghcr.io/acme/train:1',
    command: ['python', 'train.py', `--run=${n}`],
    env: { RUN: String(n) },
    attempt: 1,
    maxAttempts: 3,
    nodeId: null,
    gpuIndices: null,
    exitCode: null,
    nodeCount: 1,
    placements: null,
    preemptedBy: null,
    preemptions: 0,
    memberFailure: null,
    createdAt: T0 - 3600_000 + n * 1000,
    scheduledAt: null,
    ...over,
  };
}

/** A job placed on `nodeId` (scheduled or running), with its placement fields filled in. */
export function aPlacedJob(n: number, nodeId: string, gpus: number[], over: Partial<Omit<JobRecord, 'seq'>> = {}): Omit<JobRecord, 'seq'> {
  return aJob(n, {
    status: 'running',
    gpuCount: gpus.length,
    nodeId,
    gpuIndices: gpus,
    placements: [{ node_id: nodeId, gpu_indices: gpus }],
    scheduledAt: T0 - 600_000,
    ...over,
  });
}

export function aNode(id: string, pool: Pool, gpus: number, over: Partial<StoredNode> = {}): StoredNode {
  return {
    id,
    pool,
    state: 'ready',
    stateReason: null,
    runtime: 'simulated',
    cpuCores: 64,
    ramGb: 512,
    drainRequested: false,
    blockId: null,
    addr: `${id}.internal`,
    gpus: Array.from({ length: gpus }, (_, index) => ({ index, uuid: `GPU-${id}-${index}`, model: 'H100', vram_gb: 80 })),
    ...over,
  };
}

