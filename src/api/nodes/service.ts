import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Bus } from '../../wire/connection.ts';
import { type NodeActionReply, type NodeActionRequest } from '../../wire/messages.ts';
import { NODE_ID_PATTERN, type NodeAction } from '../../wire/subjects.ts';
import { Node } from '../../db/entities.ts';
import { ApiError } from '../common/errors.ts';
import { groupBy } from '../../domain/collections.ts';
import { askCoordinator } from '../common/ask-coordinator.ts';
import type { NodeListQuery, NodeResponse } from './schemas.ts';

/** What the coordinator answers on `<prefix>.coord.node.<action>` (NodeActionReply in src/wire/messages.ts). */
const nodeActionReplySchema = z.union([
  z.object({ ok: z.literal(true), state: z.string() }),
  z.object({ ok: z.literal(false), error: z.enum(['node_not_found', 'invalid_state']), message: z.string() }),
]) satisfies z.ZodType<NodeActionReply>;

export interface NodeServiceOptions {
  /** How long a drain/resume waits for the coordinator's reply (default 5 s). */
  requestTimeoutMs?: number;
}

const CURSOR = /^n1:(.+)$/;
const encodeCursor = (id: string) => Buffer.from(`n1:${id}`).toString('base64url');
function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const m = CURSOR.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m || !NODE_ID_PATTERN.test(m[1]!)) {
    throw new ApiError('validation_failed', 'cursor: is not a cursor this API returned', {
      fields: [{ field: 'cursor', location: 'querystring', message: 'is not a cursor this API returned' }],
    });
  }
  return m[1];
}

const nodeNotFound = (id: string) => new ApiError('node_not_found', `node ${id} not found`, { node_id: id });

/** The id itself when it can name a node; otherwise the 404 an unknown node gets. */
function checkNodeId(id: string): string {
  if (!NODE_ID_PATTERN.test(id)) throw nodeNotFound(id);
  return id;
}

interface GpuRow {
  node_id: string;
  index: number;
  uuid: string;
  model: string;
  vram_gb: number;
}
interface HolderRow {
  node_id: string;
  gpu_index: number;
  job_id: string;
  attempt: number;
  cpu_cores: number;
  ram_gb: number;
}

/** Sums of fractional cores and GB, without float noise like 0.30000000000000004. */
const round = (x: number) => Math.round(x * 1e6) / 1e6;


/**
 * Nodes as the coordinator recorded them (it writes nodes, gpus and
 * allocations; the API only reads them), and the operator actions drain and
 * resume, which the API asks the coordinator to carry out.
 */
export class NodeService {
  private readonly requestTimeoutMs: number;

  constructor(
    private readonly orm: MikroORM,
    private readonly bus: Bus | undefined,
    private readonly log: Logger,
    opts: NodeServiceOptions = {},
  ) {
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
  }

  async list(q: NodeListQuery): Promise<{ nodes: NodeResponse[]; next_cursor: string | null }> {
    const after = decodeCursor(q.cursor);
    const where: Record<string, unknown> = {};
    if (q.state) where.state = q.state;
    if (q.pool) where.pool = q.pool;
    if (after !== undefined) where.id = { $gt: after };
    const rows = await this.orm.em.fork().find(Node, where, { orderBy: { id: 'asc' }, limit: q.limit + 1 });
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    return {
      nodes: await this.describe(page),
      next_cursor: rows.length > q.limit && last ? encodeCursor(last.id) : null,
    };
  }

  async get(id: string): Promise<NodeResponse> {
    checkNodeId(id);
    const node = await this.orm.em.fork().findOne(Node, { id });
    if (!node) throw nodeNotFound(id);
    return (await this.describe([node]))[0]!;
  }

  /** Nodes with their GPUs, who holds each (active allocations only) and what is left free. */
  private async describe(nodes: Node[]): Promise<NodeResponse[]> {
    if (nodes.length === 0) return [];
    const ids = nodes.map((n) => n.id);
    const em = this.orm.em.fork();
    const gpus = await em.execute<GpuRow[]>(
      'select node_id, "index", uuid, model, vram_gb from gpus where node_id in (?) order by node_id, "index"',
      [ids],
    );
    const holders = await em.execute<HolderRow[]>(
      `select a.node_id, a.gpu_index, a.job_id, a.attempt, j.cpu_cores, j.ram_gb
         from allocations a join jobs j on j.id = a.job_id
        where a.released_at is null and a.node_id in (?)
        order by a.node_id, a.gpu_index`,
      [ids],
    );
    const gpusOf = groupBy(gpus, (g) => g.node_id);
    const holdersOf = groupBy(holders, (h) => h.node_id);
    return nodes.map((n) => {
      const held = new Map((holdersOf.get(n.id) ?? []).map((h) => [h.gpu_index, h]));
      // One job attempt reserves its CPU and RAM once, however many GPUs it holds.
      const attempts = new Map<string, HolderRow>();
      for (const h of held.values()) attempts.set(`${h.job_id}#${h.attempt}`, h);
      const nodeGpus = (gpusOf.get(n.id) ?? []).map((g) => {
        const h = held.get(g.index);
        return {
          index: g.index,
          uuid: g.uuid,
          model: g.model,
          vram_gb: Number(g.vram_gb),
          job_id: h?.job_id ?? null,
          attempt: h ? Number(h.attempt) : null,
        };
      });
      let cpu = 0;
      let ram = 0;
      for (const a of attempts.values()) {
        cpu += Number(a.cpu_cores);
        ram += Number(a.ram_gb);
      }
      return {
        id: n.id,
        pool: n.pool,
        state: n.state,
        state_reason: n.stateReason ?? null,
        drain_requested: n.drainRequested,
        runtime: n.runtime,
        cpu_cores: n.cpuCores,
        ram_gb: n.ramGb,
        last_heartbeat_at: n.lastHeartbeatAt ? n.lastHeartbeatAt.toISOString() : null,
        registered_at: n.registeredAt.toISOString(),
        gpus: nodeGpus,
        free: {
          gpus: nodeGpus.filter((g) => g.job_id === null).length,
          cpu_cores: round(n.cpuCores - cpu),
          ram_gb: round(n.ramGb - ram),
        },
        jobs: [...new Set([...attempts.values()].map((a) => a.job_id))],
      };
    });
  }

  /**
   * Drain or resume: a core NATS request to the coordinator, which owns node
   * state (it writes the row, then replies). The node is read again from
   * Postgres after the reply, so the answer shows the new state.
   */
  async action(action: NodeAction, id: string, reason: string | undefined): Promise<NodeResponse> {
    checkNodeId(id);
    // An unknown node is a 404 whether or not a coordinator runs.
    const exists = await this.orm.em.fork().count(Node, { id });
    if (!exists) throw nodeNotFound(id);
    const bus = this.bus;
    const req: NodeActionRequest = reason === undefined ? { node_id: id } : { node_id: id, reason };
    const r = await askCoordinator(bus, (b) => b.t.subjects.coordNode(action), req, nodeActionReplySchema, {
      timeoutMs: this.requestTimeoutMs,
      log: this.log,
      what: 'node action',
      context: { action, node_id: id },
    });
    if (!r.ok) {
      if (r.error === 'node_not_found') throw new ApiError('node_not_found', r.message, { node_id: id });
      throw new ApiError('invalid_state', r.message, { node_id: id, action });
    }
    return this.get(id);
  }
}
