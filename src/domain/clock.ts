/**
 * Time as the runtime sees it. Production code asks a Clock for the time
 * and for timers instead of calling Date.now() and setTimeout() itself, so
 * the same code runs in virtual time: `scalar simulate` hands the
 * coordinator a clock that jumps from one event to the next and never sleeps
 * (src/sim/clock.ts).
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** ms since the epoch. */
  now(): number;
  /** Runs `fn` once, `ms` from now. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Runs `fn` every `ms`. */
  setInterval(fn: () => void, ms: number): Timer;
}

/**
 * The wall clock. Its timers do not keep the process alive (unref): every
 * runtime timer is housekeeping that a shutdown stops anyway.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};
