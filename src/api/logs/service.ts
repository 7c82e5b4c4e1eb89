import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { Bus } from '../../wire/connection.ts';
import { logLineSchema } from '../../wire/messages.ts';
import { isTerminal, type JobStatus } from '../../../machines/job.machine.ts';
import { ApiError } from '../common/errors.ts';
import type { LogLine, LogPage, LogStreamName } from './schemas.ts';

/**
 * Job logs, read from the LOGS stream where agents publish every line
 * (`<prefix>.logs.<job_id>.<node_id>`, one message per line; only that
 * node's credential may publish on it, see src/wire/permissions.ts). Nothing is copied to
 * Postgres: lines live in the stream until SCALAR_LOG_RETENTION_HOURS or
 * SCALAR_LOG_MAX_MB drop them, whatever the job's status.
 *
 * Every read uses its own ordered consumer (ephemeral, in memory, no acks)
 * filtered on the job's subject, starting after a stream sequence, and
 * deletes it when done. A position in a job's log is that stream sequence.
 */

/** A line with its position in the stream. */
export interface SeqLine {
  seq: number;
  line: LogLine;
}

export interface LogFilter {
  stream?: LogStreamName;
  attempt?: number;
}

export interface FollowSink {
  /** One matching line; resolves once it was written (or the client left). */
  line(seq: number, line: LogLine): Promise<void>;
  /** The job is finished and every line was sent. */
  end(final: { status: JobStatus; exit_code: number | null }): Promise<void>;
}

export interface LogServiceOptions {
  /** How often a follow re-reads the job's status (default 1 s). */
  pollMs?: number;
  /**
   * After a job turned terminal, how long a follow waits for its agent to
   * confirm the process ended (its GPUs are released then) before it ends
   * anyway. Matters for cancel: the row is cancelled before the kill.
   */
  settleMs?: number;
  /** How often a follow sends a `: keepalive` comment, so proxies keep an idle stream open (default 15 s). */
  keepaliveMs?: number;
}

/** Messages one page request may scan while filters reject them; then it answers a short page with a cursor. */
const SCAN_MAX = 50_000;
const FETCH_BATCH = 1000;
/** A read that gets nothing for this long stops instead of waiting (the consumer said more were pending). */
const FETCH_EXPIRES_MS = 2000;

const CURSOR_TAG = 'l1';

export function encodeLogCursor(seq: number): string {
  return Buffer.from(`${CURSOR_TAG}:${seq}`).toString('base64url');
}

/** The stream sequence a cursor names (0 for none). */
export function decodeLogCursor(cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  const m = /^l1:(\d{1,18})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) {
    throw new ApiError('validation_failed', 'cursor: is not a log cursor this API returned', {
      fields: [{ field: 'cursor', location: 'querystring', message: 'is not a log cursor this API returned' }],
    });
  }
  return Number(m[1]);
}

export class LogService {
  /** The abort of each running follow: stop() calls them all. */
  private readonly follows = new Set<() => void>();
  private readonly pollMs: number;
  private readonly settleMs: number;
  readonly keepaliveMs: number;

  constructor(
    private readonly orm: MikroORM,
    private readonly bus: Bus | undefined,
    private readonly log: Logger,
    opts: LogServiceOptions = {},
  ) {
    this.pollMs = opts.pollMs ?? 1000;
    this.settleMs = opts.settleMs ?? 30_000;
    this.keepaliveMs = opts.keepaliveMs ?? 15_000;
  }

  /** How many follows are streaming right now (for tests and metrics). */
  get activeFollows(): number {
    return this.follows.size;
  }

  /** The bus, or the 503 a log read answers without one. */
  requireBus(): Bus {
    if (!this.bus) throw new ApiError('unavailable', 'logs need NATS, and this API process has no NATS connection', {});
    if (this.bus.nc.isClosed()) throw new ApiError('unavailable', 'NATS is unreachable; retry shortly', {});
    return this.bus;
  }

  private async consumer(bus: Bus, jobId: string, after: number): Promise<Consumer> {
    try {
      return await bus.js.consumers.get(bus.t.streams.LOGS, {
        filter_subjects: LogService.subjectsOf(bus, jobId),
        opt_start_seq: after + 1,
        inactive_threshold: 60_000,
      });
    } catch (err) {
      this.log.warn({ err, job_id: jobId }, 'cannot open a consumer on the LOGS stream');
      throw new ApiError('unavailable', 'the log stream is unavailable; retry shortly', {});
    }
  }

  /**
   * The subjects of a job's lines. Lines of agents older than per-node log
   * subjects (`<prefix>.logs.<job_id>`) are read too where the server takes
   * several filters (2.10 and later).
   */
  private static subjectsOf(bus: Bus, jobId: string): string | string[] {
    const current = bus.t.subjects.jobLogs(jobId);
    const [major = 0, minor = 0] = (bus.nc.info?.version ?? '0.0').split('.').map(Number);
    return major > 2 || (major === 2 && minor >= 10) ? [current, bus.t.subjects.legacyJobLogs(jobId)] : current;
  }

  private parse(m: JsMsg, jobId: string): LogLine | null {
    let raw: unknown;
    try {
      raw = m.json();
    } catch {
      return null;
    }
    const p = logLineSchema.safeParse(raw);
    // The subject names the node whose credential published it: a line that claims another node is not that node's.
    const fromNode = m.subject.split('.').length === 4 ? m.subject.slice(m.subject.lastIndexOf('.') + 1) : undefined;
    if (!p.success || p.data.job_id !== jobId || (fromNode !== undefined && p.data.node_id !== undefined && p.data.node_id !== fromNode)) {
      this.log.debug({ seq: m.seq, subject: m.subject }, 'skipping a malformed log message');
      return null;
    }
    return { attempt: p.data.attempt, node_id: fromNode ?? p.data.node_id ?? null, stream: p.data.stream, line: p.data.line, time: p.data.time };
  }

  private static matches(l: LogLine, f: LogFilter): boolean {
    return (f.stream === undefined || l.stream === f.stream) && (f.attempt === undefined || l.attempt === f.attempt);
  }

  /**
   * One page of a job's log, oldest first, after `cursor`. Stops when the
   * consumer reports nothing more pending, so it never waits for lines that
   * have not been written yet.
   */
  async page(jobId: string, q: LogFilter & { limit: number; cursor?: string }): Promise<LogPage> {
    const after = decodeLogCursor(q.cursor);
    const bus = this.requireBus();
    const c = await this.consumer(bus, jobId, after);
    const data: LogLine[] = [];
    let last = after;
    try {
      let pending = (await c.info(true)).num_pending;
      let scanned = 0;
      while (pending > 0 && data.length < q.limit && scanned < SCAN_MAX) {
        const iter = await c.fetch({ max_messages: Math.min(pending, FETCH_BATCH), expires: FETCH_EXPIRES_MS });
        let got = 0;
        for await (const m of iter) {
          got++;
          scanned++;
          last = m.seq;
          pending = m.info.pending;
          const l = this.parse(m, jobId);
          if (l && LogService.matches(l, q)) data.push(l);
          if (data.length >= q.limit || pending === 0 || scanned >= SCAN_MAX) break;
        }
        // The server had said more were pending, but none came: do not wait longer.
        if (got === 0) break;
      }
      return { data, next_cursor: pending > 0 ? encodeLogCursor(last) : null };
    } catch (err) {
      if (err instanceof ApiError) throw err;
      this.log.warn({ err, job_id: jobId }, 'reading the LOGS stream failed');
      throw new ApiError('unavailable', 'the log stream is unavailable; retry shortly', {});
    } finally {
      await c.delete().catch(() => undefined);
    }
  }

  /** The job's status, exit code and whether its current attempt still holds GPUs. */
  private async jobState(jobId: string): Promise<{ status: JobStatus; exit_code: number | null; holds: boolean } | null> {
    const [row] = await this.orm.em.fork().execute<{ status: string; exit_code: number | null; holds: boolean }[]>(
      `select j.status, j.exit_code,
              exists(select 1 from allocations a where a.job_id = j.id and a.released_at is null) as holds
         from jobs j where j.id = ?`,
      [jobId],
    );
    return row ? { status: row.status as JobStatus, exit_code: row.exit_code ?? null, holds: row.holds } : null;
  }

  /** The stream sequence of the job's last stored line (0 when it has none). */
  private async lastSeq(bus: Bus, jobId: string): Promise<number> {
    const subjects = [LogService.subjectsOf(bus, jobId)].flat();
    const last = await Promise.all(subjects.map((s) => bus.jsm.streams.getMessage(bus.t.streams.LOGS, { last_by_subj: s })));
    return Math.max(0, ...last.map((m) => m?.seq ?? 0));
  }

  /**
   * Streams a job's lines after `after` to `sink` as they arrive, until the
   * job is terminal and every stored line was sent (then `sink.end`), or
   * until `signal` aborts (the client left) or the service stops.
   *
   * Agents publish every line of an attempt before reporting its exit, so
   * once the row is terminal (and, for a cancel, its GPUs were released,
   * which happens when the agent confirms the kill) the last line is already
   * in the stream: the follow ends after it.
   */
  async follow(jobId: string, opts: LogFilter & { after: number }, sink: FollowSink, signal: AbortSignal): Promise<void> {
    const bus = this.requireBus();
    const ac = new AbortController();
    let current: ConsumerMessages | undefined;
    const abort = () => {
      ac.abort();
      current?.stop();
    };
    if (signal.aborted) return;
    signal.addEventListener('abort', abort);
    this.follows.add(abort);
    let c: Consumer | undefined;
    try {
      c = await this.consumer(bus, jobId, opts.after);
      let last = opts.after;
      let endAt: number | null = null;
      let final: { status: JobStatus; exit_code: number | null } | null = null;
      let terminalSince: number | null = null;
      let nextPoll = 0;
      while (!ac.signal.aborted) {
        if (endAt === null && Date.now() >= nextPoll) {
          nextPoll = Date.now() + this.pollMs;
          const s = await this.jobState(jobId);
          if (!s) return; // the job was deleted with its user: nothing more will come
          if (isTerminal(s.status)) {
            terminalSince ??= Date.now();
            if (!s.holds || Date.now() - terminalSince >= this.settleMs) {
              final = { status: s.status, exit_code: s.exit_code };
              endAt = await this.lastSeq(bus, jobId);
            }
          }
        }
        if (endAt !== null && last >= endAt) {
          if (!ac.signal.aborted) await sink.end(final!);
          return;
        }
        // Lines are handed over as they arrive; an idle fetch ends after `expires` for the next status poll.
        current = await c.fetch({ max_messages: 256, expires: Math.max(1000, this.pollMs) });
        if (ac.signal.aborted) {
          current.stop();
          break;
        }
        for await (const m of current) {
          last = m.seq;
          const l = this.parse(m, jobId);
          if (l && LogService.matches(l, opts)) await sink.line(m.seq, l);
          if (ac.signal.aborted || (endAt !== null && last >= endAt)) break;
        }
      }
    } finally {
      signal.removeEventListener('abort', abort);
      this.follows.delete(abort);
      current?.stop();
      await c?.delete().catch(() => undefined);
    }
  }

  /** Ends every follow (shutdown): their consumers are deleted and their responses closed. */
  stop(): void {
    for (const abort of this.follows) abort();
  }
}
