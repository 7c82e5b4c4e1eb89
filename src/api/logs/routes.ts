import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ApiError } from '../common/errors.ts';
import { decodeLogCursor } from './service.ts';
import { authErrors, ErrorResponse, existingId, IdParams } from '../common/schemas.ts';
import { LogHeaders, LogPage, LogQuery } from './schemas.ts';

export const logRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/jobs/:id/logs',
    {
      schema: {
        tags: ['jobs'],
        summary: "A job's stdout and stderr, oldest line first",
        description:
          'Same visibility as GET /jobs/{id}: the owner or an admin. Lines stay readable after the job ends, ' +
          'until SCALAR_LOG_RETENTION_HOURS (or SCALAR_LOG_MAX_MB) drops them. Pages hold at most `limit` ' +
          'lines; follow `next_cursor` while it is not null. A page can be shorter than `limit` (filters scan ' +
          'a bounded number of lines per request) and still have a cursor.\n\n' +
          'With `follow=true` the answer is `text/event-stream`: the stored lines after `cursor` (or after ' +
          '`Last-Event-ID`), then each new line as it is written, each as `event: log` with `id:` and ' +
          '`data: {"attempt","stream","line","time"}`; a `: keepalive` comment every 15 s; and once the job is ' +
          'finished and every line was sent, `event: end` with `data: {"status","exit_code"}`, and the stream ' +
          'closes. `limit` does not apply to a follow.',
        params: IdParams,
        querystring: LogQuery,
        headers: LogHeaders,
        response: { 200: LogPage, 404: ErrorResponse, ...authErrors },
      },
    },
    async (req, reply) => {
      const id = existingId('job', req.params.id);
      await app.jobs.visibleRow(req.principal, id);
      const { follow, stream, attempt, limit, cursor } = req.query;
      if (!follow) return app.logs.page(id, { stream, attempt, limit, cursor });

      // Everything that can be refused is refused before the event stream starts, as JSON.
      const lastEventId = req.headers['last-event-id'];
      const after = lastEventId !== undefined ? Number(lastEventId) : decodeLogCursor(cursor);
      app.logs.requireBus();

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        // The socket closes with the stream: a finished follow (or a shutdown) leaves no idle connection behind.
        connection: 'close',
        // nginx and friends: pass events through as they come.
        'x-accel-buffering': 'no',
        'x-request-id': req.id,
      });
      res.flushHeaders();

      const left = new AbortController();
      const onClose = () => left.abort();
      res.on('close', onClose);
      /** Writes one chunk; resolves when the socket took it (backpressure) or the client is gone. */
      const write = (chunk: string): Promise<void> =>
        new Promise((resolve) => {
          if (res.writableEnded || res.destroyed) return resolve();
          if (res.write(chunk)) return resolve();
          const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.once('drain', done);
          res.once('close', done);
        });
      // A comment now and then keeps proxies from closing an idle stream.
      const keepalive = setInterval(() => void write(': keepalive\n\n'), app.logs.keepaliveMs);
      const started = Date.now();
      let lines = 0;
      let ended = false;
      try {
        await write('retry: 2000\n\n');
        await app.logs.follow(
          id,
          { after, stream, attempt },
          {
            line: (seq, line) => {
              lines++;
              return write(`id: ${seq}\nevent: log\ndata: ${JSON.stringify(line)}\n\n`);
            },
            end: (final) => {
              ended = true;
              return write(`event: end\ndata: ${JSON.stringify(final)}\n\n`);
            },
          },
          left.signal,
        );
      } catch (err) {
        const api =
          err instanceof ApiError ? err : new ApiError('internal', `log follow failed; quote request id ${req.id}`, {});
        if (api.status >= 500) req.log.error({ err }, 'log follow failed');
        await write(`event: error\ndata: ${JSON.stringify(api.toBody().error)}\n\n`);
      } finally {
        // A hijacked reply gets no request-completed log line from fastify: this is it.
        req.log.info(
          { job_id: id, lines, ms: Date.now() - started, why: ended ? 'job finished' : left.signal.aborted ? 'client left' : 'stopped' },
          'log follow ended',
        );
        clearInterval(keepalive);
        res.off('close', onClose);
        if (!res.writableEnded) res.end();
      }
    },
  );
};
