/**
 * Real `scalar` processes for end-to-end tests: `scalar api`, `scalar
 * coordinator` and `scalar agent`, spawned as `node bin/scalar.mjs …` (not
 * through npx, so a signal reaches the real process), over one test database
 * and one NATS prefix.
 *
 * Every child's output is kept (the last lines of each) and written to the
 * test's stderr as it comes when E2E_LOG_LEVEL is set; `dump()` prints the
 * kept lines, for a failed test. `close()` ends every child (SIGTERM, then
 * SIGKILL), every job process the agents started under this cluster's
 * temporary directory, the prefix's streams, the database and the directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseConfig } from '../../../src/config/index.ts';
import { CommandSigner, generateSeed } from '../../../src/wire/signing.ts';
import { connectTestBus, dropTestBus, testNatsPrefix } from '../../helpers/app.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts';

const BIN = new URL('../../../bin/scalar.mjs', import.meta.url).pathname;
const KEEP_LINES = 300;

/** Thrown inside an `until` condition: stop polling and fail at once. */
export class GiveUp extends Error {
  override name = 'GiveUp';
}

/**
 * Polls `fn` until it returns something truthy; throws with `what` (or fn's
 * source) after `timeoutMs`. Other errors from `fn` count as "not yet",
 * except GiveUp, which ends the wait at once.
 */
export async function until<T>(
  fn: () => Promise<T | false | undefined | null> | T | false | undefined | null,
  timeoutMs = 10_000,
  what?: string,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      if (err instanceof GiveUp) throw err;
      lastErr = err;
    }
    if (Date.now() > deadline) {
      const tail = lastErr ? ` (last error: ${(lastErr as Error).message ?? lastErr})` : '';
      throw new Error(`condition not met within ${timeoutMs} ms: ${what ?? fn.toString().slice(0, 200)}${tail}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether `pid` is gone: no such process, or only a zombie (an orphan nobody reaps counts as gone). */
export function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One `scalar …` child process and what it printed. */
export class ScalarProcess {
  readonly lines: string[] = [];
  /** Every warning or worse it logged (pino level >= 40), at most the first 2,000. */
  readonly warnings: string[] = [];
  /** Every error or worse it logged (pino level >= 50), at most the first 2,000. */
  readonly errors: string[] = [];
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | null = null;
  private readonly waiters = new Set<{ test: (line: string) => boolean; resolve: (line: string) => void }>();

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    const echo = !!process.env.E2E_LOG_LEVEL;
    for (const stream of [proc.stdout!, proc.stderr!]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop()!;
        for (const line of parts) this.onLine(line, echo);
      });
      stream.on('end', () => {
        if (partial) this.onLine(partial, echo);
        partial = '';
      });
    }
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get running(): boolean {
    return this.exit === null;
  }

  private onLine(line: string, echo: boolean): void {
    this.lines.push(line);
    if (this.lines.length > KEEP_LINES) this.lines.splice(0, this.lines.length - KEEP_LINES);
    if (echo) process.stderr.write(`[${this.name}] ${line}\n`);
    const level = /^\{"level":(\d+)/.exec(line);
    if (level && Number(level[1]) >= 40 && this.warnings.length < 2000) this.warnings.push(line);
    if (level && Number(level[1]) >= 50 && this.errors.length < 2000) this.errors.push(line);
    for (const w of this.waiters) {
      if (w.test(line)) {
        this.waiters.delete(w);
        w.resolve(line);
      }
    }
  }

  /** Resolves with the first line (from now on) that matches; rejects if the process exits or the time runs out. */
  waitForLine(test: RegExp | ((line: string) => boolean), timeoutMs: number): Promise<string> {
    const fn = typeof test === 'function' ? test : (l: string) => test.test(l);
    return new Promise((resolve, reject) => {
      const w = {
        test: fn,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.name}: no line matching ${test} within ${timeoutMs} ms\n${this.tail(40)}`));
      }, timeoutMs);
      this.waiters.add(w);
      void this.exited.then((x) => {
        if (!this.waiters.delete(w)) return;
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${x.code ?? x.signal}) before printing ${test}\n${this.tail(40)}`));
      });
    });
  }

  tail(n = 60): string {
    return this.lines.slice(-n).join('\n');
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<ExitInfo> {
    if (this.exit) return this.exit;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    const x = await this.exited;
    clearTimeout(timer);
    return x;
  }

  /** kill -9 and wait for the exit. */
  async crash(): Promise<ExitInfo> {
    if (this.exit) return this.exit;
    this.proc.kill('SIGKILL');
    return this.exited;
  }
}

export interface AgentProcess extends ScalarProcess {
  nodeId: string;
  stateDir: string;
}

export interface HttpResult<T = any> {
  status: number;
  body: T;
}

export class Cluster {
  readonly prefix = testNatsPrefix();
  readonly adminKey = 'sk_' + randomBytes(32).toString('base64url');
  readonly root = mkdtempSync(path.join(tmpdir(), 'scalar-e2e-'));
  /** This cluster's command-signing key: its coordinators sign with it (SCALAR_SIGNING_KEY_FILE), its agents accept it (SCALAR_COORDINATOR_KEYS). */
  readonly signingKeyFile = path.join(this.root, 'signing.nk');
  readonly signingPublicKey: string;
  readonly processes: ScalarProcess[] = [];
  db!: TestDatabase;
  pg!: pg.Client;
  url = '';

  constructor(private readonly extraEnv: Record<string, string> = {}) {
    const seed = generateSeed();
    writeFileSync(this.signingKeyFile, seed + '\n', { mode: 0o600 });
    this.signingPublicKey = CommandSigner.fromSeed(seed, 1).publicKey;
  }

  async init(): Promise<void> {
    this.db = await createTestDatabase();
    this.pg = new pg.Client({ connectionString: this.db.url });
    await this.pg.connect();
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const { DATABASE_URL: _d, SCALAR_BOOTSTRAP_KEY: _k, LOG_FORMAT: _f, ...rest } = process.env;
    const level = process.env.E2E_LOG_LEVEL;
    return {
      ...rest,
      DATABASE_URL: this.db.url,
      SCALAR_NATS_PREFIX: this.prefix,
      SCALAR_BOOTSTRAP_KEY: this.adminKey,
      SCALAR_DATA_DIR: path.join(this.root, 'data'),
      // Each test prefix's LOGS stream reserves this much of the server's storage.
      SCALAR_LOG_MAX_MB: '64',
      SCALAR_SIGNING_KEY_FILE: this.signingKeyFile,
      SCALAR_COORDINATOR_KEYS: this.signingPublicKey,
      // The ready lines are info; only a more verbose level is taken from E2E_LOG_LEVEL.
      LOG_LEVEL: level === 'debug' || level === 'trace' ? level : 'info',
      LOG_FORMAT: 'json',
      ...this.extraEnv,
      ...extra,
      // These tests kill nodes on purpose: lost after 3 of their short heartbeat intervals, not production's 40 s.
      SCALAR_NODE_LOST_SEC:
        extra.SCALAR_NODE_LOST_SEC ?? this.extraEnv.SCALAR_NODE_LOST_SEC ?? String((3 * Number(extra.SCALAR_HEARTBEAT_INTERVAL_MS ?? this.extraEnv.SCALAR_HEARTBEAT_INTERVAL_MS ?? 2000)) / 1000),
    };
  }

  spawn(name: string, args: string[], extra: Record<string, string> = {}): ScalarProcess {
    const proc = spawn(process.execPath, [BIN, ...args], { env: this.env(extra), stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new ScalarProcess(name, proc);
    this.processes.push(p);
    return p;
  }

  /** `scalar api` on a free port; sets `url` from its ready line. */
  async startApi(): Promise<ScalarProcess> {
    const p = this.spawn('api', ['api'], { PORT: '0' });
    const line = await p.waitForLine(/"msg":"Scalar API ready"/, 30_000);
    this.url = (JSON.parse(line) as { url: string }).url;
    return p;
  }

  /** `scalar coordinator`, once it leads and rebuilt its state. */
  async startCoordinator(name = 'coordinator'): Promise<ScalarProcess> {
    const p = this.spawn(name, ['coordinator']);
    await p.waitForLine(/"msg":"Scalar coordinator ready"/, 30_000);
    return p;
  }

  /** `scalar agent --runtime process` with its own state directory, once it is ready. */
  async startAgent(nodeId: string, opts: { pool?: string; gpus?: string; cpu?: number; ramGb?: number } = {}): Promise<AgentProcess> {
    const stateDir = path.join(this.root, nodeId);
    const args = [
      'agent',
      '--runtime', 'process',
      '--pool', opts.pool ?? 'fast',
      '--gpus', opts.gpus ?? '4x80',
      '--cpu', String(opts.cpu ?? 16),
      '--ram-gb', String(opts.ramGb ?? 64),
      '--node-id', nodeId,
      '--state-dir', stateDir,
    ];
    const p = Object.assign(this.spawn(`agent ${nodeId}`, args), { nodeId, stateDir }) as AgentProcess;
    await p.waitForLine(/"msg":"Scalar agent ready"/, 30_000);
    return p;
  }

  /**
   * A test file's cluster: the API, a coordinator, and `agents` (started by
   * `startAgent`, e.g. `(id) => this.startAgent(id, { pool: 'fast' })`),
   * returned once every agent's node is `ready`. Dumps the logs and rethrows
   * if any of it fails.
   */
  async boot(nodeIds: string[], startAgent: (nodeId: string) => Promise<AgentProcess> = (id) => this.startAgent(id)): Promise<{ coordinator: ScalarProcess; agents: AgentProcess[] }> {
    await this.init();
    try {
      await this.startApi();
      const coordinator = await this.startCoordinator();
      const agents = await Promise.all(nodeIds.map(startAgent));
      for (const a of agents) await until(async () => (await this.http('GET', `/nodes/${a.nodeId}`)).body?.state === 'ready', 15_000, `${a.nodeId} ready`);
      return { coordinator, agents };
    } catch (err) {
      this.dump();
      throw err;
    }
  }

  async http<T = any>(method: string, url: string, body?: unknown): Promise<HttpResult<T>> {
    const res = await fetch(this.url + url, {
      method,
      headers: {
        authorization: `Bearer ${this.adminKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T };
  }

  async query<R extends pg.QueryResultRow = any>(sql: string, params: unknown[] = []): Promise<R[]> {
    return (await this.pg.query<R>(sql, params)).rows;
  }

  /** Where each child's error list stands now, for `errorsSince`. */
  errorMark(): Map<ScalarProcess, number> {
    return new Map(this.processes.map((p) => [p, p.errors.length]));
  }

  /** Error lines (pino level >= 50) logged by any child since `mark`, each prefixed with the child's name. */
  errorsSince(mark: Map<ScalarProcess, number>): string[] {
    return this.processes.flatMap((p) => p.errors.slice(mark.get(p) ?? 0).map((l) => `[${p.name}] ${l.slice(0, 1000)}`));
  }

  /** Prints every child's last lines to stderr (for a failed test). */
  dump(n = 80): void {
    for (const p of this.processes) {
      const state = p.exit ? `exited ${p.exit.code ?? p.exit.signal}` : 'running';
      process.stderr.write(`\n===== ${p.name} (pid ${p.pid}, ${state}): last ${n} lines =====\n${p.tail(n)}\n`);
    }
  }

  /**
   * Kills (SIGKILL, whole process group) every job process the agents of
   * this cluster started: the wrapper of each attempt leads its own group
   * and names its work directory, under `root`, on its command line.
   * Returns the groups it killed.
   */
  killJobProcesses(): number[] {
    const killed: number[] = [];
    const marker = `${this.root}${path.sep}`;
    let ourGroup = -1;
    try {
      const own = readFileSync('/proc/self/stat', 'utf8');
      ourGroup = Number(own.slice(own.lastIndexOf(')') + 2).split(' ')[2]);
    } catch {
      return killed; // no /proc: nothing to find
    }
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const pid = Number(name);
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        if (!argv.some((a) => a.startsWith(marker) && a.includes(`${path.sep}jobs${path.sep}`))) continue;
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
        // Only a group that this wrapper leads, and never ours.
        if (pgrp !== pid || pgrp === ourGroup || pgrp <= 1) continue;
        process.kill(-pgrp, 'SIGKILL');
        killed.push(pgrp);
      } catch {
        // gone meanwhile, or not ours to read
      }
    }
    return killed;
  }

  /** Ends everything this cluster started. Safe to call after a partial init. */
  async close(): Promise<void> {
    const errors: unknown[] = [];
    const step = async (fn: () => Promise<unknown> | unknown) => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    await step(() => Promise.all(this.processes.map((p) => p.stop(5000))));
    await step(() => this.killJobProcesses());
    await step(() => this.pg?.end());
    await step(async () => dropTestBus(await connectTestBus(parseConfig({ SCALAR_NATS_PREFIX: this.prefix, SCALAR_LOG_MAX_MB: '64' }))));
    await step(() => this.db?.drop());
    await step(() => rmSync(this.root, { recursive: true, force: true }));
    if (errors.length > 0) throw new AggregateError(errors, 'e2e cluster cleanup failed');
  }
}
