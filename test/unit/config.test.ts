import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, configDocs, configSchema, parseConfig } from '../../src/config/index.ts';

describe('config', () => {
  it('applies the documented defaults and freezes the result', () => {
    const cfg = parseConfig({});
    expect(cfg.PORT).toBe(8080);
    expect(cfg.HOST).toBe('127.0.0.1');
    expect(cfg.DATABASE_URL).toBeUndefined();
    expect(cfg.SCALAR_DEFAULT_CPU_CORES).toBe(4);
    expect(cfg.SCALAR_MAX_ATTEMPTS).toBe(3);
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(() => {
      (cfg as { PORT: number }).PORT = 1;
    }).toThrow(TypeError);
  });

  it('coerces numbers from strings and treats empty values as unset', () => {
    const cfg = parseConfig({ PORT: '9000', SCALAR_DEFAULT_RAM_GB: '32.5', DATABASE_URL: '' });
    expect(cfg.PORT).toBe(9000);
    expect(cfg.SCALAR_DEFAULT_RAM_GB).toBe(32.5);
    expect(cfg.DATABASE_URL).toBeUndefined();
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://x/y'],
    ['LOG_LEVEL', 'loud'],
    ['SCALAR_BOOTSTRAP_KEY', 'sk_short'],
    ['SCALAR_DEFAULT_VRAM_PER_GPU_GB', '2048'],
    ['SCALAR_MAX_ATTEMPTS', '0'],
    ['SCALAR_OVERRUN_POLICY', 'ignore'],
    ['SCALAR_SCHEDULER_POLICY', 'random'],
    ['SCALAR_PREEMPT_GRACE_SEC', '-1'],
    // FLEX must be the cheaper tier: 3 ≥ the FAST default 2.5.
    ['SCALAR_PRICE_FLEX_GPU_HOUR', '3'],
  ])('refuses %s=%s and names the variable', (name, value) => {
    let err: unknown;
    try {
      parseConfig({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variables).toEqual([name]);
    expect((err as ConfigError).message).toContain(name);
  });

  it('DATABASE_PASSWORD_FILE puts the file\'s password into DATABASE_URL, and a missing file names the variable', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'scalar-pgpass-'));
    try {
      const file = path.join(dir, 'pg-password');
      writeFileSync(file, 'p@ss:w/rd\n', { mode: 0o600 });
      const cfg = parseConfig({ DATABASE_URL: 'postgres://scalar:old@db:5432/scalar', DATABASE_PASSWORD_FILE: file });
      expect(cfg.DATABASE_URL).toBe('postgres://scalar:p%40ss%3Aw%2Frd@db:5432/scalar');
      expect(decodeURIComponent(new URL(cfg.DATABASE_URL!).password)).toBe('p@ss:w/rd');
      const err = (() => {
        try {
          parseConfig({ DATABASE_URL: 'postgres://scalar@db/scalar', DATABASE_PASSWORD_FILE: path.join(dir, 'absent') });
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variables).toEqual(['DATABASE_PASSWORD_FILE']);
      expect((err as ConfigError).message).toMatch(/DATABASE_PASSWORD_FILE: cannot read .*absent \(ENOENT\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SCALAR_NODE_LOST_SEC defaults to 40 s and must cover 3 heartbeat intervals', () => {
    expect(parseConfig({}).SCALAR_NODE_LOST_SEC).toBe(40);
    expect(parseConfig({ SCALAR_HEARTBEAT_INTERVAL_MS: '200', SCALAR_NODE_LOST_SEC: '0.6' }).SCALAR_NODE_LOST_SEC).toBe(0.6);
    let err: unknown;
    try {
      parseConfig({ SCALAR_HEARTBEAT_INTERVAL_MS: '20000' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variables).toEqual(['SCALAR_NODE_LOST_SEC']);
    expect((err as ConfigError).message).toContain('SCALAR_NODE_LOST_SEC: must be at least 3 heartbeat intervals (60 s with SCALAR_HEARTBEAT_INTERVAL_MS=20000)');
  });

  it('the README documents every variable with its default', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const row of configDocs()) {
      expect(readme).toContain(`| \`${row.name}\` |`);
      if (row.default !== '(unset)') expect(readme).toContain(`| \`${row.name}\` | \`${row.default}\` |`);
    }
    expect(configDocs().map((r) => r.name)).toEqual(Object.keys(configSchema.shape));
  });
});
