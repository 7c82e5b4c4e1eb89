/**
 * How an agent runs one attempt of a job. Three runtimes implement this:
 * `process` (the command on the host, for development and bare metal),
 * `docker` (`docker run --gpus`), and `simulated` (no process; it "runs" for
 * expected_duration_sec / speed).
 *
 * A runtime must survive its agent: an execution started by one agent
 * process can be re-attached by the next one from the record the agent kept
 * (`Execution.record`), so that an agent restart neither orphans a job nor
 * runs it twice.
 */

export type LogStream = 'stdout' | 'stderr';

export interface LogLine {
  stream: LogStream;
  line: string;
  /** When the agent read it. */
  time: Date;
  /**
   * A position that identifies this line within (attempt, stream), stable
   * across an agent restart (for files: the byte offset of the line). The
   * agent uses it as the JetStream message id, so a line re-read after a
   * restart is not stored twice.
   */
  offset: number;
}

export type LogSink = (line: LogLine) => void;

export interface RunSpec {
  jobId: string;
  attempt: number;
  gpuIndices: number[];
  image: string;
  command: string[];
  env: Record<string, string>;
  cpuCores: number;
  ramGb: number;
  expectedDurationSec: number;
  /** A directory owned by this attempt (created by the agent) for logs, exit status and the like. */
  workDir: string;
}

export interface ExitResult {
  /** The exit code; 128 + n when the process was killed by signal n. */
  code: number;
  /** The signal name when it was killed by one (e.g. 'SIGKILL'). */
  signal: string | null;
}

/** One running attempt. */
export interface Execution {
  /** Process id of the attempt's process-group leader, when there is a process. */
  readonly pid: number | null;
  /** JSON the agent persists, and later hands to `reattach`. */
  readonly record: Record<string, unknown>;
  /** Resolves once the attempt has ended and every log line has been given to the sink. Never rejects. */
  readonly exited: Promise<ExitResult>;
  /** SIGTERM (or equivalent), then SIGKILL after graceMs. Resolves when it is gone. Safe to call twice. */
  kill(graceMs: number): Promise<void>;
}

/** A launch that could not start: the job fails with `reason` (e.g. 'docker engine unavailable: ...'). */
export class LaunchError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'LaunchError';
  }
}

export type RuntimeKind = 'process' | 'docker' | 'simulated';
export const RUNTIME_KINDS: readonly RuntimeKind[] = ['process', 'docker', 'simulated'];

export interface Runtime {
  readonly kind: RuntimeKind;
  /** Starts the attempt. Rejects with LaunchError when it cannot start. */
  launch(spec: RunSpec, logs: LogSink): Promise<Execution>;
  /**
   * Re-attaches to an attempt an earlier agent process launched, from its
   * `record`. Returns the live execution, or the exit result if it ended
   * while no agent was watching (its remaining log lines go to the sink
   * first). Returns null when nothing can be known (the record is unusable).
   */
  reattach(record: Record<string, unknown>, logs: LogSink): Promise<Execution | ExitResult | null>;
}
