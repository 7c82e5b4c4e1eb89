import type { Job, JobEvent } from '../db/entities.ts';
import type { JobResponse } from '../api/schemas/jobs.ts';
import type { JobStatus } from '../../machines/job.machine.ts';
import type { Tier } from '../api/schemas/jobs.ts';

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

/** A job row, in the API's snake_case shape. */
export function toJobResponse(job: Job): JobResponse {
  return {
    id: job.id,
    user_id: typeof job.user === 'string' ? job.user : job.user.id,
    tier: job.tier as Tier,
    status: job.status as JobStatus,
    status_reason: job.statusReason ?? null,
    gpu_count: job.gpuCount,
    vram_per_gpu_gb: job.vramPerGpuGb,
    cpu_cores: job.cpuCores,
    ram_gb: job.ramGb,
    expected_duration_sec: job.expectedDurationSec,
    priority: job.priority,
    image: job.image,
    command: job.command,
    env: job.env,
    attempt: job.attempt,
    node_id: job.nodeId ?? null,
    gpu_indices: job.gpuIndices ?? null,
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
    attempt: e.attempt,
    time: e.createdAt.toISOString(),
  };
}
