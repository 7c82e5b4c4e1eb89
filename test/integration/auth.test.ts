import { createHash } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { startCancelCoordinator, type CancelCoordinator } from '../helpers/coordinator.ts';
import { expectError, sleep } from '../helpers/expect.ts';

let t: TestApp;
let cancels: CancelCoordinator | undefined;
beforeAll(async () => {
  t = await startTestApp();
  // Cancel asks a coordinator; this one answers cancels only, so jobs stay as the tests leave them.
  cancels = await startCancelCoordinator(t);
});
afterAll(async () => {
  await cancels?.stop();
  await t?.close();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KEY = /^sk_[A-Za-z0-9_-]{43,}$/;

async function createKey(key: string, name = 'k'): Promise<{ api_key: string; id: string }> {
  const res = await t.call({ method: 'POST', url: '/auth/api-keys', key, payload: { name } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}
const revoke = (key: string, id: string) => t.call({ method: 'DELETE', url: `/auth/api-keys/${id}`, key });
const submit = async (key: string) => {
  const res = await t.call({ method: 'POST', url: '/jobs', key, payload: exampleJob() });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; user_id: string };
};

function expect401(res: Awaited<ReturnType<TestApp['call']>>, reason: string) {
  const err = expectError(res, 401, 'unauthorized');
  expect(err.details).toEqual({ reason });
  expect(res.headers['www-authenticate']).toBe('Bearer');
}

describe('requests without a valid key are refused with 401', () => {
  let revokedKey: string;
  beforeAll(async () => {
    const created = await createKey(t.adminKey, 'to revoke');
    revokedKey = created.api_key;
    expect((await revoke(t.adminKey, created.id)).statusCode).toBe(204);
  });

  const authHeaders: [string, () => Record<string, string>, string][] = [
    ['no Authorization header', () => ({}), 'missing'],
    ["'Bearer' with nothing", () => ({ authorization: 'Bearer' }), 'malformed'],
    ["'Bearer ' with only a space", () => ({ authorization: 'Bearer ' }), 'malformed'],
    ["'Basic xxx'", () => ({ authorization: 'Basic dXNlcjpwYXNz' }), 'malformed'],
    ['the bare key without a scheme', () => ({ authorization: t.adminKey }), 'malformed'],
    ["'Bearer notakey'", () => ({ authorization: 'Bearer notakey' }), 'invalid_key'],
    ['a well-formed unknown key', () => ({ authorization: `Bearer sk_${'Z'.repeat(43)}` }), 'invalid_key'],
    ['a key that is too short', () => ({ authorization: `Bearer sk_${'a'.repeat(42)}` }), 'invalid_key'],
    ['a revoked key', () => ({ authorization: `Bearer ${revokedKey}` }), 'invalid_key'],
  ];
  const routes: [string, string][] = [
    ['GET', '/jobs'],
    ['POST', '/jobs'],
    ['GET', '/jobs/3f2b8c1e-9d4a-4b7e-8f00-123456789abc'],
    ['POST', '/jobs/3f2b8c1e-9d4a-4b7e-8f00-123456789abc/cancel'],
    ['GET', '/jobs/3f2b8c1e-9d4a-4b7e-8f00-123456789abc/events'],
    ['GET', '/auth/api-keys'],
    ['POST', '/auth/api-keys'],
    ['DELETE', '/auth/api-keys/3f2b8c1e-9d4a-4b7e-8f00-123456789abc'],
    ['POST', '/users'],
    ['PATCH', '/users/3f2b8c1e-9d4a-4b7e-8f00-123456789abc'],
    ['GET', '/capacity'],
    ['GET', '/capacity/blocks'],
    ['GET', '/capacity/blocks/blk-1'],
    ['POST', '/capacity/blocks'],
    ['POST', '/capacity/blocks/blk-1/release'],
    ['GET', '/capacity/events'],
    ['GET', '/usage'],
    ['GET', '/endpoints'],
    ['POST', '/endpoints'],
    ['GET', '/endpoints/3f2b8c1e-9d4a-4b7e-8f00-123456789abc'],
    ['DELETE', '/endpoints/3f2b8c1e-9d4a-4b7e-8f00-123456789abc'],
  ];

  it.each(authHeaders)('%s → 401 unauthorized on every authenticated route', async (_what, headers, reason) => {
    for (const [method, url] of routes) {
      const res = await t.call({ method: method as 'GET', url, key: null, headers: headers() });
      expect401(res, reason);
    }
  });

  it('authentication is checked before the body: an invalid body without a key is a 401, not a 400', async () => {
    const res = await t.call({ method: 'POST', url: '/jobs', key: null, payload: { tier: 'nope' } });
    expect401(res, 'missing');
    const bad = await t.call({ method: 'POST', url: '/jobs', key: null, headers: { 'content-type': 'application/json' }, payload: '{' });
    expect401(bad, 'missing');
  });

  it('the scheme is case-insensitive', async () => {
    const res = await t.call({ method: 'GET', url: '/jobs?limit=1', key: null, headers: { authorization: `bearer ${t.adminKey}` } });
    expect(res.statusCode).toBe(200);
  });
});

describe('public routes need no key', () => {
  it.each([
    ['/healthz', { status: 'ok' }],
    ['/readyz', { status: 'ready' }],
  ])('GET %s → 200', async (url, body) => {
    const res = await t.call({ method: 'GET', url, key: null });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(body);
    // A bad key does not turn a public route into a 401 either.
    const withBad = await t.call({ method: 'GET', url, key: 'garbage' });
    expect(withBad.statusCode).toBe(200);
  });

  it('GET /openapi.json → 200 JSON', async () => {
    const res = await t.call({ method: 'GET', url: '/openapi.json', key: null });
    expect(res.statusCode).toBe(200);
    expect(res.json().openapi).toMatch(/^3\./);
  });

  it('GET /docs → 200 HTML', async () => {
    const res = await t.call({ method: 'GET', url: '/docs', key: null });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
  });
});

describe('API keys', () => {
  let user: { id: string; key: string };
  beforeAll(async () => {
    user = await t.newUser('keyholder');
  });

  it('POST /auth/api-keys returns exactly {api_key, id}, and the new key acts as the same user', async () => {
    const res = await t.call({ method: 'POST', url: '/auth/api-keys', key: user.key, payload: { name: 'laptop' } });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(['api_key', 'id']);
    expect(body.api_key).toMatch(KEY);
    expect(body.api_key.length).toBeGreaterThanOrEqual(3 + 43);
    expect(body.id).toMatch(UUID);

    const job = await submit(body.api_key);
    expect(job.user_id).toBe(user.id);
    const viaOld = await t.call({ method: 'GET', url: `/jobs/${job.id}`, key: user.key });
    expect(viaOld.statusCode).toBe(200);
  });

  it('every new key is different', async () => {
    const keys = await Promise.all(Array.from({ length: 5 }, () => createKey(user.key)));
    expect(new Set(keys.map((k) => k.api_key)).size).toBe(5);
    expect(new Set(keys.map((k) => k.id)).size).toBe(5);
  });

  it('GET /auth/api-keys lists metadata only, never the key or its hash', async () => {
    const fresh = await createKey(user.key, 'listed');
    const res = await t.call({ method: 'GET', url: '/auth/api-keys', key: user.key });
    expect(res.statusCode).toBe(200);
    const { api_keys } = res.json();
    for (const k of api_keys) expect(Object.keys(k).sort()).toEqual(['created_at', 'id', 'last_used_at', 'name', 'prefix']);
    const mine = api_keys.find((k: { id: string }) => k.id === fresh.id);
    expect(mine).toEqual({
      id: fresh.id,
      name: 'listed',
      prefix: expect.any(String),
      created_at: expect.stringMatching(/Z$/),
      last_used_at: null,
    });
    expect(fresh.api_key.startsWith(mine.prefix)).toBe(true);
    expect(mine.prefix.length).toBeLessThanOrEqual(16);
    expect(res.body).not.toContain(fresh.api_key);
    expect(res.body).not.toContain(user.key);
    expect(res.body).not.toContain(createHash('sha256').update(fresh.api_key).digest('hex'));
    // Only this user's keys: the admin's bootstrap key is not among them.
    expect(api_keys.map((k: { name: string }) => k.name)).not.toContain('SCALAR_BOOTSTRAP_KEY');
  });

  it('last_used_at is set once usage is flushed', async () => {
    const k = await createKey(user.key, 'used');
    expect((await t.call({ method: 'GET', url: '/jobs?limit=1', key: k.api_key })).statusCode).toBe(200);
    const before = Date.now();
    await t.app.auth.flushLastUsed();
    const { api_keys } = (await t.call({ method: 'GET', url: '/auth/api-keys', key: user.key })).json();
    const used = api_keys.find((x: { id: string }) => x.id === k.id);
    expect(used.last_used_at).toEqual(expect.any(String));
    expect(Math.abs(Date.parse(used.last_used_at) - before)).toBeLessThan(5000);
  });

  it('DELETE /auth/api-keys/{id} → 204, and the key is refused on its very next request', async () => {
    const k = await createKey(user.key, 'short-lived');
    const res = await revoke(user.key, k.id);
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect401(await t.call({ method: 'GET', url: '/jobs', key: k.api_key }), 'invalid_key');
    const { api_keys } = (await t.call({ method: 'GET', url: '/auth/api-keys', key: user.key })).json();
    expect(api_keys.map((x: { id: string }) => x.id)).not.toContain(k.id);
    // Revoking it again: it is gone.
    expectError(await revoke(user.key, k.id), 404, 'not_found');
  });

  it('a key that was just used (and so is cached) is refused right after it is revoked', async () => {
    const k = await createKey(user.key, 'cached');
    for (let i = 0; i < 3; i++) expect((await t.call({ method: 'GET', url: '/jobs?limit=1', key: k.api_key })).statusCode).toBe(200);
    expect((await revoke(user.key, k.id)).statusCode).toBe(204);
    expect401(await t.call({ method: 'GET', url: '/jobs?limit=1', key: k.api_key }), 'invalid_key');
    expect401(await t.call({ method: 'POST', url: '/jobs', key: k.api_key, payload: exampleJob() }), 'invalid_key');
  });

  it('a key can revoke itself, and is refused afterwards', async () => {
    const k = await createKey(user.key, 'self');
    expect((await revoke(k.api_key, k.id)).statusCode).toBe(204);
    expect401(await t.call({ method: 'GET', url: '/auth/api-keys', key: k.api_key }), 'invalid_key');
  });

  it('a revocation reaches the key cache of every other API process (through NOTIFY), well before the cache TTL', async () => {
    expect(t.cfg.SCALAR_KEY_CACHE_TTL_SEC).toBeGreaterThanOrEqual(30);
    const other = await buildApp({ cfg: t.cfg, orm: t.db.orm, log: pino({ level: 'silent' }) });
    try {
      const k = await createKey(user.key, 'two-processes');
      const viaOther = () => other.inject({ method: 'GET', url: '/jobs?limit=1', headers: { authorization: `Bearer ${k.api_key}` } });
      expect((await viaOther()).statusCode).toBe(200); // now cached in the other process
      expect((await viaOther()).statusCode).toBe(200);
      expect((await revoke(user.key, k.id)).statusCode).toBe(204);
      let status = 200;
      for (let i = 0; i < 100 && status === 200; i++) {
        status = (await viaOther()).statusCode;
        if (status === 200) await sleep(20);
      }
      expect(status).toBe(401);
    } finally {
      await other.close();
    }
  });

  it("a non-admin deleting another user's key gets 404, and the key keeps working", async () => {
    const other = await t.newUser('other');
    const theirs = await createKey(other.key, 'theirs');
    expectError(await revoke(user.key, theirs.id), 404, 'not_found');
    expect((await t.call({ method: 'GET', url: '/jobs', key: theirs.api_key })).statusCode).toBe(200);
  });

  it("an admin may revoke any user's key", async () => {
    const k = await createKey(user.key, 'admin-revoked');
    expect((await revoke(t.adminKey, k.id)).statusCode).toBe(204);
    expect401(await t.call({ method: 'GET', url: '/jobs', key: k.api_key }), 'invalid_key');
  });

  it.each(['abc', '123', 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz', '3f2b8c1e-9d4a-4b7e-8f00-123456789abc'])(
    'DELETE /auth/api-keys/%s → 404 not_found',
    async (id) => {
      expectError(await revoke(user.key, id), 404, 'not_found');
    },
  );
});

describe('users', () => {
  it('POST /users as admin → 201 with the user and a working first key', async () => {
    const res = await t.call({ method: 'POST', url: '/users', payload: { name: 'carol' } });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toEqual({
      id: expect.stringMatching(UUID),
      name: 'carol',
      is_admin: false,
      fair_share_weight: 1,
      created_at: expect.stringMatching(/Z$/),
      api_key: expect.stringMatching(KEY),
      api_key_id: expect.stringMatching(UUID),
    });
    const job = await submit(body.api_key);
    expect(job.user_id).toBe(body.id);
  });

  it('POST /users as a non-admin → 403 forbidden, and no user is created', async () => {
    const plain = await t.newUser('plain');
    const res = await t.call({ method: 'POST', url: '/users', key: plain.key, payload: { name: 'mallory', is_admin: true } });
    expectError(res, 403, 'forbidden');
    const [row] = await t.db.orm.em.fork().execute<{ n: string }[]>("select count(*) as n from users where name = 'mallory'");
    expect(Number(row?.n)).toBe(0);
  });

  it('a user created with is_admin true sees every job', async () => {
    const res = await t.call({ method: 'POST', url: '/users', payload: { name: 'ops', is_admin: true } });
    expect(res.json().is_admin).toBe(true);
    const someone = await t.newUser('someone');
    const job = await submit(someone.key);
    expect((await t.call({ method: 'GET', url: `/jobs/${job.id}`, key: res.json().api_key })).statusCode).toBe(200);
  });
});

describe('users: fair_share_weight', () => {
  const weightOf = async (id: string) =>
    Number((await t.db.orm.em.fork().execute<{ w: number }[]>('select fair_share_weight as w from users where id = ?', [id]))[0]!.w);
  const patch = (id: string, payload: unknown, key?: string) =>
    t.call({ method: 'PATCH', url: `/users/${id}`, ...(payload === undefined ? {} : { payload: payload as object }), ...(key ? { key } : {}) });

  it('defaults to 1 and may be given on creation', async () => {
    const plain = (await t.call({ method: 'POST', url: '/users', payload: { name: 'w-default' } })).json();
    expect(plain.fair_share_weight).toBe(1);
    expect(await weightOf(plain.id)).toBe(1);
    const heavy = await t.call({ method: 'POST', url: '/users', payload: { name: 'w-heavy', fair_share_weight: 2.5 } });
    expect(heavy.statusCode, heavy.body).toBe(201);
    expect(heavy.json()).toMatchObject({ name: 'w-heavy', is_admin: false, fair_share_weight: 2.5 });
    expect(await weightOf(heavy.json().id)).toBe(2.5);
  });

  it('PATCH /users/{id} sets it and answers the user', async () => {
    const u = await t.newUser('w-patched');
    const res = await patch(u.id, { fair_share_weight: 0.25 });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      id: u.id,
      name: 'w-patched',
      is_admin: false,
      fair_share_weight: 0.25,
      created_at: expect.stringMatching(/Z$/),
    });
    expect(await weightOf(u.id)).toBe(0.25);
    // The upper-case spelling of the id names the same user.
    expect((await patch(u.id.toUpperCase(), { fair_share_weight: 4 })).json().fair_share_weight).toBe(4);
    expect(await weightOf(u.id)).toBe(4);
  });

  it.each(['3f2b8c1e-9d4a-4b7e-8f00-123456789abc', 'abc', 'x'.repeat(90)])('PATCH /users/%s (unknown) → 404 not_found', async (id) => {
    const err = expectError(await patch(id, { fair_share_weight: 2 }), 404, 'not_found');
    expect(err.details).toEqual({ user_id: id });
  });

  it('PATCH /users/{id} as a non-admin → 403 forbidden, even for themselves; nothing changes', async () => {
    const u = await t.newUser('w-self');
    expectError(await patch(u.id, { fair_share_weight: 100 }, u.key), 403, 'forbidden');
    expect(await weightOf(u.id)).toBe(1);
  });
});

describe("one user cannot see or touch another's jobs", () => {
  let a: { id: string; key: string };
  let b: { id: string; key: string };
  let aJob: { id: string };
  let bJob: { id: string };
  beforeAll(async () => {
    a = await t.newUser('alice');
    b = await t.newUser('bob');
    aJob = await submit(a.key);
    bJob = await submit(b.key);
  });

  it.each([
    ['GET', (id: string) => `/jobs/${id}`],
    ['POST', (id: string) => `/jobs/${id}/cancel`],
    ['GET', (id: string) => `/jobs/${id}/events`],
  ] as const)("B's %s of A's job → 404 not_found", async (method, url) => {
    const err = expectError(await t.call({ method, url: url(aJob.id), key: b.key }), 404, 'not_found');
    expect(err.details).toEqual({ job_id: aJob.id });
  });

  it("B's cancel attempt left A's job untouched", async () => {
    const got = (await t.call({ method: 'GET', url: `/jobs/${aJob.id}`, key: a.key })).json();
    expect(got.status).toBe('pending');
    expect(got.cancelled_at).toBeNull();
  });

  it("each user's list holds only their own jobs", async () => {
    const listA = (await t.call({ method: 'GET', url: '/jobs', key: a.key })).json();
    const listB = (await t.call({ method: 'GET', url: '/jobs', key: b.key })).json();
    expect(listA.jobs.map((j: { id: string }) => j.id)).toEqual([aJob.id]);
    expect(listB.jobs.map((j: { id: string }) => j.id)).toEqual([bJob.id]);
  });

  it("the admin's list includes both", async () => {
    const all = (await t.call({ method: 'GET', url: '/jobs?limit=1000' })).json();
    const ids = all.jobs.map((j: { id: string }) => j.id);
    expect(ids).toEqual(expect.arrayContaining([aJob.id, bJob.id]));
    const owners = Object.fromEntries(all.jobs.map((j: { id: string; user_id: string }) => [j.id, j.user_id]));
    expect(owners[aJob.id]).toBe(a.id);
    expect(owners[bJob.id]).toBe(b.id);
  });

  it("the admin can read and cancel A's job", async () => {
    expect((await t.call({ method: 'GET', url: `/jobs/${aJob.id}/events` })).statusCode).toBe(200);
    const res = await t.call({ method: 'POST', url: `/jobs/${aJob.id}/cancel` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: aJob.id, user_id: a.id, status: 'cancelled' });
  });
});
