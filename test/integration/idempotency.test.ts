import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { expectError, expectFieldError } from '../helpers/expect.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.close());

const post = (key: string, idempotencyKey: string | undefined, body: object = exampleJob()) =>
  t.call({
    method: 'POST',
    url: '/jobs',
    key,
    headers: idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey },
    payload: body,
  });

async function jobIds(key: string): Promise<string[]> {
  const res = await t.call({ method: 'GET', url: '/jobs?limit=1000', key });
  expect(res.statusCode).toBe(200);
  return res.json().jobs.map((j: { id: string }) => j.id);
}

describe('Idempotency-Key on POST /jobs', () => {
  it('the same key and body twice → the same job, the second marked idempotent-replayed, one job stored', async () => {
    const user = await t.newUser('twice');
    const first = await post(user.key, 'key-1');
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();

    const second = await post(user.key, 'key-1');
    expect(second.statusCode).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json().id).toBe(first.json().id);
    expect(second.json()).toEqual(first.json());

    expect(await jobIds(user.key)).toEqual([first.json().id]);
    const [row] = await t.db.orm.em
      .fork()
      .execute<{ n: string }[]>('select count(*) as n from jobs where user_id = ?', [user.id]);
    expect(Number(row?.n)).toBe(1);
  });

  it('the same body with its fields in another order is the same request', async () => {
    const user = await t.newUser('reordered');
    const body = exampleJob();
    const reversed = Object.fromEntries(Object.entries(body).reverse());
    const first = await post(user.key, 'order', body);
    const second = await post(user.key, 'order', reversed);
    expect(second.statusCode).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json().id).toBe(first.json().id);
  });

  it('10 concurrent requests with the same key create exactly one job and all answer its id', async () => {
    const user = await t.newUser('concurrent');
    const results = await Promise.all(Array.from({ length: 10 }, () => post(user.key, 'burst')));
    expect(results.map((r) => r.statusCode)).toEqual(Array(10).fill(201));
    const ids = new Set(results.map((r) => r.json().id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(9);
    expect(await jobIds(user.key)).toEqual([...ids]);
    // Exactly one submit event too: the losers wrote nothing that survived.
    const [id] = [...ids];
    const events = (await t.call({ method: 'GET', url: `/jobs/${id}/events`, key: user.key })).json().events;
    expect(events).toHaveLength(1);
  });

  it('concurrent requests with different keys each create their own job', async () => {
    const user = await t.newUser('distinct');
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => post(user.key, `k-${i}`)));
    expect(results.map((r) => r.statusCode)).toEqual(Array(10).fill(201));
    expect(new Set(results.map((r) => r.json().id)).size).toBe(10);
    expect(await jobIds(user.key)).toHaveLength(10);
  });

  it('the same key with a different body → 422 idempotency_key_reused, and no second job', async () => {
    const user = await t.newUser('reuse');
    const first = await post(user.key, 'reused');
    const res = await post(user.key, 'reused', { ...exampleJob(), gpu_count: 2 });
    const err = expectError(res, 422, 'idempotency_key_reused');
    expect(err.details).toEqual({ idempotency_key: 'reused', job_id: first.json().id });
    expect(await jobIds(user.key)).toEqual([first.json().id]);
    // The original request can still be replayed.
    const again = await post(user.key, 'reused');
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json().id).toBe(first.json().id);
  });

  it('without a key, identical requests are separate jobs', async () => {
    const user = await t.newUser('nokey');
    const a = await post(user.key, undefined);
    const b = await post(user.key, undefined);
    expect(a.json().id).not.toBe(b.json().id);
    expect(b.headers['idempotent-replayed']).toBeUndefined();
    expect(await jobIds(user.key)).toHaveLength(2);
  });

  it('keys are per user: the same key from another user creates a different job', async () => {
    const a = await t.newUser('a');
    const b = await t.newUser('b');
    const ra = await post(a.key, 'shared-key');
    const rb = await post(b.key, 'shared-key');
    expect(rb.statusCode).toBe(201);
    expect(rb.headers['idempotent-replayed']).toBeUndefined();
    expect(rb.json().id).not.toBe(ra.json().id);
    expect(rb.json().user_id).toBe(b.id);
    // And a different body under the same key is fine for the other user.
    const rb2 = await post(b.key, 'other', { ...exampleJob(), priority: 5 });
    const ra2 = await post(a.key, 'other', exampleJob());
    expect(rb2.statusCode).toBe(201);
    expect(ra2.statusCode).toBe(201);
  });

  it('a key older than 24 hours no longer replays: the request creates a new job', async () => {
    const user = await t.newUser('expiry');
    const first = await post(user.key, 'old-key');
    await t.db.orm.em
      .fork()
      .execute(`update idempotency_keys set created_at = now() - interval '24 hours 1 minute' where user_id = ? and key = ?`, [
        user.id,
        'old-key',
      ]);
    const second = await post(user.key, 'old-key');
    expect(second.statusCode).toBe(201);
    expect(second.headers['idempotent-replayed']).toBeUndefined();
    expect(second.json().id).not.toBe(first.json().id);
    expect((await jobIds(user.key)).sort()).toEqual([first.json().id, second.json().id].sort());
    // From now on the key replays the new job.
    const third = await post(user.key, 'old-key');
    expect(third.headers['idempotent-replayed']).toBe('true');
    expect(third.json().id).toBe(second.json().id);
  });

  it('an expired key may be reused with a different body', async () => {
    const user = await t.newUser('expiry2');
    await post(user.key, 'recycled');
    await t.db.orm.em
      .fork()
      .execute(`update idempotency_keys set created_at = now() - interval '25 hours' where user_id = ?`, [user.id]);
    const res = await post(user.key, 'recycled', { ...exampleJob(), tier: 'FLEX' });
    expect(res.statusCode).toBe(201);
    expect(res.json().tier).toBe('FLEX');
  });

  it('a key just under 24 hours old still replays', async () => {
    const user = await t.newUser('fresh');
    const first = await post(user.key, 'almost');
    await t.db.orm.em
      .fork()
      .execute(`update idempotency_keys set created_at = now() - interval '23 hours 59 minutes' where user_id = ?`, [
        user.id,
      ]);
    const second = await post(user.key, 'almost');
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json().id).toBe(first.json().id);
  });

  it.each([
    ['empty', ''],
    ['256 characters', 'k'.repeat(256)],
  ])('an %s key → 400 naming the Idempotency-Key header, and no job', async (_what, value) => {
    const user = await t.newUser('badkey');
    const [named] = expectFieldError(await post(user.key, value), 'idempotency-key');
    expect(named!.location).toBe('headers');
    expect(await jobIds(user.key)).toEqual([]);
  });

  it('a 255-character key is accepted and replays', async () => {
    const user = await t.newUser('longkey');
    const k = 'k'.repeat(255);
    const first = await post(user.key, k);
    expect(first.statusCode).toBe(201);
    const second = await post(user.key, k);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json().id).toBe(first.json().id);
  });

  it('an invalid body with a key is a 400 and does not burn the key', async () => {
    const user = await t.newUser('invalid');
    expectFieldError(await post(user.key, 'burn', { ...exampleJob(), gpu_count: 0 }), 'gpu_count');
    const ok = await post(user.key, 'burn');
    expect(ok.statusCode).toBe(201);
    expect(ok.headers['idempotent-replayed']).toBeUndefined();
  });
});
