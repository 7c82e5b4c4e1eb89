/**
 * The capacity actor's port and the vocabulary it speaks: the block record,
 * capacity events, the stale-write error, and the pure record helpers. The
 * Postgres adapter (store.ts) and the simulator's in-memory record
 * (src/sim/adapters/capacity-store.ts) both implement CapacityStorePort.
 */
import { randomBytes } from 'node:crypto';
import type { BlockStatus } from '../../machines/block.machine.ts';
import type { BlockView } from '../../src/capacity/autoscaler.ts';
import type { CapacityTier, InstanceType, Purchase, Quote } from '../../src/capacity/provider.ts';

/** A capacity_blocks row, camelCase. */
export interface BlockRow {
  id: string;
  provider: string;
  externalId: string | null;
  instanceType: string;
  tier: CapacityTier;
  /** The pool its nodes join; today always equal to tier. */
  pool: CapacityTier;
  nodes: number;
  gpusPerNode: number;
  vramPerGpuGb: number;
  cpuPerNode: number;
  ramPerNodeGb: number;
  /** When its nodes are (expected to be) ready. */
  startsAt: Date;
  /** Null: held until released. */
  endsAt: Date | null;
  /** USD for the whole block. */
  costPerHour: number;
  status: BlockStatus;
  statusReason: string | null;
  /** 'autoscaler' or 'admin:<user id>'. */
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  releasedAt: Date | null;
}

/** A block as the API shows it (snake_case, ISO times). */
export interface BlockApi {
  id: string;
  provider: string;
  external_id: string | null;
  instance_type: string;
  tier: CapacityTier;
  pool: CapacityTier;
  nodes: number;
  gpus_per_node: number;
  vram_per_gpu_gb: number;
  cpu_per_node: number;
  ram_per_node_gb: number;
  /** nodes × gpus_per_node. */
  gpus: number;
  /** The ids its nodes register under (`<block id>-n<i>`). */
  node_ids: string[];
  starts_at: string;
  ends_at: string | null;
  cost_per_hour: number;
  status: BlockStatus;
  status_reason: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
  released_at: string | null;
}

/** One capacity_events row to write. */
export interface CapacityEventInput {
  action: string;
  tier: CapacityTier | null;
  blockId: string | null;
  reason: string;
  inputs: Record<string, unknown>;
}

export interface CapacityEventRecord extends CapacityEventInput {
  id: number;
  createdAt: Date;
}

/** `blk_` + 16 hex characters: short enough that `<id>-n<i>` is a valid node id (NODE_ID_PATTERN, 63 characters). */
export function newBlockId(): string {
  return `blk_${randomBytes(8).toString('hex')}`;
}

/** The node ids of a block, in order: `<block id>-n1` … `<block id>-n<nodes>`. */
export function blockNodeIds(block: Pick<BlockRow, 'id' | 'nodes'>): string[] {
  return Array.from({ length: block.nodes }, (_, i) => `${block.id}-n${i + 1}`);
}

/**
 * The row of a block just bought. starts_at is when its nodes will be ready
 * (the provider's readyAt), and the block lasts `quote.hours` from then: the
 * hours bought are hours of usable nodes.
 */
export function pendingBlockRow(o: { id: string; provider: string; type: InstanceType; quote: Quote; purchase: Purchase; by: string; now: Date; statusReason: string }): BlockRow {
  return {
    id: o.id,
    provider: o.provider,
    externalId: o.purchase.externalId,
    instanceType: o.type.name,
    tier: o.quote.tier,
    pool: o.quote.tier,
    nodes: o.quote.nodes,
    gpusPerNode: o.type.gpus,
    vramPerGpuGb: o.type.vramPerGpuGb,
    cpuPerNode: o.type.cpu,
    ramPerNodeGb: o.type.ramGb,
    startsAt: new Date(o.purchase.readyAt),
    endsAt: new Date(o.purchase.readyAt + o.quote.hours * 3600_000),
    costPerHour: o.quote.pricePerHour,
    status: 'pending',
    statusReason: o.statusReason,
    createdBy: o.by,
    createdAt: o.now,
    updatedAt: o.now,
    releasedAt: null,
  };
}

/** A live block as the autoscaler sees it. */
export function toBlockView(b: BlockRow, busy: boolean): BlockView {
  return {
    id: b.id,
    tier: b.tier,
    status: b.status as BlockView['status'],
    instanceType: b.instanceType,
    nodes: b.nodes,
    gpusPerNode: b.gpusPerNode,
    vramPerGpuGb: b.vramPerGpuGb,
    cpuPerNode: b.cpuPerNode,
    ramPerNodeGb: b.ramPerNodeGb,
    busy,
    endsAt: b.endsAt?.getTime() ?? null,
  };
}

export function toBlockApi(b: BlockRow): BlockApi {
  return {
    id: b.id,
    provider: b.provider,
    external_id: b.externalId,
    instance_type: b.instanceType,
    tier: b.tier,
    pool: b.pool,
    nodes: b.nodes,
    gpus_per_node: b.gpusPerNode,
    vram_per_gpu_gb: b.vramPerGpuGb,
    cpu_per_node: b.cpuPerNode,
    ram_per_node_gb: b.ramPerNodeGb,
    gpus: b.nodes * b.gpusPerNode,
    node_ids: blockNodeIds(b),
    starts_at: b.startsAt.toISOString(),
    ends_at: b.endsAt?.toISOString() ?? null,
    cost_per_hour: b.costPerHour,
    status: b.status,
    status_reason: b.statusReason,
    created_by: b.createdBy,
    created_at: b.createdAt.toISOString(),
    updated_at: b.updatedAt.toISOString(),
    released_at: b.releasedAt?.toISOString() ?? null,
  };
}


/** A status write missed: the row was not in the status the caller expected. */
export class StaleBlockWriteError extends Error {
  constructor(
    readonly blockId: string,
    readonly expected: BlockStatus,
  ) {
    super(`block ${blockId} is no longer ${expected}`);
    this.name = 'StaleBlockWriteError';
  }
}

export interface StatusWrite {
  /** The status the row must hold for the write to apply. */
  from: BlockStatus;
  to: BlockStatus;
  statusReason: string | null;
  at: Date;
}

/**
 * What the capacity actor reads and writes: capacity_blocks rows with their
 * capacity_events (CapacityStore, Postgres) or the simulator's in-memory
 * record (src/sim/adapters/capacity-store.ts).
 */
export interface CapacityStorePort {
  /** A new (pending) block and its purchase event, atomically. */
  insertBlock(b: BlockRow, event: CapacityEventInput): Promise<void>;
  /** Moves a block from `w.from` to `w.to` with its event; StaleBlockWriteError when the row is no longer at `w.from`. */
  writeStatus(blockId: string, w: StatusWrite, event: CapacityEventInput): Promise<BlockRow>;
  appendEvents(events: CapacityEventInput[], at: Date): Promise<void>;
  /** Blocks not released, oldest first. */
  liveBlocks(): Promise<BlockRow[]>;
  /** Every block, newest first. */
  allBlocks(limit?: number): Promise<BlockRow[]>;
  block(id: string): Promise<BlockRow | null>;
  /** When each tier last bought, and last bought or released (ms), for the cooldowns after a restart. */
  lastChanges(): Promise<{ lastBuyAt: Record<CapacityTier, number | null>; lastChangeAt: Record<CapacityTier, number | null> }>;
}
