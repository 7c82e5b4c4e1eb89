import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { readTrace } from '../../../src/sim/trace.ts';
import type { TraceRow } from '../../../src/sim/types.ts';
import {
  DEFAULT_TIER_RULE,
  DEFAULT_USERS,
  JOB_DEFAULTS,
  TierRuleError,
  buildWorkload,
  describeTierRule,
  parseTierRule,
  unitHash,
} from '../../../src/sim/workload.ts';

/** The first 2,000 rows of ../shared/traces/itp-cluster04.csv (a fixture, so a fresh clone has them). */
const REAL_TRACE = fileURLToPath(new URL('../../fixtures/traces/itp-cluster04-head2000.csv', import.meta.url));

function row(jobId: string, gpuCount: number, extra: Partial<TraceRow> = {}): TraceRow {
  return {
    jobId,
    submitSec: 0,
    gpuCount,
    durationSec: 100,
    vramPerGpuGb: null,
    cpuCores: null,
    ramGb: null,
    user: null,
    status: null,
    line: 2,
    ...extra,
  };
}

const allFast = parseTierRule('all-fast');

describe('unitHash', () => {
  it('is deterministic, in [0, 1) and spread out', () => {
    expect(unitHash(1, 'a')).toBe(unitHash(1, 'a'));
    expect(unitHash(1, 'a')).not.toBe(unitHash(2, 'a'));
    expect(unitHash(1, 'a')).not.toBe(unitHash(1, 'b'));
    const n = 20_000;
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < n; i++) {
      const u = unitHash(7, `job-${i}`);
      expect(u >= 0 && u < 1).toBe(true);
      buckets[Math.floor(u * 10)]!++;
    }
    for (const b of buckets) expect(Math.abs(b - n / 10)).toBeLessThan(n / 10 * 0.1);
  });
});

describe('tier rules', () => {
  it('parses and prints back the accepted forms', () => {
    expect(DEFAULT_TIER_RULE).toBe('random:0.3');
    expect(parseTierRule(DEFAULT_TIER_RULE)).toEqual({ kind: 'random', fastShare: 0.3 });
    expect(parseTierRule(' Random : 1 ')).toEqual({ kind: 'random', fastShare: 1 });
    expect(parseTierRule('max-gpus:8')).toEqual({ kind: 'max-gpus', maxGpus: 8 });
    expect(parseTierRule('ALL-FAST')).toEqual({ kind: 'all-fast' });
    expect(parseTierRule('all-flex')).toEqual({ kind: 'all-flex' });
    for (const s of ['random:0.3', 'random:0', 'random:1', 'random:0.05', 'max-gpus:1', 'all-fast', 'all-flex']) {
      expect(describeTierRule(parseTierRule(s))).toBe(s);
    }
  });

  it.each(['random', 'random:', 'random:1.5', 'random:-0.1', 'random:abc', 'max-gpus:0', 'max-gpus:2.5', 'max-gpus', 'fast', ''])(
    'rejects %j naming the accepted forms',
    (s) => {
      expect(() => parseTierRule(s)).toThrow(TierRuleError);
      expect(() => parseTierRule(s)).toThrow(/random:P \(0 ≤ P ≤ 1, e\.g\. random:0\.3\), max-gpus:N \(N ≥ 1\), all-fast or all-flex/);
    },
  );

  it('max-gpus makes jobs of at most N trace GPUs FAST', () => {
    const jobs = buildWorkload([row('a', 1), row('b', 8), row('c', 9), row('d', 32)], {
      seed: 1,
      tierRule: parseTierRule('max-gpus:8'),
      nodeGpus: 8,
    });
    expect(jobs.map((j) => j.tier)).toEqual(['FAST', 'FAST', 'FLEX', 'FLEX']);
  });

  it('all-fast and all-flex', () => {
    const rows = [row('a', 1), row('b', 64)];
    expect(buildWorkload(rows, { seed: 1, tierRule: allFast, nodeGpus: 8 }).map((j) => j.tier)).toEqual(['FAST', 'FAST']);
    expect(buildWorkload(rows, { seed: 1, tierRule: parseTierRule('all-flex'), nodeGpus: 8 }).map((j) => j.tier)).toEqual(['FLEX', 'FLEX']);
  });

  it('random:0 and random:1 are all-flex and all-fast', () => {
    const rows = Array.from({ length: 200 }, (_, i) => row(`j${i}`, 1));
    expect(buildWorkload(rows, { seed: 3, tierRule: parseTierRule('random:0'), nodeGpus: 8 }).every((j) => j.tier === 'FLEX')).toBe(true);
    expect(buildWorkload(rows, { seed: 3, tierRule: parseTierRule('random:1'), nodeGpus: 8 }).every((j) => j.tier === 'FAST')).toBe(true);
  });

  describe('random:0.3 on real rows', () => {
    let rows: TraceRow[];
    beforeAll(async () => {
      rows = await readTrace(REAL_TRACE);
    });
    const rule = parseTierRule('random:0.3');
    const tiers = (rs: TraceRow[], seed: number): Map<string, string> =>
      new Map(buildWorkload(rs, { seed, tierRule: rule, nodeGpus: 8 }).map((j) => [j.id, j.tier]));

    it('makes about 30% of the jobs FAST', () => {
      const t = tiers(rows, 1);
      const fast = [...t.values()].filter((x) => x === 'FAST').length;
      // 2,000 draws: standard deviation ≈ 20 jobs (1%).
      expect(fast / rows.length).toBeGreaterThan(0.27);
      expect(fast / rows.length).toBeLessThan(0.33);
    });

    it('gives the same tiers for the same seed and different ones for another seed', () => {
      const a = tiers(rows, 42);
      expect(tiers(rows, 42)).toEqual(a);
      const b = tiers(rows, 43);
      let differ = 0;
      for (const [id, t] of a) if (b.get(id) !== t) differ++;
      // Independent draws at p = 0.3 differ for 2·0.3·0.7 = 42% of the jobs.
      expect(differ / rows.length).toBeGreaterThan(0.38);
      expect(differ / rows.length).toBeLessThan(0.46);
    });

    it("keeps a job's tier (and user) when other rows are removed or reordered", () => {
      const all = buildWorkload(rows, { seed: 5, tierRule: rule, nodeGpus: 8 });
      const subset = rows.filter((_, i) => i % 7 === 3).reverse();
      const some = buildWorkload(subset, { seed: 5, tierRule: rule, nodeGpus: 8 });
      const byId = new Map(all.map((j) => [j.id, j]));
      expect(some.length).toBeGreaterThan(250);
      for (const j of some) {
        expect(j.tier).toBe(byId.get(j.id)!.tier);
        expect(j.user).toBe(byId.get(j.id)!.user);
      }
    });

    it('turns real rows into jobs on 8-GPU nodes', () => {
      const jobs = buildWorkload(rows, { seed: 1, tierRule: rule, nodeGpus: 8 });
      expect(jobs.length).toBe(rows.length);
      expect(jobs.map((j) => j.seq)).toEqual(jobs.map((_, i) => i));
      const shapes = new Map<string, number>();
      for (const j of jobs) shapes.set(`${j.nodeCount}x${j.gpuCount}`, (shapes.get(`${j.nodeCount}x${j.gpuCount}`) ?? 0) + 1);
      // Up to 8 GPUs: one node; 16/32/64: gangs of 2/4/8 whole 8-GPU nodes.
      const expected = new Map<string, number>();
      for (const r of rows) {
        const key = r.gpuCount <= 8 ? `1x${r.gpuCount}` : `${r.gpuCount / 8}x8`;
        expected.set(key, (expected.get(key) ?? 0) + 1);
      }
      expect(expected.get('2x8')! + expected.get('4x8')!).toBeGreaterThan(0);
      expect(Object.fromEntries(shapes)).toEqual(Object.fromEntries(expected));
      expect(jobs.every((j) => j.nodeCount * j.gpuCount === j.traceGpus)).toBe(true);
      const users = new Set(jobs.map((j) => j.user));
      expect(users).toEqual(new Set(Array.from({ length: DEFAULT_USERS }, (_, k) => `user-${k}`)));
    });
  });
});

describe('buildWorkload', () => {
  it('fills empty cells with the documented defaults', () => {
    expect(JOB_DEFAULTS).toEqual({ vramPerGpuGb: 16, cpuCoresPerGpu: 4, ramGbPerGpu: 32 });
    const [j] = buildWorkload([row('a', 2, { submitSec: 30, durationSec: 600 })], { seed: 1, tierRule: allFast, nodeGpus: 8 });
    expect(j).toEqual({
      id: 'a',
      seq: 0,
      submitSec: 30,
      tier: 'FAST',
      user: j!.user,
      gpuCount: 2,
      nodeCount: 1,
      vramPerGpuGb: 16,
      cpuCores: 8,
      ramGb: 64,
      durationSec: 600,
      traceGpus: 2,
    });
  });

  it("keeps the trace's own values", () => {
    const [j] = buildWorkload([row('a', 4, { vramPerGpuGb: 40, cpuCores: 6, ramGb: 50.5, user: 'alice' })], {
      seed: 1,
      tierRule: allFast,
      nodeGpus: 8,
    });
    expect(j).toMatchObject({ gpuCount: 4, nodeCount: 1, vramPerGpuGb: 40, cpuCores: 6, ramGb: 50.5, user: 'alice' });
  });

  it('turns jobs wider than a node into gangs of whole nodes', () => {
    const jobs = buildWorkload(
      [
        row('exact', 8),
        row('two', 16),
        row('twelve', 12),
        row('given', 12, { cpuCores: 25, ramGb: 201, vramPerGpuGb: 70 }),
        row('wide', 64),
      ],
      { seed: 1, tierRule: allFast, nodeGpus: 8 },
    );
    const pick = (id: string) => {
      const j = jobs.find((x) => x.id === id)!;
      return { nodeCount: j.nodeCount, gpuCount: j.gpuCount, traceGpus: j.traceGpus, cpuCores: j.cpuCores, ramGb: j.ramGb, vram: j.vramPerGpuGb };
    };
    expect(pick('exact')).toEqual({ nodeCount: 1, gpuCount: 8, traceGpus: 8, cpuCores: 32, ramGb: 256, vram: 16 });
    expect(pick('two')).toEqual({ nodeCount: 2, gpuCount: 8, traceGpus: 16, cpuCores: 32, ramGb: 256, vram: 16 });
    expect(pick('twelve')).toEqual({ nodeCount: 2, gpuCount: 8, traceGpus: 12, cpuCores: 32, ramGb: 256, vram: 16 });
    expect(pick('given')).toEqual({ nodeCount: 2, gpuCount: 8, traceGpus: 12, cpuCores: 13, ramGb: 101, vram: 70 });
    expect(pick('wide')).toEqual({ nodeCount: 8, gpuCount: 8, traceGpus: 64, cpuCores: 32, ramGb: 256, vram: 16 });
  });

  it('uses the widest node it is given', () => {
    const [a, b] = buildWorkload([row('a', 16), row('b', 17)], { seed: 1, tierRule: allFast, nodeGpus: 16 });
    expect([a!.nodeCount, a!.gpuCount]).toEqual([1, 16]);
    expect([b!.nodeCount, b!.gpuCount, b!.traceGpus]).toEqual([2, 16, 17]);
  });

  it('numbers jobs in the order given and keeps durations as the estimate', () => {
    const jobs = buildWorkload([row('x', 1, { submitSec: 5, durationSec: 7 }), row('y', 1, { submitSec: 9, durationSec: 3.5 })], {
      seed: 1,
      tierRule: allFast,
      nodeGpus: 8,
    });
    expect(jobs.map((j) => [j.id, j.seq, j.submitSec, j.durationSec])).toEqual([
      ['x', 0, 5, 7],
      ['y', 1, 9, 3.5],
    ]);
  });

  it('gives rows without a user a seeded user-K, K < users', () => {
    const rows = Array.from({ length: 2000 }, (_, i) => row(`j${i}`, 1));
    rows[0] = row('named', 1, { user: 'bob' });
    const a = buildWorkload(rows, { seed: 9, tierRule: allFast, nodeGpus: 8, users: 4 });
    expect(a[0]!.user).toBe('bob');
    const counts = new Map<string, number>();
    for (const j of a.slice(1)) counts.set(j.user, (counts.get(j.user) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(['user-0', 'user-1', 'user-2', 'user-3']);
    for (const c of counts.values()) expect(c).toBeGreaterThan(400);
    expect(buildWorkload(rows, { seed: 9, tierRule: allFast, nodeGpus: 8, users: 4 })).toEqual(a);
    const other = buildWorkload(rows, { seed: 10, tierRule: allFast, nodeGpus: 8, users: 4 });
    expect(other.filter((j, i) => j.user !== a[i]!.user).length).toBeGreaterThan(1000);
    const one = buildWorkload(rows, { seed: 9, tierRule: allFast, nodeGpus: 8, users: 1 });
    expect(new Set(one.slice(1).map((j) => j.user))).toEqual(new Set(['user-0']));
    // The default is DEFAULT_USERS (16).
    expect(DEFAULT_USERS).toBe(16);
    const dflt = new Set(buildWorkload(rows, { seed: 9, tierRule: allFast, nodeGpus: 8 }).slice(1).map((j) => j.user));
    expect(dflt.size).toBe(16);
  });

  it('draws tier and user independently', () => {
    const rows = Array.from({ length: 8000 }, (_, i) => row(`j${i}`, 1));
    const jobs = buildWorkload(rows, { seed: 2, tierRule: parseTierRule('random:0.5'), nodeGpus: 8, users: 2 });
    const fastShare = (u: string) => {
      const mine = jobs.filter((j) => j.user === u);
      return mine.filter((j) => j.tier === 'FAST').length / mine.length;
    };
    expect(Math.abs(fastShare('user-0') - 0.5)).toBeLessThan(0.05);
    expect(Math.abs(fastShare('user-1') - 0.5)).toBeLessThan(0.05);
  });

  it('rejects bad options', () => {
    expect(() => buildWorkload([row('a', 1)], { seed: 1, tierRule: allFast, nodeGpus: 0 })).toThrow(/nodeGpus/);
    expect(() => buildWorkload([row('a', 1)], { seed: 1, tierRule: allFast, nodeGpus: 8, users: 0 })).toThrow(/users/);
  });
});
