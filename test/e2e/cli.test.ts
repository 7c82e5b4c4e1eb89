import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { connectTestBus, dropTestBus, testNatsPrefix } from '../helpers/app.ts';
import { parseConfig } from '../../src/config/index.ts';

const BIN = new URL('../../bin/scalar.mjs', import.meta.url).pathname;

let db: TestDatabase;
const dir = mkdtempSync(path.join(tmpdir(), 'scalar-cli-'));
beforeAll(async () => {
  db = await createTestDatabase();
});
const prefix = testNatsPrefix();
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await db?.drop();
  // The API created this prefix's streams; remove them.
  await dropTestBus(await connectTestBus(parseConfig({ SCALAR_NATS_PREFIX: prefix })));
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { DATABASE_URL: _omit, SCALAR_BOOTSTRAP_KEY: _k, ...rest } = process.env;
  return { ...rest, DATABASE_URL: db.url, SCALAR_NATS_PREFIX: prefix, LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'info', ...extra };
}

function run(args: string[], extra: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: env(extra) });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `scalar api` on a free port and resolves with its URL once it prints it. */
function startApi(extra: Record<string, string> = {}): Promise<{ proc: ChildProcessWithoutNullStreams; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, 'api'], { env: env({ PORT: '0', ...extra }) });
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /"url":"(http:\/\/[^"]+)".*"msg":"Scalar API ready"/.exec(out);
      if (m) resolve({ proc, url: m[1]! });
    });
    proc.stderr.on('data', (d) => (out += d));
    if (process.env.E2E_LOG_LEVEL) proc.stdout.on('data', (d) => process.stderr.write(d));
    proc.on('exit', (code) => reject(new Error(`scalar api exited ${code}: ${out}`)));
  });
}

const exited = (p: ChildProcessWithoutNullStreams) =>
  new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', (c) => r(c))));

describe('scalar CLI', () => {
  it('migrate applies migrations and reports the database up to date', async () => {
    const r = await run(['migrate']);
    expect(r.code).toBe(0);
    // Logs go to stderr; stdout holds only the result.
    expect(r.stdout).toBe('database is up to date\n');
  });

  it('a bad config value exits 1 naming the variable', async () => {
    const r = await run(['migrate'], { PORT: 'eighty' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('PORT');
  });

  it('coordinator: without a usable SCALAR_SIGNING_KEY_FILE it exits 1 with one line naming the variable', async () => {
    const unset = await run(['coordinator'], { SCALAR_SIGNING_KEY_FILE: '' });
    expect(unset.code).toBe(1);
    expect(unset.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^scalar: SCALAR_SIGNING_KEY_FILE is not set: /)]);
    const missing = path.join(dir, 'none.nk');
    const unreadable = await run(['coordinator'], { SCALAR_SIGNING_KEY_FILE: missing });
    expect(unreadable.code).toBe(1);
    expect(unreadable.stderr.trim()).toBe(`scalar: SCALAR_SIGNING_KEY_FILE=${missing}: cannot read the signing key (ENOENT)`);
  });

  it('signing-key create writes a 0600 seed and prints its public key; show prints it again; agents need SCALAR_COORDINATOR_KEYS', async () => {
    const file = path.join(dir, 'coordinator.nk');
    const created = await run(['signing-key', 'create', file]);
    expect(created.code).toBe(0);
    const pub = created.stdout.trim();
    expect(pub).toMatch(/^C[A-Z2-7]{55}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await run(['signing-key', 'create', file])).stderr).toContain('already exists; refusing to overwrite');
    expect((await run(['signing-key', 'show', file])).stdout.trim()).toBe(pub);

    const agent = ['agent', '--runtime', 'simulated', '--gpus', '1x80', '--node-id', 'cli-agent', '--state-dir', path.join(dir, 'agent')];
    const unset = await run(agent, { SCALAR_COORDINATOR_KEYS: '' });
    expect(unset.code).toBe(2);
    expect(unset.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^scalar agent: SCALAR_COORDINATOR_KEYS is not set: /)]);
    const bad = await run(agent, { SCALAR_COORDINATOR_KEYS: `${pub},${pub.slice(0, -2)}` });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toMatch(/^scalar agent: SCALAR_COORDINATOR_KEYS: ".*" is not a cluster nkey public key/);
    const keysFile = path.join(dir, 'missing.pub');
    const unreadable = await run(agent, { SCALAR_COORDINATOR_KEYS: '', SCALAR_COORDINATOR_KEYS_FILE: keysFile });
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr.trim()).toBe(`scalar agent: SCALAR_COORDINATOR_KEYS_FILE: cannot read ${keysFile} (ENOENT)`);
    const both = await run(agent, { SCALAR_COORDINATOR_KEYS: pub, SCALAR_COORDINATOR_KEYS_FILE: keysFile });
    expect(both.code).toBe(2);
    expect(both.stderr.trim()).toBe('scalar agent: set SCALAR_COORDINATOR_KEYS or SCALAR_COORDINATOR_KEYS_FILE, not both');
  });

  it('keys create prints a working admin key; --user adds a key to that user', async () => {
    const admin = await run(['keys', 'create', '--name', 'ops', '--admin']);
    expect(admin.code).toBe(0);
    const key = admin.stdout.trim();
    expect(key).toMatch(/^sk_[A-Za-z0-9_-]{43}$/);
    const userId = /user ([0-9a-f-]{36})/.exec(admin.stderr)![1]!;

    const second = await run(['keys', 'create', '--name', 'laptop', '--user', userId]);
    expect(second.code).toBe(0);
    const key2 = second.stdout.trim();

    const bad = await run(['keys', 'create', '--name', 'x', '--user', 'not-a-uuid']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--user');

    const { proc, url } = await startApi();
    try {
      const mine = await fetch(`${url}/auth/api-keys`, { headers: { authorization: `Bearer ${key2}` } });
      expect(mine.status).toBe(200);
      const names = ((await mine.json()) as { api_keys: { name: string }[] }).api_keys.map((k) => k.name).sort();
      expect(names).toEqual(['laptop', 'ops (first key)']);
      const users = await fetch(`${url}/users`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'alice' }),
      });
      expect(users.status).toBe(201);
    } finally {
      proc.kill('SIGTERM');
      expect(await exited(proc)).toBe(0);
    }
  });

  it('on SIGTERM the API finishes in-flight submissions: every 201 job is in the database', async () => {
    const key = 'sk_' + 'e'.repeat(43);
    const { proc, url } = await startApi({ SCALAR_BOOTSTRAP_KEY: key });
    const body = JSON.stringify({ tier: 'FLEX', gpu_count: 1, image: 'img', command: ['true'] });
    const submit = () =>
      fetch(`${url}/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body,
      }).then(
        async (r) => ({ status: r.status, id: r.status === 201 ? ((await r.json()) as { id: string }).id : null }),
        () => ({ status: 0, id: null }), // refused after close: not accepted, so nothing to lose
      );
    // 50 clients submit in a loop; SIGTERM lands while many requests are in flight.
    const results: { status: number; id: string | null }[] = [];
    let stop = false;
    const client = async () => {
      while (!stop) {
        const r = await submit();
        results.push(r);
        if (r.status !== 201) stop = true;
      }
    };
    const clients = Array.from({ length: 50 }, client);
    while (results.length < 200) await new Promise((r) => setTimeout(r, 5));
    proc.kill('SIGTERM');
    await Promise.all(clients);
    expect(await exited(proc)).toBe(0);

    const accepted = results.filter((r) => r.status === 201).map((r) => r.id!);
    expect(accepted.length).toBeGreaterThan(0);
    // Nothing else than 201, 503 (closing) or a refused connection.
    expect(results.every((r) => [201, 503, 0].includes(r.status))).toBe(true);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query<{ id: string }>('select id from jobs where id = any($1::uuid[])', [accepted]);
    await c.end();
    expect(rows.length).toBe(accepted.length);
  });
});
