import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { Database } from '../db/database.ts';
import { busOptions, connectBus, type Bus } from '../wire/connection.ts';
import { buildApp } from './app.ts';

export interface RunningApi {
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/**
 * Builds the API over an open database and listens on HOST:PORT. It
 * connects to NATS itself unless given a bus (e.g. by `scalar dev`, which
 * shares one), and closes only a bus it connected.
 */
export async function startApi(
  cfg: Config,
  db: Database,
  log: Logger,
  opts: { bus?: Bus; /** NATS closed its own connection for good (see BusOptions.onClosed). */ onBusClosed?: (err: Error) => void } = {},
): Promise<RunningApi> {
  const apiLog = log.child({ component: 'api' });
  const bus = opts.bus ?? (await connectBus(busOptions(cfg, 'scalar-api', 'api', undefined, opts.onBusClosed), apiLog));
  const ownBus = opts.bus === undefined;
  let app: FastifyInstance;
  try {
    app = await buildApp({ cfg, orm: db.orm, log: apiLog, bus });
    await app.listen({ port: cfg.PORT, host: cfg.HOST });
  } catch (err) {
    if (ownBus) await bus.close().catch(() => undefined);
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.PORT;
  const host = cfg.HOST === '0.0.0.0' || cfg.HOST === '::' ? '127.0.0.1' : cfg.HOST;
  return {
    app,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    async close() {
      try {
        // Finishes in-flight requests and the wake-ups they published first.
        await app.close();
      } finally {
        if (ownBus) await bus.close();
      }
    },
  };
}
