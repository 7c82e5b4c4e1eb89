import { Command, InvalidArgumentError } from 'commander';
import type { Logger } from 'pino';
import { ConfigError, parseConfig, type Config } from '../config/index.ts';
import { createLogger } from '../log/index.ts';
import { openDatabase } from '../db/database.ts';
import { startApi, onShutdown } from '../api/server.ts';
import { AuthService } from '../auth/service.ts';
import { ensureAdminAccess } from './bootstrap.ts';

/** Parses the environment once; a bad value exits 1 naming the variable. */
function loadConfig(): Config {
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

async function fatal(log: Logger, err: unknown): Promise<never> {
  const e = err as { code?: string; message?: string };
  if (e?.code === 'EADDRINUSE') log.fatal(`the API port is taken (${e.message}); set PORT to another one`);
  else log.fatal({ err }, e?.message ?? 'failed to start');
  await new Promise<void>((r) => log.flush(() => r()));
  process.exit(1);
}

async function runApi(opts: { dev: boolean }): Promise<void> {
  const cfg = loadConfig();
  const log = createLogger(cfg, { pretty: opts.dev });
  try {
    const db = await openDatabase(cfg, log);
    let api: Awaited<ReturnType<typeof startApi>> | undefined;
    try {
      const access = await ensureAdminAccess(cfg, db, log, { createDevAdmin: opts.dev });
      api = await startApi(cfg, db, log);
      onShutdown(log, cfg.SCALAR_SHUTDOWN_GRACE_MS, async () => {
        await api!.close();
        await db.close();
      });
      if (!opts.dev) {
        // Production: JSON logs only, so log collectors never see a stray line.
        log.info({ url: api.url, database: db.embedded ? 'embedded' : 'DATABASE_URL', admin: access.note }, 'Scalar API ready');
        return;
      }
      const lines = [
        '',
        `  Scalar API   ${api.url}`,
        `  API docs     ${api.url}/docs`,
        `  Database     ${db.embedded ? `embedded PostgreSQL (data in ${cfg.SCALAR_DATA_DIR})` : 'DATABASE_URL'}`,
        access.adminKey ? `  Admin key    ${access.adminKey}   (${access.note})` : `  Admin key    ${access.note}`,
        '',
        access.adminKey
          ? `  Try:  curl -H "Authorization: Bearer ${access.adminKey}" ${api.url}/jobs`
          : `  Try:  curl ${api.url}/healthz`,
        '',
      ];
      process.stdout.write(lines.join('\n') + '\n');
    } catch (err) {
      await api?.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      throw err;
    }
  } catch (err) {
    await fatal(log, err);
  }
}

const program = new Command()
  .name('scalar')
  .description('Scalar: a GPU job scheduler with FAST and FLEX tiers')
  .showHelpAfterError();

program
  .command('api')
  .description('run the REST API (stateless; run as many as you like)')
  .action(() => runApi({ dev: false }));

program
  .command('dev')
  .description('run everything on embedded defaults (what `npm start` runs); prints the URL and an admin key')
  .action(() => runApi({ dev: true }));

program
  .command('migrate')
  .description('apply pending database migrations')
  .option('--create <name>', 'developers: write a new migration from the entity changes')
  .action(async (opts: { create?: string }) => {
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
  });

const keys = program.command('keys').description('manage API keys');
keys
  .command('create')
  .description('create an API key and print it (shown once)')
  .requiredOption('--name <name>', 'a label for the key (and the user name, for a new user)')
  .option('--admin', 'create a new admin user for the key')
  .option(
    '--user <id>',
    'add the key to this existing user instead of creating one',
    (v: string) => {
      if (!/^[0-9a-f-]{36}$/i.test(v)) throw new InvalidArgumentError('must be a user id (UUID)');
      return v;
    },
  )
  .action(async (opts: { name: string; admin?: boolean; user?: string }) => {
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
  });

await program.parseAsync(process.argv);
