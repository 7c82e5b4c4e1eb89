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

/** Logs why the process cannot go on, flushes, and exits 1. */
export async function fatal(log: Logger, err: unknown): Promise<never> {
  const e = err as { code?: string; message?: string };
  if (e?.code === 'EADDRINUSE') log.fatal(`the API port is taken (${e.message}); set PORT to another one`);
  else log.fatal({ err }, e?.message ?? 'failed to start');
  await new Promise<void>((r) => log.flush(() => r()));
  process.exit(1);
}
