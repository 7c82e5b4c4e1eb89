import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { expectError } from '../helpers/expect.ts';

let t: TestApp;
let user: { id: string; key: string };
beforeAll(async () => {
  t = await startTestApp();
  user = await t.newUser('endpoint-owner');
});
afterAll(() => t?.close());

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** The spec's example body, under another name when given. */
const specBody = (name = 'my-endpoint') => ({
  name,
  image: 'my-image:latest',
  gpu_count: 1,
  vram_per_gpu_gb: 40.0,
  cpu_cores: 4,
  ram_gb: 16.0,
});

async function create(body: object, key = user.key) {
  const res = await t.call({ method: 'POST', url: '/endpoints', key, payload: body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

describe('POST /endpoints', () => {
  it("creates the spec's example: 201, not_deployed with a reason", async () => {
    const res = await t.call({ method: 'POST', url: '/endpoints', key: user.key, payload: specBody() });
    expect(res.statusCode).toBe(201);
    const ep = res.json();
    expect(ep).toEqual({
      id: expect.stringMatching(UUID),
      user_id: user.id,
      name: 'my-endpoint',
      image: 'my-image:latest',
      gpu_count: 1,
      vram_per_gpu_gb: 40,
      cpu_cores: 4,
      ram_gb: 16,
      status: 'not_deployed',
      status_reason: expect.stringMatching(/\S/),
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    expect(ep.updated_at).toBe(ep.created_at);
  });

  it('applies the configured defaults for omitted resources', async () => {
    const ep = await create({ name: 'defaults', image: 'img', gpu_count: 2 });
    expect(ep).toMatchObject({
      gpu_count: 2,
      vram_per_gpu_gb: t.cfg.SCALAR_DEFAULT_VRAM_PER_GPU_GB,
      cpu_cores: t.cfg.SCALAR_DEFAULT_CPU_CORES,
      ram_gb: t.cfg.SCALAR_DEFAULT_RAM_GB,
      status: 'not_deployed',
    });
  });

  it('a duplicate name for the same user → 409 conflict naming the field', async () => {
    await create(specBody('dup'));
    const res = await t.call({ method: 'POST', url: '/endpoints', key: user.key, payload: { ...specBody('dup'), gpu_count: 2 } });
    const err = expectError(res, 409, 'conflict');
    expect(err.details).toEqual({ field: 'name', name: 'dup' });
    // The first one is unchanged.
    const list = (await t.call({ method: 'GET', url: '/endpoints', key: user.key })).json().endpoints;
    const dups = list.filter((e: { name: string }) => e.name === 'dup');
    expect(dups).toHaveLength(1);
    expect(dups[0].gpu_count).toBe(1);
  });

  it('concurrent creates with one name: exactly one 201, the rest 409', async () => {
    const results = await Promise.all(
      Array.from({ length: 5 }, () => t.call({ method: 'POST', url: '/endpoints', key: user.key, payload: specBody('race') })),
    );
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 409, 409, 409, 409]);
    for (const r of results.filter((x) => x.statusCode === 409)) expectError(r, 409, 'conflict');
  });

  it('another user may use the same name', async () => {
    const other = await t.newUser('other-owner');
    const ep = await create(specBody('dup'), other.key);
    expect(ep.user_id).toBe(other.id);
  });
});

describe('GET /endpoints and /endpoints/{id}', () => {
  let owner: { id: string; key: string };
  const created: { id: string; name: string }[] = [];
  beforeAll(async () => {
    owner = await t.newUser('lister');
    for (const name of ['ep-a', 'ep-b', 'ep-c', 'ep-d', 'ep-e']) created.push(await create(specBody(name), owner.key));
  });

  it("lists the caller's endpoints newest first", async () => {
    const res = await t.call({ method: 'GET', url: '/endpoints', key: owner.key });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.endpoints.map((e: { name: string }) => e.name)).toEqual(['ep-e', 'ep-d', 'ep-c', 'ep-b', 'ep-a']);
    expect(body.next_cursor).toBeNull();
    expect(body.endpoints[0]).toEqual(created[4]);
  });

  it('pages with limit and cursor', async () => {
    const first = (await t.call({ method: 'GET', url: '/endpoints?limit=2', key: owner.key })).json();
    expect(first.endpoints.map((e: { name: string }) => e.name)).toEqual(['ep-e', 'ep-d']);
    const second = (await t.call({ method: 'GET', url: `/endpoints?limit=2&cursor=${first.next_cursor}`, key: owner.key })).json();
    expect(second.endpoints.map((e: { name: string }) => e.name)).toEqual(['ep-c', 'ep-b']);
    const third = (await t.call({ method: 'GET', url: `/endpoints?limit=2&cursor=${second.next_cursor}`, key: owner.key })).json();
    expect(third.endpoints.map((e: { name: string }) => e.name)).toEqual(['ep-a']);
    expect(third.next_cursor).toBeNull();
  });

  it.each(['limit=0', 'limit=1001', 'cursor=nope', 'status=running'])('GET /endpoints?%s → 400', async (qs) => {
    const err = expectError(await t.call({ method: 'GET', url: `/endpoints?${qs}`, key: owner.key }), 400, 'validation_failed');
    expect((err.details.fields as { field: string }[]).map((f) => f.field)).toContain(qs.split('=')[0]);
  });

  it('gets one endpoint by id', async () => {
    const res = await t.call({ method: 'GET', url: `/endpoints/${created[0]!.id}`, key: owner.key });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(created[0]);
  });

  it("another user's endpoint is a 404 on GET and DELETE, and not in their list", async () => {
    const stranger = await t.newUser('stranger');
    const id = created[1]!.id;
    expectError(await t.call({ method: 'GET', url: `/endpoints/${id}`, key: stranger.key }), 404, 'not_found');
    expectError(await t.call({ method: 'DELETE', url: `/endpoints/${id}`, key: stranger.key }), 404, 'not_found');
    expect((await t.call({ method: 'GET', url: '/endpoints', key: stranger.key })).json().endpoints).toEqual([]);
    // Still there for its owner.
    expect((await t.call({ method: 'GET', url: `/endpoints/${id}`, key: owner.key })).statusCode).toBe(200);
  });

  it("the admin sees every user's endpoints", async () => {
    const res = await t.call({ method: 'GET', url: `/endpoints/${created[2]!.id}` });
    expect(res.statusCode).toBe(200);
    const all = (await t.call({ method: 'GET', url: '/endpoints?limit=1000' })).json().endpoints;
    expect(all.map((e: { id: string }) => e.id)).toEqual(expect.arrayContaining(created.map((c) => c.id)));
  });
});

describe('DELETE /endpoints/{id}', () => {
  it('→ 204, then GET is a 404, it leaves the list, and the name can be reused', async () => {
    const ep = await create(specBody('short-lived'));
    const del = await t.call({ method: 'DELETE', url: `/endpoints/${ep.id}`, key: user.key });
    expect(del.statusCode).toBe(204);
    expect(del.body).toBe('');

    const err = expectError(await t.call({ method: 'GET', url: `/endpoints/${ep.id}`, key: user.key }), 404, 'not_found');
    expect(err.details).toEqual({ endpoint_id: ep.id });
    const list = (await t.call({ method: 'GET', url: '/endpoints?limit=1000', key: user.key })).json().endpoints;
    expect(list.map((e: { id: string }) => e.id)).not.toContain(ep.id);

    // Deleting again: it is gone.
    expectError(await t.call({ method: 'DELETE', url: `/endpoints/${ep.id}`, key: user.key }), 404, 'not_found');

    const again = await create({ ...specBody('short-lived'), image: 'v2' });
    expect(again.id).not.toBe(ep.id);
    expect(again.image).toBe('v2');
    expect((await t.call({ method: 'GET', url: `/endpoints/${again.id}`, key: user.key })).json().name).toBe('short-lived');
  });
});

describe('malformed and unknown endpoint ids', () => {
  const ids = ['abc', '123', 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz', '0000000g-0000-4000-8000-000000000000', "1'%20or%20'1'%3D'1"];
  it.each(ids.flatMap((id) => [['GET', id] as const, ['DELETE', id] as const]))('%s /endpoints/%s → 404 not_found', async (method, id) => {
    expectError(await t.call({ method, url: `/endpoints/${id}`, key: user.key }), 404, 'not_found');
  });

  it.each(['GET', 'DELETE'] as const)('%s of an unknown uuid → 404 not_found', async (method) => {
    const id = '3f2b8c1e-9d4a-4b7e-8f00-123456789abc';
    const err = expectError(await t.call({ method, url: `/endpoints/${id}`, key: user.key }), 404, 'not_found');
    expect(err.details).toEqual({ endpoint_id: id });
  });
});
