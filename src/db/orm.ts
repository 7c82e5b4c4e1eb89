import { defineConfig, MikroORM, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import { entities } from './entities.ts';
import { migrationsList } from './migrations/index.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
/**
 * The committed migrations' folder in the sources. Applying them needs no
 * folder (migrationsList holds them), but `scalar migrate --create` writes a
 * TypeScript file there and reads the schema snapshot beside it, so from the
 * build (dist/src/db/orm.js) this still points at src/db/migrations.
 */
export const MIGRATIONS_DIR = import.meta.url.endsWith('.js') ? path.resolve(here, '../../../src/db/migrations') : path.join(here, 'migrations');

export function ormConfig(databaseUrl: string, poolMax = 10): Options {
  return defineConfig({
    clientUrl: databaseUrl,
    entities,
    extensions: [Migrator],
    discovery: { warnWhenNoEntities: true },
    debug: false,
    // The migrator reports through the ORM logger; keep it quiet and log what was applied ourselves.
    logger: () => undefined,
    // Metadata comes from defineEntity; no reflection, no cache files on disk.
    metadataCache: { enabled: false },
    pool: { min: 0, max: poolMax },
    allowGlobalContext: false,
    migrations: {
      path: MIGRATIONS_DIR,
      pathTs: MIGRATIONS_DIR,
      migrationsList,
      tableName: 'mikro_orm_migrations',
      transactional: true,
      allOrNothing: true,
      snapshot: true,
      snapshotName: '.snapshot-scalar',
      emit: 'ts',
      silent: true,
      fileName: (timestamp: string, name?: string) => `Migration${timestamp}${name ? `_${name}` : ''}`,
    },
  });
}

export async function openOrm(databaseUrl: string, poolMax = 10): Promise<MikroORM> {
  return MikroORM.init(ormConfig(databaseUrl, poolMax));
}

/** Arbitrary but fixed: every Scalar process that migrates takes this lock first. */
const MIGRATION_LOCK_ID = 0x5ca1a7;

/**
 * Applies every pending committed migration and returns the names applied.
 * Several processes may start at once (api replicas, the coordinator): a
 * session-level advisory lock on a dedicated connection makes them take
 * turns, so each migration runs exactly once.
 */
export async function migrate(orm: MikroORM): Promise<string[]> {
  const lock = new pg.Client({ connectionString: orm.config.get('clientUrl') });
  await lock.connect();
  try {
    await lock.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    const applied = await orm.getMigrator().up();
    return applied.map((m) => m.name);
  } finally {
    await lock.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
    await lock.end();
  }
}
