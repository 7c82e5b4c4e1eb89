import { readFileSync } from 'node:fs';
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

  it('the README documents every variable with its default', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const row of configDocs()) {
      expect(readme).toContain(`| \`${row.name}\` |`);
      if (row.default !== '(unset)') expect(readme).toContain(`| \`${row.name}\` | \`${row.default}\` |`);
    }
    expect(configDocs().map((r) => r.name)).toEqual(Object.keys(configSchema.shape));
  });
});
