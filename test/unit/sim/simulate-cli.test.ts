/**
 * `scalar simulate` as a user runs it: bin/scalar.mjs in a child process, on
 * a small fixture trace. stdout is a pipe here (not a TTY), so no progress
 * bar may be drawn. Bad input exits 2 with one stderr line naming the
 * problem, and writes nothing.
 *
 * Each child process costs about 2 s (tsx and the CLI's imports), so the
 * runs are few and concurrent: one policy without PNG, a comparison with
 * PNG, and one run per kind of bad input.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = path.join(ROOT, 'bin/scalar.mjs');
const TRACES = path.join(ROOT, 'test/fixtures/traces');
const TINY = path.join(TRACES, 'tiny.csv');
/** tiny.csv (f1, f2 FLEX; F, s1 FAST under max-gpus:2) fits this fleet; F preempts f2 under scalar. */
const FLEET = 'fast=1x8x80,flex=1x8x40';
const TIMEOUT = 60_000;

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'scalar-simulate-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** The environment without SCALAR_* settings, so the defaults apply (SCALAR_FROM_SOURCE picks the code, not a setting: it stays). */
function env(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SCALAR_') || k === 'SCALAR_FROM_SOURCE'));
}

function simulate(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, 'simulate', ...args], { cwd: ROOT, env: env() });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const outDir = (name: string): string => path.join(tmp, name);

async function metricsOf(dir: string): Promise<{ version: number; runs: Array<{ policy: string; preemptions: number; jobs: { total: number; completed: number } }> }> {
  return JSON.parse(await readFile(path.join(dir, 'metrics.json'), 'utf8'));
}

const CHARTS = ['utilisation', 'wait-cdf', 'queue-length'];

describe.concurrent('scalar simulate', () => {
  it('one policy, SVG only: the table on stdout, metrics.json and the charts in --out, no progress bar', async ({ expect }) => {
    const out = outDir('one');
    const r = await simulate(['--trace', TINY, '--fleet', FLEET, '--tiers', 'max-gpus:2', '--out', out, '--no-png']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const s of ['policy scalar', 'FAST', 'FLEX', 'utilisation', 'preemptions', 'makespan']) expect(r.stdout).toContain(s);
    expect(r.stdout).toContain(`fleet ${FLEET}`);
    expect(r.stdout).toContain('tiers max-gpus:2');
    // Not a TTY: no bar redrawn with carriage returns, no cursor codes.
    expect(r.stdout).not.toContain('\r');
    expect(r.stdout).not.toContain('\u001b[');
    expect(r.stdout).not.toMatch(/jobs \| day/);

    const m = await metricsOf(out);
    expect(m.version).toBe(1);
    expect(m.runs).toHaveLength(1);
    expect(m.runs[0]!.policy).toBe('scalar');
    expect(m.runs[0]!.jobs).toMatchObject({ total: 4, completed: 4 });
    expect(m.runs[0]!.preemptions).toBe(1);
    for (const c of CHARTS) {
      expect(existsSync(path.join(out, `${c}.svg`))).toBe(true);
      expect(existsSync(path.join(out, `${c}.png`))).toBe(false);
    }
    const wrote = r.stdout.split('\n').find((l) => l.startsWith('wrote '))!;
    expect(wrote).toContain(path.join(out, 'metrics.json'));
    for (const c of CHARTS) expect(wrote).toContain(path.join(out, `${c}.svg`));
  }, TIMEOUT);

  it('--compare, with PNG: both policies side by side with a ratio column, both runs in metrics.json, SVG and PNG charts', async ({ expect }) => {
    const out = outDir('compare');
    const r = await simulate(['--trace', TINY, '--fleet', FLEET, '--tiers', 'max-gpus:2', '--out', out, '--compare', 'scalar,fifo-first-fit']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const head = r.stdout.split('\n').find((l) => l.includes('fifo-first-fit') && l.includes('÷'));
    expect(head).toBeDefined();
    expect(head).toMatch(/scalar\s+fifo-first-fit\s+÷ scalar/);
    expect(r.stdout).toMatch(/^\s+preemptions\s+1\s+0\s+0\.00$/m);
    expect(r.stdout).not.toContain('\r');
    const m = await metricsOf(out);
    expect(m.runs.map((x) => x.policy)).toEqual(['scalar', 'fifo-first-fit']);
    expect(m.runs.map((x) => x.preemptions)).toEqual([1, 0]);
    for (const c of CHARTS) {
      expect(existsSync(path.join(out, `${c}.svg`))).toBe(true);
      const png = await readFile(path.join(out, `${c}.png`));
      expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    }
  }, TIMEOUT);

  const errors: Array<[string, string[], RegExp]> = [
    ['a missing trace file', ['--trace', path.join(TRACES, 'no-such-trace.csv')], /trace file not found: .*no-such-trace\.csv/],
    ['a bad row, by file and line', ['--trace', path.join(TRACES, 'bad-row.csv')], /bad-row\.csv line 4: gpu_count must be a whole number ≥ 1 \(got "two"\)/],
    ['a bad --fleet', ['--trace', TINY, '--fleet', 'fast=2x8'], /--fleet: "fast=2x8" must be POOL=NODESxGPUSxVRAM/],
    ['a fleet without nodes while autoscaling is off', ['--trace', TINY, '--fleet', 'fast=0x8x80'], /--fleet has no node and --autoscale is off/],
    ['a bad --tiers', ['--trace', TINY, '--fleet', FLEET, '--tiers', 'random:2'], /--tiers: "random:2": P must be a number from 0 to 1/],
    ['--autoscale maybe', ['--trace', TINY, '--fleet', FLEET, '--autoscale', 'maybe'], /--autoscale must be on or off \(got "maybe"\)/],
    ['an unknown --policy', ['--trace', TINY, '--fleet', FLEET, '--policy', 'lottery'], /--policy: unknown policy "lottery"; use one of scalar, fifo-first-fit/],
  ];
  for (const [what, args, message] of errors) {
    it(`${what}: exit 2, one stderr line naming it, nothing written`, async ({ expect }) => {
      const out = outDir(`error-${what.replace(/\W+/g, '-')}`);
      const r = await simulate([...args, '--out', out, '--no-png']);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.endsWith('\n')).toBe(true);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^scalar simulate: /);
      expect(lines[0]).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }, TIMEOUT);
  }
});
