import type { MikroORM } from '@mikro-orm/postgresql';
import type { Config } from '../../config/index.ts';
import type { Principal } from '../../auth/principal.ts';
import { User } from '../../db/entities.ts';
import { ApiError } from '../common/errors.ts';
import { TIERS } from '../../domain/cluster.ts';
import { USAGE_DEFAULT_DAYS, type TierUsage, type UsageByTier, type UsageQuery, type UsageResponse } from './schemas.ts';

const DAY_MS = 24 * 3600 * 1000;

interface UsageRow {
  user_id: string;
  name: string | null;
  tier: string;
  attempts: number;
  gpu_seconds: number;
  cost_usd: number;
}

/** Micro-units: sums of doubles print without float noise. */
const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

const zero = (): TierUsage => ({ attempts: 0, gpu_seconds: 0, gpu_hours: 0, cost_usd: 0 });

/** Adds a row's numbers into per-tier sums (raw; rounded once at the end). */
function add(into: Record<string, TierUsage>, r: Pick<UsageRow, 'tier' | 'attempts' | 'gpu_seconds' | 'cost_usd'>): void {
  const t = (into[r.tier] ??= zero());
  t.attempts += Number(r.attempts);
  t.gpu_seconds += Number(r.gpu_seconds);
  t.cost_usd += Number(r.cost_usd);
}

function byTier(sums: Record<string, TierUsage>): UsageByTier {
  const out = {} as UsageByTier;
  for (const tier of TIERS) {
    const t = sums[tier] ?? zero();
    out[tier] = {
      attempts: t.attempts,
      gpu_seconds: round6(t.gpu_seconds),
      gpu_hours: round6(t.gpu_seconds / 3600),
      cost_usd: round6(t.cost_usd),
    };
  }
  return out;
}

/**
 * What users used and what it cost, from usage_records: one row per
 * (attempt, node), written by the coordinator when the attempt's GPUs are
 * released and costed at the tier's price then. A period holds the records
 * that ended within it.
 */
export class UsageService {
  constructor(
    private readonly orm: MikroORM,
    private readonly cfg: Config,
  ) {}

  async usage(principal: Principal, q: UsageQuery): Promise<UsageResponse> {
    const to = q.to ?? new Date();
    const from = q.from ?? new Date(to.getTime() - USAGE_DEFAULT_DAYS * DAY_MS);
    if (from.getTime() > to.getTime()) {
      const message = 'must not be after `to`';
      throw new ApiError('validation_failed', `from: ${message}`, {
        fields: [{ field: 'from', location: 'querystring', message }],
      });
    }
    const target = q.user_id?.toLowerCase() ?? principal.userId;
    if (!principal.isAdmin && target !== principal.userId) {
      throw new ApiError('forbidden', "only admins may see another user's usage", { user_id: target });
    }
    const em = this.orm.em.fork();
    if (q.user_id !== undefined && principal.isAdmin && (await em.count(User, { id: target })) === 0) {
      throw ApiError.notFound('user', target);
    }
    // Everyone's usage for an admin who did not name a user; otherwise one user's.
    const one = !principal.isAdmin || q.user_id !== undefined;
    const rows = await em.execute<UsageRow[]>(
      `select r.user_id, u.name, upper(r.tier) as tier,
              count(distinct (r.job_id, r.attempt))::int as attempts,
              sum(r.gpu_seconds)::float8 as gpu_seconds,
              sum(r.cost_usd)::float8 as cost_usd
         from usage_records r
         left join users u on u.id = r.user_id
        where r.ended_at >= ? and r.ended_at < ? ${one ? 'and r.user_id = ?' : ''}
        group by r.user_id, u.name, upper(r.tier)`,
      one ? [from, to, target] : [from, to],
    );
    const mine: Record<string, TierUsage> = {};
    for (const r of rows) if (r.user_id === target) add(mine, r);
    const out: UsageResponse = {
      from: from.toISOString(),
      to: to.toISOString(),
      prices: { FAST: this.cfg.SCALAR_PRICE_FAST_GPU_HOUR, FLEX: this.cfg.SCALAR_PRICE_FLEX_GPU_HOUR },
      user_id: target,
      totals: byTier(mine),
    };
    if (!principal.isAdmin) return out;

    const all: Record<string, TierUsage> = {};
    const perUser = new Map<string, { name: string | null; sums: Record<string, TierUsage> }>();
    for (const r of rows) {
      add(all, r);
      let u = perUser.get(r.user_id);
      if (!u) perUser.set(r.user_id, (u = { name: r.name, sums: {} }));
      add(u.sums, r);
    }
    const users = [...perUser.entries()].map(([user_id, u]) => ({ user_id, name: u.name, ...byTier(u.sums) }));
    const cost = (u: UsageByTier) => u.FAST.cost_usd + u.FLEX.cost_usd;
    users.sort((a, b) => cost(b) - cost(a) || a.user_id.localeCompare(b.user_id));
    return { ...out, all: byTier(all), users };
  }
}
