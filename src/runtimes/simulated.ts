/**
 * The `simulated` runtime: no process. An attempt "runs" for
 * expectedDurationSec / speed and ends with the code in its env
 * SCALAR_SIM_EXIT_CODE (default 0). It logs two stdout lines, at offsets 0
 * and 1: `simulated run: <N> s on GPUs <i,j>` at the start and
 * `simulated exit code <C>` at the end. One timer per attempt, nothing
 * polls, so thousands run side by side in one process.
 *
 * The record `{ kind: 'simulated', startedAtMs, durationMs, exitCode, signal }`
 * is a live object: a kill sets durationMs to the time it ran and the
 * code/signal to 143/SIGTERM, so a re-attach after a kill sees the kill.
 */
import { systemClock, type Clock, type Timer } from '../domain/clock.ts';
import { LaunchError, type Execution, type ExitResult, type LogSink, type RunSpec, type Runtime } from './types.ts';

export type SimulatedRecord = {
  kind: 'simulated';
  startedAtMs: number;
  durationMs: number;
  exitCode: number;
  signal: string | null;
};

export interface SimulatedRuntimeOptions {
  /** How many times faster than expected_duration_sec the attempts run. Default 1. */
  speed?: number;
  clock?: Clock;
}

export const SIM_EXIT_CODE_ENV = 'SCALAR_SIM_EXIT_CODE';

function exitCodeOf(env: Record<string, string>): number {
  const raw = env[SIM_EXIT_CODE_ENV];
  if (raw === undefined || raw.trim() === '') return 0;
  const code = Number(raw.trim());
  if (!Number.isInteger(code) || code < 0 || code > 255) {
    throw new LaunchError(`simulated runtime: ${SIM_EXIT_CODE_ENV} must be an integer from 0 to 255, not ${JSON.stringify(raw)}`);
  }
  return code;
}

class SimulatedExecution implements Execution {
  readonly pid = null;
  readonly exited: Promise<ExitResult>;
  private resolve!: (r: ExitResult) => void;
  private readonly timer: Timer;
  private ended = false;

  constructor(
    readonly record: SimulatedRecord,
    private readonly logs: LogSink,
    private readonly clock: Clock,
  ) {
    this.exited = new Promise((r) => (this.resolve = r));
    const left = Math.max(0, record.startedAtMs + record.durationMs - clock.now());
    this.timer = clock.setTimeout(() => this.end(), left);
  }

  kill(_graceMs: number): Promise<void> {
    if (!this.ended) {
      this.timer.cancel();
      this.record.durationMs = Math.max(0, this.clock.now() - this.record.startedAtMs);
      this.record.exitCode = 143;
      this.record.signal = 'SIGTERM';
      this.end();
    }
    return this.exited.then(() => undefined);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    emitEnd(this.record, this.logs);
    this.resolve({ code: this.record.exitCode, signal: this.record.signal });
  }
}

function emit(logs: LogSink, line: string, offset: number): void {
  try {
    logs({ stream: 'stdout', line, time: new Date(), offset });
  } catch {
    // a failing sink does not stop the simulation
  }
}

function emitEnd(record: SimulatedRecord, logs: LogSink): void {
  emit(logs, `simulated exit code ${record.exitCode}`, 1);
}

export class SimulatedRuntime implements Runtime {
  readonly kind = 'simulated' as const;
  readonly speed: number;
  private readonly clock: Clock;

  constructor(opts: SimulatedRuntimeOptions = {}) {
    const speed = opts.speed ?? 1;
    if (!(speed > 0) || !Number.isFinite(speed)) throw new Error(`simulated runtime: speed must be a positive number, not ${speed}`);
    this.speed = speed;
    this.clock = opts.clock ?? systemClock;
  }

  async launch(spec: RunSpec, logs: LogSink): Promise<Execution> {
    const exitCode = exitCodeOf(spec.env);
    const seconds = Math.max(0, spec.expectedDurationSec);
    const record: SimulatedRecord = {
      kind: 'simulated',
      startedAtMs: this.clock.now(),
      durationMs: (seconds * 1000) / this.speed,
      exitCode,
      signal: null,
    };
    emit(logs, `simulated run: ${seconds} s on GPUs ${spec.gpuIndices.join(',') || 'none'}`, 0);
    return new SimulatedExecution(record, logs, this.clock);
  }

  async reattach(raw: Record<string, unknown>, logs: LogSink): Promise<Execution | ExitResult | null> {
    const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
    if (raw.kind !== 'simulated' || !num(raw.startedAtMs) || !num(raw.durationMs) || !num(raw.exitCode)) return null;
    const record: SimulatedRecord = {
      kind: 'simulated',
      startedAtMs: raw.startedAtMs,
      durationMs: raw.durationMs,
      exitCode: raw.exitCode,
      signal: typeof raw.signal === 'string' ? raw.signal : null,
    };
    if (this.clock.now() >= record.startedAtMs + record.durationMs) {
      emitEnd(record, logs);
      return { code: record.exitCode, signal: record.signal };
    }
    return new SimulatedExecution(record, logs, this.clock);
  }
}
