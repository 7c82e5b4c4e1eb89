import type { Logger } from 'pino';
import { ConfigError, parseConfig, type Config } from '../config/index.ts';

/** Parses the environment once; a bad value exits 1 naming the variable. */
export function loadConfig(): Config {
  try {
    return parseConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`scalar: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/**
 * For a process whose NATS connection the server closed for good (its
 * credential was revoked or replaced): it cannot work any more, so it exits
 * 1 after the error is logged (connectBus logs it), rather than idle.
 */
export function exitOnBusClosed(log: Logger): (err: Error) => void {
  return () => log.flush(() => process.exit(1));
}

/** Logs why the process cannot go on, flushes, and exits 1. */
export async function fatal(log: Logger, err: unknown): Promise<never> {
  const e = err as { code?: string; message?: string };
  if (e?.code === 'EADDRINUSE') log.fatal(`the API port is taken (${e.message}); set PORT to another one`);
  else log.fatal({ err }, e?.message ?? 'failed to start');
  await new Promise<void>((r) => log.flush(() => r()));
  process.exit(1);
}

/**
 * Graceful shutdown of `scalar api`, `scalar coordinator` and `scalar dev` on
 * SIGTERM/SIGINT: stop accepting, let in-flight requests finish (bounded by
 * SCALAR_SHUTDOWN_GRACE_MS), then run `cleanup` (flush and close the
 * database). A second signal, a second or more later, exits at once. It lives
 * here, not beside the API, so that the coordinator does not load Fastify.
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
