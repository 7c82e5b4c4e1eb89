import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Bus } from '../../wire/connection.ts';
import {
  capacityReplySchema,
  type CapacityBlockMessage,
  type CapacityReply,
  type CapacityRequest,
} from '../../wire/messages.ts';
import { CapacityEvent } from '../../db/entities.ts';
import { ApiError } from '../common/errors.ts';
import { groupBy } from '../../domain/collections.ts';
import { askCoordinator } from '../common/ask-coordinator.ts';
import type { Principal } from '../../auth/principal.ts';
import { decodeCursor, encodeCursor } from '../common/cursor.ts';
import type {
  BuyBlockBody,
  CapacityBlockListQuery,
  CapacityBlockResponse,
  CapacityEventListQuery,
  CapacityEventResponse,
  CapacityOverview,
} from './schemas.ts';

export interface CapacityAdminOptions {
  /** How long a buy or release waits for the coordinator's reply (default 10 s: a buy may call the provider). */
  requestTimeoutMs?: number;
}

/**
 * Block ids are chosen by the capacity actor. Anything else cannot name a
 * block, so it is a 404 without a query (and a NUL can never reach Postgres).
 */
export const BLOCK_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

const blockNotFound = (id: string) => new ApiError('block_not_found', `capacity block ${id} not found`, { block_id: id });

/**
 * A capacity_blocks row as BLOCK_COLUMNS selects it: timestamps already as
 * RFC 3339 strings (raw queries get Postgres' own text for them), plus
 * created_at at microsecond precision for the cursor.
 */
interface BlockRow {
  id: string;
  provider: string;
  instance_type: string;
  tier: string;
  pool: string;
  nodes: number;
  gpus_per_node: number;
  vram_per_gpu_gb: number;
  cpu_per_node: number;
  ram_per_node_gb: number;
  starts_at: string;
  ends_at: string | null;
  cost_per_hour: number;
  status: string;
  status_reason: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
  released_at: string | null;
  /** created_at as 'YYYY-MM-DDTHH:MI:SS.USZ': a JS Date would lose the microseconds the keyset compares. */
  created_us: string;
}

/** A timestamptz as Date.toISOString() would print it (UTC, milliseconds); null stays null. */
const isoColumn = (c: string) => `to_char(${c} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as ${c}`;
const BLOCK_COLUMNS = `id, provider, instance_type, tier, pool, nodes, gpus_per_node, vram_per_gpu_gb, cpu_per_node,
  ram_per_node_gb, ${isoColumn('starts_at')}, ${isoColumn('ends_at')}, cost_per_hour, status, status_reason, created_by,
  ${isoColumn('created_at')}, ${isoColumn('updated_at')}, ${isoColumn('released_at')},
  to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_us`;

/** Blocks are listed newest first by (created_at, id); the cursor is the last block's pair. */
const BLOCK_CURSOR = /^b1:(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)\|(.+)$/;
const encodeBlockCursor = (r: BlockRow) => Buffer.from(`b1:${r.created_us}|${r.id}`).toString('base64url');
function decodeBlockCursor(cursor: string | undefined): { at: string; id: string } | undefined {
  if (cursor === undefined) return undefined;
  const m = BLOCK_CURSOR.exec(Buffer.from(cursor, 'base64url').toString());
  // The shape alone lets through impossible dates (month 13, hour 25): PostgreSQL would refuse the cast with a 500.
  const at = m ? new Date(m[1]!) : undefined;
  if (!m || !BLOCK_ID_PATTERN.test(m[2]!) || !at || Number.isNaN(at.getTime()) || at.toISOString().slice(0, 19) !== m[1]!.slice(0, 19)) {
    throw new ApiError('validation_failed', 'cursor: is not a cursor this API returned', {
      fields: [{ field: 'cursor', location: 'querystring', message: 'is not a cursor this API returned' }],
    });
  }
  return { at: m[1]!, id: m[2]! };
}

function toBlockResponse(r: BlockRow, nodeIds: string[]): CapacityBlockResponse {
  return {
    id: r.id,
    provider: r.provider,
    instance_type: r.instance_type,
    tier: r.tier as CapacityBlockResponse['tier'],
    pool: r.pool,
    nodes: Number(r.nodes),
    gpus_per_node: Number(r.gpus_per_node),
    vram_per_gpu_gb: Number(r.vram_per_gpu_gb),
    cpu_per_node: Number(r.cpu_per_node),
    ram_per_node_gb: Number(r.ram_per_node_gb),
    starts_at: r.starts_at,
    ends_at: r.ends_at,
    cost_per_hour: Number(r.cost_per_hour),
    status: r.status as CapacityBlockResponse['status'],
    status_reason: r.status_reason,
    created_by: r.created_by,
    created_at: r.created_at,
    updated_at: r.updated_at,
    released_at: r.released_at,
    node_ids: nodeIds,
  };
}

function toEventResponse(e: CapacityEvent): CapacityEventResponse {
  const inputs = e.inputs;
  return {
    id: e.id,
    created_at: e.createdAt.toISOString(),
    action: e.action,
    tier: e.tier ?? null,
    block_id: e.blockId ?? null,
    reason: e.reason,
    // jsonb may hold any JSON value; the API promises an object.
    inputs: inputs && typeof inputs === 'object' && !Array.isArray(inputs) ? inputs : { value: inputs ?? null },
  };
}


/**
 * Capacity for operators. Reads come straight from Postgres (the capacity
 * actor and the coordinator write capacity_blocks, capacity_events, nodes,
 * gpus and allocations; the API only reads them). Buying and releasing a
 * block are the capacity actor's to carry out: a core NATS request on
 * `<prefix>.coord.capacity` (CapacityRequest / CapacityReply in
 * src/wire/messages.ts); the actor writes the row, then replies, and the
 * answer is the row read back.
 */
export class CapacityAdminService {
  private readonly requestTimeoutMs: number;

  constructor(
    private readonly orm: MikroORM,
    private readonly bus: Bus | undefined,
    private readonly log: Logger,
    opts: CapacityAdminOptions = {},
  ) {
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  }

  private em(): EntityManager {
    return this.orm.em.fork();
  }

  /** Pools, queues and blocks in three aggregate queries. */
  async overview(): Promise<CapacityOverview> {
    const em = this.em();
    const pools = await em.execute<
      { pool: string; nodes: number; nodes_ready: number; gpus_total: number; gpus_used: number; gpus_free: number }[]
    >(
      `select n.pool,
              count(*)::int as nodes,
              (count(*) filter (where n.state = 'ready'))::int as nodes_ready,
              coalesce(sum(g.gpus) filter (where n.state <> 'lost'), 0)::int as gpus_total,
              coalesce(sum(g.held) filter (where n.state <> 'lost'), 0)::int as gpus_used,
              coalesce(sum(g.gpus - g.held) filter (where n.state = 'ready'), 0)::int as gpus_free
         from nodes n
         cross join lateral (
           select count(*) as gpus, count(a.id) as held
             from gpus g
             left join allocations a on a.node_id = g.node_id and a.gpu_index = g."index" and a.released_at is null
            where g.node_id = n.id) g
        group by n.pool`,
    );
    const queues = await em.execute<
      { tier: string; pending: number; queued: number; gpus_queued: number; oldest_wait_sec: number | null }[]
    >(
      `select tier,
              (count(*) filter (where status = 'pending'))::int as pending,
              (count(*) filter (where status = 'queued'))::int as queued,
              coalesce(sum(gpu_count * node_count), 0)::int as gpus_queued,
              greatest(0, extract(epoch from (now() - min(created_at))))::float8 as oldest_wait_sec
         from jobs
        where status in ('pending', 'queued')
        group by tier`,
    );
    const blocks = await em.execute<{ status: string; n: number }[]>(
      'select status, count(*)::int as n from capacity_blocks group by status',
    );
    const pool = (name: string) => {
      const r = pools.find((p) => p.pool === name);
      return {
        nodes: r?.nodes ?? 0,
        nodes_ready: r?.nodes_ready ?? 0,
        gpus_total: r?.gpus_total ?? 0,
        gpus_used: r?.gpus_used ?? 0,
        gpus_free: r?.gpus_free ?? 0,
      };
    };
    const queue = (tier: string) => {
      const r = queues.find((q) => q.tier === tier);
      return {
        pending: r?.pending ?? 0,
        queued: r?.queued ?? 0,
        gpus_queued: r?.gpus_queued ?? 0,
        oldest_wait_sec: r?.oldest_wait_sec == null ? null : Math.round(Number(r.oldest_wait_sec) * 1000) / 1000,
      };
    };
    const count = (status: string) => blocks.find((b) => b.status === status)?.n ?? 0;
    return {
      pools: { fast: pool('fast'), flex: pool('flex') },
      queue: { FAST: queue('FAST'), FLEX: queue('FLEX') },
      blocks: { pending: count('pending'), active: count('active'), draining: count('draining'), released: count('released') },
      at: new Date().toISOString(),
    };
  }

  async listBlocks(q: CapacityBlockListQuery): Promise<{ blocks: CapacityBlockResponse[]; next_cursor: string | null }> {
    const after = decodeBlockCursor(q.cursor);
    const conds: string[] = [];
    const params: unknown[] = [];
    if (q.status) {
      conds.push('status = ?');
      params.push(q.status);
    }
    if (q.tier) {
      conds.push('tier = ?');
      params.push(q.tier);
    }
    if (after) {
      conds.push('(created_at, id) < (?::timestamptz, ?)');
      params.push(after.at, after.id);
    }
    params.push(q.limit + 1);
    const em = this.em();
    const rows = await em.execute<BlockRow[]>(
      `select ${BLOCK_COLUMNS} from capacity_blocks
        ${conds.length ? `where ${conds.join(' and ')}` : ''}
        order by created_at desc, id desc
        limit ?`,
      params,
    );
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    return {
      blocks: await this.describe(em, page),
      next_cursor: rows.length > q.limit && last ? encodeBlockCursor(last) : null,
    };
  }

  async getBlock(id: string): Promise<CapacityBlockResponse> {
    const em = this.em();
    const row = await this.blockRow(em, id);
    if (!row) throw blockNotFound(id);
    return (await this.describe(em, [row]))[0]!;
  }

  private async blockRow(em: EntityManager, id: string): Promise<BlockRow | undefined> {
    if (!BLOCK_ID_PATTERN.test(id)) return undefined;
    const [row] = await em.execute<BlockRow[]>(`select ${BLOCK_COLUMNS} from capacity_blocks where id = ?`, [id]);
    return row;
  }

  /** Blocks with the ids of their nodes (nodes.block_id), in one query for the page. */
  private async describe(em: EntityManager, rows: BlockRow[]): Promise<CapacityBlockResponse[]> {
    if (rows.length === 0) return [];
    const nodes = await em.execute<{ block_id: string; id: string }[]>(
      'select block_id, id from nodes where block_id in (?) order by id',
      [rows.map((r) => r.id)],
    );
    const nodesOf = groupBy(nodes, (n) => n.block_id);
    return rows.map((r) => toBlockResponse(r, (nodesOf.get(r.id) ?? []).map((n) => n.id)));
  }

  async listEvents(q: CapacityEventListQuery): Promise<{ events: CapacityEventResponse[]; next_cursor: string | null }> {
    const before = decodeCursor(q.cursor);
    const where: Record<string, unknown> = {};
    if (before !== undefined) where.id = { $lt: before };
    if (q.since) where.createdAt = { $gte: q.since };
    // Whoever writes events may spell the tier FAST or fast: match either.
    if (q.tier) where.tier = { $in: [q.tier, q.tier.toUpperCase()] };
    const rows = await this.em().find(CapacityEvent, where, { orderBy: { id: 'desc' }, limit: q.limit + 1 });
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    return {
      events: page.map(toEventResponse),
      next_cursor: rows.length > q.limit && last ? encodeCursor(last.id) : null,
    };
  }

  /** Buys a block through the capacity actor; the answer is the new block (normally pending). */
  async buy(principal: Principal, body: BuyBlockBody): Promise<CapacityBlockResponse> {
    const reply = await this.ask({
      action: 'buy',
      instance_type: body.instance_type,
      nodes: body.nodes,
      hours: body.hours,
      tier: body.tier,
      by: `admin:${principal.userId}`,
    });
    return this.answer(reply, { instance_type: body.instance_type });
  }

  /**
   * Releases a block through the capacity actor. A block whose nodes still run
   * jobs goes to draining first (they finish, then it is released); one
   * without goes straight to released. An unknown or already released block
   * is answered without asking.
   */
  async release(principal: Principal, id: string): Promise<CapacityBlockResponse> {
    const row = await this.blockRow(this.em(), id);
    if (!row) throw blockNotFound(id);
    if (row.status === 'released') {
      throw new ApiError('block_released', `capacity block ${id} is already released`, { block_id: id });
    }
    const reply = await this.ask({ action: 'release', block_id: id, by: `admin:${principal.userId}` });
    return this.answer(reply, { block_id: id });
  }

  /** The actor's reply as the API answers it: the block read back, or its refusal as a catalogued error. */
  private async answer(reply: CapacityReply, context: Record<string, unknown>): Promise<CapacityBlockResponse> {
    // Each refusal is the catalogued error of the same name (CAPACITY_REFUSALS ⊂ ErrorCode, checked by the compiler).
    if (!reply.ok) throw new ApiError(reply.code, reply.message, context);
    try {
      return await this.getBlock(reply.block.id);
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== 'block_not_found') throw err;
      // The actor writes the row before it replies; if it did not, its reply is still the truth.
      this.log.warn({ block_id: reply.block.id }, 'the capacity actor replied with a block that is not in Postgres');
      return fromMessage(reply.block);
    }
  }

  /** A core NATS request to the coordinator's capacity actor, with its failures as 503s. */
  private ask(req: CapacityRequest): Promise<CapacityReply> {
    return askCoordinator(this.bus, (b) => b.t.subjects.coordCapacity, req, capacityReplySchema, {
      timeoutMs: this.requestTimeoutMs,
      log: this.log,
      what: 'capacity',
      context: { action: req.action },
    });
  }
}


function fromMessage(b: CapacityBlockMessage): CapacityBlockResponse {
  return { ...b, node_ids: [] };
}
