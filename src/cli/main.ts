import { Command, InvalidArgumentError } from 'commander';
import { createLogger } from '../logger/index.ts';
import { openDatabase } from '../db/database.ts';
import { startApi, onShutdown } from '../api/server.ts';
import { AuthService } from '../auth/service.ts';
import { ensureAdminAccess } from './bootstrap.ts';
import { fatal, loadConfig } from './common.ts';
import { runCoordinator } from './coordinator.ts';
import { runDev } from './dev.ts';
import { registerSimulate } from './simulate.ts';

/** `scalar api`: JSON logs only, so log collectors never see a stray line. */
async function runApi(): Promise<void> {
  const cfg = loadConfig();
  const log = createLogger(cfg);
  try {
    const db = await openDatabase(cfg, log);
    let api: Awaited<ReturnType<typeof startApi>> | undefined;
    try {
      const access = await ensureAdminAccess(cfg, db, log, { createDevAdmin: false });
      api = await startApi(cfg, db, log);
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

const program = new Command()
  .name('scalar')
  .description('Scalar: a GPU job scheduler with FAST and FLEX tiers')
  .showHelpAfterError();

program
  .command('api')
  .description('run the REST API (stateless; run as many as you like)')
  .action(() => runApi());

program
  .command('coordinator')
  .description('run the coordinator: placement and the job and node actors (one leader; others stand by)')
  .action(() => runCoordinator());

program
  .command('dev')
  .description('run everything on embedded defaults (what `npm start` runs): API, coordinator, NATS and three simulated nodes')
  .option('--speed <factor>', 'simulated jobs run expected_duration_sec / factor seconds', '1')
  .action((opts: { speed: string }) => {
    const speed = Number(opts.speed);
    if (!(speed > 0)) {
      process.stderr.write('scalar dev: --speed must be a positive number\n');
      process.exit(2);
    }
    return runDev({ speed });
  });

registerSimulate(program);

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

(await import('./agent.ts')).registerAgentCommand(program);

await program.parseAsync(process.argv);
