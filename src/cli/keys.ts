/** `scalar keys create`: prints a new API key on stdout (shown once); what it did goes to stderr. */
import { AuthService } from '../auth/service.ts';
import { openDatabase } from '../db/database.ts';
import { createLogger } from '../logger/index.ts';
import { fatal, loadConfig } from './common.ts';

export async function runKeysCreate(opts: { name: string; admin?: boolean; user?: string }): Promise<void> {
  const cfg = loadConfig();
  const log = createLogger(cfg, { toStderr: true });
  try {
    if (opts.user && opts.admin) throw new Error('--admin makes a new admin user; it cannot be combined with --user');
    const db = await openDatabase(cfg, log);
    try {
      const auth = new AuthService(db.orm, { cacheTtlSec: 0 }, log);
      let userId = opts.user;
      if (userId) {
        if (!(await auth.userExists(userId))) throw new Error(`no user ${userId}`);
        const key = await auth.createKey(userId, opts.name);
        process.stderr.write(`created key ${key.id} for user ${userId}\n`);
        process.stdout.write(key.api_key + '\n');
      } else {
        const { user, key } = await auth.createUser(opts.name, !!opts.admin);
        userId = user.id;
        process.stderr.write(`created ${opts.admin ? 'admin ' : ''}user ${user.id} (${opts.name}) and key ${key.id}\n`);
        process.stdout.write(key.api_key + '\n');
      }
    } finally {
      await db.close();
    }
  } catch (err) {
    await fatal(log, err);
  }
}
