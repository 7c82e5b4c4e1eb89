import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { migrationsList } from '../../src/db/migrations/index.ts';
import { MIGRATIONS_DIR } from '../../src/db/orm.ts';

describe('migrations', () => {
  it('every migration file is listed, in order', () => {
    const files = readdirSync(MIGRATIONS_DIR)
      .filter((f) => /^Migration.*\.ts$/.test(f))
      .map((f) => f.replace(/\.ts$/, ''))
      .sort();
    expect(migrationsList.map((m) => m.name)).toEqual(files);
  });
});
