import { z } from 'zod';
import { CAPACITY_BLOCK_STATUSES } from '../../wire/messages.ts';
import { isoTimeQuery, NullableTimestamp, PageQuery, storableString, Timestamp } from '../common/schemas.ts';

export const MAX_BLOCK_NODES = 64;
export const MAX_BLOCK_HOURS = 720;

export const BlockTier = z
  .enum(['fast', 'flex'], 'must be fast or flex')
  .describe('fast: warm capacity for FAST jobs (its nodes join the fast pool). flex: capacity for FLEX jobs');
export const BlockStatus = z
  .enum(CAPACITY_BLOCK_STATUSES, `must be one of ${CAPACITY_BLOCK_STATUSES.join(', ')}`)
  .describe('pending (bought, nodes not yet up) → active → draining (released; its jobs finish first) → released');

/** Block ids are chosen by the capacity actor (text, not UUIDs). */
export const BlockParams = z.object({ id: z.string().describe('Block id') });

export const CapacityBlockResponse = z
  .object({
    id: z.string(),
    provider: z.string().describe('Where it was bought, e.g. simulated'),
    instance_type: z.string(),
    tier: BlockTier,
    pool: z.string().describe('The pool its nodes join'),
    nodes: z.number().describe('Nodes in the block'),
    gpus_per_node: z.number(),
    vram_per_gpu_gb: z.number(),
    cpu_per_node: z.number(),
    ram_per_node_gb: z.number(),
    starts_at: Timestamp,
    ends_at: NullableTimestamp.describe('When the provider takes it back; null: held until released'),
    cost_per_hour: z.number().describe('USD per hour for the whole block'),
    status: BlockStatus,
    status_reason: z.string().nullable(),
    created_by: z.string().describe("'autoscaler' or 'admin:<user id>'"),
    created_at: Timestamp,
    updated_at: Timestamp,
    released_at: NullableTimestamp,
    node_ids: z.array(z.string()).describe('Nodes of this block that registered, by id'),
  })
  .meta({ id: 'CapacityBlock' });
export type CapacityBlockResponse = z.infer<typeof CapacityBlockResponse>;

export const CapacityBlockListQuery = z.strictObject({
  status: BlockStatus.optional(),
  tier: BlockTier.optional(),
  ...PageQuery,
});
export type CapacityBlockListQuery = z.infer<typeof CapacityBlockListQuery>;

export const CapacityBlockList = z
  .object({ blocks: z.array(CapacityBlockResponse), next_cursor: z.string().nullable() })
  .meta({ id: 'CapacityBlockList' });

export const BuyBlockBody = z
  .strictObject({
    instance_type: storableString('must be a string')
      .trim()
      .min(1, 'must not be empty')
      .max(128, 'must be at most 128 characters')
      .describe("One of the provider's instance types"),
    nodes: z
      .int('must be an integer')
      .min(1, `must be from 1 to ${MAX_BLOCK_NODES}`)
      .max(MAX_BLOCK_NODES, `must be from 1 to ${MAX_BLOCK_NODES}`)
      .describe(`Nodes to buy, 1..${MAX_BLOCK_NODES}`),
    hours: z
      .number('must be a number')
      .gt(0, `must be greater than 0 and at most ${MAX_BLOCK_HOURS}`)
      .max(MAX_BLOCK_HOURS, `must be greater than 0 and at most ${MAX_BLOCK_HOURS}`)
      .describe(`How long to hold the block, in hours, (0, ${MAX_BLOCK_HOURS}]`),
    tier: BlockTier,
  })
  .meta({ id: 'CapacityBuy' });
export type BuyBlockBody = z.infer<typeof BuyBlockBody>;

const PoolCapacity = z
  .object({
    nodes: z.number().describe('Nodes of the pool, in any state'),
    nodes_ready: z.number().describe('Of those, ready to take jobs'),
    gpus_total: z.number().describe('GPUs of the nodes that are not lost'),
    gpus_used: z.number().describe('Of those, GPUs held by a job (active allocations)'),
    gpus_free: z.number().describe('GPUs of ready nodes that no job holds'),
  })
  .meta({ id: 'PoolCapacity' });

const TierQueue = z
  .object({
    pending: z.number().describe('Jobs submitted, not yet admitted'),
    queued: z.number().describe('Jobs admitted, waiting for capacity'),
    gpus_queued: z.number().describe('GPUs those jobs ask for: sum of gpu_count × node_count'),
    oldest_wait_sec: z.number().nullable().describe('Seconds since the oldest of them was submitted; null when none waits'),
  })
  .meta({ id: 'TierQueue' });

export const CapacityQuery = z.strictObject({});

/** Release takes no options; an empty body (or none) is fine. */
export const ReleaseBlockBody = z.strictObject({}).nullish().meta({ id: 'CapacityRelease' });

export const CapacityOverview = z
  .object({
    pools: z.object({ fast: PoolCapacity, flex: PoolCapacity }),
    queue: z.object({ FAST: TierQueue, FLEX: TierQueue }),
    blocks: z
      .object({ pending: z.number(), active: z.number(), draining: z.number(), released: z.number() })
      .describe('Capacity blocks by status'),
    at: Timestamp.describe('When these numbers were read'),
  })
  .meta({ id: 'Capacity' });
export type CapacityOverview = z.infer<typeof CapacityOverview>;

export const CapacityEventResponse = z
  .object({
    id: z.number(),
    created_at: Timestamp,
    action: z.string().describe('What was decided, e.g. buy, release, hold'),
    tier: z.string().nullable(),
    block_id: z.string().nullable(),
    reason: z.string().describe('Why, in plain words'),
    inputs: z.record(z.string(), z.unknown()).describe('The numbers the decision was made on'),
  })
  .meta({ id: 'CapacityEvent' });
export type CapacityEventResponse = z.infer<typeof CapacityEventResponse>;

export const CapacityEventListQuery = z.strictObject({
  since: isoTimeQuery().optional().describe('Only events at or after this time (ISO 8601)'),
  tier: BlockTier.optional().describe('Only events about this tier'),
  ...PageQuery,
});
export type CapacityEventListQuery = z.infer<typeof CapacityEventListQuery>;

export const CapacityEventList = z
  .object({ events: z.array(CapacityEventResponse), next_cursor: z.string().nullable() })
  .meta({ id: 'CapacityEventList' });
