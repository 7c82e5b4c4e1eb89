import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR } from '../../src/db/orm.ts';

/**
 * Tests run against the real PostgreSQL named by DATABASE_URL (default: the
 * local server). Each test file gets a database of its own, cloned from a
 * template that global setup migrated once, so files never see each other's
 * rows and can run in parallel.
 */
export function serverUrl(database = 'postgres'): string {
  const u = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  u.pathname = `/${database}`;
  return u.toString();
}

/** The template's name changes whenever a migration does, so a stale template is never reused. */
export function templateName(): string {
  const h = createHash('sha256');
  for (const f of readdirSync(MIGRATIONS_DIR).sort()) h.update(f).update(readFileSync(path.join(MIGRATIONS_DIR, f)));
  return `scalar_test_tpl_${h.digest('hex').slice(0, 12)}`;
}

/** A maintenance connection: to DATABASE_URL's own database when given (CI creates it), else to `postgres`. */
export async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: process.env.DATABASE_URL ?? serverUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `scalar_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const tpl = templateName();
  await withAdmin(async (c) => {
    // Cloning needs the template to have no other sessions; clones from
    // parallel files can collide on that briefly, so retry.
    for (let i = 0; ; i++) {
      try {
        await c.query(`create database ${name} template ${tpl}`);
        return;
      } catch (err) {
        if (i >= 20 || !/being accessed by other users/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
  });
  return {
    url: serverUrl(name),
    name,
    drop: () => withAdmin((c) => c.query(`drop database if exists ${name} with (force)`).then(() => undefined)),
  };
}
