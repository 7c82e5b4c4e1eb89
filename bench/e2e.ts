/**
 * End-to-end scheduling latency and placement throughput, against the real
 * Postgres and NATS.
 *
 *   npm run bench:e2e
 *   BENCH_RATE=200 BENCH_DURATION_SEC=20 BENCH_NODES=100 BENCH_SATURATION_JOBS=20000 npm run bench:e2e
 *
 * `scalar api`, `scalar coordinator` and the simulated agents (100 nodes ×
 * 8 × 80 GB, FAST pool, in one process: bench/agents-host.ts) run as child
 * processes on a fresh database and a NATS prefix of their own; this
 * process generates the HTTP load and reads the timestamps.
 *
 * Phase 1 (latency): FAST one-GPU jobs at a steady rate. For each job,
 * submit time is taken just before the request is sent; scheduled_at and
 * started_at come from the database (same clock). Prints p50/p99 of
 * submit→scheduled and submit→running.
 *
 * Phase 2 (saturation): the coordinator is stopped, BENCH_SATURATION_JOBS
 * short jobs are submitted, then a fresh coordinator starts with all of them
 * pending. Placements per second = jobs placed / time from its first to its
 * last placement (scheduled_at), while agents start and finish jobs at the same time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import pino from 'pino';
import { busOptions, connectBus } from '../src/wire/connection.ts';
import { parseConfig } from '../src/config/index.ts';
import { createSeedFile } from '../src/wire/signing.ts';

const base = process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const rate = Number(process.env.BENCH_RATE ?? 200);
const duration = Number(process.env.BENCH_DURATION_SEC ?? 20);
const nodeCount = Number(process.env.BENCH_NODES ?? 100);
const saturationJobs = Number(process.env.BENCH_SATURATION_JOBS ?? 20_000);
const port = Number(process.env.BENCH_PORT ?? 18098);
const key = 'sk_' + 'e'.repeat(43);
const prefix = `bench_${process.pid}`;
const dbName = `scalar_bench_e2e_${process.pid}`;
const url = `http://127.0.0.1:${port}`;

const admin = new pg.Client({ connectionString: base });
await admin.connect();
await admin.query(`create database ${dbName}`);
// The agents' state files live on tmpfs when there is one: 100 agents in one
// process would otherwise queue ~7,000 fs operations a second (fsyncs
// included) on one disk and one libuv thread pool, which no real node shares.
const stateRoot = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'scalar-bench-'));
// The coordinator signs its commands with a key of this run; the agents accept it.
const signingKeyFile = path.join(stateRoot, 'signing.nk');
const { publicKey } = await createSeedFile(signingKeyFile);
const dbUrl = new URL(base);
dbUrl.pathname = `/${dbName}`;
const env = {
  ...process.env,
  DATABASE_URL: dbUrl.toString(),
  PORT: String(port),
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  SCALAR_BOOTSTRAP_KEY: key,
  SCALAR_NATS_PREFIX: prefix,
  SCALAR_SIGNING_KEY_FILE: signingKeyFile,
  SCALAR_COORDINATOR_KEYS: publicKey,
};
const cfg = parseConfig(env);
const log = pino({ level: 'warn' });
const children: ChildProcess[] = [];

function child(cmd: string): ChildProcess {
  const c = spawn(process.execPath, ['bin/scalar.mjs', cmd], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(c);
  return c;
}
async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await gone;
}

async function waitFor(fn: () => Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const db = new pg.Client({ connectionString: dbUrl.toString() });
const bus = await connectBus(busOptions(cfg, 'scalar-bench', 'coordinator'), log);

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 10) / 10;
}

async function submit(body: string): Promise<{ id: string; sentAt: number }> {
  const sentAt = Date.now();
  const r = await fetch(`${url}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body,
  });
  if (r.status !== 201) throw new Error(`POST /jobs: ${r.status} ${await r.text()}`);
  return { id: ((await r.json()) as { id: string }).id, sentAt };
}

const jobBody = (durationSec: number) =>
  JSON.stringify({
    tier: 'FAST',
    gpu_count: 1,
    vram_per_gpu_gb: 40,
    cpu_cores: 4,
    ram_gb: 16,
    expected_duration_sec: durationSec,
    image: 'bench',
    command: ['true'],
  });

try {
  child('api');
  let coordinator = child('coordinator');
  await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 'the API');
  await db.connect();

  // Simulated nodes in a process of their own: each job "runs" expected_duration_sec / 10.
  const agentsHost = spawn(process.execPath, ['--import', 'tsx', 'bench/agents-host.ts', String(nodeCount), stateRoot, '10'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(agentsHost);
  await new Promise<void>((resolve, reject) => {
    agentsHost.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    agentsHost.once('exit', (code) => reject(new Error(`agents host exited with ${code}`)));
  });
  await waitFor(
    async () => Number((await db.query(`select count(*) n from nodes where state = 'ready'`)).rows[0].n) === nodeCount,
    'every node ready',
  );

  // ---- phase 1: steady rate
  const sent = new Map<string, number>();
  const total = rate * duration;
  const body = jobBody(10); // 1 s of simulated run at speed 10
  const t0 = Date.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    inflight.push(submit(body).then(({ id, sentAt }) => void sent.set(id, sentAt)));
  }
  await Promise.all(inflight);
  const offeredSec = (Date.now() - t0) / 1000;
  await waitFor(
    async () =>
      Number((await db.query(`select count(*) n from jobs where started_at is not null`)).rows[0].n) >= total,
    'phase 1 jobs to start',
  );
  const rows = (await db.query(`select id, created_at, scheduled_at, started_at from jobs`)).rows as {
    id: string;
    created_at: Date;
    scheduled_at: Date;
    started_at: Date;
  }[];
  const toScheduled: number[] = [];
  const toRunning: number[] = [];
  // Where the time goes: the API's commit, the coordinator's placement, the agent's start report.
  const apiCommit: number[] = [];
  const placement: number[] = [];
  const start: number[] = [];
  for (const r of rows) {
    const s = sent.get(r.id);
    if (s === undefined) continue;
    toScheduled.push(r.scheduled_at.getTime() - s);
    toRunning.push(r.started_at.getTime() - s);
    apiCommit.push(r.created_at.getTime() - s);
    placement.push(r.scheduled_at.getTime() - r.created_at.getTime());
    start.push(r.started_at.getTime() - r.scheduled_at.getTime());
  }
  for (const a of [toScheduled, toRunning, apiCommit, placement, start]) a.sort((x, y) => x - y);
  const p5099 = (a: number[]) => ({ p50: pct(a, 50), p99: pct(a, 99), max: pct(a, 100) });

  const phase1 = {
    offered_jobs_per_sec: Math.round(total / offeredSec),
    jobs: toScheduled.length,
    submit_to_scheduled_ms: p5099(toScheduled),
    submit_to_running_ms: p5099(toRunning),
    breakdown_ms: { submit_to_created: p5099(apiCommit), created_to_scheduled: p5099(placement), scheduled_to_started: p5099(start) },
  };
  let phase2: Record<string, unknown> | null = null;
  // ---- phase 2: saturation
  if (saturationJobs > 0) {
  // Every GPU free again before the coordinator stops, so the first wave has the whole fleet.
  await waitFor(
    async () => Number((await db.query(`select count(*) n from allocations where released_at is null`)).rows[0].n) === 0,
    'phase 1 to drain',
    60_000,
  );
  await stopChild(coordinator);
  const satBody = jobBody(1); // 0.1 s each at speed 10
  const ids: string[] = [];
  for (let i = 0; i < saturationJobs; i += 200) {
    const n = Math.min(200, saturationJobs - i);
    const batch = await Promise.all(Array.from({ length: n }, () => submit(satBody)));
    ids.push(...batch.map((b) => b.id));
  }
  coordinator = child('coordinator');
  await waitFor(
    async () =>
      Number((await db.query(`select count(*) n from jobs where id = any($1) and scheduled_at is not null`, [ids])).rows[0].n) ===
      ids.length,
    'every saturation job to be placed',
    300_000,
  );
  const span = (
    await db.query(
      `select extract(epoch from (max(scheduled_at) - min(scheduled_at))) as sec, count(*) n from jobs where id = any($1)`,
      [ids],
    )
  ).rows[0] as { sec: string; n: string };
  phase2 = {
    jobs: Number(span.n),
    seconds: Number(Number(span.sec).toFixed(2)),
    placements_per_sec: Math.round(Number(span.n) / Number(span.sec)),
  };
  }

  console.log(
    JSON.stringify({
      bench: 'e2e',
      nodes: nodeCount,
      gpus: nodeCount * 8,
      phase1,
      phase2,
    }),
  );
} finally {
  for (const c of children) await stopChild(c);
  for (const s of Object.values(bus.t.streams)) await bus.jsm.streams.delete(s).catch(() => undefined);
  await bus.close();
  await db.end().catch(() => undefined);
  await admin.query(`drop database if exists ${dbName}`);
  await admin.end();
  rmSync(stateRoot, { recursive: true, force: true });
}
