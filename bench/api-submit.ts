/**
 * POST /jobs throughput against the real Postgres.
 *
 *   npm run bench:api                 # 100 connections, 20 s
 *   BENCH_CONNECTIONS=50 BENCH_DURATION_SEC=10 npm run bench:api
 *
 * Starts `scalar api` as a child process on a fresh database (so the bench
 * process running autocannon does not share its event loop), submits the
 * spec's example job for the duration, then checks that the number of rows
 * committed equals the number of 201 answers. Prints one JSON line.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import pg from 'pg';
import { SPEC_EXAMPLE_JOB } from '../src/api/common/resources.ts';

const base = process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `scalar_bench_${process.pid}`;
const connections = Number(process.env.BENCH_CONNECTIONS ?? 100);
const duration = Number(process.env.BENCH_DURATION_SEC ?? 20);
const port = Number(process.env.BENCH_PORT ?? 18099);
const key = 'sk_' + 'b'.repeat(43);

const admin = new pg.Client({ connectionString: base });
await admin.connect();
await admin.query(`create database ${dbName}`);
const dbUrl = new URL(base);
dbUrl.pathname = `/${dbName}`;

const api = spawn(process.execPath, ['bin/scalar.mjs', 'api'], {
  env: {
    ...process.env,
    DATABASE_URL: dbUrl.toString(),
    PORT: String(port),
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    SCALAR_BOOTSTRAP_KEY: key,
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});

async function waitReady(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (r.ok) return;
    } catch {}
    await sleep(100);
  }
  throw new Error('API did not become ready');
}

try {
  await waitReady();
  const body = JSON.stringify(SPEC_EXAMPLE_JOB);
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/jobs`,
    method: 'POST',
    connections,
    duration,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body,
  });
  const accepted = result['2xx'];
  const check = new pg.Client({ connectionString: dbUrl.toString() });
  await check.connect();
  const { rows } = await check.query<{ n: string }>('select count(*)::text as n from jobs');
  await check.end();
  const committed = Number(rows[0]!.n);
  const out = {
    bench: 'api-submit',
    connections,
    duration_sec: duration,
    requests: result.requests.total,
    accepted_2xx: accepted,
    non_2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    rows_committed: committed,
    accepted_per_sec: Math.round(accepted / duration),
    latency_ms: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
  };
  console.log(JSON.stringify(out));
  // Requests still in flight when autocannon stops are committed but not
  // counted as answered, so up to `connections` extra rows are expected.
  if (committed < accepted || committed - accepted > connections) {
    console.error(`MISMATCH: ${accepted} accepted but ${committed} rows committed`);
    process.exitCode = 1;
  }
} finally {
  api.kill('SIGTERM');
  await new Promise((r) => api.once('exit', r));
  await admin.query(`drop database if exists ${dbName}`);
  await admin.end();
}
