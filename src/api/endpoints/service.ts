import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Config } from '../../config/index.ts';
import { Endpoint } from '../../db/entities.ts';
import { ApiError } from '../common/errors.ts';
import type { Principal } from '../../auth/principal.ts';
import type { CreateEndpointBody } from './schemas.ts';
import { seqPage } from '../common/cursor.ts';

const NOT_DEPLOYED_REASON = 'serving endpoints are stored but not deployed yet: this version of Scalar runs batch jobs only';

function toResponse(e: Endpoint) {
  return {
    id: e.id,
    user_id: typeof e.user === 'string' ? e.user : e.user.id,
    name: e.name,
    image: e.image,
    gpu_count: e.gpuCount,
    vram_per_gpu_gb: e.vramPerGpuGb,
    cpu_cores: e.cpuCores,
    ram_gb: e.ramGb,
    status: e.status as 'not_deployed',
    status_reason: e.statusReason ?? null,
    created_at: e.createdAt.toISOString(),
    updated_at: e.updatedAt.toISOString(),
  };
}

/** Endpoint definitions. Running them is a later feature; until then each says it is not deployed. */
export class EndpointService {
  constructor(
    private readonly orm: MikroORM,
    private readonly cfg: Config,
  ) {}

  async create(principal: Principal, body: CreateEndpointBody) {
    const em = this.orm.em.fork();
    const now = new Date();
    const endpoint = em.create(Endpoint, {
      id: randomUUID(),
      user: principal.userId,
      name: body.name,
      image: body.image,
      gpuCount: body.gpu_count,
      vramPerGpuGb: body.vram_per_gpu_gb ?? this.cfg.SCALAR_DEFAULT_VRAM_PER_GPU_GB,
      cpuCores: body.cpu_cores ?? this.cfg.SCALAR_DEFAULT_CPU_CORES,
      ramGb: body.ram_gb ?? this.cfg.SCALAR_DEFAULT_RAM_GB,
      status: 'not_deployed',
      statusReason: NOT_DEPLOYED_REASON,
      createdAt: now,
      updatedAt: now,
    });
    try {
      await em.flush();
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        throw new ApiError('conflict', `you already have an endpoint named ${body.name}`, { field: 'name', name: body.name });
      }
      throw err;
    }
    return toResponse(endpoint);
  }

  private async visible(principal: Principal, id: string): Promise<Endpoint> {
    const where = principal.isAdmin ? { id, deletedAt: null } : { id, user: principal.userId, deletedAt: null };
    const e = await this.orm.em.fork().findOne(Endpoint, where);
    if (!e) throw ApiError.notFound('endpoint', id);
    return e;
  }

  async get(principal: Principal, id: string) {
    return toResponse(await this.visible(principal, id));
  }

  async list(principal: Principal, q: { limit: number; cursor?: string }) {
    const where: Record<string, unknown> = { deletedAt: null };
    if (!principal.isAdmin) where.user = principal.userId;
    const em = this.orm.em.fork();
    const { page, next_cursor } = await seqPage(q, where, (w, o) => em.find(Endpoint, w, o));
    return { endpoints: page.map(toResponse), next_cursor };
  }

  /** Deletes the definition; its name becomes free again. */
  async delete(principal: Principal, id: string): Promise<void> {
    const e = await this.visible(principal, id);
    const n = await this.orm.em.fork().nativeUpdate(Endpoint, { id: e.id, deletedAt: null }, { deletedAt: new Date() });
    if (n === 0) throw ApiError.notFound('endpoint', id);
  }
}
