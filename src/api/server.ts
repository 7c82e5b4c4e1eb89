import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { Database } from '../db/database.ts';
import { buildApp } from './app.ts';

export interface RunningApi {
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/** Builds the API over an open database and listens on HOST:PORT. */
export async function startApi(cfg: Config, db: Database, log: Logger): Promise<RunningApi> {
  const app = await buildApp({ cfg, orm: db.orm, log: log.child({ component: 'api' }) });
  await app.listen({ port: cfg.PORT, host: cfg.HOST });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.PORT;
  const host = cfg.HOST === '0.0.0.0' || cfg.HOST === '::' ? '127.0.0.1' : cfg.HOST;
  return { app, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, close: () => app.close() };
}

/**
 * Graceful shutdown on SIGTERM/SIGINT: stop accepting, let in-flight requests
 * finish (bounded by SCALAR_SHUTDOWN_GRACE_MS), then run `cleanup` (flush and
 * close the database). A second signal, a second or more later, exits at once.
 */
export function onShutdown(log: Logger, graceMs: number, cleanup: () => Promise<void>): void {
  let stoppingSince = 0;
  const stop = (signal: string) => {
    if (stoppingSince) {
      // Ctrl-C under `npm start` delivers SIGINT twice at once (from the
      // terminal and forwarded by npm); only a later, deliberate one forces exit.
      if (Date.now() - stoppingSince < 1000) return;
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stoppingSince = Date.now();
    log.info({ signal }, 'shutting down: no new requests, finishing in-flight ones');
    const timer = setTimeout(() => {
      log.error({ graceMs }, 'shutdown grace period over; exiting');
      process.exit(1);
    }, graceMs);
    timer.unref();
    cleanup().then(
      () => {
        log.info('shut down cleanly');
        log.flush(() => process.exit(0));
      },
      (err) => {
        log.error({ err }, 'error while shutting down');
        log.flush(() => process.exit(1));
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
