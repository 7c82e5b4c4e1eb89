/**
 * The coordinator-store contract on PostgreSQL: CoordinatorStore over a
 * fresh migrated database of this file's own, seeded with SQL (blocks
 * through the capacity record's own store).
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { CapacityStore } from '../../actors/capacity/store.ts';
import { CoordinatorStore } from '../../actors/coordinator/store.ts';
import { openOrm } from '../../src/db/orm.ts';
import { describeCoordinatorStoreContract } from '../contract/coordinator-store.contract.ts';
import { blockRow, PRICES, type StoreSeed } from '../contract/coordinator-store.fixtures.ts';
import { createTestDatabase } from '../helpers/db.ts';

/** Emptied before each seed, children first (`delete` beats `truncate` on a few rows). */
const TABLES = ['job_events', 'allocations', 'usage_records', 'jobs', 'users', 'gpus', 'nodes', 'capacity_events', 'capacity_blocks'];

describeCoordinatorStoreContract('PostgreSQL (CoordinatorStore)', async () => {
  const db = await createTestDatabase();
  const orm = await openOrm(db.url, 2);
  const store = new CoordinatorStore(orm, PRICES);
  const sql = (q: string, params: unknown[] = []) => orm.em.fork().execute(q, params);
  return {
    async seed(seed) {
      // One transaction: one WAL flush rather than one per row.
      await orm.em.fork().transactional(async (em) => {
        for (const t of TABLES) await em.execute(`delete from ${t}`);
        await insertSeed(em, seed);
      });
      const capacity = new CapacityStore(orm);
      for (const b of seed.blocks ?? []) await capacity.insertBlock(blockRow(b), { action: 'buy', tier: 'fast', blockId: b.id, reason: 'seed', inputs: {} });
      return {
        store,
        events: async (jobId) =>
          (await sql(`select attempt, from_status, to_status, event, reason, failure_code, created_at from job_events where job_id = ? order by id`, [jobId])).map((r) => ({
            attempt: r.attempt,
            from_status: r.from_status,
            to_status: r.to_status,
            event: r.event,
            reason: r.reason,
            failure_code: r.failure_code,
            at: new Date(r.created_at).getTime(),
          })),
        usage: async () =>
          (await sql(`select job_id, attempt, node_id, gpu_count, gpu_seconds, cost_usd from usage_records order by id`)).map((r) => ({
            jobId: r.job_id,
            attempt: r.attempt,
            nodeId: r.node_id,
            gpus: r.gpu_count,
            gpuSeconds: Number(r.gpu_seconds),
            costUsd: Number(r.cost_usd),
          })),
      };
    },
    async close() {
      await orm.close(true);
      await db.drop();
    },
  };
});

async function insertSeed(em: EntityManager, seed: StoreSeed): Promise<void> {
  const weights = new Map((seed.users ?? []).map((u) => [u.id, u.weight]));
  for (const j of seed.jobs ?? []) if (!weights.has(j.userId)) weights.set(j.userId, 1);
  for (const [id, w] of weights) await em.execute(`insert into users (id, name, fair_share_weight) values (?, ?, ?)`, [id, `user ${id.slice(-2)}`, w]);
  const json = (v: unknown) => (v === null ? null : JSON.stringify(v));
  for (const j of seed.jobs ?? []) {
    await em.execute(
      `insert into jobs (id, user_id, tier, status, status_reason, priority, gpu_count, vram_per_gpu_gb, cpu_cores, ram_gb,
         expected_duration_sec, image, command, env, attempt, max_attempts, node_id, gpu_indices, exit_code, node_count,
         placements, preempted_by, preemptions, member_failure, created_at, updated_at, scheduled_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?, ?, ?, ?::jsonb, ?, ?, ?::jsonb, ?, ?, ?::jsonb, ?, ?, ?)`,
      [
        j.id, j.userId, j.tier, j.status, j.statusReason, j.priority, j.gpuCount, j.vramPerGpuGb, j.cpuCores, j.ramGb,
        j.expectedDurationSec, j.image, json(j.command), json(j.env), j.attempt, j.maxAttempts, j.nodeId, json(j.gpuIndices), j.exitCode, j.nodeCount,
        json(j.placements), j.preemptedBy, j.preemptions, json(j.memberFailure), new Date(j.createdAt), new Date(j.createdAt),
        j.scheduledAt === null ? null : new Date(j.scheduledAt),
      ],
    );
  }
  for (const n of seed.nodes ?? []) {
    await em.execute(
      `insert into nodes (id, pool, state, state_reason, runtime, cpu_cores, ram_gb, drain_requested, block_id, addr, registered_at, updated_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), now())`,
      [n.id, n.pool, n.state, n.stateReason, n.runtime, n.cpuCores, n.ramGb, n.drainRequested, n.blockId, n.addr],
    );
    for (const g of n.gpus) await em.execute(`insert into gpus (node_id, index, uuid, model, vram_gb) values (?, ?, ?, ?, ?)`, [n.id, g.index, g.uuid, g.model, g.vram_gb]);
  }
  for (const a of seed.allocations ?? []) {
    for (const g of a.gpuIndices) {
      await em.execute(`insert into allocations (job_id, attempt, node_id, gpu_index, created_at, released_at) values (?, ?, ?, ?, ?, ?)`, [
        a.jobId, a.attempt, a.nodeId, g, new Date(a.createdAt), a.releasedAt === undefined ? null : new Date(a.releasedAt),
      ]);
    }
  }
}
