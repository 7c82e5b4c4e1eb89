/**
 * Virtual time for the simulator: a Clock (src/domain/clock.ts) whose timers
 * sit in a heap and fire only when the driver moves time to them. Nothing
 * ever sleeps; a replay of two months takes as long as its work does.
 */
import type { Clock, Timer } from '../domain/clock.ts';

interface Entry {
  at: number;
  /** Creation order: timers due at the same instant fire in the order they were set. */
  seq: number;
  fn: () => void;
  every: number | null;
  cancelled: boolean;
}

export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly heap: Entry[] = [];

  constructor(startMs: number) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.add(fn, Math.max(0, ms), null);
  }

  setInterval(fn: () => void, ms: number): Timer {
    if (!(ms > 0)) throw new Error('an interval must be > 0 ms');
    return this.add(fn, ms, ms);
  }

  /** When the next live timer fires (ms), or null when none is set. */
  next(): number | null {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    return this.heap.length > 0 ? this.heap[0]!.at : null;
  }

  /**
   * Moves time to the next timer and fires every timer due then (those set
   * while firing for the same instant fire at the driver's next call).
   * Returns false when no timer is set.
   */
  fireNext(): boolean {
    const at = this.next();
    if (at === null) return false;
    if (at > this.t) this.t = at;
    const due: Entry[] = [];
    while (this.heap.length > 0 && this.heap[0]!.at <= at) {
      const e = this.pop();
      if (!e.cancelled) due.push(e);
    }
    for (const e of due) {
      if (e.cancelled) continue;
      if (e.every !== null) {
        e.at += e.every;
        e.seq = this.seq++;
        this.push(e);
      }
      e.fn();
    }
    return true;
  }

  private add(fn: () => void, ms: number, every: number | null): Timer {
    const e: Entry = { at: this.t + ms, seq: this.seq++, fn, every, cancelled: false };
    this.push(e);
    return { cancel: () => void (e.cancelled = true) };
  }

  // A binary min-heap on (at, seq).
  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Entry {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
