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
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { BlockStatus } from '../../machines/block.machine.ts';
import type { CapacityTier } from '../../src/capacity/provider.ts';
import {
  StaleBlockWriteError,
  type BlockRow,
  type CapacityEventInput,
  type CapacityEventRecord,
  type CapacityStorePort,
  type StatusWrite,
} from './ports.ts';
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
