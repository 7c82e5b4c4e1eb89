/** `scalar api`: the REST API alone. JSON logs only, so log collectors never see a stray line. */
import { openDatabase } from '../db/database.ts';
import { createLogger } from '../logger/index.ts';
import { startApi } from '../api/server.ts';
import { ensureAdminAccess } from './bootstrap.ts';
import { exitOnBusClosed, fatal, loadConfig, onShutdown } from './common.ts';

export async function runApi(): Promise<void> {
  const cfg = loadConfig();
  const log = createLogger(cfg);
  try {
    const db = await openDatabase(cfg, log);
    let api: Awaited<ReturnType<typeof startApi>> | undefined;
    try {
      const access = await ensureAdminAccess(cfg, db, log, { createDevAdmin: false });
      api = await startApi(cfg, db, log, { onBusClosed: exitOnBusClosed(log) });
      onShutdown(log, cfg.SCALAR_SHUTDOWN_GRACE_MS, async () => {
        await api!.close();
        await db.close();
      });
      log.info({ url: api.url, database: db.embedded ? 'embedded' : 'DATABASE_URL', admin: access.note }, 'Scalar API ready');
    } catch (err) {
      await api?.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      throw err;
    }
  } catch (err) {
    await fatal(log, err);
  }
}
