import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import { startEmbeddedPostgres } from './embedded.ts';
import { migrate, openOrm } from './orm.ts';

export interface Database {
  orm: MikroORM;
  url: string;
  embedded: boolean;
  close(): Promise<void>;
}

/**
 * Connects to DATABASE_URL, or to an embedded PostgreSQL when it is unset,
 * and applies pending migrations (they are idempotent and transactional, so
 * every process may do it at start; concurrent starts serialise on the
 * migrations table lock).
 */
export async function openDatabase(cfg: Config, log: Logger, opts: { migrate?: boolean } = {}): Promise<Database> {
  let url = cfg.DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | undefined;
  if (!url) {
    const embedded = await startEmbeddedPostgres(cfg.SCALAR_DATA_DIR, cfg.SCALAR_EMBEDDED_PG_PORT, log);
    url = embedded.url;
    stopEmbedded = embedded.stop;
  }
  let orm: MikroORM;
  try {
    orm = await openOrm(url, cfg.DB_POOL_MAX);
    if (opts.migrate !== false) {
      const applied = await migrate(orm);
      if (applied.length) log.info({ applied }, 'applied database migrations');
    }
  } catch (err) {
    await stopEmbedded?.();
    throw err;
  }
  return {
    orm,
    url,
    embedded: !!stopEmbedded,
    async close() {
      await orm.close(true);
      await stopEmbedded?.();
    },
  };
}
