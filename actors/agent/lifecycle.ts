/**
 * The agent's stop signal, shared by its parts: whether stop() has begun, a
 * promise that settles when it does, and backoff sleeps it cuts short.
 */
import { Sleepers } from './sleepers.ts';

/** The longest backoff between retries (publishing an event, consuming commands). */
export const MAX_BACKOFF_MS = 5000;

export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export class Lifecycle {
  private stopFlag = false;
  private readonly stopSignal = deferred();
  private readonly sleepers = new Sleepers();

  /** True once stop() has begun. */
  get stopping(): boolean {
    return this.stopFlag;
  }

  /** Settles when stop() begins. */
  get stopped(): Promise<void> {
    return this.stopSignal.promise;
  }

  /** Marks the agent stopping and wakes every pending sleep. */
  stop(): void {
    this.stopFlag = true;
    this.stopSignal.resolve();
    this.sleepers.wakeAll();
  }

  /** Resolves after `ms`, or at once when the agent stops. */
  sleep(ms: number): Promise<void> {
    return this.stopFlag ? Promise.resolve() : this.sleepers.sleep(ms);
  }
}
