import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.close());

describe('smoke', () => {
  it('submits the spec example and reads it back', async () => {
    const res = await t.call({ method: 'POST', url: '/jobs', payload: exampleJob() });
    expect(res.statusCode).toBe(201);
    const job = res.json();
    expect(job.status).toBe('pending');
    const got = await t.call({ method: 'GET', url: `/jobs/${job.id}` });
    expect(got.json()).toEqual(job);
  });
});
