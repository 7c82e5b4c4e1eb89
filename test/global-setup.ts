import { MikroORM } from '@mikro-orm/postgresql';
import { ormConfig, migrate } from '../src/db/orm.ts';
import { serverUrl, templateName, withAdmin } from './helpers/db.ts';

/** Migrates a template database once per run; each test file clones it. */
export default async function setup(): Promise<void> {
  const tpl = templateName();
  await withAdmin(async (c) => {
    await c.query('select pg_advisory_lock(4242)');
    try {
      const { rowCount } = await c.query('select 1 from pg_database where datname = $1', [tpl]);
      if (rowCount) return;
      await c.query(`create database ${tpl}_tmp`).catch(async () => {
        await c.query(`drop database if exists ${tpl}_tmp with (force)`);
        await c.query(`create database ${tpl}_tmp`);
      });
      const orm = await MikroORM.init(ormConfig(serverUrl(`${tpl}_tmp`), 2));
      await migrate(orm);
      await orm.close(true);
      // Renamed only once complete, so a half-migrated template is never cloned.
      await c.query(`alter database ${tpl}_tmp rename to ${tpl}`);
    } finally {
      await c.query('select pg_advisory_unlock(4242)');
    }
  });
}
