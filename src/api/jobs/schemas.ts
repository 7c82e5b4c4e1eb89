import { z } from 'zod';
import { JOB_STATUSES } from '../../../machines/job.machine.ts';
import { JOB_FAILURE_CODES } from '../../../machines/job.failure.ts';
import { TIERS } from '../../domain/cluster.ts';
import type { PlacementRecord } from '../../placement/decision.ts';
import { FILTERS } from '../../placement/filters.ts';
import { SCORERS } from '../../placement/types.ts';
import { NullableTimestamp, PageQuery, storableString, Timestamp } from '../common/schemas.ts';
import { ResourceFields, ResourceFieldsOut, SPEC_EXAMPLE_JOB } from '../common/resources.ts';

export const TierSchema = z.enum(TIERS, 'must be FAST or FLEX').describe('FAST: warm capacity, starts in seconds. FLEX: cheaper, may wait hours and be preempted');

export const JobStatusSchema = z.enum(JOB_STATUSES);

export const JobFailureCodeSchema = z
  .enum(JOB_FAILURE_CODES)
  .describe(
    'Why the job failed, was cancelled, or why its last attempt ended (a requeue). One of: ' +
      'exit_nonzero (the process exited non-zero), launch_failed (the node could not start it), ' +
      'node_lost (its node stopped answering; requeued), time_limit (ran past its expected duration × the overrun factor), ' +
      'preempted (a FAST job needed its GPUs; requeued), unschedulable (no node could ever hold it), ' +
      'gang_member_failed (a member of the gang failed), cancelled_by_user, max_attempts (attempts used up). ' +
      'Clients switch on this; status_reason words it for people',
  )
  .meta({ id: 'JobFailureCode' });

export const MAX_DURATION_SEC = 30 * 24 * 3600;
export const MAX_NODE_COUNT = 64;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The request body of POST /jobs. Unknown fields are refused: a typo must not be silently ignored. */
export const JobSubmitBody = z
  .strictObject({
    tier: TierSchema,
    ...ResourceFields,
    node_count: z
      .int('must be an integer')
      .min(1, `must be from 1 to ${MAX_NODE_COUNT}`)
      .max(MAX_NODE_COUNT, `must be from 1 to ${MAX_NODE_COUNT}`)
      .optional()
      .describe(
        `Nodes of a gang, 1..${MAX_NODE_COUNT}. Default 1. With more than 1, gpu_count, vram_per_gpu_gb, ` +
          'cpu_cores and ram_gb are per node, and every node starts together or none does',
      ),
    expected_duration_sec: z
      .int('must be an integer number of seconds')
      .min(1, `must be from 1 to ${MAX_DURATION_SEC} seconds (30 days)`)
      .max(MAX_DURATION_SEC, `must be from 1 to ${MAX_DURATION_SEC} seconds (30 days)`)
      .optional()
      .describe('Expected run time in seconds, 1..2592000. Default SCALAR_DEFAULT_EXPECTED_DURATION_SEC'),
    priority: z
      .int('must be an integer')
      .min(-1000, 'must be from -1000 to 1000')
      .max(1000, 'must be from -1000 to 1000')
      .optional()
      .describe('Higher runs first within a tier, -1000..1000. Default 0'),
    command: z
      .array(storableString().max(65536, 'each argument must be at most 65536 characters'), 'must be an array of strings')
      .min(1, 'must be a non-empty array of strings')
      .max(4096, 'must have at most 4096 arguments')
      .describe('argv of the process, e.g. ["python", "train.py"]'),
    env: z
      .record(z.string(), storableString('must be a string'), 'must be an object of string values')
      .superRefine((env, ctx) => {
        // Checked here rather than as the record's key schema so the error names the variable.
        for (const name of Object.keys(env)) {
          if (!ENV_NAME.test(name) || name.length > 256) {
            ctx.addIssue({ code: 'custom', path: [name], message: 'is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most 256 characters)' });
          }
        }
      })
      .optional()
      .describe('Environment variables; names match [A-Za-z_][A-Za-z0-9_]*, values are strings. Default {}'),
  })
  .meta({ id: 'JobSubmit', example: SPEC_EXAMPLE_JOB });
export type JobSubmitBody = z.infer<typeof JobSubmitBody>;

export const JobPlacement = z
  .object({
    node_id: z.string(),
    gpu_indices: z.array(z.number()).describe('What CUDA_VISIBLE_DEVICES names on that node'),
  })
  .meta({ id: 'JobPlacement' });

/**
 * Counts keyed by a registry's names (the placement filters, the scorers),
 * so a new filter or scorer is in the OpenAPI without an edit here. Each key
 * is optional: a diagnosis stored before a filter existed has no count for it.
 */
function countsOf<K extends string>(keys: readonly K[], what: string) {
  const shape: Partial<Record<K, z.ZodOptional<z.ZodNumber>>> = {};
  for (const k of keys) shape[k] = z.number().optional();
  return z.looseObject(shape as Record<K, z.ZodOptional<z.ZodNumber>>).describe(what);
}

/**
 * The coordinator's placement diagnosis, as it stores it
 * (src/placement/decision.ts PlacementRecord, written by
 * actors/coordinator/queue.ts placementJson): why the job waits, or how it
 * was placed (STYLE.md: every decision can be explained). Every row a
 * coordinator wrote has this shape; keys added later are kept (loose).
 */
export const PlacementDiagnosis = z
  .looseObject({
    position: z.number().nullable().describe('Its position in the queue when the diagnosis was made; null when placed or failed'),
    nodes: z.number().describe('Nodes in the pools the job\'s tier may use, in any state'),
    rejected: countsOf(FILTERS, `Nodes rejected by each filter (${FILTERS.join(', ')}), each node counted once, under the first filter that rejected it`),
    best: z
      .array(
        z.looseObject({
          node_id: z.string(),
          score: z.number().describe('Weighted total, 0–100'),
          scores: countsOf(SCORERS, `Each scorer's 0–100 score (${SCORERS.join(', ')})`),
        }),
      )
      .describe('The best candidates, best first (at most 3)'),
    step: z.enum(['fit', 'backfill', 'preempt']).nullable().describe('How it was placed: fit, backfill (ahead of a reserved job), or preempt (on GPUs freed by preempting FLEX jobs; also while they are being stopped); null while it simply waits'),
    reason: z.string().nullable().describe('Plain-words summary, e.g. why it waits; null when placed'),
    at: Timestamp.describe('When the diagnosis was made'),
  })
  .meta({ id: 'PlacementDiagnosis' });

/** What the coordinator stores must be what the schema serves (checked by the compiler). */
type Stored<T extends z.input<typeof PlacementDiagnosis>> = T;
export type PlacementDiagnosisStored = Stored<PlacementRecord>;

/**
 * A stored value of another shape (no coordinator writes one: only a hand
 * edit of jobs.placement could) reads as null (serialize.ts parses it), so
 * the OpenAPI promises one shape and a client never gets another.
 */
export const PlacementDiagnosisOut = PlacementDiagnosis
  .nullable()
  .describe(
    'The latest placement diagnosis (while queued, and the one that placed it); null before the first ' +
      '(and for a stored value that is not a diagnosis, which only a hand edit of the database can leave)',
  );

export const JobResponse = z
  .object({
    id: z.string(),
    user_id: z.string(),
    tier: TierSchema,
    status: JobStatusSchema,
    status_reason: z.string().nullable().describe('Plain-words reason for the current status, e.g. why it waits'),
    failure_code: JobFailureCodeSchema.nullable().describe(
      'The reason as a stable code when the job failed, was cancelled, is being stopped, or was requeued; ' +
        'null while it waits for its first placement, is placed, runs or completed',
    ),
    failure_retryable: z
      .boolean()
      .nullable()
      .describe('With failure_code: whether the same job may succeed if run again unchanged (false: the job or its request must change)'),
    failure_fault: z
      .enum(['user', 'system'])
      .nullable()
      .describe("With failure_code: 'user' (the job's code or request) or 'system' (a node, capacity, the cluster)"),
    ...ResourceFieldsOut,
    node_count: z.number().describe('Nodes of the gang (1: a single-node job); the resources above are per node'),
    expected_duration_sec: z.number(),
    priority: z.number(),
    command: z.array(z.string()),
    env: z.record(z.string(), z.string()),
    attempt: z.number().describe('1 for the first run; +1 each time the job is requeued'),
    node_id: z.string().nullable().describe('The (first) node the job was placed on'),
    gpu_indices: z.array(z.number()).nullable().describe('Its GPUs on node_id'),
    placements: z
      .array(JobPlacement)
      .describe('Every node of the placement with its GPUs, in rank order (the first is node_id); [] when not placed'),
    placement: PlacementDiagnosisOut,
    preemptions: z.number().describe('Attempts ended by a FAST job preempting this one; they do not count against retries'),
    cost_usd: z
      .number()
      .describe(
        'Cost so far in USD: usage recorded for finished attempts, plus GPU-seconds held by the current attempt ' +
          'priced at the tier\'s price per GPU-hour',
      ),
    exit_code: z.number().nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
    queued_at: NullableTimestamp,
    scheduled_at: NullableTimestamp,
    started_at: NullableTimestamp,
    completed_at: NullableTimestamp,
    failed_at: NullableTimestamp,
    cancelled_at: NullableTimestamp,
    finished_at: NullableTimestamp.describe('When the job reached completed, failed or cancelled'),
  })
  .meta({ id: 'Job' });
export type JobResponse = z.infer<typeof JobResponse>;

export const JobListQuery = z.strictObject({
  status: JobStatusSchema.optional(),
  tier: TierSchema.optional(),
  failure_code: JobFailureCodeSchema.optional().describe('Only jobs whose failure_code is this, e.g. unschedulable'),
  ...PageQuery,
});

export const JobList = z
  .object({ jobs: z.array(JobResponse), next_cursor: z.string().nullable() })
  .meta({ id: 'JobList' });

export const JobEventResponse = z
  .object({
    id: z.number(),
    from: JobStatusSchema.nullable(),
    to: JobStatusSchema,
    event: z.string(),
    reason: z.string().nullable(),
    failure_code: JobFailureCodeSchema.nullable().describe('The code of a transition that failed, cancelled, stopped or requeued the job'),
    attempt: z.number(),
    time: Timestamp,
  })
  .meta({ id: 'JobEvent' });

export const JobEventList = z.object({ events: z.array(JobEventResponse) }).meta({ id: 'JobEventList' });

export const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1, 'must not be empty')
    .max(255, 'must be at most 255 characters')
    .optional()
    .describe('Repeating a request with the same key within 24 h returns the first job'),
});
