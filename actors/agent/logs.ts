/**
 * Ships job log lines to the LOGS stream: JetStream publishes with a message
 * id `<job_id>:<attempt>:<stream>:<offset>` (so a line read again after an
 * agent restart is stored once), at most `window` PubAcks outstanding,
 * failed publishes retried with backoff until they succeed or the shipper is
 * aborted.
 *
 * Runtimes hand lines to a synchronous sink, so the file reader cannot be
 * paused: lines wait in a queue bounded by `maxQueuedBytes`. Past that bound
 * new lines are dropped (counted, and logged once per attempt) rather than
 * growing memory without bound; that only happens when JetStream is
 * unreachable or far slower than a job's output for a long time.
 *
 * Per attempt it tracks what is not yet acked, so the agent can (a) publish
 * `exited` only after every line is stored and (b) persist a log offset no
 * later than the first unacked line, so a restarted agent re-reads it.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { LogLine, LogStream } from '../../src/runtimes/types.ts';
import { encodeJson, type LogLineMessage } from '../../src/wire/messages.ts';
import { Sleepers } from './sleepers.ts';

export interface LogShipperOptions {
  /** Most PubAcks outstanding at once. Default 256. */
  window?: number;
  /** Most bytes of lines waiting to be sent before new ones are dropped. Default 64 MiB. */
  maxQueuedBytes?: number;
  /** True once the connection is closed for good: publishing stops. */
  isClosed?: () => boolean;
  /**
   * This agent's node. Every line says which node printed it, and the
   * JetStream de-duplication id starts with it: the members of a gang write
   * the same (job, attempt, stream, offset), and without the node in the id
   * JetStream would keep only the first member's line.
   */
  nodeId?: string;
}

interface Item {
  key: string;
  subject: string;
  data: Uint8Array;
  msgID: string;
  stream: LogStream;
  offset: number;
}

interface AttemptLogs {
  /** Lines queued or in flight. */
  count: number;
  /** Offsets queued or in flight, per stream, in the (increasing) order the tail emitted them. */
  pending: Record<LogStream, Set<number>>;
  dropped: number;
  waiters: Array<() => void>;
}

const MAX_BACKOFF_MS = 5000;

export class LogShipper {
  private readonly window: number;
  private readonly maxQueuedBytes: number;
  private readonly queue: Item[] = [];
  private head = 0;
  private queuedBytes = 0;
  private inflight = 0;
  private aborted = false;
  private readonly attempts = new Map<string, AttemptLogs>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly sleepers = new Sleepers();
  private lastWarnAt = 0;

  constructor(
    private readonly js: JetStreamClient,
    private readonly subjectOf: (jobId: string) => string,
    private readonly log: Logger,
    private readonly opts: LogShipperOptions = {},
  ) {
    this.window = opts.window ?? 256;
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 64 * 1024 * 1024;
  }

  /** Lines queued or awaiting their PubAck, over all attempts. */
  get outstanding(): number {
    return this.queue.length - this.head + this.inflight;
  }

  /** Queues one line of attempt `key` (= attemptKey). Never throws. */
  enqueue(key: string, jobId: string, attempt: number, line: LogLine): void {
    if (this.aborted) return;
    const a = this.attemptLogs(key);
    const msg: LogLineMessage = {
      job_id: jobId,
      attempt,
      stream: line.stream,
      line: line.line,
      time: line.time.toISOString(),
      offset: line.offset,
      ...(this.opts.nodeId ? { node_id: this.opts.nodeId } : {}),
    };
    const data = encodeJson(msg);
    if (this.queuedBytes + data.length > this.maxQueuedBytes) {
      if (a.dropped++ === 0) {
        this.log.warn(
          { job_id: jobId, attempt, queued_bytes: this.queuedBytes },
          'log queue full (JetStream too slow or unreachable): dropping log lines of this attempt',
        );
      }
      return;
    }
    a.count++;
    a.pending[line.stream].add(line.offset);
    this.queue.push({
      key,
      subject: this.subjectOf(jobId),
      data,
      msgID: `${this.opts.nodeId ? `${this.opts.nodeId}:` : ''}${jobId}:${attempt}:${line.stream}:${line.offset}`,
      stream: line.stream,
      offset: line.offset,
    });
    this.queuedBytes += data.length;
    this.pump();
  }

  /** Resolves once every line of `key` queued so far is acked (or the shipper was aborted). */
  drained(key: string): Promise<void> {
    const a = this.attempts.get(key);
    if (!a || a.count === 0 || this.aborted) return Promise.resolve();
    return new Promise((resolve) => a.waiters.push(resolve));
  }

  /** The smallest offset of `stream` of `key` not yet acked, if any. */
  firstPendingOffset(key: string, stream: LogStream): number | undefined {
    const set = this.attempts.get(key)?.pending[stream];
    if (!set || set.size === 0) return undefined;
    return set.values().next().value;
  }

  /** How many lines of `key` were dropped because the queue was full. */
  dropped(key: string): number {
    return this.attempts.get(key)?.dropped ?? 0;
  }

  /** Forgets an attempt whose lines are all shipped. */
  forget(key: string): void {
    const a = this.attempts.get(key);
    if (a && a.count === 0) this.attempts.delete(key);
  }

  /** Waits up to `timeoutMs` for everything queued to be acked; true when it was. */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.outstanding === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([idle, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops sending: what is queued or in flight stays pending (its offsets
   * keep the persisted resume point before it), and every waiter is released.
   */
  abort(): void {
    this.aborted = true;
    this.sleepers.wakeAll();
    for (const a of this.attempts.values()) this.release(a);
    this.releaseIdle();
  }

  private attemptLogs(key: string): AttemptLogs {
    let a = this.attempts.get(key);
    if (!a) {
      a = { count: 0, pending: { stdout: new Set(), stderr: new Set() }, dropped: 0, waiters: [] };
      this.attempts.set(key, a);
    }
    return a;
  }

  private pump(): void {
    while (!this.aborted && this.inflight < this.window && this.head < this.queue.length) {
      const item = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as Item;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.queuedBytes -= item.data.length;
      this.inflight++;
      void this.send(item).finally(() => {
        this.inflight--;
        this.pump();
        if (this.outstanding === 0) this.releaseIdle();
      });
    }
  }

  private async send(item: Item): Promise<void> {
    let delay = 100;
    for (;;) {
      if (this.aborted || this.opts.isClosed?.()) return;
      try {
        await this.js.publish(item.subject, item.data, { msgID: item.msgID });
        break;
      } catch (err) {
        if (this.aborted || this.opts.isClosed?.()) return;
        const now = Date.now();
        if (now - this.lastWarnAt > 10_000) {
          this.lastWarnAt = now;
          this.log.warn({ err: (err as Error).message, outstanding: this.outstanding }, 'publishing log lines failed; retrying');
        }
        await this.sleep(delay);
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      }
    }
    const a = this.attempts.get(item.key);
    if (!a) return;
    a.pending[item.stream].delete(item.offset);
    a.count--;
    if (a.count === 0) this.release(a);
  }

  private release(a: AttemptLogs): void {
    const waiters = a.waiters.splice(0);
    for (const w of waiters) w();
  }

  private releaseIdle(): void {
    const waiters = this.idleWaiters.splice(0);
    for (const w of waiters) w();
  }

  private sleep(ms: number): Promise<void> {
    return this.sleepers.sleep(ms);
  }

}
