import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { parseConfig, type Config } from '../../src/config/index.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { buildApp } from '../../src/api/app.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { SPEC_EXAMPLE_JOB } from '../../src/api/schemas/resources.ts';

export const ADMIN_KEY = 'sk_' + 'a'.repeat(43);

export interface TestApp {
  app: FastifyInstance;
  db: Database;
  cfg: Config;
  testDb: TestDatabase;
  adminKey: string;
  /** inject() with a Bearer key (the admin's unless `key` is given; `key: null` sends none). */
  call(opts: InjectOptions & { key?: string | null }): Promise<LightMyRequestResponse>;
  /** Creates a regular user and returns its id and key. */
  newUser(name?: string): Promise<{ id: string; key: string }>;
  close(): Promise<void>;
}

/** The real API over a fresh database of this file's own, with an admin key. */
export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const testDb = await createTestDatabase();
  const cfg = parseConfig({ DATABASE_URL: testDb.url, SCALAR_BOOTSTRAP_KEY: ADMIN_KEY, LOG_LEVEL: 'silent', ...env });
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const db = await openDatabase(cfg, log);
  const app = await buildApp({ cfg, orm: db.orm, log });
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
      await db.close();
      await testDb.drop();
    },
  };
}

/** The spec's example job (a fresh, mutable copy). */
export const exampleJob = () => structuredClone(SPEC_EXAMPLE_JOB) as unknown as Record<string, unknown> & typeof SPEC_EXAMPLE_JOB;
