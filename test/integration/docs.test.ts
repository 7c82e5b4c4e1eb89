import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { expectError } from '../helpers/expect.ts';
import { JOB_FAILURE_CODES } from '../../machines/job.failure.ts';
import { FILTERS, SCORERS } from '../../src/placement/index.ts';

let t: TestApp;
type Json = any;
let doc: Json;
beforeAll(async () => {
  t = await startTestApp();
  const res = await t.call({ method: 'GET', url: '/openapi.json', key: null });
  expect(res.statusCode).toBe(200);
  doc = res.json();
});
afterAll(() => t?.close());

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A schema with its $ref (if any) followed into components.schemas. */
function deref(schema: Json): Json {
  const ref: string | undefined = schema?.$ref;
  if (!ref) return schema;
  const name = ref.replace('#/components/schemas/', '');
  const target = doc.components?.schemas?.[name];
  expect(target, `${ref} resolves`).toBeDefined();
  return deref(target);
}

const authenticated: [string, string][] = [
  ['post', '/jobs'],
  ['get', '/jobs'],
  ['get', '/jobs/{id}'],
  ['post', '/jobs/{id}/cancel'],
  ['get', '/jobs/{id}/events'],
  ['get', '/jobs/{id}/logs'],
  ['get', '/nodes'],
  ['get', '/nodes/{id}'],
  ['post', '/nodes/{id}/drain'],
  ['post', '/nodes/{id}/resume'],
  ['post', '/auth/api-keys'],
  ['get', '/auth/api-keys'],
  ['delete', '/auth/api-keys/{id}'],
  ['post', '/users'],
  ['patch', '/users/{id}'],
  ['get', '/capacity'],
  ['get', '/capacity/blocks'],
  ['post', '/capacity/blocks'],
  ['get', '/capacity/blocks/{id}'],
  ['post', '/capacity/blocks/{id}/release'],
  ['get', '/capacity/events'],
  ['get', '/usage'],
  ['post', '/endpoints'],
  ['get', '/endpoints'],
  ['get', '/endpoints/{id}'],
  ['delete', '/endpoints/{id}'],
];
const withBody: [string, string[]][] = [
  ['/jobs', ['tier', 'gpu_count', 'image', 'command']],
  ['/auth/api-keys', ['name']],
  ['/users', ['name']],
  ['/endpoints', ['name', 'image', 'gpu_count']],
  ['/capacity/blocks', ['instance_type', 'nodes', 'hours', 'tier']],
];

describe('/openapi.json', () => {
  it('is an OpenAPI 3 document with a bearer security scheme applied by default', () => {
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearer: [] }]);
  });

  it('documents every route', () => {
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/auth/api-keys',
        '/auth/api-keys/{id}',
        '/capacity',
        '/capacity/blocks',
        '/capacity/blocks/{id}',
        '/capacity/blocks/{id}/release',
        '/capacity/events',
        '/endpoints',
        '/endpoints/{id}',
        '/healthz',
        '/jobs',
        '/jobs/{id}',
        '/jobs/{id}/cancel',
        '/jobs/{id}/events',
        '/jobs/{id}/logs',
        '/nodes',
        '/nodes/{id}',
        '/nodes/{id}/drain',
        '/nodes/{id}/resume',
        '/readyz',
        '/usage',
        '/users',
        '/users/{id}',
      ].sort(),
    );
    const ops = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item as object).map((m) => `${m} ${path}`));
    expect(ops.sort()).toEqual([...authenticated.map(([m, p]) => `${m} ${p}`), 'get /healthz', 'get /readyz'].sort());
  });

  it.each(authenticated)('%s %s has a success response and documented error responses in the error shape', (method, path) => {
    const op = doc.paths[path][method];
    expect(op.summary).toMatch(/\S/);
    expect(op.security).toBeUndefined(); // inherits the bearer requirement
    const codes = Object.keys(op.responses);
    expect(codes.some((c) => /^2\d\d$/.test(c))).toBe(true);
    expect(codes).toContain('401');
    const errors = codes.filter((c) => /^[45]\d\d$/.test(c));
    expect(errors.length).toBeGreaterThanOrEqual(2);
    for (const c of errors) {
      const schema = deref(op.responses[c].content['application/json'].schema);
      expect([...schema.properties.error.required].sort()).toEqual(['code', 'details', 'message']);
      expect(schema.properties.error.properties.code.enum).toEqual(expect.arrayContaining(['unauthorized', 'not_found', 'validation_failed']));
    }
  });

  it.each(authenticated.filter(([, p]) => p.includes('{id}')))('%s %s documents its 404 and its id path parameter', (method, path) => {
    const op = doc.paths[path][method];
    expect(op.responses).toHaveProperty('404');
    expect(op.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ in: 'path', name: 'id', required: true })]));
  });

  it.each(withBody)('POST %s documents its JSON request body with the required fields', (path, required) => {
    const op = doc.paths[path].post;
    expect(op.requestBody.required).toBe(true);
    const schema = deref(op.requestBody.content['application/json'].schema);
    expect(schema.type).toBe('object');
    expect(schema.additionalProperties).toBe(false);
    expect([...schema.required].sort()).toEqual([...required].sort());
    for (const f of required) expect(schema.properties).toHaveProperty(f);
  });

  it('POST /jobs documents every body field with its bounds, the Idempotency-Key header and 422', () => {
    const op = doc.paths['/jobs'].post;
    const body = deref(op.requestBody.content['application/json'].schema);
    expect(Object.keys(body.properties).sort()).toEqual(
      ['command', 'cpu_cores', 'env', 'expected_duration_sec', 'gpu_count', 'image', 'node_count', 'priority', 'ram_gb', 'tier', 'vram_per_gpu_gb'].sort(),
    );
    expect(body.properties.node_count).toMatchObject({ type: 'integer', minimum: 1, maximum: 64 });
    expect(body.properties.tier.enum).toEqual(['FAST', 'FLEX']);
    expect(body.properties.gpu_count).toMatchObject({ type: 'integer', minimum: 1, maximum: 64 });
    expect(body.properties.priority).toMatchObject({ minimum: -1000, maximum: 1000 });
    expect(body.properties.expected_duration_sec).toMatchObject({ minimum: 1, maximum: 2592000 });
    expect(op.parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ in: 'header', name: 'idempotency-key', required: false })]),
    );
    expect(op.responses).toHaveProperty('422');
    expect(op.responses).toHaveProperty('413');
    expect(op.responses).toHaveProperty('415');
    expect(doc.paths['/jobs/{id}/cancel'].post.responses).toHaveProperty('409');
    expect(doc.paths['/endpoints'].post.responses).toHaveProperty('409');
    expect(doc.paths['/users'].post.responses).toHaveProperty('403');
  });

  it('PATCH /users/{id} documents its body: fair_share_weight, required, > 0', () => {
    const op = doc.paths['/users/{id}'].patch;
    expect(op.requestBody.required).toBe(true);
    const body = deref(op.requestBody.content['application/json'].schema);
    expect(body.additionalProperties).toBe(false);
    expect(body.required).toEqual(['fair_share_weight']);
    expect(body.properties.fair_share_weight).toMatchObject({ type: 'number', minimum: 0, exclusiveMinimum: true });
    const created = deref(doc.paths['/users'].post.requestBody.content['application/json'].schema);
    expect(created.properties).toHaveProperty('fair_share_weight');
  });

  it('the capacity routes document their admin-only 403, their query parameters and the release answers', () => {
    for (const [method, path] of authenticated.filter(([, p]) => p.startsWith('/capacity'))) {
      expect(doc.paths[path][method].responses, `${method} ${path}`).toHaveProperty('403');
    }
    const q = (path: string) => doc.paths[path].get.parameters.filter((p: Json) => p.in === 'query').map((p: Json) => p.name).sort();
    expect(q('/capacity/blocks')).toEqual(['cursor', 'limit', 'status', 'tier']);
    expect(q('/capacity/events')).toEqual(['cursor', 'limit', 'since', 'tier']);
    expect(q('/usage')).toEqual(['from', 'to', 'user_id']);
    const release = doc.paths['/capacity/blocks/{id}/release'].post.responses;
    expect(release).toHaveProperty('200');
    expect(release).toHaveProperty('202');
    expect(release).toHaveProperty('409');
    expect(doc.paths['/capacity/blocks'].post.responses).toHaveProperty('201');
  });

  it('the job placement diagnosis is typed: every field, each filter count and each scorer, as the coordinator stores them', () => {
    const job = deref(doc.paths['/jobs/{id}'].get.responses['200'].content['application/json'].schema);
    const p = job.properties.placement;
    // One shape, no "any object" fallback beside it.
    const branches: Json[] = (p.anyOf ?? p.oneOf ?? p.allOf ?? [p]).map(deref);
    expect(branches).toHaveLength(1);
    const diagnosis = branches[0];
    expect(diagnosis.properties?.rejected, 'a typed PlacementDiagnosis').toBeDefined();
    expect(Object.keys(diagnosis.properties).sort()).toEqual(['at', 'best', 'nodes', 'position', 'reason', 'rejected', 'step']);
    expect([...diagnosis.required].sort()).toEqual(['at', 'best', 'nodes', 'position', 'reason', 'rejected', 'step']);
    expect(Object.keys(diagnosis.properties.rejected.properties)).toEqual([...FILTERS]);
    expect(diagnosis.properties.rejected.properties.gpus.type).toBe('number');
    const best = diagnosis.properties.best.items;
    expect(Object.keys(best.properties).sort()).toEqual(['node_id', 'score', 'scores']);
    expect(Object.keys(best.properties.scores.properties)).toEqual([...SCORERS]);
    expect(job.properties.placement.nullable).toBe(true);
  });

  it('GET /jobs documents its query parameters', () => {
    const params = doc.paths['/jobs'].get.parameters.filter((p: Json) => p.in === 'query').map((p: Json) => p.name);
    expect(params.sort()).toEqual(['cursor', 'failure_code', 'limit', 'status', 'tier']);
  });

  it('a job\'s failure_code is documented with every code, on the job and on its events', () => {
    const job = deref(doc.paths['/jobs/{id}'].get.responses['200'].content['application/json'].schema);
    const codes = (s: Json): string[] => {
      const variants: Json[] = s.anyOf ?? s.oneOf ?? s.allOf ?? [s];
      return variants.map(deref).flatMap((v: Json) => v.enum ?? []);
    };
    expect(codes(job.properties.failure_code).sort()).toEqual([...JOB_FAILURE_CODES].sort());
    expect(job.properties).toHaveProperty('failure_retryable');
    expect(codes(job.properties.failure_fault).sort()).toEqual(['system', 'user']);
    const events = deref(doc.paths['/jobs/{id}/events'].get.responses['200'].content['application/json'].schema);
    const event = deref(events.properties.events.items);
    expect(codes(event.properties.failure_code).sort()).toEqual([...JOB_FAILURE_CODES].sort());
  });

  it('the Job response schema has every field of the spec response', () => {
    const job = deref(doc.paths['/jobs/{id}'].get.responses['200'].content['application/json'].schema);
    for (const f of ['id', 'user_id', 'tier', 'status', 'gpu_count', 'vram_per_gpu_gb', 'cpu_cores', 'ram_gb', 'image', 'created_at', 'updated_at', 'node_id', 'gpu_indices']) {
      expect(job.properties, f).toHaveProperty(f);
    }
    for (const f of ['node_count', 'placements', 'placement', 'preemptions', 'cost_usd']) {
      expect(job.properties, f).toHaveProperty(f);
      expect(job.required, f).toContain(f);
    }
    expect(job.properties.status.enum).toEqual(['pending', 'queued', 'scheduled', 'running', 'completed', 'failed', 'cancelled']);
  });

  it.each(['/healthz', '/readyz'])('%s is documented as public', (path) => {
    expect(doc.paths[path].get.security).toEqual([]);
  });
});

describe('/docs', () => {
  let html: string;
  beforeAll(async () => {
    const res = await t.call({ method: 'GET', url: '/docs', key: null });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    html = res.body;
  });

  it('serves swagger-ui', () => {
    expect(html).toContain('swagger-ui');
    expect(html).toMatch(/<script[^>]+src="[^"]*swagger-ui-bundle\.js"/);
  });

  it('loads nothing from a CDN: every script and stylesheet is served by the API itself', async () => {
    expect(html).not.toMatch(/<script[^>]+src="(https?:)?\/\//i);
    expect(html).not.toMatch(/<link[^>]+href="(https?:)?\/\//i);
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(3);
    for (const a of assets) {
      const url = new URL(a, 'http://x/docs/').pathname;
      const res = await t.call({ method: 'GET', url, key: null });
      expect(res.statusCode, url).toBe(200);
      expect(res.body.length, url).toBeGreaterThan(0);
    }
  });

  it('the spec swagger-ui loads is the same document, with no key needed', async () => {
    const res = await t.call({ method: 'GET', url: '/docs/json', key: null });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(doc);
  });

  it('sends a CSP that only allows its own scripts', async () => {
    const res = await t.call({ method: 'GET', url: '/docs', key: null });
    expect(res.headers['content-security-policy']).toMatch(/script-src 'self'/);
  });
});

describe('request ids', () => {
  it.each([
    ['a public 200', { method: 'GET', url: '/healthz', key: null }],
    ['an authenticated 200', { method: 'GET', url: '/jobs?limit=1' }],
    ['a 401', { method: 'GET', url: '/jobs', key: null }],
    ['a 400', { method: 'GET', url: '/jobs?limit=0' }],
    ['a 404 for an unknown route', { method: 'GET', url: '/nope', key: null }],
    ['a 404 for an unknown job', { method: 'GET', url: '/jobs/abc' }],
    ['a 415', { method: 'POST', url: '/jobs', headers: { 'content-type': 'text/plain' }, payload: 'x' }],
  ] as const)('%s carries a generated x-request-id', async (_what, opts) => {
    const res = await t.call(opts as Parameters<TestApp['call']>[0]);
    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  it('each request gets its own id', async () => {
    const ids = await Promise.all(Array.from({ length: 5 }, () => t.call({ method: 'GET', url: '/healthz', key: null })));
    expect(new Set(ids.map((r) => r.headers['x-request-id'])).size).toBe(5);
  });

  it.each(['client-req-42', 'a.b:c_d-E', 'x'.repeat(128), '3f2b8c1e-9d4a-4b7e-8f00-123456789abc'])(
    'a sane incoming X-Request-Id (%s) is echoed',
    async (id) => {
      const ok = await t.call({ method: 'GET', url: '/jobs?limit=1', headers: { 'x-request-id': id } });
      expect(ok.statusCode).toBe(200);
      expect(ok.headers['x-request-id']).toBe(id);
      const refused = await t.call({ method: 'GET', url: '/jobs', key: null, headers: { 'x-request-id': id } });
      expectError(refused, 401, 'unauthorized');
      expect(refused.headers['x-request-id']).toBe(id);
    },
  );

  it.each(['has spaces in it', 'x'.repeat(129), '<script>', 'a\tb', ''])(
    'an unsafe incoming X-Request-Id (%j) is replaced by a generated one',
    async (id) => {
      const res = await t.call({ method: 'GET', url: '/healthz', key: null, headers: { 'x-request-id': id } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-request-id']).toMatch(UUID);
    },
  );
});

describe('unknown routes', () => {
  it.each([
    ['GET', '/nope'],
    ['DELETE', '/jobs/3f2b8c1e-9d4a-4b7e-8f00-123456789abc'],
    ['PUT', '/jobs'],
  ])('%s %s → 404 route_not_found in the error shape', async (method, url) => {
    const err = expectError(await t.call({ method: method as 'GET', url }), 404, 'route_not_found');
    expect(err.details).toEqual({ method });
  });
});
