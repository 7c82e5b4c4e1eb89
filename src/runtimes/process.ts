/**
 * The `process` runtime: runs the attempt's command on the host, and the
 * machinery the `docker` runtime shares with it.
 *
 * The agent starts a detached `/bin/sh` wrapper (its own session and process
 * group, whose id is the wrapper's pid) that sends the command's stdout and
 * stderr to `stdout.log` and `stderr.log` in the attempt's workDir, runs the
 * command as given (`"$@"`: no shell interpretation), and when it ends writes
 * its status to `workDir/exit` (written to `exit.tmp`, then renamed). The
 * agent only follows those files, so the attempt outlives an agent killed
 * with SIGKILL, and the next agent re-attaches from `Execution.record`.
 *
 * The record (`HostRecord`) is a live object: `offsets` advance as lines
 * reach the sink, so whatever the agent serialises at save time is current.
 * An offset is the first byte not yet given to the sink; lines after it are
 * read again after a restart, with the same `offset`s as before.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FileTail } from './log-tail.ts';
import { groupAlive, pidAlive, pidRecycled, processStartTime, signalFromStatus, signalGroup, signalNumber, sleep } from './proc.ts';
import { LaunchError, type Execution, type ExitResult, type LogSink, type LogStream, type RunSpec, type Runtime } from './types.ts';

/**
 * $1 is the workDir, the rest the command. The wrapper catches SIGTERM (a
 * caught signal is reset to the default by exec, an ignored one would be
 * inherited) so that a SIGTERM to the group ends the command but leaves the
 * wrapper to record how it ended; SIGKILL ends the wrapper too.
 *
 * The command starts through a second sh that first creates `started`: a
 * SIGTERM that reaches the group before that can have been swallowed by the
 * wrapper's trap before the command existed, so `kill` sends it again once
 * `started` is there (from then on the command's own disposition applies).
 */
export const WRAPPER_SCRIPT =
  'd=$1; shift; exec >>"$d/stdout.log" 2>>"$d/stderr.log"; trap : TERM; ' +
  '/bin/sh -c \'d=$1; shift; : >"$d/started"; exec "$@"\' scalar "$d" "$@"; c=$?; ' +
  'echo "$c" >"$d/exit.tmp" && mv -f "$d/exit.tmp" "$d/exit"';

const LOG_POLL_MS = 100;
/** Without the child's 'exit' event (re-attached), check for the end every this many log polls. */
const EXIT_CHECK_EVERY = 2;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export type HostRecord = {
  kind: 'process' | 'docker';
  /** The wrapper's pid, which is also the process group id. */
  pid: number;
  pgid: number;
  /** /proc/<pid>/stat start time (Linux; null elsewhere), so a recycled pid is not mistaken for ours. */
  startTime: string | null;
  workDir: string;
  /** Resume offsets in stdout.log / stderr.log. Updated in place. */
  offsets: { stdout: number; stderr: number };
  /** docker only: the container's name. */
  container?: string;
};

export interface HostHooks {
  /** Before the SIGKILL that follows an unheeded SIGTERM (docker: `docker kill`). */
  beforeSigkill?(): Promise<void>;
  /** When the wrapper vanished without an exit status and not by our hand (docker: remove the container). */
  onUnknownEnd?(): Promise<void>;
}

/** The minimal environment a job starts from: PATH, HOME and LANG of the agent, plus `extra` names. */
export function baseEnv(extra: readonly string[] = []): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH || DEFAULT_PATH };
  for (const k of ['HOME', 'LANG', ...extra]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return env;
}

/** The environment of a `process` attempt. */
export function processEnv(spec: RunSpec): Record<string, string> {
  const gpus = spec.gpuIndices.join(',');
  return {
    ...baseEnv(),
    ...spec.env,
    SCALAR_JOB_ID: spec.jobId,
    SCALAR_ATTEMPT: String(spec.attempt),
    CUDA_VISIBLE_DEVICES: gpus,
    NVIDIA_VISIBLE_DEVICES: gpus,
  };
}

async function readExitCode(workDir: string): Promise<number | null> {
  let text: string;
  try {
    text = await readFile(join(workDir, 'exit'), 'utf8');
  } catch {
    return null;
  }
  const code = Number(text.trim());
  return Number.isInteger(code) ? code : null;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function waitUntil(done: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    const left = deadline - Date.now();
    if (left <= 0) return;
    await sleep(Math.min(25, left));
  }
}

/** One attempt run through the wrapper, watched either as our child or (re-attached) from its files. */
export class HostExecution implements Execution {
  readonly exited: Promise<ExitResult>;
  private resolveExited!: (r: ExitResult) => void;
  private readonly tails: FileTail[];
  private timer: NodeJS.Timeout | null = null;
  private tick: Promise<void> = Promise.resolve();
  private ticks = 0;
  private finishing = false;
  private detached = false;
  private childExit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private sentSignal: NodeJS.Signals | null = null;
  private killing: Promise<void> | null = null;

  constructor(
    readonly record: HostRecord,
    sink: LogSink,
    private readonly child: ChildProcess | null,
    private readonly hooks: HostHooks = {},
  ) {
    const tail = (stream: LogStream) =>
      new FileTail(join(record.workDir, `${stream}.log`), stream, record.offsets[stream], sink, (o) => {
        record.offsets[stream] = o;
      });
    this.tails = [tail('stdout'), tail('stderr')];
    this.exited = new Promise((r) => (this.resolveExited = r));
    if (child) {
      child.once('exit', (code, signal) => {
        this.childExit = { code, signal };
        void this.finish();
      });
    }
    this.schedule();
  }

  get pid(): number {
    return this.record.pid;
  }

  kill(graceMs: number): Promise<void> {
    this.killing ??= this.doKill(graceMs);
    return this.killing;
  }

  /**
   * Stops watching (for an agent that shuts down and leaves the attempt
   * running, to re-attach later). `exited` then never resolves.
   */
  detach(): void {
    this.detached = true;
    this.finishing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.child?.removeAllListeners('exit');
  }

  /** Whether the attempt ended, judged from its files and pid (the re-attached way). */
  async endedUnwatched(): Promise<boolean> {
    if (await exists(join(this.record.workDir, 'exit'))) return true;
    return !pidAlive(this.record.pid, this.record.startTime);
  }

  private schedule(): void {
    if (this.finishing) return;
    this.timer = setTimeout(() => this.onTick(), LOG_POLL_MS);
  }

  private onTick(): void {
    this.timer = null;
    this.tick = this.pollOnce().then(
      (ended) => (ended ? void this.finish() : this.schedule()),
      () => this.schedule(),
    );
  }

  private async pollOnce(): Promise<boolean> {
    await Promise.all(this.tails.map((t) => t.poll()));
    if (this.child || ++this.ticks % EXIT_CHECK_EVERY !== 0) return false;
    return this.endedUnwatched();
  }

  /** Works out the result, removes leftovers of the group, reads the logs to the end and resolves `exited`. */
  async finish(): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    let result: ExitResult = { code: -1, signal: null };
    try {
      await this.tick;
      const code = await readExitCode(this.record.workDir);
      const childSignal = this.childExit?.signal ?? null;
      if (code !== null) {
        result = { code, signal: signalFromStatus(code) };
      } else if (childSignal) {
        result = { code: 128 + (signalNumber(childSignal) ?? 0), signal: childSignal };
      } else if (this.sentSignal) {
        // No status recorded (re-attached, or a kill that landed while the
        // wrapper was still starting its command), but we know what we sent.
        result = { code: 128 + (signalNumber(this.sentSignal) ?? 0), signal: this.sentSignal };
      } else {
        // Gone without a status, and not by our hand: unknown.
        await this.hooks.onUnknownEnd?.().catch(() => undefined);
      }
      // The command is over: what it left running in its group goes too.
      if (this.groupIsOurs() && groupAlive(this.record.pgid)) signalGroup(this.record.pgid, 'SIGKILL');
      await Promise.all(this.tails.map((t) => t.drain().catch(() => undefined)));
    } catch {
      // exited never rejects
    }
    if (!this.detached) this.resolveExited(result);
  }

  /**
   * False when the group leader's pid now names another process: the group
   * was empty once (a group id is not reused while it has members), so a
   * group by that id now is someone else's.
   */
  private groupIsOurs(): boolean {
    return !pidRecycled(this.record.pgid, this.record.startTime);
  }

  private async doKill(graceMs: number): Promise<void> {
    const pgid = this.record.pgid;
    const gone = () => this.finishing || !this.groupIsOurs() || !groupAlive(pgid);
    if (!gone()) {
      const startedFile = join(this.record.workDir, 'started');
      let resent = existsSync(startedFile); // checked before the signal: see WRAPPER_SCRIPT
      this.sentSignal = 'SIGTERM';
      signalGroup(pgid, 'SIGTERM');
      await waitUntil(() => {
        if (!resent && existsSync(startedFile)) {
          resent = true;
          if (!gone()) signalGroup(pgid, 'SIGTERM');
        }
        return gone();
      }, graceMs);
    }
    if (!gone()) {
      await this.hooks.beforeSigkill?.().catch(() => undefined);
      if (!gone()) {
        this.sentSignal = 'SIGKILL';
        signalGroup(pgid, 'SIGKILL');
      }
    }
    if (!this.detached) await this.exited;
  }
}

/**
 * Starts `argv` through the wrapper in `spec.workDir` (created if missing).
 * Logs are followed from their current end, so a relaunch into a used
 * workDir neither re-reads nor reuses the offsets of an earlier run.
 */
export async function launchHost(
  kind: HostRecord['kind'],
  argv: string[],
  env: Record<string, string>,
  spec: RunSpec,
  sink: LogSink,
  hooks: HostHooks = {},
  extra: Partial<HostRecord> = {},
): Promise<HostExecution> {
  const workDir = spec.workDir;
  const offsets = { stdout: 0, stderr: 0 };
  try {
    await mkdir(workDir, { recursive: true });
    await rm(join(workDir, 'exit'), { force: true });
    await rm(join(workDir, 'exit.tmp'), { force: true });
    await rm(join(workDir, 'started'), { force: true });
    for (const s of ['stdout', 'stderr'] as const) {
      const path = join(workDir, `${s}.log`);
      await (await open(path, 'a')).close();
      offsets[s] = await sizeOf(path);
    }
  } catch (e) {
    throw new LaunchError(`${kind} runtime: cannot prepare the work directory ${workDir}: ${(e as Error).message}`);
  }

  const child = spawn('/bin/sh', ['-c', WRAPPER_SCRIPT, 'scalar', workDir, ...argv], {
    cwd: workDir,
    env,
    detached: true,
    stdio: 'ignore',
  });
  if (child.pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new LaunchError(`${kind} runtime: cannot start /bin/sh: ${err.message}`);
  }
  child.on('error', () => undefined); // e.g. a failed kill(); exits are seen through 'exit'
  child.unref();
  const pid = child.pid;
  const record: HostRecord = { kind, pid, pgid: pid, startTime: processStartTime(pid), workDir, offsets, ...extra };
  return new HostExecution(record, sink, child, hooks);
}

/** A record as `launchHost` wrote it, or null. */
export function parseHostRecord(raw: Record<string, unknown>, kind: HostRecord['kind']): HostRecord | null {
  const posInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
  const offset = (v: unknown): number => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0);
  if (raw.kind !== kind || !posInt(raw.pid) || typeof raw.workDir !== 'string' || raw.workDir === '') return null;
  const pgid = posInt(raw.pgid) ? raw.pgid : raw.pid;
  const o = (typeof raw.offsets === 'object' && raw.offsets !== null ? raw.offsets : {}) as Record<string, unknown>;
  const rec: HostRecord = {
    kind,
    pid: raw.pid,
    pgid,
    startTime: typeof raw.startTime === 'string' && raw.startTime !== '' ? raw.startTime : null,
    workDir: raw.workDir,
    offsets: { stdout: offset(o.stdout), stderr: offset(o.stderr) },
  };
  if (kind === 'docker') {
    if (typeof raw.container !== 'string' || raw.container === '') return null;
    rec.container = raw.container;
  }
  return rec;
}

/**
 * Re-attaches from a record: an attempt that ended while no agent watched
 * gives its result (after its remaining lines went to the sink); one that
 * still runs gives a live execution that continues the logs from the
 * recorded offsets. An attempt whose wrapper is gone without an exit status
 * (killed with SIGKILL along with the agent, or the host rebooted) ends with
 * code -1 and signal null: unknown.
 */
export async function reattachHost(
  kind: HostRecord['kind'],
  raw: Record<string, unknown>,
  sink: LogSink,
  hooks: HostHooks = {},
): Promise<Execution | ExitResult | null> {
  const record = parseHostRecord(raw, kind);
  if (!record) return null;
  const ex = new HostExecution(record, sink, null, hooks);
  if (await ex.endedUnwatched()) {
    await ex.finish();
    return ex.exited;
  }
  return ex;
}

export interface ProcessRuntimeOptions {
  /** Extra names of the agent's environment to pass on (besides PATH, HOME, LANG). */
  passEnv?: string[];
}

export class ProcessRuntime implements Runtime {
  readonly kind = 'process' as const;

  constructor(private readonly opts: ProcessRuntimeOptions = {}) {}

  async launch(spec: RunSpec, logs: LogSink): Promise<HostExecution> {
    if (spec.command.length === 0 || spec.command[0] === '') {
      throw new LaunchError('process runtime: the job has no command');
    }
    const env = { ...baseEnv(this.opts.passEnv), ...processEnv(spec) };
    return launchHost('process', spec.command, env, spec, logs);
  }

  reattach(record: Record<string, unknown>, logs: LogSink): Promise<Execution | ExitResult | null> {
    return reattachHost('process', record, logs);
  }
}
