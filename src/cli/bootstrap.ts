import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { Database } from '../db/database.ts';
import { AuthService } from '../auth/service.ts';

/**
 * Makes sure someone can log in. SCALAR_BOOTSTRAP_KEY, when set, always
 * exists as an admin key. Under `scalar dev`, the first run with no admin
 * creates one and keeps its key in SCALAR_DATA_DIR/admin-key (mode 0600) so
 * later runs can show it again; it is never stored anywhere else in clear.
 */
export async function ensureAdminAccess(
  cfg: Config,
  db: Database,
  log: Logger,
  opts: { createDevAdmin: boolean },
): Promise<{ adminKey?: string; note?: string }> {
  const auth = new AuthService(db.orm, { cacheTtlSec: 0 }, log);
  if (cfg.SCALAR_BOOTSTRAP_KEY) {
    await auth.ensureBootstrapKey(cfg.SCALAR_BOOTSTRAP_KEY);
    return { adminKey: cfg.SCALAR_BOOTSTRAP_KEY, note: 'from SCALAR_BOOTSTRAP_KEY' };
  }
  const keyFile = path.resolve(cfg.SCALAR_DATA_DIR, 'admin-key');
  if (opts.createDevAdmin && existsSync(keyFile)) {
    const saved = (await readFile(keyFile, 'utf8')).trim();
    const principal = await auth.verify(saved);
    if (principal?.isAdmin) return { adminKey: saved, note: `saved in ${keyFile}` };
  }
  if (await auth.anyAdmin()) {
    return { note: 'an admin already exists; make another key with `scalar keys create --name NAME --admin`' };
  }
  if (!opts.createDevAdmin) {
    log.warn('no admin exists yet: create one with `scalar keys create --name admin --admin` or set SCALAR_BOOTSTRAP_KEY');
    return { note: 'no admin yet: run `scalar keys create --name admin --admin`' };
  }
  const { key } = await auth.createUser('admin', true);
  await mkdir(path.dirname(keyFile), { recursive: true });
  await writeFile(keyFile, key.api_key + '\n', { mode: 0o600 });
  return { adminKey: key.api_key, note: `first run: created an admin; key saved in ${keyFile}` };
}
