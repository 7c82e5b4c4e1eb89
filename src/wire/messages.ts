/**
 * Every message on the bus, as zod schemas. Receivers parse what they get:
 * a malformed message is logged and terminated (never redelivered forever),
 * and every job message carries (job_id, attempt) so a stale one is ignored.
 */
import { z } from 'zod';
import { JOB_STATUSES } from '../../machines/job.status.ts';

const jobId = z.uuid();
const attempt = z.number().int().min(1);
const nodeId = z.string().min(1).max(63);
const time = z.string();

export const gpuInfoSchema = z.object({
  index: z.number().int().min(0),
  uuid: z.string(),
  model: z.string(),
  vram_gb: z.number().positive(),
});

export const attemptRefSchema = z.object({ job_id: jobId, attempt });

// ---- api → coordinator (stream JOBS) ----
export const jobsSubmittedSchema = z.object({ job_ids: z.array(jobId).min(1) });
export type JobsSubmitted = z.infer<typeof jobsSubmittedSchema>;


// ---- coordinator → agent (stream NODE_CMDS) ----
export const runCommandSchema = z.object({
  type: z.literal('run'),
  job_id: jobId,
  attempt,
  gpu_indices: z.array(z.number().int().min(0)),
  image: z.string(),
  command: z.array(z.string()).min(1),
  env: z.record(z.string(), z.string()),
  cpu_cores: z.number(),
  ram_gb: z.number(),
  expected_duration_sec: z.number(),
});
export const killCommandSchema = z.object({
  type: z.literal('kill'),
  job_id: jobId,
  attempt,
  grace_sec: z.number().min(0),
  reason: z.string(),
});
export const nodeCommandSchema = z.discriminatedUnion('type', [runCommandSchema, killCommandSchema]);
export type RunCommand = z.infer<typeof runCommandSchema>;
export type KillCommand = z.infer<typeof killCommandSchema>;
export type NodeCommand = z.infer<typeof nodeCommandSchema>;

// ---- agent → coordinator (stream NODE_EVENTS) ----
export const registeredEventSchema = z.object({
  type: z.literal('registered'),
  node_id: nodeId,
  /** Changes on every agent start; lets the coordinator tell a restart from a redelivery. */
  boot_id: z.string(),
  pool: z.enum(['fast', 'flex']),
  runtime: z.enum(['process', 'docker', 'simulated']),
  cpu_cores: z.number().positive(),
  ram_gb: z.number().positive(),
  gpus: z.array(gpuInfoSchema),
  /** Attempts the agent still runs after a restart (it reports finished ones with `exited`). */
  running: z.array(attemptRefSchema),
  /** The capacity block the node belongs to (a node bought by the autoscaler or an admin), if any. */
  block_id: z.string().min(1).max(128).nullable().optional(),
  /** Where other members of a gang reach this node (SCALAR_MASTER_ADDR); defaults to the host name. */
  addr: z.string().min(1).max(255).optional(),
  time,
});
export const startedEventSchema = z.object({
  type: z.literal('started'),
  node_id: nodeId,
  job_id: jobId,
  attempt,
  pid: z.number().int().nullable(),
  time,
});
export const exitedEventSchema = z.object({
  type: z.literal('exited'),
  node_id: nodeId,
  job_id: jobId,
  attempt,
  code: z.number().int(),
  signal: z.string().nullable(),
  /** True when the agent killed it on a `kill` command. */
  killed: z.boolean(),
  time,
});
/**
 * Why a launch failed, when the coordinator should act on it other than by
 * failing the job. `command_expired`: the run reached the agent after its
 * signature expired (the agent took it more than SCALAR_COMMAND_TTL_SEC after
 * it was sent, or the clocks disagree); nothing ran, and the coordinator
 * requeues the attempt as for a lost node. `node_rebooted`: the host
 * restarted while the attempt was launching or running, so it died with the
 * host; the coordinator requeues it the same way, with the agent's reason
 * ("node rebooted: …").
 */
export const launchFailedCodeSchema = z.enum(['command_expired', 'node_rebooted']);
export type LaunchFailedCode = z.infer<typeof launchFailedCodeSchema>;
export const launchFailedEventSchema = z.object({
  type: z.literal('launch_failed'),
  node_id: nodeId,
  job_id: jobId,
  attempt,
  reason: z.string(),
  /** Absent: the runtime refused it (the job fails with launch_failed). */
  code: launchFailedCodeSchema.optional(),
  time,
});
export const nodeEventSchema = z.discriminatedUnion('type', [
  registeredEventSchema,
  startedEventSchema,
  exitedEventSchema,
  launchFailedEventSchema,
]);
export type RegisteredEvent = z.infer<typeof registeredEventSchema>;
export type StartedEvent = z.infer<typeof startedEventSchema>;
export type ExitedEvent = z.infer<typeof exitedEventSchema>;
export type LaunchFailedEvent = z.infer<typeof launchFailedEventSchema>;
export type NodeBusEvent = z.infer<typeof nodeEventSchema>;

// ---- agent → coordinator (core NATS) ----
export const heartbeatSchema = z.object({
  node_id: nodeId,
  boot_id: z.string(),
  running: z.array(attemptRefSchema),
  free: z.object({ gpus: z.number().int(), cpu_cores: z.number(), ram_gb: z.number() }),
  used: z.object({ gpus: z.number().int(), cpu_cores: z.number(), ram_gb: z.number() }),
  time,
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

// ---- agent → api (stream LOGS) ----
export const logLineSchema = z.object({
  job_id: jobId,
  attempt,
  stream: z.enum(['stdout', 'stderr']),
  line: z.string(),
  time,
  offset: z.number().int().min(0),
  /** The node that printed it: a gang's members share one job's log. Absent from agents older than gangs. */
  node_id: nodeId.optional(),
});
export type LogLineMessage = z.infer<typeof logLineSchema>;

// ---- api → coordinator (core NATS request/reply) ----
export const nodeActionRequestSchema = z.object({ node_id: nodeId, reason: z.string().optional() });
export type NodeActionRequest = z.infer<typeof nodeActionRequestSchema>;
export type NodeActionReply = { ok: true; state: string } | { ok: false; error: 'node_not_found' | 'invalid_state'; message: string };

// ---- api → coordinator (core NATS request/reply on `<prefix>.coord.jobs.cancel`) ----
/**
 * A user's cancel. Only the job id: the API has already checked that the
 * caller may see the job. The coordinator steps the job machine in its pass,
 * commits the transition, sends the kill to the agent, and only then replies.
 */
export const jobCancelRequestSchema = z.object({ job_id: jobId });
export type JobCancelRequest = z.infer<typeof jobCancelRequestSchema>;

const jobStatus = z.enum(JOB_STATUSES);
/**
 * `ok`: the job is cancelled (now, or it already was). `job_already_finished`:
 * it completed or failed first. `job_not_found`: no such job. `retry`: the
 * pass could not settle it (the row changed under it); the API answers 503.
 * `invalid_request`: the request did not parse.
 */
export const jobCancelReplySchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), status: z.literal('cancelled') }),
  z.object({
    ok: z.literal(false),
    error: z.enum(['job_already_finished', 'job_not_found', 'retry', 'invalid_request']),
    status: jobStatus.optional(),
    message: z.string(),
  }),
]);
export type JobCancelReply = z.infer<typeof jobCancelReplySchema>;

// ---- api → coordinator's capacity actor (core NATS request/reply on `<prefix>.coord.capacity`) ----
/** A capacity block's pool (and the tier of capacity it is): its nodes join that pool. */
export const capacityTierSchema = z.enum(['fast', 'flex']);
export const CAPACITY_BLOCK_STATUSES = ['pending', 'active', 'draining', 'released'] as const;
export const capacityBlockStatusSchema = z.enum(CAPACITY_BLOCK_STATUSES);

/**
 * An admin's buy or release. `by` is who asked, as capacity_blocks.created_by
 * spells it: `admin:<user id>`. Bounds match POST /capacity/blocks.
 */
export const capacityBuyRequestSchema = z.object({
  action: z.literal('buy'),
  instance_type: z.string().min(1).max(128),
  nodes: z.number().int().min(1).max(64),
  hours: z.number().positive().max(720),
  tier: capacityTierSchema,
  by: z.string().min(1),
});
export const capacityReleaseRequestSchema = z.object({
  action: z.literal('release'),
  block_id: z.string().min(1),
  by: z.string().min(1),
});
export const capacityRequestSchema = z.discriminatedUnion('action', [capacityBuyRequestSchema, capacityReleaseRequestSchema]);
export type CapacityBuyRequest = z.infer<typeof capacityBuyRequestSchema>;
export type CapacityReleaseRequest = z.infer<typeof capacityReleaseRequestSchema>;
export type CapacityRequest = z.infer<typeof capacityRequestSchema>;

/**
 * A capacity_blocks row as the capacity actor wrote it (snake_case columns,
 * timestamps as RFC 3339 strings). The actor writes the row before it replies;
 * the API answers with the row read back from Postgres.
 */
export const capacityBlockMessageSchema = z.object({
  id: z.string().min(1),
  provider: z.string(),
  instance_type: z.string(),
  tier: capacityTierSchema,
  pool: z.string(),
  nodes: z.number().int(),
  gpus_per_node: z.number().int(),
  vram_per_gpu_gb: z.number(),
  cpu_per_node: z.number(),
  ram_per_node_gb: z.number(),
  starts_at: time,
  ends_at: time.nullable(),
  cost_per_hour: z.number(),
  status: capacityBlockStatusSchema,
  status_reason: z.string().nullable(),
  created_by: z.string(),
  created_at: time,
  updated_at: time,
  released_at: time.nullable(),
});
export type CapacityBlockMessage = z.infer<typeof capacityBlockMessageSchema>;

/** Why the capacity actor refused; each maps to the API error code of the same name. */
export const CAPACITY_REFUSALS = [
  'validation_failed',
  'unknown_instance_type',
  'block_not_found',
  'block_released',
  'provider_unavailable',
  'invalid_state',
] as const;
export const capacityReplySchema = z.union([
  z.object({ ok: z.literal(true), block: capacityBlockMessageSchema }),
  z.object({ ok: z.literal(false), code: z.enum(CAPACITY_REFUSALS), message: z.string() }),
]);
export type CapacityReply = z.infer<typeof capacityReplySchema>;

const encoder = new TextEncoder();
export const encodeJson = (v: unknown): Uint8Array => encoder.encode(JSON.stringify(v));
