/** `scalar migrate [--create NAME]`: apply pending migrations, or write a new one from the entity changes. */
import { openDatabase } from '../db/database.ts';
import { createLogger } from '../logger/index.ts';
import { fatal, loadConfig } from './common.ts';

export async function runMigrate(opts: { create?: string }): Promise<void> {
  const cfg = loadConfig();
  const log = createLogger(cfg, { toStderr: true });
  try {
    const db = await openDatabase(cfg, log, { migrate: !opts.create });
    if (opts.create) {
      const res = await db.orm.getMigrator().createMigration(undefined, false, false, opts.create);
      process.stdout.write(res.fileName ? `wrote ${res.fileName}\n` : 'no entity changes; nothing written\n');
    } else {
      process.stdout.write('database is up to date\n');
    }
    await db.close();
  } catch (err) {
    await fatal(log, err);
  }
}
