/**
 * The capacity actor's reads and writes: `capacity_blocks` (one row per
 * block, the truth about its status) and `capacity_events` (append-only: every
 * decision and transition, with the numbers it was made on). Raw SQL through
 * the ORM's connection, as the coordinator's store does.
 *
 * A status change and its event row are written in one transaction, and the
 * update names the status it expects to leave, so a write based on a stale
 * view misses (and says so) instead of overwriting a newer status.
 */
import { randomBytes } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
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

const date = (v: unknown): Date => (v instanceof Date ? v : new Date(v as string));
const dateOrNull = (v: unknown): Date | null => (v === null || v === undefined ? null : date(v));

function toBlockRow(r: Record<string, unknown>): BlockRow {
  return {
    id: r.id as string,
    provider: r.provider as string,
    externalId: (r.external_id as string | null) ?? null,
    instanceType: r.instance_type as string,
    tier: r.tier as CapacityTier,
    pool: r.pool as CapacityTier,
    nodes: Number(r.nodes),
    gpusPerNode: Number(r.gpus_per_node),
    vramPerGpuGb: Number(r.vram_per_gpu_gb),
    cpuPerNode: Number(r.cpu_per_node),
    ramPerNodeGb: Number(r.ram_per_node_gb),
    startsAt: date(r.starts_at),
    endsAt: dateOrNull(r.ends_at),
    costPerHour: Number(r.cost_per_hour),
    status: r.status as BlockStatus,
    statusReason: (r.status_reason as string | null) ?? null,
    createdBy: r.created_by as string,
    createdAt: date(r.created_at),
    updatedAt: date(r.updated_at),
    releasedAt: dateOrNull(r.released_at),
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

export class CapacityStore implements CapacityStorePort {
  constructor(private readonly orm: MikroORM) {}

  private em(): EntityManager {
    return this.orm.em.fork();
  }

  /** A new block and the event that bought it, in one transaction. */
  async insertBlock(b: BlockRow, event: CapacityEventInput): Promise<void> {
    await this.em().transactional(async (tx) => {
      await tx.execute(
        `insert into capacity_blocks (id, provider, external_id, instance_type, tier, pool, nodes, gpus_per_node, vram_per_gpu_gb,
           cpu_per_node, ram_per_node_gb, starts_at, ends_at, cost_per_hour, status, status_reason, created_by, created_at, updated_at, released_at)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [b.id, b.provider, b.externalId, b.instanceType, b.tier, b.pool, b.nodes, b.gpusPerNode, b.vramPerGpuGb, b.cpuPerNode, b.ramPerNodeGb,
          b.startsAt, b.endsAt, b.costPerHour, b.status, b.statusReason, b.createdBy, b.createdAt, b.updatedAt, b.releasedAt],
      );
      await insertEvents(tx, [event], b.createdAt);
    });
  }

  /**
   * Moves a block from `w.from` to `w.to` and appends its event, in one
   * transaction. Throws StaleBlockWriteError (and writes nothing) if the row
   * is not in `w.from`.
   */
  async writeStatus(blockId: string, w: StatusWrite, event: CapacityEventInput): Promise<BlockRow> {
    return this.em().transactional(async (tx) => {
      const rows = await tx.execute(
        `update capacity_blocks set status = ?, status_reason = ?, updated_at = ?,
           released_at = case when ? = 'released' then ?::timestamptz else released_at end
         where id = ? and status = ? returning *`,
        [w.to, w.statusReason, w.at, w.to, w.at, blockId, w.from],
      );
      if (rows.length === 0) throw new StaleBlockWriteError(blockId, w.from);
      await insertEvents(tx, [event], w.at);
      return toBlockRow(rows[0]!);
    });
  }

  async appendEvents(events: CapacityEventInput[], at: Date): Promise<void> {
    if (events.length === 0) return;
    await insertEvents(this.em(), events, at);
  }

  /** Pending, active and draining blocks, oldest first. */
  async liveBlocks(): Promise<BlockRow[]> {
    const rows = await this.em().execute(`select * from capacity_blocks where status <> 'released' order by created_at, id`);
    return rows.map(toBlockRow);
  }

  /** Every block, newest first (released ones too: they are the spending record). */
  async allBlocks(limit = 1000): Promise<BlockRow[]> {
    const rows = await this.em().execute(`select * from capacity_blocks order by created_at desc, id desc limit ?`, [limit]);
    return rows.map(toBlockRow);
  }

  async block(id: string): Promise<BlockRow | null> {
    const rows = await this.em().execute(`select * from capacity_blocks where id = ?`, [id]);
    return rows[0] ? toBlockRow(rows[0]) : null;
  }

  /** Events, newest first; of one block when `blockId` is given. */
  async events(o: { blockId?: string; limit?: number } = {}): Promise<CapacityEventRecord[]> {
    const rows = await this.em().execute(
      `select * from capacity_events ${o.blockId === undefined ? '' : 'where block_id = ?'} order by created_at desc, id desc limit ?`,
      o.blockId === undefined ? [o.limit ?? 100] : [o.blockId, o.limit ?? 100],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      createdAt: date(r.created_at),
      action: r.action as string,
      tier: (r.tier as CapacityTier | null) ?? null,
      blockId: (r.block_id as string | null) ?? null,
      reason: r.reason as string,
      inputs: (r.inputs as Record<string, unknown>) ?? {},
    }));
  }

  /**
   * When each tier last bought, and last bought or released (ms), from the
   * event log: a new leader keeps the cooldowns of the old one instead of
   * buying again at once.
   */
  async lastChanges(): Promise<{ lastBuyAt: Record<CapacityTier, number | null>; lastChangeAt: Record<CapacityTier, number | null> }> {
    const rows = await this.em().execute(
      `select tier, max(created_at) filter (where action = 'buy') as last_buy, max(created_at) as last_change
         from capacity_events where tier is not null and action in ('buy', 'release', 'drain') group by tier`,
    );
    const out = { lastBuyAt: { fast: null, flex: null }, lastChangeAt: { fast: null, flex: null } } as {
      lastBuyAt: Record<CapacityTier, number | null>;
      lastChangeAt: Record<CapacityTier, number | null>;
    };
    for (const r of rows) {
      const tier = r.tier as CapacityTier;
      out.lastBuyAt[tier] = dateOrNull(r.last_buy)?.getTime() ?? null;
      out.lastChangeAt[tier] = dateOrNull(r.last_change)?.getTime() ?? null;
    }
    return out;
  }
}

async function insertEvents(em: EntityManager, events: CapacityEventInput[], at: Date): Promise<void> {
  // One statement for the batch: rows travel as one JSON parameter.
  await em.execute(
    `insert into capacity_events (created_at, action, tier, block_id, reason, inputs)
     select ?::timestamptz, e.action, e.tier, e.block_id, e.reason, coalesce(e.inputs, '{}'::jsonb)
       from jsonb_to_recordset(?::jsonb) as e(action text, tier text, block_id text, reason text, inputs jsonb)`,
    [at, JSON.stringify(events.map((e) => ({ action: e.action, tier: e.tier, block_id: e.blockId, reason: e.reason, inputs: e.inputs })))],
  );
}
