import { randomBytes } from 'node:crypto';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { parseConfig, type Config } from '../../src/config/index.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { buildApp, type AppDeps } from '../../src/api/app.ts';
import { busOptions, connectBus, type Bus } from '../../src/wire/connection.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { SPEC_EXAMPLE_JOB } from '../../src/api/common/resources.ts';

export const ADMIN_KEY = 'sk_' + 'a'.repeat(43);

export interface TestApp {
  app: FastifyInstance;
  db: Database;
  cfg: Config;
  testDb: TestDatabase;
  /**
   * A real NATS connection under this file's own SCALAR_NATS_PREFIX
   * (`test_<8 hex>`), so files never see each other's messages. Its four
   * streams are deleted on close.
   */
  bus: Bus;
  adminKey: string;
  /** inject() with a Bearer key (the admin's unless `key` is given; `key: null` sends none). */
  call(opts: InjectOptions & { key?: string | null }): Promise<LightMyRequestResponse>;
  /** Creates a regular user and returns its id and key. */
  newUser(name?: string): Promise<{ id: string; key: string }>;
  close(): Promise<void>;
}

/** Deletes the four streams of a test bus's prefix (best effort) and closes it. */
export async function dropTestBus(bus: Bus): Promise<void> {
  for (const name of Object.values(bus.t.streams)) await bus.jsm.streams.delete(name).catch(() => undefined);
  await bus.close();
}

/**
 * A NATS connection under a fresh `test_<8 hex>` prefix, with its streams
 * created. It joins NATS_URL (127.0.0.1:4222 by default), a server without
 * authentication, on purpose: these tests are about the scheduler's logic,
 * and one shared server with a prefix per file keeps them fast. What the
 * credentials and permissions allow is tested on a server of its own that
 * demands them (test/helpers/secured-nats.ts, test/integration/nats-auth.test.ts).
 */
export async function connectTestBus(cfg: Config, log = pino({ level: 'silent' })): Promise<Bus> {
  return connectBus(busOptions(cfg, `scalar-test ${cfg.SCALAR_NATS_PREFIX}`, 'coordinator'), log);
}

export const testNatsPrefix = () => `test_${randomBytes(4).toString('hex')}`;

/**
 * The real API over a fresh database of this file's own, with an admin key,
 * and a real NATS connection under a prefix of its own.
 */
export async function startTestApp(
  env: Record<string, string> = {},
  opts: Pick<AppDeps, 'logs' | 'nodes' | 'capacity'> & {
    /** The API's NATS connection (e.g. on an API credential); the caller owns it. Default: one of the test's own, dropped on close. */
    bus?: Bus;
  } = {},
): Promise<TestApp> {
  const testDb = await createTestDatabase();
  const cfg = parseConfig({
    DATABASE_URL: testDb.url,
    SCALAR_BOOTSTRAP_KEY: ADMIN_KEY,
    LOG_LEVEL: 'silent',
    SCALAR_NATS_PREFIX: testNatsPrefix(),
    // Each file's LOGS stream reserves this much of the server's storage.
    SCALAR_LOG_MAX_MB: '64',
    ...env,
  });
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const db = await openDatabase(cfg, log);
  const { bus: givenBus, ...deps } = opts;
  const bus = givenBus ?? (await connectTestBus(cfg, log));
  const app = await buildApp({ cfg, orm: db.orm, log, bus, ...deps });
  await app.auth.ensureBootstrapKey(ADMIN_KEY);
  const call: TestApp['call'] = ({ key, headers, ...opts }) =>
    app.inject({
      ...opts,
      headers: { ...(key === null ? {} : { authorization: `Bearer ${key ?? ADMIN_KEY}` }), ...headers },
    });
  return {
    app,
    db,
    cfg,
    testDb,
    bus,
    adminKey: ADMIN_KEY,
    call,
    async newUser(name = 'user') {
      const res = await call({ method: 'POST', url: '/users', payload: { name } });
      if (res.statusCode !== 201) throw new Error(`POST /users: ${res.statusCode} ${res.body}`);
      const body = res.json();
      return { id: body.id, key: body.api_key };
    },
    async close() {
      await app.close();
      if (!givenBus) await dropTestBus(bus);
      await db.close();
      await testDb.drop();
    },
  };
}

/** The spec's example job (a fresh, mutable copy). */
export const exampleJob = () => structuredClone(SPEC_EXAMPLE_JOB) as unknown as Record<string, unknown> & typeof SPEC_EXAMPLE_JOB;
