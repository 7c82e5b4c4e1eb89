/**
 * `npm start` as a newcomer runs it: the build (`node scripts/build.mjs
 * --if-stale`, npm start's first step), then `scalar dev` from it, which
 * prints the URL, an admin key and a curl; pasting that curl submits a job
 * that runs on a simulated node and completes; Ctrl-C stops everything.
 * With NATS_URL unset (as on a fresh machine) it starts a nats-server of its
 * own that demands credentials: a client without them, as in the
 * forged-command probe of docs/security.md, cannot connect at all, and a
 * node's credential cannot publish another node's commands.
 * This is the one test that runs the compiled code (the others run the
 * sources: vitest.config.ts sets SCALAR_FROM_SOURCE=1).
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { testNatsPrefix } from '../helpers/app.ts';
import { BusAuthError, connectBus } from '../../src/wire/connection.ts';
import { encodeJson } from '../../src/wire/messages.ts';
import pino from 'pino';

const BIN = new URL('../../bin/scalar.mjs', import.meta.url).pathname;
const BUILD = new URL('../../scripts/build.mjs', import.meta.url).pathname;
const prefix = testNatsPrefix();
const dataDir = mkdtempSync(path.join(tmpdir(), 'scalar-dev-'));
let db: TestDatabase;
let dev: ChildProcessWithoutNullStreams | undefined;
let out = '';

beforeAll(async () => {
  db = await createTestDatabase();
  // A full compile takes about 30 s on a busy 2-core machine; an up-to-date build, none.
  await promisify(execFile)(process.execPath, [BUILD, '--if-stale']);
}, 180_000);
afterAll(async () => {
  dev?.kill('SIGKILL');
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start (scalar dev)', () => {
  const hasCurl = (process.env.PATH ?? '').split(':').some((d) => existsSync(path.join(d, 'curl')));
  it.runIf(hasCurl)('prints a curl that submits a job which runs to completion, and stops on Ctrl-C', { timeout: 90_000 }, async () => {
    const { DATABASE_URL: _d, SCALAR_BOOTSTRAP_KEY: _k, SCALAR_FROM_SOURCE: _s, NATS_URL: _n, NATS_CREDS: _c, ...rest } = process.env;
    dev = spawn(process.execPath, [BIN, 'dev', '--speed', '10'], {
      env: { ...rest, DATABASE_URL: db.url, PORT: '0', SCALAR_DATA_DIR: dataDir, SCALAR_NATS_PREFIX: prefix, LOG_LEVEL: 'warn' },
    });
    dev.stdout.on('data', (d) => (out += d));
    dev.stderr.on('data', (d) => (out += d));
    const deadline = Date.now() + 60_000;
    while (!out.includes('Ctrl-C stops everything')) {
      if (Date.now() > deadline || dev.exitCode !== null) throw new Error(`no banner:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const url = /Scalar\s+(http:\/\/\S+)/.exec(out)![1]!;
    const key = /Admin key\s+(sk_\S+)/.exec(out)![1]!;
    expect(out).toMatch(/fast-1 \(fast, 8x80\), fast-2 \(fast, 8x80\), flex-1 \(flex, 8x40\)/);
    expect(out).toMatch(/Code\s+compiled \(dist\/\)/);
    expect(out).not.toContain('running the TypeScript sources');

    // Its own NATS, with credentials: the forged-command probe cannot even connect.
    const natsUrl = /NATS\s+(nats:\/\/\S+) \(started here; credentials per role in /.exec(out)?.[1];
    expect(natsUrl, out).toBeDefined();
    const quiet = pino({ level: 'silent' });
    const bus = { url: natsUrl!, name: 'probe', prefix, logRetentionHours: 1, logMaxMb: 64, connectTimeoutMs: 2000 };
    const anonymous = await connectBus({ ...bus, role: 'api' }, quiet).catch((e: Error) => e);
    expect(anonymous).toBeInstanceOf(BusAuthError);
    // A node's credential (from the data directory, mode 0600) cannot command another node.
    const seed = path.join(dataDir, 'nats-auth', 'creds', 'node-flex-1.nk');
    expect(statSync(seed).mode & 0o777).toBe(0o600);
    const flex = await connectBus({ ...bus, role: 'agent', nodeId: 'flex-1', auth: { credsFile: seed } }, quiet);
    const forged = await flex.js
      .publish(`${prefix}.node.fast-1.cmd`, encodeJson({ type: 'run', command: ['id'] }), { timeout: 2000 })
      .catch((e: Error) => e);
    expect((forged as Error).message).toMatch(/Permissions Violation/);
    await flex.close();

    // The printed curl, exactly as printed (both lines), run by a shell.
    const lines = out.split('\n');
    const at = lines.findIndex((l) => l.trim().startsWith('curl -s -X POST'));
    const curl = (lines[at]!.trim().replace(/\\$/, '') + ' ' + lines[at + 1]!.trim()).trim();
    const { stdout } = await promisify(execFile)('sh', ['-c', curl]);
    const job = JSON.parse(stdout);
    expect(job.status).toBe('pending');

    const until = Date.now() + 30_000;
    let now = job;
    while (now.status !== 'completed') {
      if (Date.now() > until) throw new Error(`job did not complete: ${JSON.stringify(now)}`);
      await new Promise((r) => setTimeout(r, 200));
      now = await (await fetch(`${url}/jobs/${job.id}`, { headers: { authorization: `Bearer ${key}` } })).json();
    }
    expect(now.node_id).toMatch(/^fast-[12]$/);
    expect(now.gpu_indices).toHaveLength(2);
    expect(now.exit_code).toBe(0);

    const exited = new Promise<number | null>((r) => dev!.once('exit', (code) => r(code)));
    dev.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});
