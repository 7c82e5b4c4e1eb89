/**
 * The agent's durable state: `<stateDir>/state.json`, the attempts this node
 * has seen. It is what lets an agent restart without orphaning a running
 * attempt (re-attached from its runtime `record`), without running an
 * attempt twice (a redelivered `run` finds its entry), and without losing an
 * exit that happened while no agent ran (`reported: false`).
 *
 * Writes are atomic (tmp file, fsync, rename, fsync of the directory) and
 * coalesced: `save()` resolves once a write that includes every change made
 * before the call is on disk.
 */
import { readFileSync } from 'node:fs';
import { appendFile, mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { launchFailedCodeSchema } from '../../src/wire/messages.ts';

export const STATE_FILE = 'state.json';
/**
 * Attempts already reported, one JSON entry per line. Kept apart from the
 * state file so that file stays small (it is rewritten and fsynced on every
 * change): losing the tail of this log in a crash only means an attempt is
 * reported again, which the coordinator ignores.
 */
export const DONE_FILE = 'done.jsonl';
export const STATE_VERSION = 1;

export const exitInfoSchema = z.object({
  code: z.number().int(),
  signal: z.string().nullable(),
  /** True when it ended after (because of) a `kill` command. */
  killed: z.boolean(),
});
export type ExitInfo = z.infer<typeof exitInfoSchema>;

export const executionEntrySchema = z.object({
  job_id: z.string(),
  attempt: z.number().int().min(1),
  /**
   * launching: persisted just before `runtime.launch` (a crash then means the launch's fate is unknown);
   * running: launched, `record` set; exited: over (ran and ended, failed to launch, or killed before it ran).
   */
  status: z.enum(['launching', 'running', 'exited']),
  /** The runtime's record (process: pid, workDir, log offsets), handed to `runtime.reattach` after a restart. */
  record: z.record(z.string(), z.unknown()).optional(),
  /** How it ended; set with status `exited` unless it failed to launch. */
  exit: exitInfoSchema.optional(),
  /** Set when it never started: `launch_failed` is its final event instead of `exited`. */
  launch_failed: z.string().optional(),
  /** Why, for the coordinator: `command_expired` when its run arrived past its signature's expiry (see launchFailedEventSchema). */
  launch_failed_code: launchFailedCodeSchema.optional(),
  /** A kill command was received (and, while it ran, carried out). */
  killRequested: z.boolean().optional(),
  /** The grace of that kill, for carrying it out again after a restart. */
  kill_grace_sec: z.number().optional(),
  /** Killed before its run arrived: a later `run` for it must never start. */
  tombstone: z.boolean().optional(),
  /** The final event (exited / launch_failed) has been acked by JetStream. */
  reported: z.boolean(),
  gpu_indices: z.array(z.number().int()),
  cpu_cores: z.number(),
  ram_gb: z.number(),
  /** Its work directory (`<stateDir>/jobs/<job_id>-<attempt>`), when one was created. */
  work_dir: z.string().optional(),
  /** The work directory was removed by the sweep. */
  work_dir_removed: z.boolean().optional(),
  pid: z.number().int().nullable().optional(),
  created_at: z.string(),
  ended_at: z.string().optional(),
});
export type ExecutionEntry = z.infer<typeof executionEntrySchema>;

/**
 * A `run` this node has verified, kept until its signature expires, in
 * `<stateDir>/seen-runs.jsonl`: a copy of a signed run can be re-published
 * by anyone who may publish on the node's command subject, and must not
 * launch the attempt again once the attempt's entry is forgotten (the
 * retention sweep) or lost with the done log's unsynced tail. Past `exp` the
 * signature itself refuses it.
 *
 * An append-only log, one line per run (fsynced before the launch), so a
 * launch costs one short append rather than a rewrite of every run of the
 * last SCALAR_COMMAND_TTL_SEC. The sweep rewrites it atomically with the
 * runs not yet expired. A torn last line is skipped.
 */
export const SEEN_FILE = 'seen-runs.jsonl';
export const seenRunSchema = z.object({
  job_id: z.string(),
  attempt: z.number().int().min(1),
  /** The expiry (unix ms) of the run's signature; a later line of the same attempt may extend it. */
  exp: z.number().int(),
});
export type SeenRun = z.infer<typeof seenRunSchema>;

export const stateFileSchema = z.object({
  version: z.literal(STATE_VERSION),
  node_id: z.string(),
  /**
   * The kernel's boot id when the file was written (Linux). Another one at
   * the next start means the host rebooted: every attempt it ran died with
   * it, and a pid in the file may now be someone else's process.
   */
  host_boot_id: z.string().optional(),
  updated_at: z.string(),
  executions: z.array(executionEntrySchema),
});
export type StateFileContent = z.infer<typeof stateFileSchema>;

/** This host's boot id (`/proc/sys/kernel/random/boot_id`), or null where there is none. */
export function hostBootId(file = '/proc/sys/kernel/random/boot_id'): string | null {
  try {
    return readFileSync(file, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

export class StateFileError extends Error {
  constructor(path: string, why: string) {
    super(`agent state file ${path} is unusable: ${why}. Move it away to start this node with no memory of its attempts.`);
    this.name = 'StateFileError';
  }
}

/** Reads `<dir>/state.json`: null when there is none yet; throws StateFileError when it cannot be read or parsed. */
export async function readStateFile(dir: string): Promise<StateFileContent | null> {
  const path = join(dir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateFileError(path, (err as Error).message);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(path, `not JSON (${(err as Error).message})`);
  }
  const parsed = stateFileSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new StateFileError(path, `${first?.path.join('.') || '(root)'}: ${first?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** Writes `content` to `<dir>/<name>` atomically and durably. */
export async function writeFileAtomic(dir: string, name: string, content: string): Promise<void> {
  const path = join(dir, name);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(content, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  // The rename itself is durable only once the directory is synced.
  const dh = await open(dir, 'r').catch(() => null);
  if (dh) {
    await dh.sync().catch(() => undefined);
    await dh.close().catch(() => undefined);
  }
}

/**
 * Coalescing, serialised writer of the state file. `snapshot` is called
 * when a write starts, so it sees every change made before `save()`.
 */
export class StateWriter {
  private scheduled: Promise<void> | null = null;
  private last: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    private readonly snapshot: () => StateFileContent,
  ) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  save(): Promise<void> {
    if (this.scheduled) return this.scheduled;
    const p = this.last
      .catch(() => undefined)
      .then(() => {
        this.scheduled = null;
        return writeFileAtomic(this.dir, STATE_FILE, JSON.stringify(this.snapshot(), null, 1) + '\n');
      });
    this.scheduled = p;
    this.last = p;
    return p;
  }
}

/** The lines of a JSON-lines file that parse with `schema` (bad lines, e.g. a torn last line, are skipped); none when it does not exist. */
async function readJsonLines<T>(dir: string, name: string, schema: z.ZodType<T>): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(join(dir, name), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: T[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const parsed = schema.safeParse(JSON.parse(line));
      if (parsed.success) out.push(parsed.data);
    } catch {
      // a torn line
    }
  }
  return out;
}

/** Reads the reported attempts (bad lines, e.g. a torn last line, are skipped). */
export function readDoneLog(dir: string): Promise<ExecutionEntry[]> {
  return readJsonLines(dir, DONE_FILE, executionEntrySchema);
}

/** Appends reported attempts to the done log (no fsync: see DONE_FILE). */
export async function appendDoneLog(dir: string, entries: ExecutionEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await appendFile(join(dir, DONE_FILE), entries.map((e) => JSON.stringify(e)).join('\n') + '\n', { mode: 0o600 });
}

/** Rewrites the done log with exactly these entries (after the retention sweep). */
export async function rewriteDoneLog(dir: string, entries: ExecutionEntry[]): Promise<void> {
  await writeFileAtomic(dir, DONE_FILE, entries.map((e) => JSON.stringify(e) + '\n').join(''));
}

/** The seen runs (torn or bad lines skipped; an attempt's later lines extend its expiry). */
export function readSeenRuns(dir: string): Promise<SeenRun[]> {
  return readJsonLines(dir, SEEN_FILE, seenRunSchema);
}

/** Appends a seen run and waits until it is on disk. */
export async function appendSeenRun(dir: string, run: SeenRun): Promise<void> {
  const fh = await open(join(dir, SEEN_FILE), 'a', 0o600);
  try {
    await fh.appendFile(JSON.stringify(run) + '\n', 'utf8');
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** Rewrites the seen runs with exactly these (after the sweep dropped the expired). */
export async function rewriteSeenRuns(dir: string, runs: SeenRun[]): Promise<void> {
  await writeFileAtomic(dir, SEEN_FILE, runs.map((r) => JSON.stringify(r) + '\n').join(''));
}
