import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from '@nats-io/transport-node';
import { encodeJson, type CapacityReply } from '../../src/wire/messages.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { startCancelCoordinator, type CancelCoordinator } from '../helpers/coordinator.ts';

/**
 * "No request can produce a 5xx except a real outage": a seeded stream of
 * mangled requests against every route. Deterministic (same seed, same
 * requests), so a failure here reproduces.
 */
let t: TestApp;
let cancels: CancelCoordinator | undefined;
let userKey: string;
let userId: string;
let capacityActor: Subscription;
beforeAll(async () => {
  t = await startTestApp();
  // Cancel asks a coordinator; this one answers cancels only, so jobs stay as the tests leave them.
  cancels = await startCancelCoordinator(t);
  ({ key: userKey, id: userId } = await t.newUser('fuzz'));
  // A block to release, and a stand-in for the capacity actor that refuses
  // everything: a buy or release that passes validation gets a 4xx from it
  // rather than the 503 of an absent coordinator (an outage, not a bug).
  await t.db.orm.em.fork().execute(
    `insert into capacity_blocks (id, provider, instance_type, tier, pool, nodes, gpus_per_node, vram_per_gpu_gb, cpu_per_node,
       ram_per_node_gb, starts_at, cost_per_hour, status, created_by, created_at, updated_at)
     values ('fuzz-blk', 'simulated', 'sim-8xh100', 'fast', 'fast', 1, 8, 80, 96, 1024, now(), 10, 'active', 'autoscaler', now(), now())`,
  );
  capacityActor = t.bus.nc.subscribe(t.bus.t.subjects.coordCapacity, {
    callback: (_err, msg) => {
      const reply: CapacityReply = { ok: false, code: 'invalid_state', message: 'the fuzz actor refuses everything' };
      msg.respond(encodeJson(reply));
    },
  });
  await t.bus.nc.flush();
});
afterAll(async () => {
  capacityActor?.unsubscribe();
  await cancels?.stop();
  await t?.close();
});

/** encodeURIComponent, except that a lone surrogate becomes its (invalid) UTF-8 bytes instead of throwing. */
const enc = (v: unknown) => {
  try {
    return encodeURIComponent(String(v));
  } catch {
    return '%ED%A0%80';
  }
};

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const weird: unknown[] = [
  null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, '', ' ', 'x'.repeat(5000), '\u0000', '\ud800',
  '💥', [], [null], [[]], {}, { a: { b: { c: [1] } } }, 'FAST', 'FLEX', '__proto__', '1e3', 'NaN',
];

describe('fuzz: no request gets a 5xx', () => {
  it('900 mangled requests across every route answer 2xx/4xx in the one error shape', async () => {
    const rand = rng(20261129);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const created = await t.call({ method: 'POST', url: '/jobs', payload: exampleJob() });
    const jobId = created.json().id as string;
    const ids = [jobId, userId, 'fuzz-blk', 'abc', '00000000-0000-0000-0000-000000000000', '%00', '..', 'x'.repeat(300), '-1'];
    const failures: string[] = [];
    for (let i = 0; i < 900; i++) {
      const body: Record<string, unknown> = exampleJob();
      // mangle 1..3 fields, sometimes add unknown ones or drop required ones
      for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) {
        const field = pick([...Object.keys(body), 'extra', 'node_count', '__proto__', 'constructor']);
        if (rand() < 0.2) delete body[field];
        else body[field] = pick(weird);
      }
      const id = pick(ids);
      const buy: Record<string, unknown> = { instance_type: 'sim-8xh100', nodes: 2, hours: 24, tier: 'fast' };
      for (let k = 0; k < Math.floor(rand() * 3); k++) {
        const field = pick([...Object.keys(buy), 'extra']);
        if (rand() < 0.2) delete buy[field];
        else buy[field] = pick(weird);
      }
      const route: { method: 'GET' | 'POST' | 'DELETE' | 'PATCH'; url: string; payload?: unknown } = pick([
        { method: 'POST', url: '/jobs', payload: body },
        { method: 'POST', url: '/jobs', payload: pick(weird) },
        { method: 'GET', url: `/jobs?limit=${enc(pick(weird))}&status=${enc(pick(weird))}` },
        { method: 'GET', url: `/jobs?cursor=${enc(pick(weird))}` },
        { method: 'GET', url: `/jobs/${enc(id)}` },
        { method: 'POST', url: `/jobs/${enc(id)}/cancel` },
        { method: 'GET', url: `/jobs/${enc(id)}/events` },
        {
          method: 'GET',
          url: `/jobs/${enc(id)}/logs?limit=${enc(pick(weird))}&stream=${enc(pick(weird))}&attempt=${enc(pick(weird))}`,
        },
        { method: 'GET', url: `/jobs/${enc(id)}/logs?cursor=${enc(pick(weird))}` },
        { method: 'GET', url: `/nodes?limit=${enc(pick(weird))}&state=${enc(pick(weird))}&pool=${enc(pick(weird))}` },
        { method: 'GET', url: `/nodes?cursor=${enc(pick(weird))}` },
        { method: 'GET', url: `/nodes/${enc(id)}` },
        // No node exists here, so these never reach the (absent) coordinator.
        { method: 'POST', url: `/nodes/${enc(id)}/drain`, payload: { reason: pick(weird) } },
        { method: 'POST', url: `/nodes/${enc(id)}/resume`, payload: pick(weird) },
        { method: 'POST', url: '/auth/api-keys', payload: { name: pick(weird) } },
        { method: 'DELETE', url: `/auth/api-keys/${enc(id)}` },
        { method: 'POST', url: '/users', payload: { name: pick(weird), is_admin: pick(weird) } },
        { method: 'POST', url: '/users', payload: { name: 'fz', fair_share_weight: pick(weird) } },
        { method: 'PATCH', url: `/users/${enc(id)}`, payload: { fair_share_weight: pick(weird) } },
        { method: 'PATCH', url: `/users/${enc(id)}`, payload: pick(weird) },
        { method: 'GET', url: `/capacity?${enc(pick(weird))}=${enc(pick(weird))}` },
        {
          method: 'GET',
          url: `/capacity/blocks?limit=${enc(pick(weird))}&status=${enc(pick(weird))}&tier=${enc(pick(weird))}`,
        },
        { method: 'GET', url: `/capacity/blocks?cursor=${enc(pick(weird))}` },
        { method: 'GET', url: `/capacity/blocks/${enc(id)}` },
        { method: 'POST', url: '/capacity/blocks', payload: buy },
        { method: 'POST', url: '/capacity/blocks', payload: pick(weird) },
        { method: 'POST', url: `/capacity/blocks/${enc(id)}/release`, payload: pick(weird) },
        { method: 'GET', url: `/capacity/events?since=${enc(pick(weird))}&tier=${enc(pick(weird))}&limit=${enc(pick(weird))}` },
        { method: 'GET', url: `/capacity/events?cursor=${enc(pick(weird))}` },
        { method: 'GET', url: `/usage?from=${enc(pick(weird))}&to=${enc(pick(weird))}` },
        { method: 'GET', url: `/usage?user_id=${enc(pick([...ids, ...weird]))}` },
        { method: 'POST', url: '/endpoints', payload: { ...body, name: pick(weird) } },
        { method: 'GET', url: `/endpoints?limit=${enc(pick(weird))}` },
        { method: 'DELETE', url: `/endpoints/${enc(id)}` },
      ]);
      const headers: Record<string, string> = {};
      if (rand() < 0.1) headers['idempotency-key'] = String(pick(weird)).replace(/[^\x20-\x7e]/g, '').slice(0, 300) || 'k';
      const hasBody = 'payload' in route;
      const res = await t.call({
        method: route.method,
        url: route.url,
        key: rand() < 0.5 ? userKey : undefined,
        headers: hasBody ? { ...headers, 'content-type': 'application/json' } : headers,
        ...(hasBody ? { payload: JSON.stringify(route.payload) } : {}),
      });
      const tag = `#${i} ${route.method} ${route.url.slice(0, 80)} → ${res.statusCode}`;
      if (res.statusCode >= 500) failures.push(`${tag}: ${res.body.slice(0, 200)}`);
      else if (res.statusCode >= 400) {
        const b = res.json();
        if (typeof b?.error?.code !== 'string' || typeof b.error.message !== 'string' || typeof b.error.details !== 'object') {
          failures.push(`${tag}: not the error shape: ${res.body.slice(0, 200)}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });
});
