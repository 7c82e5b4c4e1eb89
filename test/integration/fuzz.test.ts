import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';

/**
 * "No request can produce a 5xx except a real outage": a seeded stream of
 * mangled requests against every route. Deterministic (same seed, same
 * requests), so a failure here reproduces.
 */
let t: TestApp;
let userKey: string;
beforeAll(async () => {
  t = await startTestApp();
  userKey = (await t.newUser('fuzz')).key;
});
afterAll(() => t?.close());

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
  it('600 mangled requests across every route answer 2xx/4xx in the one error shape', async () => {
    const rand = rng(20261129);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const created = await t.call({ method: 'POST', url: '/jobs', payload: exampleJob() });
    const jobId = created.json().id as string;
    const ids = [jobId, 'abc', '00000000-0000-0000-0000-000000000000', '%00', '..', 'x'.repeat(300), '-1'];
    const failures: string[] = [];
    for (let i = 0; i < 600; i++) {
      const body: Record<string, unknown> = exampleJob();
      // mangle 1..3 fields, sometimes add unknown ones or drop required ones
      for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) {
        const field = pick([...Object.keys(body), 'extra', 'node_count', '__proto__', 'constructor']);
        if (rand() < 0.2) delete body[field];
        else body[field] = pick(weird);
      }
      const id = pick(ids);
      const route: { method: 'GET' | 'POST' | 'DELETE'; url: string; payload?: unknown } = pick([
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
