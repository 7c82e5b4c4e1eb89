/**
 * Group commit: concurrent callers each hand in one item and wait; items that
 * arrive while a batch is being written are written together in the next one.
 * One commit then serves many requests, so throughput is bounded by how many
 * rows a transaction can take, not by the ~1 ms a commit costs.
 *
 * Every caller is answered only after the transaction holding its item has
 * committed; if that transaction fails, every caller in it gets the error.
 */
export class GroupCommitter<T, R> {
  private queue: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private inFlight = 0;
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    /** Writes a batch in one transaction; returns one result per item, in order. */
    private readonly write: (items: T[]) => Promise<R[]>,
    private readonly opts: { maxBatch: number; maxInFlight: number },
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once nothing is queued or being written (for graceful shutdown). */
  drain(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.opts.maxInFlight) return;
    this.scheduled = true;
    // setImmediate, not a microtask: requests parsed in the same I/O turn join this batch.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < this.opts.maxInFlight) {
      const batch = this.queue.splice(0, this.opts.maxBatch);
      this.inFlight++;
      this.write(batch.map((b) => b.item))
        .then(
          (results) => batch.forEach((b, i) => b.resolve(results[i] as R)),
          (err) => batch.forEach((b) => b.reject(err)),
        )
        .finally(() => {
          this.inFlight--;
          if (this.queue.length > 0) this.schedule();
          else if (this.inFlight === 0) this.idleWaiters.splice(0).forEach((w) => w());
        });
    }
  }
}
