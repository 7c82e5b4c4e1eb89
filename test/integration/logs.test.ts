/**
 * GET /jobs/{id}/logs over the real LOGS stream: lines are published here as
 * an agent publishes them (one message per line, logLineSchema), and read
 * back through the API, as pages and as a Server-Sent Events follow over a
 * real HTTP connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyJobEvent } from '../helpers/job-events.ts';
import { encodeJson, type LogLineMessage } from '../../src/wire/messages.ts';
import type { JobEvent } from '../../machines/job.machine.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { startCancelCoordinator, type CancelCoordinator } from '../helpers/coordinator.ts';
import { expectError, expectFieldError, sleep } from '../helpers/expect.ts';

let t: TestApp;
let cancels: CancelCoordinator | undefined;
let base: string;
let user: { id: string; key: string };

beforeAll(async () => {
  // Poll job status often, and wait at most 3 s for a cancelled job's kill to be confirmed.
  t = await startTestApp({}, { logs: { pollMs: 200, settleMs: 3000, keepaliveMs: 300 } });
  // Cancel asks a coordinator; this one answers cancels only, so jobs stay as the tests leave them.
  cancels = await startCancelCoordinator(t);
  user = await t.newUser('logs-user');
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const addr = t.app.server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(async () => {
  await cancels?.stop();
  await t?.close();
});

async function submit(key?: string): Promise<string> {
  const res = await t.call({ method: 'POST', url: '/jobs', payload: exampleJob(), ...(key ? { key } : {}) });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}

async function drive(id: string, events: JobEvent[]) {
  for (const e of events) expect((await applyJobEvent(t.db.orm.em, id, e)).kind).toBe('applied');
}
const RUN: JobEvent[] = [{ type: 'admit' }, { type: 'place', node_id: 'node-a', gpu_indices: [0] }, { type: 'start' }];

const offsets = new Map<string, number>();
/** Publishes lines as the agent does: one message per line, with a message id. */
async function publish(jobId: string, lines: (string | Partial<LogLineMessage>)[], defaults: Partial<LogLineMessage> = {}) {
  for (const l of lines) {
    const offset = offsets.get(jobId) ?? 0;
    offsets.set(jobId, offset + 1);
    const msg: LogLineMessage = {
      job_id: jobId,
      attempt: 1,
      stream: 'stdout',
      line: '',
      time: new Date().toISOString(),
      offset,
      node_id: 'node-a',
      ...defaults,
      ...(typeof l === 'string' ? { line: l } : l),
    };
    await t.bus.js.publish(t.bus.t.subjects.logs(jobId, msg.node_id ?? 'node-a'), encodeJson(msg), {
      msgID: `${jobId}:${msg.attempt}:${msg.stream}:${offset}`,
    });
  }
}

async function logs(jobId: string, query = '', key?: string) {
  return t.call({ method: 'GET', url: `/jobs/${jobId}/logs${query}`, ...(key ? { key } : {}) });
}

/** Every page, following next_cursor; returns the lines and the page sizes. */
async function allPages(jobId: string, query: string) {
  const lines: string[] = [];
  const sizes: number[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 100; i++) {
    const res = await logs(jobId, `${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    lines.push(...body.data.map((d: { line: string }) => d.line));
    sizes.push(body.data.length);
    cursor = body.next_cursor;
    if (cursor === null) return { lines, sizes };
  }
  throw new Error('too many pages');
}

describe('GET /jobs/{id}/logs', () => {
  it('returns every line in order with attempt, stream, line and time', async () => {
    const id = await submit();
    await publish(id, ['one', { line: 'two', stream: 'stderr' }, 'three']);
    const res = await logs(id);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body).toEqual({
      data: [
        { attempt: 1, node_id: 'node-a', stream: 'stdout', line: 'one', time: expect.any(String) },
        { attempt: 1, node_id: 'node-a', stream: 'stderr', line: 'two', time: expect.any(String) },
        { attempt: 1, node_id: 'node-a', stream: 'stdout', line: 'three', time: expect.any(String) },
      ],
      next_cursor: null,
    });
    expect(Date.parse(body.data[0].time)).not.toBeNaN();
  });

  it('a job without output answers an empty page, at once', async () => {
    const id = await submit();
    const started = Date.now();
    expect((await logs(id)).json()).toEqual({ data: [], next_cursor: null });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("shows only this job's lines, not another job's", async () => {
    const a = await submit();
    const b = await submit();
    await publish(a, ['a1']);
    await publish(b, ['b1', 'b2']);
    await publish(a, ['a2']);
    expect((await logs(a)).json().data.map((d: { line: string }) => d.line)).toEqual(['a1', 'a2']);
    expect((await logs(b)).json().data.map((d: { line: string }) => d.line)).toEqual(['b1', 'b2']);
  });

  it('filters by stream and by attempt', async () => {
    const id = await submit();
    await publish(id, [
      { line: 'o1', attempt: 1 },
      { line: 'e1', attempt: 1, stream: 'stderr' },
      { line: 'o2', attempt: 2 },
      { line: 'e2', attempt: 2, stream: 'stderr' },
    ]);
    const lines = async (q: string) => (await logs(id, q)).json().data.map((d: { line: string }) => d.line);
    expect(await lines('?stream=stderr')).toEqual(['e1', 'e2']);
    expect(await lines('?stream=stdout')).toEqual(['o1', 'o2']);
    expect(await lines('?attempt=2')).toEqual(['o2', 'e2']);
    expect(await lines('?attempt=1&stream=stderr')).toEqual(['e1']);
    expect(await lines('?attempt=3')).toEqual([]);
  });

  it('pages with limit and cursor: every line once, in order', async () => {
    const id = await submit();
    const all = Array.from({ length: 25 }, (_, i) => `line ${i}`);
    await publish(id, all.map((line, i) => ({ line, stream: i % 2 ? 'stderr' : 'stdout' })));
    const paged = await allPages(id, '?limit=10');
    expect(paged.lines).toEqual(all);
    expect(paged.sizes).toEqual([10, 10, 5]);
    // With a filter, pages count matching lines. The third page ends at the
    // last stderr line, but a stdout line follows, so it cannot know that no
    // match is left: one more (empty) page says so.
    const stderr = await allPages(id, '?limit=4&stream=stderr');
    expect(stderr.lines).toEqual(all.filter((_, i) => i % 2));
    expect(stderr.sizes).toEqual([4, 4, 4, 0]);
    // A page that ends exactly at the last line says so.
    const exact = await allPages(id, '?limit=25');
    expect(exact.sizes).toEqual([25]);
  });

  it('a cursor continues with lines written after it was handed out', async () => {
    const id = await submit();
    await publish(id, ['a', 'b']);
    const first = (await logs(id, '?limit=1')).json();
    expect(first.data.map((d: { line: string }) => d.line)).toEqual(['a']);
    await publish(id, ['c']);
    const rest = (await logs(id, `?cursor=${encodeURIComponent(first.next_cursor)}`)).json();
    expect(rest).toMatchObject({ data: [{ line: 'b' }, { line: 'c' }], next_cursor: null });
  });

  it('is the owner\'s or an admin\'s: another user gets the 404 an unknown job gets', async () => {
    const mine = await submit(user.key);
    await publish(mine, ['secret']);
    expect((await logs(mine, '', user.key)).json().data).toHaveLength(1);
    expect((await logs(mine)).json().data).toHaveLength(1); // admin
    const other = await t.newUser('someone-else');
    const err = expectError(await logs(mine, '', other.key), 404, 'not_found');
    expect(err.details).toEqual({ job_id: mine });
    expectError(await logs(mine, '?follow=true', other.key), 404, 'not_found');
    expectError(await logs('00000000-0000-0000-0000-000000000000'), 404, 'not_found');
    expectError(await logs('not-a-uuid'), 404, 'not_found');
    expectError(await t.call({ method: 'GET', url: `/jobs/${mine}/logs`, key: null }), 401, 'unauthorized');
  });

  it('stays readable after the job finished', async () => {
    const id = await submit();
    await drive(id, RUN);
    await publish(id, ['training', 'done']);
    await drive(id, [{ type: 'exit', code: 0 }]);
    expect((await t.call({ method: 'GET', url: `/jobs/${id}` })).json().status).toBe('completed');
    expect((await logs(id)).json().data.map((d: { line: string }) => d.line)).toEqual(['training', 'done']);
  });

  it.each([
    ['?limit=0', 'limit'],
    ['?limit=10001', 'limit'],
    ['?limit=x', 'limit'],
    ['?stream=both', 'stream'],
    ['?attempt=0', 'attempt'],
    ['?attempt=x', 'attempt'],
    ['?follow=maybe', 'follow'],
    ['?cursor=nope', 'cursor'],
    ['?cursor=djE6MTA', 'cursor'], // a GET /jobs cursor is not a log cursor
    ['?tail=1', 'tail'],
  ])('%s → 400 naming %s', async (q, field) => {
    const id = await submit();
    expectFieldError(await logs(id, q), field);
  });

  it('accepts the largest page', async () => {
    const id = await submit();
    expect((await logs(id, '?limit=10000')).statusCode).toBe(200);
  });
});

interface SseEvent {
  event: string;
  id?: string;
  data?: string;
}

/** A real HTTP follow: parses the event stream as it arrives. */
async function follow(jobId: string, opts: { query?: string; lastEventId?: string; key?: string } = {}) {
  const ac = new AbortController();
  const res = await fetch(`${base}/jobs/${jobId}/logs?follow=true${opts.query ?? ''}`, {
    headers: {
      authorization: `Bearer ${opts.key ?? t.adminKey}`,
      ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}),
    },
    signal: ac.signal,
  });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let closed = false;
  let buf = '';
  const reading = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev: SseEvent = { event: 'message' };
          let any = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            const m = /^(\w+): ?(.*)$/.exec(line);
            if (!m) continue;
            if (m[1] === 'event') ev.event = m[2]!;
            else if (m[1] === 'id') ev.id = m[2]!;
            else if (m[1] === 'data') ev.data = m[2]!;
            else continue;
            any = true;
          }
          if (any) events.push(ev);
        }
      }
    } catch {
      // aborted by the test
    }
    closed = true;
  })();
  const until = async (cond: () => boolean, what: string, timeoutMs = 8000) => {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; events ${JSON.stringify(events)}`);
      await sleep(20);
    }
  };
  const logLines = () => events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data!).line as string);
  return {
    res,
    events,
    comments,
    logLines,
    until,
    get closed() {
      return closed;
    },
    abort: () => ac.abort(),
    done: reading,
  };
}

async function logConsumers(): Promise<number> {
  return (await t.bus.jsm.streams.info(t.bus.t.streams.LOGS)).state.consumer_count;
}

describe('GET /jobs/{id}/logs?follow=true', () => {
  it('streams the stored lines, then new ones, then `end` once the job is finished, and closes', async () => {
    const id = await submit();
    await drive(id, RUN);
    await publish(id, ['first', { line: 'warning', stream: 'stderr' }, 'second']);

    const f = await follow(id);
    expect(f.res.status).toBe(200);
    expect(f.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(f.res.headers.get('cache-control')).toMatch(/no-cache/);
    expect(f.res.headers.get('x-request-id')).toBeTruthy();
    await f.until(() => f.logLines().length === 3, 'the stored lines');
    expect(f.logLines()).toEqual(['first', 'warning', 'second']);
    const first = f.events[0]!;
    expect(JSON.parse(first.data!)).toEqual({ attempt: 1, node_id: 'node-a', stream: 'stdout', line: 'first', time: expect.any(String) });
    const ids = f.events.filter((e) => e.event === 'log').map((e) => Number(e.id));
    expect(ids.every((n) => Number.isInteger(n) && n > 0)).toBe(true);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);

    // Idle: keepalive comments (every 15 s by default; 300 ms here).
    await f.until(() => f.comments.filter((c) => c === 'keepalive').length >= 2, 'keepalives');
    await publish(id, ['live 1', 'live 2']);
    await f.until(() => f.logLines().length === 5, 'the live lines');
    expect(f.closed).toBe(false);
    expect(t.app.logs.activeFollows).toBe(1);

    await publish(id, ['last words']);
    await drive(id, [{ type: 'exit', code: 3 }]);
    await f.until(() => f.closed, 'the stream to close');
    expect(f.logLines()).toEqual(['first', 'warning', 'second', 'live 1', 'live 2', 'last words']);
    const last = f.events[f.events.length - 1]!;
    expect(last.event).toBe('end');
    expect(JSON.parse(last.data!)).toEqual({ status: 'failed', exit_code: 3 });
    await f.until(() => t.app.logs.activeFollows === 0, 'the follow to stop');
    expect(await logConsumers()).toBe(0);
  });

  it('of a finished job: every line, then `end`, at once', async () => {
    const id = await submit();
    await drive(id, RUN);
    await publish(id, ['a', 'b']);
    await drive(id, [{ type: 'exit', code: 0 }]);
    const f = await follow(id);
    await f.until(() => f.closed, 'the stream to close', 4000);
    expect(f.events.map((e) => e.event)).toEqual(['log', 'log', 'end']);
    expect(JSON.parse(f.events[2]!.data!)).toEqual({ status: 'completed', exit_code: 0 });
  });

  it('of a finished job without output: just `end`', async () => {
    const id = await submit();
    await t.call({ method: 'POST', url: `/jobs/${id}/cancel` });
    const f = await follow(id);
    await f.until(() => f.closed, 'the stream to close', 4000);
    expect(f.events).toEqual([{ event: 'end', data: JSON.stringify({ status: 'cancelled', exit_code: null }) }]);
  });

  it('resumes after Last-Event-ID, and honours the filters', async () => {
    const id = await submit();
    await drive(id, RUN);
    await publish(id, ['o1', { line: 'e1', stream: 'stderr' }, 'o2', { line: 'e2', stream: 'stderr' }]);
    await drive(id, [{ type: 'exit', code: 0 }]);
    const all = await follow(id);
    await all.until(() => all.closed, 'the first follow');
    const second = all.events[1]!;
    expect(JSON.parse(second.data!).line).toBe('e1');

    const resumed = await follow(id, { lastEventId: second.id! });
    await resumed.until(() => resumed.closed, 'the resumed follow');
    expect(resumed.logLines()).toEqual(['o2', 'e2']);

    const errOnly = await follow(id, { query: '&stream=stderr' });
    await errOnly.until(() => errOnly.closed, 'the filtered follow');
    expect(errOnly.logLines()).toEqual(['e1', 'e2']);

    // A cursor from a page works as a starting point too.
    const page = (await logs(id, '?limit=3')).json();
    const fromCursor = await follow(id, { query: `&cursor=${encodeURIComponent(page.next_cursor)}` });
    await fromCursor.until(() => fromCursor.closed, 'the follow from a cursor');
    expect(fromCursor.logLines()).toEqual(['e2']);
  });

  it('a cancelled job that still holds GPUs: lines until the kill is confirmed, then `end`', async () => {
    const id = await submit();
    await drive(id, RUN);
    const em = t.db.orm.em.fork();
    await em.execute(
      `insert into allocations (job_id, attempt, node_id, gpu_index, created_at) values (?, 1, 'node-a', 0, now())`,
      [id],
    );
    await publish(id, ['working']);
    const f = await follow(id);
    await f.until(() => f.logLines().length === 1, 'the first line');
    expect((await t.call({ method: 'POST', url: `/jobs/${id}/cancel` })).json().status).toBe('cancelled');
    // The process is still being killed: its last lines come after the cancel.
    await sleep(600);
    expect(f.closed).toBe(false);
    await publish(id, [{ line: 'got SIGTERM', stream: 'stderr' }]);
    await f.until(() => f.logLines().length === 2, 'the line printed while dying');
    // The agent confirms the kill: the coordinator releases the GPUs.
    await em.execute('update allocations set released_at = now() where job_id = ?', [id]);
    await f.until(() => f.closed, 'the stream to close');
    expect(f.events[f.events.length - 1]).toEqual({ event: 'end', data: JSON.stringify({ status: 'cancelled', exit_code: null }) });
  });

  it('a client that disconnects stops the server-side follow and its consumer', async () => {
    const id = await submit();
    await drive(id, RUN);
    await publish(id, ['hello']);
    const before = await logConsumers();
    const f = await follow(id);
    await f.until(() => f.logLines().length === 1, 'the first line');
    expect(t.app.logs.activeFollows).toBe(1);
    expect(await logConsumers()).toBe(before + 1);
    f.abort();
    await f.done;
    await f.until(() => t.app.logs.activeFollows === 0, 'the server to notice');
    const deadline = Date.now() + 5000;
    while ((await logConsumers()) !== before && Date.now() < deadline) await sleep(50);
    expect(await logConsumers()).toBe(before);
    // The job is untouched and can be followed again.
    const again = await follow(id);
    await again.until(() => again.logLines().length === 1, 'the line again');
    again.abort();
    await again.done;
    await again.until(() => t.app.logs.activeFollows === 0, 'the second follow to stop');
  });

  it('closing the API ends open follows instead of waiting for them', async () => {
    // A second app on the same database and bus, so closing it leaves the shared one running.
    const { buildApp } = await import('../../src/api/app.ts');
    const pino = (await import('pino')).default;
    const app = await buildApp({ cfg: t.cfg, orm: t.db.orm, log: pino({ level: 'silent' }), bus: t.bus });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const id = await submit();
    await drive(id, RUN);
    await publish(id, ['x']);
    const res = await fetch(`http://127.0.0.1:${port}/jobs/${id}/logs?follow=true`, {
      headers: { authorization: `Bearer ${t.adminKey}` },
    });
    const reader = res.body!.getReader();
    await reader.read();
    expect(app.logs.activeFollows).toBe(1);
    const started = Date.now();
    await app.close();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(app.logs.activeFollows).toBe(0);
    // The stream ends (cleanly or not) rather than hanging.
    for (;;) {
      const r = await reader.read().catch(() => ({ done: true }));
      if (r.done) break;
    }
  });
});
