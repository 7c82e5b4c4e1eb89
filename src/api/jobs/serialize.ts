import type { Job, JobEvent } from '../../db/entities.ts';
import { PlacementDiagnosis, type JobResponse } from './schemas.ts';
import type { JobStatus } from '../../../machines/job.machine.ts';
import { failureInfo, isJobFailureCode } from '../../../machines/job.failure.ts';
import type { Tier } from '../../domain/cluster.ts';

/** failure_code and what the one switch (machines/job.failure.ts) says of it; a code this build does not know reads as none. */
function failureFields(code: string | null | undefined): Pick<JobResponse, 'failure_code' | 'failure_retryable' | 'failure_fault'> {
  if (!isJobFailureCode(code)) return { failure_code: null, failure_retryable: null, failure_fault: null };
  const info = failureInfo(code);
  return { failure_code: code, failure_retryable: info.retryable, failure_fault: info.fault };
}

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

/**
 * Where the job runs, node by node in rank order. jobs.placements is written
 * by the coordinator for every placement; a row placed before it existed (or
 * a single-node placement written without it) has just node_id/gpu_indices,
 * which is the one-node placement. Not placed: [].
 */
export function placementsOf(job: Pick<Job, 'placements' | 'nodeId' | 'gpuIndices'>): JobResponse['placements'] {
  if (Array.isArray(job.placements)) {
    return job.placements.map((p) => ({ node_id: p.node_id, gpu_indices: p.gpu_indices ?? [] }));
  }
  return job.nodeId ? [{ node_id: job.nodeId, gpu_indices: job.gpuIndices ?? [] }] : [];
}

/** The stored diagnosis as is; anything that is not a JSON object reads as none. */
function diagnosisOf(job: Pick<Job, 'placement'>): JobResponse['placement'] {
  const parsed = PlacementDiagnosis.safeParse(job.placement);
  return parsed.success ? parsed.data : null;
}

/** A job row as loaded (user a reference) or as just built for insert (user an id). */
export type JobFields = Omit<Job, 'seq' | 'user'> & { user: string | { id: string } };

/**
 * A job row, in the API's snake_case shape. `costUsd` is the job's cost so far
 * (JobService.costs): it needs usage_records and allocations, which the row
 * does not carry.
 */
export function toJobResponse(job: JobFields, costUsd: number): JobResponse {
  return {
    id: job.id,
    user_id: typeof job.user === 'string' ? job.user : job.user.id,
    tier: job.tier as Tier,
    status: job.status as JobStatus,
    status_reason: job.statusReason ?? null,
    ...failureFields(job.failureCode),
    gpu_count: job.gpuCount,
    vram_per_gpu_gb: job.vramPerGpuGb,
    cpu_cores: job.cpuCores,
    ram_gb: job.ramGb,
    node_count: job.nodeCount ?? 1,
    expected_duration_sec: job.expectedDurationSec,
    priority: job.priority,
    image: job.image,
    command: job.command,
    env: job.env,
    attempt: job.attempt,
    node_id: job.nodeId ?? null,
    gpu_indices: job.gpuIndices ?? null,
    placements: placementsOf(job),
    placement: diagnosisOf(job),
    preemptions: job.preemptions ?? 0,
    cost_usd: costUsd,
    exit_code: job.exitCode ?? null,
    created_at: job.createdAt.toISOString(),
    updated_at: job.updatedAt.toISOString(),
    queued_at: iso(job.queuedAt),
    scheduled_at: iso(job.scheduledAt),
    started_at: iso(job.startedAt),
    completed_at: iso(job.completedAt),
    failed_at: iso(job.failedAt),
    cancelled_at: iso(job.cancelledAt),
    finished_at: iso(job.finishedAt),
  };
}

export function toJobEventResponse(e: JobEvent) {
  return {
    id: e.id,
    from: (e.fromStatus ?? null) as JobStatus | null,
    to: e.toStatus as JobStatus,
    event: e.event,
    reason: e.reason ?? null,
    failure_code: isJobFailureCode(e.failureCode) ? e.failureCode : null,
    attempt: e.attempt,
    time: e.createdAt.toISOString(),
  };
}
