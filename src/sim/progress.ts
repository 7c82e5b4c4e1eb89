/**
 * The replay's progress bar on the terminal: jobs done of the trace's total,
 * the simulated day, and an ETA. Callers pass `enabled: process.stdout.isTTY`
 * so that piped or redirected output carries no bar.
 */
import cliProgress from 'cli-progress';
import { formatDuration } from './report.ts';

export interface ProgressBar {
  /** jobs done so far, and the virtual time reached (s). Cheap to call very often. */
  update(done: number, simSec: number): void;
  /** Draws the last values and releases the terminal line. Idempotent. */
  stop(): void;
}

/** Updates closer together than this are dropped (the last one is drawn on stop). */
const MIN_INTERVAL_MS = 100;

const NOOP: ProgressBar = { update: () => undefined, stop: () => undefined };

const simDay = (simSec: number): string => (simSec / 86400).toFixed(1);

export function progressBar(o: { total: number; enabled: boolean; label?: string }): ProgressBar {
  if (!o.enabled) return NOOP;
  const label = o.label ?? 'simulating';
  const bar = new cliProgress.SingleBar({
    format: `${label} {bar} {value}/{total} jobs | day {day} | ETA {remaining}`,
    stream: process.stdout,
    fps: 10,
    barsize: 30,
    barCompleteChar: '█',
    barIncompleteChar: '░',
    hideCursor: false,
    clearOnComplete: false,
  });
  const total = Math.max(0, Math.floor(o.total));
  const started = Date.now();
  // From the share of jobs done; nothing to say before the first one ends.
  const eta = (done: number): string => (done > 0 ? formatDuration((((Date.now() - started) / 1000) * (total - done)) / done) : '—');
  bar.start(total, 0, { day: simDay(0), remaining: '—' });

  let last = 0;
  let pending: { done: number; simSec: number } | null = null;
  let stopped = false;

  return {
    update(done, simSec) {
      if (stopped) return;
      const now = Date.now();
      if (now - last < MIN_INTERVAL_MS && done < total) {
        pending = { done, simSec };
        return;
      }
      last = now;
      pending = null;
      bar.update(done, { day: simDay(simSec), remaining: eta(done) });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (pending) bar.update(pending.done, { day: simDay(pending.simSec), remaining: eta(pending.done) });
      bar.stop();
    },
  };
}
