import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { expectError, expectFieldError } from '../helpers/expect.ts';

let t: TestApp;
let key: string;
beforeAll(async () => {
  t = await startTestApp();
  key = (await t.newUser('validation')).key;
});
afterAll(() => t?.close());

/** The spec example with `patch` applied; a field set to undefined is left out of the JSON. */
const job = (patch: Record<string, unknown>) => ({ ...exampleJob(), ...patch });
const post = (url: string, payload: unknown) =>
  t.call({ method: 'POST', url, key, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(payload) });

/** [what, patch, the exact field named in details.fields] */
const invalidJobs: [string, Record<string, unknown>, string][] = [
  // wrong types, one per field
  ['tier as a number', { tier: 1 }, 'tier'],
  ['tier null', { tier: null }, 'tier'],
  ['gpu_count as a string', { gpu_count: '1' }, 'gpu_count'],
  ['gpu_count as a boolean', { gpu_count: true }, 'gpu_count'],
  ['vram_per_gpu_gb as a string', { vram_per_gpu_gb: '40' }, 'vram_per_gpu_gb'],
  ['vram_per_gpu_gb null', { vram_per_gpu_gb: null }, 'vram_per_gpu_gb'],
  ['cpu_cores as a string', { cpu_cores: '4' }, 'cpu_cores'],
  ['ram_gb as a boolean', { ram_gb: false }, 'ram_gb'],
  ['expected_duration_sec as a string', { expected_duration_sec: '3600' }, 'expected_duration_sec'],
  ['priority as a string', { priority: '0' }, 'priority'],
  ['image as a number', { image: 5 }, 'image'],
  ['image as an array', { image: ['a'] }, 'image'],
  ['command as an object', { command: { 0: 'python' } }, 'command'],
  ['env as a string', { env: 'A=B' }, 'env'],
  // tier
  ['tier SLOW', { tier: 'SLOW' }, 'tier'],
  ['tier fast (lower case)', { tier: 'fast' }, 'tier'],
  ['tier empty', { tier: '' }, 'tier'],
  // gpu_count
  ['gpu_count 0', { gpu_count: 0 }, 'gpu_count'],
  ['gpu_count 65', { gpu_count: 65 }, 'gpu_count'],
  ['gpu_count 1.5', { gpu_count: 1.5 }, 'gpu_count'],
  ['gpu_count -1', { gpu_count: -1 }, 'gpu_count'],
  // vram_per_gpu_gb
  ['vram_per_gpu_gb 0', { vram_per_gpu_gb: 0 }, 'vram_per_gpu_gb'],
  ['vram_per_gpu_gb -1', { vram_per_gpu_gb: -1 }, 'vram_per_gpu_gb'],
  ['vram_per_gpu_gb 1024.5', { vram_per_gpu_gb: 1024.5 }, 'vram_per_gpu_gb'],
  // cpu_cores, ram_gb
  ['cpu_cores 0', { cpu_cores: 0 }, 'cpu_cores'],
  ['cpu_cores -2', { cpu_cores: -2 }, 'cpu_cores'],
  ['ram_gb 0', { ram_gb: 0 }, 'ram_gb'],
  ['ram_gb -0.5', { ram_gb: -0.5 }, 'ram_gb'],
  // expected_duration_sec
  ['expected_duration_sec 0', { expected_duration_sec: 0 }, 'expected_duration_sec'],
  ['expected_duration_sec 2592001', { expected_duration_sec: 2592001 }, 'expected_duration_sec'],
  ['expected_duration_sec 1.5', { expected_duration_sec: 1.5 }, 'expected_duration_sec'],
  // priority
  ['priority 1.5', { priority: 1.5 }, 'priority'],
  ['priority 1001', { priority: 1001 }, 'priority'],
  ['priority -1001', { priority: -1001 }, 'priority'],
  // image
  ["image ''", { image: '' }, 'image'],
  ["image '   '", { image: '   ' }, 'image'],
  ['image of 513 characters', { image: 'i'.repeat(513) }, 'image'],
  // command
  ['command []', { command: [] }, 'command'],
  ["command 'python'", { command: 'python' }, 'command'],
  ['command [1]', { command: [1] }, 'command.0'],
  ['command [null]', { command: [null] }, 'command.0'],
  ["command ['ok', 2]", { command: ['ok', 2] }, 'command.1'],
  // env
  ["env {'1X': 'a'}", { env: { '1X': 'a' } }, 'env.1X'],
  ["env {'A-B': 'a'}", { env: { 'A-B': 'a' } }, 'env.A-B'],
  ["env {'': 'a'}", { env: { '': 'a' } }, 'env'],
  ["env {'A': 1}", { env: { A: 1 } }, 'env.A'],
  ["env {'A': null}", { env: { A: null } }, 'env.A'],
  ['env as an array', { env: ['A=B'] }, 'env'],
  ['env null', { env: null }, 'env'],
  // NUL characters: PostgreSQL cannot store them, so they must be refused up front
  ['image with NUL', { image: 'a\u0000b' }, 'image'],
  ['command with NUL', { command: ['python', 'x\u0000'] }, 'command.1'],
  ['env value with NUL', { env: { A: 'x\u0000' } }, 'env.A'],
  // unknown fields are refused, by name
  // node_count
  ['node_count 0', { node_count: 0 }, 'node_count'],
  ['node_count 65', { node_count: 65 }, 'node_count'],
  ['node_count 2.5', { node_count: 2.5 }, 'node_count'],
  ['node_count as a string', { node_count: '2' }, 'node_count'],
  ['node_count null', { node_count: null }, 'node_count'],
  ['a gang without GPUs', { node_count: 2, gpu_count: 0 }, 'gpu_count'],
  ['unknown field foo', { foo: 'bar' }, 'foo'],
  ['misspelt gpu_cout', { gpu_cout: 1 }, 'gpu_cout'],
];

describe('POST /jobs: invalid bodies', () => {
  it.each(invalidJobs)('%s → 400 validation_failed naming the field', async (_what, patch, field) => {
    const res = await post('/jobs', job(patch));
    const err = expectError(res, 400, 'validation_failed');
    const fields = err.details.fields as { field: string; location: string; message: string }[];
    expect(fields.map((f) => f.field), JSON.stringify(fields)).toContain(field);
    for (const f of fields) {
      expect(f.location).toBe('body');
      expect(f.message).toMatch(/\S/);
    }
    expect(err.message).toContain(field);
  });

  it.each(['tier', 'gpu_count', 'image', 'command'])('missing %s → 400 "is required"', async (field) => {
    const res = await post('/jobs', job({ [field]: undefined }));
    const [named] = expectFieldError(res, field);
    expect(named).toEqual({ field, location: 'body', message: 'is required' });
  });

  it('reports every problem at once, not just the first', async () => {
    const res = await post('/jobs', { gpu_count: 0, image: '', command: [], bogus: 1 });
    const fields = expectError(res, 400, 'validation_failed').details.fields as { field: string; message: string }[];
    expect(Object.fromEntries(fields.map((f) => [f.field, f.message]))).toEqual({
      tier: 'is required',
      gpu_count: 'must be from 1 to 64',
      image: 'must not be empty',
      command: 'must be a non-empty array of strings',
      bogus: 'is not a known field',
    });
  });

  it.each([
    ['null', null],
    ['an array', [exampleJob()]],
    ['a string', 'FAST'],
    ['a number', 42],
    ['true', true],
  ])('a body that is %s → 400 validation_failed', async (_what, body) => {
    expectFieldError(await post('/jobs', body), 'body');
  });

  it('none of the refused requests created a job', async () => {
    const res = await t.call({ method: 'GET', url: '/jobs', key });
    expect(res.json().jobs).toEqual([]);
  });

  it('a bad submission among concurrent good ones fails alone (group commit is not poisoned)', async () => {
    const other = await t.newUser('bystander');
    const good = Array.from({ length: 20 }, () =>
      t.call({ method: 'POST', url: '/jobs', key: other.key, payload: exampleJob() }),
    );
    const bad = post('/jobs', job({ image: 'bad\u0000image' }));
    const [badRes, ...goodRes] = await Promise.all([bad, ...good]);
    expectFieldError(badRes, 'image');
    expect(goodRes.map((r) => r.statusCode)).toEqual(goodRes.map(() => 201));
    const listed = await t.call({ method: 'GET', url: '/jobs?limit=100', key: other.key });
    expect(listed.json().jobs).toHaveLength(20);
  });
});

describe('POST /jobs: boundary values are accepted', () => {
  it.each([
    ['gpu_count 64', { gpu_count: 64 }],
    ['node_count 64', { node_count: 64 }],
    ['node_count 1', { node_count: 1 }],
    ['a gang of 64 nodes × 64 GPUs', { node_count: 64, gpu_count: 64 }],
    ['gpu_count 1', { gpu_count: 1 }],
    ['vram_per_gpu_gb 1024', { vram_per_gpu_gb: 1024 }],
    ['vram_per_gpu_gb 0.001', { vram_per_gpu_gb: 0.001 }],
    ['expected_duration_sec 2592000', { expected_duration_sec: 2592000 }],
    ['expected_duration_sec 1', { expected_duration_sec: 1 }],
    ['priority 1000', { priority: 1000 }],
    ['priority -1000', { priority: -1000 }],
    ['image of 512 characters', { image: 'i'.repeat(512) }],
    ['env name _X9', { env: { _X9: '' } }],
    ['an empty env', { env: {} }],
    ['an empty argument', { command: [''] }],
  ])('%s → 201 and stored as sent', async (_what, patch) => {
    const res = await post('/jobs', job(patch));
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject(patch);
    const got = await t.call({ method: 'GET', url: `/jobs/${res.json().id}`, key });
    expect(got.json()).toMatchObject(patch);
  });
});

describe('POST /jobs: malformed requests', () => {
  it.each([
    ['truncated', '{"tier": "FAST"'],
    ['a trailing comma', '{"tier": "FAST",}'],
    ['single quotes', "{'tier': 'FAST'}"],
    ['not JSON at all', 'tier=FAST'],
  ])('invalid JSON (%s) → 400 invalid_json', async (_what, text) => {
    const res = await t.call({ method: 'POST', url: '/jobs', key, headers: { 'content-type': 'application/json' }, payload: text });
    expectError(res, 400, 'invalid_json');
  });

  it.each(['"__proto__": {"is_admin": true}', '"constructor": {"prototype": {"x": 1}}'])(
    'a prototype-poisoning body (%s) → 400 invalid_json',
    async (poison) => {
      const text = `{${poison}, "tier": "FAST", "gpu_count": 1, "image": "i", "command": ["x"]}`;
      const res = await t.call({ method: 'POST', url: '/jobs', key, headers: { 'content-type': 'application/json' }, payload: text });
      expectError(res, 400, 'invalid_json');
    },
  );

  it.each([
    ['an empty body', ''],
    ['a whitespace body', '  \n '],
  ])('%s with a JSON content type → 400: the body is required', async (_what, payload) => {
    const res = await t.call({ method: 'POST', url: '/jobs', key, headers: { 'content-type': 'application/json' }, payload });
    const [named] = expectFieldError(res, 'body');
    expect(named!.message).toBe('is required');
  });

  it('no body and no content type → 400: the body is required', async () => {
    const [named] = expectFieldError(await t.call({ method: 'POST', url: '/jobs', key }), 'body');
    expect(named!.message).toBe('is required');
  });

  it('a body over 1 MiB → 413 payload_too_large', async () => {
    const payload = JSON.stringify(job({ env: { BIG: 'x'.repeat(1024 * 1024) } }));
    const res = await t.call({ method: 'POST', url: '/jobs', key, headers: { 'content-type': 'application/json' }, payload });
    const err = expectError(res, 413, 'payload_too_large');
    expect(err.details).toEqual({ limit_bytes: 1048576 });
  });

  it('a body just under 1 MiB is accepted', async () => {
    const payload = JSON.stringify(job({ env: { BIG: 'x'.repeat(1000 * 1000) } }));
    const res = await t.call({ method: 'POST', url: '/jobs', key, headers: { 'content-type': 'application/json' }, payload });
    expect(res.statusCode).toBe(201);
    expect(res.json().env.BIG).toHaveLength(1000 * 1000);
  });

  it.each(['text/plain', 'application/x-www-form-urlencoded', 'application/xml'])(
    'content type %s → 415 unsupported_media_type',
    async (type) => {
      const res = await t.call({ method: 'POST', url: '/jobs', key, headers: { 'content-type': type }, payload: JSON.stringify(exampleJob()) });
      const err = expectError(res, 415, 'unsupported_media_type');
      expect(err.details.content_type).toBe(type);
    },
  );

  it('application/json with a charset is accepted', async () => {
    const res = await t.call({
      method: 'POST',
      url: '/jobs',
      key,
      headers: { 'content-type': 'application/json; charset=utf-8' },
      payload: JSON.stringify(exampleJob()),
    });
    expect(res.statusCode).toBe(201);
  });
});

describe('other routes name the offending field', () => {
  const cases: [string, string, unknown, string][] = [
    ['POST', '/auth/api-keys', {}, 'name'],
    ['POST', '/auth/api-keys', { name: '' }, 'name'],
    ['POST', '/auth/api-keys', { name: '   ' }, 'name'],
    ['POST', '/auth/api-keys', { name: 'n'.repeat(201) }, 'name'],
    ['POST', '/auth/api-keys', { name: 7 }, 'name'],
    ['POST', '/auth/api-keys', { name: 'ok', scopes: ['all'] }, 'scopes'],
    ['POST', '/users', {}, 'name'],
    ['POST', '/users', { name: '' }, 'name'],
    ['POST', '/users', { name: 'x', is_admin: 'yes' }, 'is_admin'],
    ['POST', '/users', { name: 'x', role: 'admin' }, 'role'],
    ['POST', '/users', { name: 'x', fair_share_weight: 0 }, 'fair_share_weight'],
    ['POST', '/users', { name: 'x', fair_share_weight: -1 }, 'fair_share_weight'],
    ['POST', '/users', { name: 'x', fair_share_weight: '2' }, 'fair_share_weight'],
    ['POST', '/users', { name: 'x', fair_share_weight: null }, 'fair_share_weight'],
    ['POST', '/users', { name: 'x', fair_share_weight: 1e7 }, 'fair_share_weight'],
    ['POST', '/capacity/blocks', { instance_type: 'x', nodes: 1, hours: 1, tier: 'FAST' }, 'tier'],
    ['POST', '/capacity/blocks', { instance_type: 'x', nodes: 1, hours: 0, tier: 'fast' }, 'hours'],
    ['POST', '/capacity/blocks', { instance_type: 'x', nodes: 0, hours: 1, tier: 'fast' }, 'nodes'],
    ['POST', '/endpoints', { image: 'i', gpu_count: 1 }, 'name'],
    ['POST', '/endpoints', { name: 'My_Endpoint', image: 'i', gpu_count: 1 }, 'name'],
    ['POST', '/endpoints', { name: '-leading-dash', image: 'i', gpu_count: 1 }, 'name'],
    ['POST', '/endpoints', { name: 'e'.repeat(64), image: 'i', gpu_count: 1 }, 'name'],
    ['POST', '/endpoints', { name: 'ok', gpu_count: 1 }, 'image'],
    ['POST', '/endpoints', { name: 'ok', image: ' ', gpu_count: 1 }, 'image'],
    ['POST', '/endpoints', { name: 'ok', image: 'i' }, 'gpu_count'],
    ['POST', '/endpoints', { name: 'ok', image: 'i', gpu_count: 0 }, 'gpu_count'],
    ['POST', '/endpoints', { name: 'ok', image: 'i', gpu_count: 65 }, 'gpu_count'],
    ['POST', '/endpoints', { name: 'ok', image: 'i', gpu_count: 1, vram_per_gpu_gb: 0 }, 'vram_per_gpu_gb'],
    ['POST', '/endpoints', { name: 'ok', image: 'i', gpu_count: 1, cpu_cores: -1 }, 'cpu_cores'],
    ['POST', '/endpoints', { name: 'ok', image: 'i', gpu_count: 1, ram_gb: '16' }, 'ram_gb'],
    ['POST', '/endpoints', { name: 'ok', image: 'i', gpu_count: 1, replicas: 2 }, 'replicas'],
  ];

  it.each(cases)('%s %s %j → 400 naming %s', async (_method, url, body, field) => {
    // /users and /capacity are admin-only: send them with the admin key so validation, not authorization, answers.
    const admin = url === '/users' || url.startsWith('/capacity');
    const res = await t.call({ method: 'POST', url, ...(admin ? {} : { key }), payload: body as object });
    expect(res.statusCode).toBeLessThan(500);
    expect(expectFieldError(res, field).map((f) => f.field)).toContain(field);
  });

  it.each([
    [{ fair_share_weight: 0 }, 'fair_share_weight', 'must be a number greater than 0 and at most 1000000'],
    [{ fair_share_weight: -0.5 }, 'fair_share_weight', 'must be a number greater than 0 and at most 1000000'],
    [{ fair_share_weight: '2' }, 'fair_share_weight', 'must be a number greater than 0 and at most 1000000'],
    [{ fair_share_weight: null }, 'fair_share_weight', 'must be a number greater than 0 and at most 1000000'],
    [{}, 'fair_share_weight', 'is required'],
    [undefined, 'body', 'is required'],
    [{ fair_share_weight: 2, name: 'renamed' }, 'name', 'is not a known field'],
  ])('PATCH /users/{id} %j → 400 naming %s', async (body, field, message) => {
    const u = await t.newUser('weighed');
    const res = await t.call({ method: 'PATCH', url: `/users/${u.id}`, ...(body === undefined ? {} : { payload: body }) });
    const [named] = expectFieldError(res, field);
    expect(named!.message).toBe(message);
  });

  it('missing fields on those routes say "is required"', async () => {
    const res = await t.call({ method: 'POST', url: '/endpoints', key, payload: {} });
    const fields = expectError(res, 400, 'validation_failed').details.fields as { field: string; message: string }[];
    expect(fields).toEqual(
      expect.arrayContaining(
        ['name', 'image', 'gpu_count'].map((field) => ({ field, location: 'body', message: 'is required' })),
      ),
    );
  });

  it('invalid JSON and wrong content types get the same answers on every route', async () => {
    for (const url of ['/auth/api-keys', '/users', '/endpoints']) {
      const bad = await t.call({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: '{' });
      expectError(bad, 400, 'invalid_json');
      const text = await t.call({ method: 'POST', url, headers: { 'content-type': 'text/plain' }, payload: 'x' });
      expectError(text, 415, 'unsupported_media_type');
    }
  });
});
