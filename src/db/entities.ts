import { defineEntity, type InferEntity } from '@mikro-orm/core';
import type { JobFailureCode } from '../../machines/job.failure.ts';
import type { NodeState } from '../../machines/node.machine.ts';
import type { NodeSlice, Pool } from '../domain/cluster.ts';

/**
 * The durable record. Column names are snake_case (MikroORM's default
 * naming strategy); API field names match the columns one to one.
 *
 * Schema changes go through committed migrations in src/db/migrations,
 * never through schema `update` (it drops tables it does not know).
 */

export const User = defineEntity({
  name: 'User',
  tableName: 'users',
  properties: (p) => ({
    id: p.uuid().primary(),
    name: p.text(),
    isAdmin: p.boolean().default(false),
    /** Weighted DRF: a user with weight 2 may hold twice the GPU share of a user with weight 1 before yielding. */
    fairShareWeight: p.double().$type<number>().default(1),
    createdAt: p.datetime().defaultRaw('now()'),
  }),
});
export type User = InferEntity<typeof User>;

export const ApiKey = defineEntity({
  name: 'ApiKey',
  tableName: 'api_keys',
  properties: (p) => ({
    id: p.uuid().primary(),
    user: () => p.manyToOne(User).deleteRule('cascade'),
    name: p.text(),
    /** SHA-256 of the whole key, hex. The key itself is never stored. */
    keyHash: p.string().length(64).unique(),
    /** The first characters, so that people can tell their keys apart. */
    prefix: p.string().length(16),
    createdAt: p.datetime().defaultRaw('now()'),
    lastUsedAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
  }),
  indexes: [{ properties: ['user'] }],
});
export type ApiKey = InferEntity<typeof ApiKey>;

export const Job = defineEntity({
  name: 'Job',
  tableName: 'jobs',
  properties: (p) => ({
    id: p.uuid().primary(),
    /** Keyset cursor: strictly increasing in insertion order. */
    seq: p.bigint('number').autoincrement().unique(),
    user: () => p.manyToOne(User),
    tier: p.string().length(8),
    status: p.string().length(16),
    statusReason: p.text().nullable(),
    /** The reason as a code (machines/job.failure.ts JobFailureCode); null when the status needs none. */
    failureCode: p.string().length(32).$type<JobFailureCode>().nullable(),
    gpuCount: p.integer(),
    vramPerGpuGb: p.double().$type<number>(),
    cpuCores: p.double().$type<number>(),
    ramGb: p.double().$type<number>(),
    expectedDurationSec: p.integer(),
    priority: p.integer().default(0),
    image: p.text(),
    command: p.json<string[]>(),
    env: p.json<Record<string, string>>(),
    attempt: p.integer().default(1),
    maxAttempts: p.integer().default(3),
    nodeId: p.text().nullable(),
    gpuIndices: p.json<number[]>().nullable(),
    exitCode: p.integer().nullable(),
    /** Gang size; gpu_count, vram_per_gpu_gb, cpu_cores and ram_gb are per node. */
    nodeCount: p.integer().default(1),
    /** Every member's node and GPUs, rank order: [{node_id, gpu_indices}]. node_id/gpu_indices describe the first. */
    placements: p.json<NodeSlice[]>().nullable(),
    /** The latest placement diagnosis while queued (and the one that placed it): src/placement PlacementDiagnosis, snake_case. */
    placement: p.json<Record<string, unknown>>().nullable(),
    /** Set while a FAST job's preemption of this attempt is in flight. */
    preemptedBy: p.uuid().nullable(),
    /** Attempts ended by preemption: they do not count against max_attempts. */
    preemptions: p.integer().default(0),
    /** The first gang member of this attempt to fail, while the others are killed: {node_id, code, reason}. */
    memberFailure: p.json<{ node_id: string; code: number | null; reason: string; lost?: boolean }>().nullable(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    queuedAt: p.datetime().nullable(),
    scheduledAt: p.datetime().nullable(),
    startedAt: p.datetime().nullable(),
    completedAt: p.datetime().nullable(),
    failedAt: p.datetime().nullable(),
    cancelledAt: p.datetime().nullable(),
    finishedAt: p.datetime().nullable(),
  }),
  indexes: [
    { name: 'jobs_user_seq_idx', properties: ['user', 'seq'] },
    { name: 'jobs_status_seq_idx', properties: ['status', 'seq'] },
  ],
});
export type Job = InferEntity<typeof Job>;

export const JobEvent = defineEntity({
  name: 'JobEvent',
  tableName: 'job_events',
  properties: (p) => ({
    id: p.bigint('number').primary().autoincrement(),
    job: () => p.manyToOne(Job).deleteRule('cascade'),
    attempt: p.integer(),
    fromStatus: p.string().length(16).nullable(),
    toStatus: p.string().length(16),
    event: p.string().length(32),
    reason: p.text().nullable(),
    failureCode: p.string().length(32).$type<JobFailureCode>().nullable(),
    createdAt: p.datetime(),
  }),
  indexes: [{ name: 'job_events_job_id_idx', properties: ['job', 'id'] }],
});
export type JobEvent = InferEntity<typeof JobEvent>;

/** One row per (user, Idempotency-Key); a key older than 24 h may be reused. */
export const IdempotencyKey = defineEntity({
  name: 'IdempotencyKey',
  tableName: 'idempotency_keys',
  properties: (p) => ({
    user: () => p.manyToOne(User).primary().deleteRule('cascade'),
    key: p.string().length(255).primary(),
    requestHash: p.string().length(64),
    job: () => p.manyToOne(Job).deleteRule('cascade'),
    createdAt: p.datetime(),
  }),
  primaryKeys: ['user', 'key'],
});
export type IdempotencyKey = InferEntity<typeof IdempotencyKey>;

export const Endpoint = defineEntity({
  name: 'Endpoint',
  tableName: 'endpoints',
  properties: (p) => ({
    id: p.uuid().primary(),
    seq: p.bigint('number').autoincrement().unique(),
    user: () => p.manyToOne(User),
    name: p.string().length(63),
    image: p.text(),
    gpuCount: p.integer(),
    vramPerGpuGb: p.double().$type<number>(),
    cpuCores: p.double().$type<number>(),
    ramGb: p.double().$type<number>(),
    status: p.string().length(16),
    statusReason: p.text().nullable(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    deletedAt: p.datetime().nullable(),
  }),
});
export type Endpoint = InferEntity<typeof Endpoint>;

/**
 * A GPU node as its agent last reported it. The coordinator writes these rows
 * (agents never touch Postgres); `state` is the node machine's state.
 */
export const Node = defineEntity({
  name: 'Node',
  tableName: 'nodes',
  properties: (p) => ({
    id: p.text().primary(),
    pool: p.string().length(8).$type<Pool>(),
    state: p.string().length(16).$type<NodeState>(),
    stateReason: p.text().nullable(),
    runtime: p.string().length(16),
    cpuCores: p.double().$type<number>(),
    ramGb: p.double().$type<number>(),
    drainRequested: p.boolean().default(false),
    /** The capacity block the node belongs to (null: a node outside any block). */
    blockId: p.text().nullable(),
    /** Where gang members reach the node (SCALAR_MASTER_ADDR), as its agent reported it. */
    addr: p.text().nullable(),
    registeredAt: p.datetime(),
    lastHeartbeatAt: p.datetime().nullable(),
    updatedAt: p.datetime(),
  }),
});
export type Node = InferEntity<typeof Node>;

export const Gpu = defineEntity({
  name: 'Gpu',
  tableName: 'gpus',
  properties: (p) => ({
    node: () => p.manyToOne(Node).primary().deleteRule('cascade'),
    index: p.integer().primary(),
    uuid: p.text(),
    model: p.text(),
    vramGb: p.double().$type<number>(),
  }),
  primaryKeys: ['node', 'index'],
});
export type Gpu = InferEntity<typeof Gpu>;

/**
 * One GPU held by one attempt of one job. A row is active while releasedAt is
 * null; a partial unique index on (node_id, gpu_index) where released_at is
 * null makes a double-booked GPU impossible. Released rows are the history.
 */
export const Allocation = defineEntity({
  name: 'Allocation',
  tableName: 'allocations',
  properties: (p) => ({
    id: p.bigint('number').primary().autoincrement(),
    job: () => p.manyToOne(Job).deleteRule('cascade'),
    attempt: p.integer(),
    nodeId: p.text(),
    gpuIndex: p.integer(),
    createdAt: p.datetime(),
    releasedAt: p.datetime().nullable(),
  }),
  indexes: [{ name: 'allocations_job_attempt_idx', properties: ['job', 'attempt'] }],
});
export type Allocation = InferEntity<typeof Allocation>;

/** A lump of capacity bought from a provider: nodes × GPUs for a time, at a price. */
export const CapacityBlock = defineEntity({
  name: 'CapacityBlock',
  tableName: 'capacity_blocks',
  properties: (p) => ({
    id: p.text().primary(),
    provider: p.text(),
    externalId: p.text().nullable(),
    instanceType: p.text(),
    /** fast | flex: the pool its nodes join. */
    tier: p.string().length(8),
    pool: p.string().length(8),
    nodes: p.integer(),
    gpusPerNode: p.integer(),
    vramPerGpuGb: p.double().$type<number>(),
    cpuPerNode: p.double().$type<number>(),
    ramPerNodeGb: p.double().$type<number>(),
    startsAt: p.datetime(),
    /** Null: held until released. */
    endsAt: p.datetime().nullable(),
    /** For the whole block. */
    costPerHour: p.double().$type<number>(),
    /** pending → active → draining → released (machines/block.machine.ts). */
    status: p.string().length(16),
    statusReason: p.text().nullable(),
    /** 'autoscaler' or 'admin:<user id>'. */
    createdBy: p.text(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    releasedAt: p.datetime().nullable(),
  }),
});
export type CapacityBlock = InferEntity<typeof CapacityBlock>;

/** Every autoscaler (and manual) capacity decision, with the inputs it was made on. */
export const CapacityEvent = defineEntity({
  name: 'CapacityEvent',
  tableName: 'capacity_events',
  properties: (p) => ({
    id: p.bigint('number').primary().autoincrement(),
    createdAt: p.datetime(),
    action: p.text(),
    tier: p.string().length(8).nullable(),
    blockId: p.text().nullable(),
    reason: p.text(),
    inputs: p.json<Record<string, unknown>>(),
  }),
});
export type CapacityEvent = InferEntity<typeof CapacityEvent>;

/** What one attempt used on one node, written when its GPUs are released. */
export const UsageRecord = defineEntity({
  name: 'UsageRecord',
  tableName: 'usage_records',
  properties: (p) => ({
    id: p.bigint('number').primary().autoincrement(),
    job: () => p.manyToOne(Job).deleteRule('cascade'),
    attempt: p.integer(),
    nodeId: p.text(),
    userId: p.uuid(),
    tier: p.string().length(8),
    gpuCount: p.integer(),
    gpuSeconds: p.double().$type<number>(),
    costUsd: p.double().$type<number>(),
    startedAt: p.datetime(),
    endedAt: p.datetime(),
  }),
});
export type UsageRecord = InferEntity<typeof UsageRecord>;

export const entities = [User, ApiKey, Job, JobEvent, IdempotencyKey, Endpoint, Node, Gpu, Allocation, CapacityBlock, CapacityEvent, UsageRecord];
