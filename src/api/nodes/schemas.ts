import { z } from 'zod';
import { NODE_STATES } from '../../../machines/node.machine.ts';
import { POOLS } from '../../domain/cluster.ts';
import { NullableTimestamp, PageQuery, storableString, Timestamp } from '../common/schemas.ts';

export const NodeStateSchema = z.enum(NODE_STATES, {
  error: `must be one of ${NODE_STATES.join(', ')}`,
});
export const PoolSchema = z
  .enum(POOLS, { error: `must be one of ${POOLS.join(', ')}` })
  .describe('fast: warm capacity for FAST jobs (FLEX jobs may backfill it). flex: capacity for FLEX jobs');

/** Node ids are names the agent chose (subject tokens), not UUIDs. */
export const NodeParams = z.object({ id: z.string().describe('Node id, e.g. gpu-node-01') });

export const NodeGpu = z
  .object({
    index: z.number().describe('What CUDA_VISIBLE_DEVICES names'),
    uuid: z.string(),
    model: z.string(),
    vram_gb: z.number(),
    job_id: z.string().nullable().describe('The job holding this GPU, or null when it is free'),
    attempt: z.number().nullable().describe("That job's attempt"),
  })
  .meta({ id: 'NodeGpu' });

export const NodeResponse = z
  .object({
    id: z.string(),
    pool: PoolSchema,
    state: NodeStateSchema.describe('registering, ready (takes jobs), draining (keeps its jobs, takes no new ones) or lost'),
    state_reason: z.string().nullable().describe('Plain-words reason for the state; null when ready'),
    drain_requested: z.boolean().describe('An operator asked for a drain; the node comes back draining'),
    runtime: z.string().describe('process, docker or simulated'),
    cpu_cores: z.number(),
    ram_gb: z.number(),
    last_heartbeat_at: NullableTimestamp,
    registered_at: Timestamp,
    gpus: z.array(NodeGpu),
    free: z
      .object({ gpus: z.number(), cpu_cores: z.number(), ram_gb: z.number() })
      .describe('Totals less what the jobs holding GPUs here reserved'),
    jobs: z.array(z.string()).describe('Ids of the jobs holding GPUs on this node'),
  })
  .meta({ id: 'Node' });
export type NodeResponse = z.infer<typeof NodeResponse>;

export const NodeListQuery = z.strictObject({
  state: NodeStateSchema.optional(),
  pool: PoolSchema.optional(),
  ...PageQuery,
});
export type NodeListQuery = z.infer<typeof NodeListQuery>;

export const NodeList = z
  .object({ nodes: z.array(NodeResponse), next_cursor: z.string().nullable() })
  .meta({ id: 'NodeList' });

export const NodeActionBody = z
  .strictObject({
    reason: storableString('must be a string')
      .max(1000, 'must be at most 1000 characters')
      .optional()
      .describe('Why, in plain words; shown as the state_reason'),
  })
  // No body at all is fine (fastify validates a missing body as null).
  .nullish()
  .meta({ id: 'NodeAction' });
