/**
 * Publishing the node's events to `<prefix>.node.<id>.events`. Each publish
 * awaits its PubAck and is retried with backoff until stored (or the agent
 * stops). Per attempt, events go out one at a time, in order, on a chain:
 * `started` before `exited`, and the final event (exited / launch_failed)
 * only once every log line of the attempt is stored.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Bus } from '../../src/wire/connection.ts';
import { encodeJson, type ExitedEvent, type LaunchFailedEvent, type NodeBusEvent, type StartedEvent } from '../../src/wire/messages.ts';
import { attemptKey } from '../../src/domain/cluster.ts';
import type { AttemptTable } from './attempts.ts';
import { deferred, MAX_BACKOFF_MS, type Lifecycle } from './lifecycle.ts';
import type { LogShipper } from './logs.ts';
import type { ExecutionEntry } from './state.ts';

export class Reporter {
  /** Per attempt: the tail of its event chain, so its events go out one at a time, in order. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly firstRegistration = deferred();
  private registeredOnce = false;

  constructor(
    private readonly bus: Bus,
    private readonly nodeId: string,
    private readonly attempts: AttemptTable,
    private readonly shipper: LogShipper,
    private readonly lifecycle: Lifecycle,
    private readonly log: Logger,
  ) {}

  /** The agent's first `registered` of this start is stored: other events may go out. */
  firstRegistrationDone(): void {
    this.registeredOnce = true;
    this.firstRegistration.resolve();
  }

  /** Publishes `started` once `after` settles, on the attempt's chain (so before any later event of it). */
  started(key: string, e: ExecutionEntry, after: Promise<void>): Promise<boolean> {
    return this.onChain(key, async () => {
      await after;
      return this.publish(this.startedEvent(e));
    });
  }

  /** Answers a run/kill for an attempt already known: its current status, once more. */
  republish(key: string, e: ExecutionEntry): Promise<boolean> {
    if (e.status === 'running') return this.onChain(key, () => this.publish(this.startedEvent(e)));
    if (e.status === 'exited' && e.reported) return this.onChain(key, () => this.publish(this.finalEvent(e)));
    // Ended but not reported yet: its final event is on its way (after its logs).
    return Promise.resolve(true);
  }

  /** Publishes the final event once every log line is stored, then records that it was. */
  report(e: ExecutionEntry): Promise<boolean> {
    const key = attemptKey(e);
    return this.onChain(key, async () => {
      if (e.reported) return this.publish(this.finalEvent(e));
      await this.shipper.drained(key);
      if (this.lifecycle.stopping) return false;
      const dropped = this.shipper.dropped(key);
      if (dropped) this.log.warn({ job_id: e.job_id, attempt: e.attempt, dropped }, 'log lines were dropped for this attempt');
      if (!(await this.publish(this.finalEvent(e)))) return false;
      e.reported = true;
      this.shipper.forget(key);
      // Into the done log first, then out of the state file: a crash in between only leaves it in both
      // (and it is reported again), so that second write need not be immediate.
      await this.attempts.appendDone(e).catch((err) =>
        this.log.warn({ err, job_id: e.job_id }, 'could not append to the done log; the attempt may be reported again after a restart'),
      );
      this.attempts.saveSoon();
      return true;
    });
  }

  /**
   * Publishes to this node's events subject and awaits the PubAck, retrying
   * with backoff until it is stored. False when the agent stopped first.
   * Everything but `registered` waits for the first registration.
   */
  async publish(ev: NodeBusEvent, isRegistration = false): Promise<boolean> {
    if (!isRegistration && !this.registeredOnce) {
      await Promise.race([this.firstRegistration.promise, this.lifecycle.stopped]);
    }
    const subject = this.bus.t.subjects.nodeEvents(this.nodeId);
    // One id per logical publish: a retry after a lost PubAck is not stored twice,
    // a deliberate re-publish (on request) is.
    const msgID = randomUUID();
    let delay = 100;
    for (;;) {
      if (this.lifecycle.stopping || this.bus.nc.isClosed()) return false;
      try {
        await this.bus.js.publish(subject, encodeJson(ev), { msgID });
        return true;
      } catch (err) {
        if (this.lifecycle.stopping || this.bus.nc.isClosed()) return false;
        this.log.warn({ err: (err as Error).message, type: ev.type }, 'publishing an event failed; retrying');
        await this.lifecycle.sleep(delay);
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      }
    }
  }

  private onChain(key: string, fn: () => Promise<boolean>): Promise<boolean> {
    const prev = this.chains.get(key) ?? Promise.resolve();
    const p = prev.then(fn, fn);
    const tail = p.catch(() => undefined);
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return p;
  }

  private startedEvent(e: ExecutionEntry): StartedEvent {
    return { type: 'started', node_id: this.nodeId, job_id: e.job_id, attempt: e.attempt, pid: e.pid ?? null, time: new Date().toISOString() };
  }

  private finalEvent(e: ExecutionEntry): ExitedEvent | LaunchFailedEvent {
    const base = { node_id: this.nodeId, job_id: e.job_id, attempt: e.attempt, time: new Date().toISOString() };
    if (e.launch_failed !== undefined) {
      return { type: 'launch_failed', ...base, reason: e.launch_failed, ...(e.launch_failed_code ? { code: e.launch_failed_code } : {}) };
    }
    const x = e.exit ?? { code: -1, signal: null, killed: !!e.killRequested };
    return { type: 'exited', ...base, code: x.code, signal: x.signal, killed: x.killed };
  }
}
