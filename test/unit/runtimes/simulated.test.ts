import { describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../../src/domain/clock.ts';
import { SimulatedRuntime } from '../../../src/runtimes/simulated.ts';
import { LaunchError, type Execution, type ExitResult } from '../../../src/runtimes/types.ts';
import { collector, spec } from './helpers.ts';

const sim = (over: Parameters<typeof spec>[0] = {}) => spec({ workDir: '/nonexistent', ...over });

/** A clock that moves only when told to. */
function manualClock() {
  let now = 1_000_000;
  let timers: Array<{ at: number; fn: () => void; id: number }> = [];
  let next = 0;
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = next++;
      timers.push({ at: now + ms, fn, id });
      return { cancel: () => (timers = timers.filter((t) => t.id !== id)) };
    },
    setInterval: () => {
      throw new Error('the simulated runtime sets no intervals');
    },
  };
  const advance = (ms: number) => {
    now += ms;
    const due = timers.filter((t) => t.at <= now).sort((a, b) => a.at - b.at);
    timers = timers.filter((t) => t.at > now);
    for (const t of due) t.fn();
  };
  return { clock, advance, pending: () => timers.length };
}

describe('simulated runtime', () => {
  it('runs for expected_duration_sec / speed and logs its start and end', async () => {
    const logs = collector();
    const rt = new SimulatedRuntime({ speed: 20 });
    const t0 = Date.now();
    const ex = await rt.launch(sim({ expectedDurationSec: 2, gpuIndices: [0, 1] }), logs.sink);
    expect(ex.pid).toBeNull();
    expect(logs.lines.map((l) => [l.stream, l.line, l.offset])).toEqual([['stdout', 'simulated run: 2 s on GPUs 0,1', 0]]);
    expect(await ex.exited).toEqual({ code: 0, signal: null });
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(95);
    expect(took).toBeLessThan(1000);
    expect(logs.lines.map((l) => [l.line, l.offset])).toEqual([
      ['simulated run: 2 s on GPUs 0,1', 0],
      ['simulated exit code 0', 1],
    ]);
    expect(ex.record).toMatchObject({ kind: 'simulated', durationMs: 100, exitCode: 0, signal: null });
  });

  it('ends with the code in SCALAR_SIM_EXIT_CODE', async () => {
    const logs = collector();
    const ex = await new SimulatedRuntime({ speed: 1000 }).launch(sim({ env: { SCALAR_SIM_EXIT_CODE: '7' } }), logs.sink);
    expect(await ex.exited).toEqual({ code: 7, signal: null });
    expect(logs.lines.at(-1)!.line).toBe('simulated exit code 7');
  });

  it.each(['x', '-1', '256', '1.5'])('refuses SCALAR_SIM_EXIT_CODE=%s', async (v) => {
    await expect(new SimulatedRuntime().launch(sim({ env: { SCALAR_SIM_EXIT_CODE: v } }), () => undefined)).rejects.toBeInstanceOf(
      LaunchError,
    );
  });

  it('refuses a speed that is not positive', () => {
    expect(() => new SimulatedRuntime({ speed: 0 })).toThrow(/speed/);
    expect(() => new SimulatedRuntime({ speed: -2 })).toThrow(/speed/);
  });

  it('kill ends it at once with 143/SIGTERM, and twice is fine', async () => {
    const logs = collector();
    const ex = await new SimulatedRuntime().launch(sim({ expectedDurationSec: 3600 }), logs.sink);
    const t0 = Date.now();
    await ex.kill(30_000);
    await ex.kill(30_000);
    // "At once" against a 30 s grace and a 3600 s run: the bound leaves room for a noisy machine.
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await ex.exited).toEqual({ code: 143, signal: 'SIGTERM' });
    expect(logs.lines.map((l) => l.line)).toEqual(['simulated run: 3600 s on GPUs none', 'simulated exit code 143']);
    expect(ex.record).toMatchObject({ exitCode: 143, signal: 'SIGTERM' });
    expect(ex.record.durationMs as number).toBeLessThan(5000);
  });

  it('reattach: before the end, a live execution for the rest; after it, the result and the last line', async () => {
    const rt = new SimulatedRuntime({ speed: 10 });
    const ex1 = await rt.launch(sim({ expectedDurationSec: 1, env: { SCALAR_SIM_EXIT_CODE: '3' } }), () => undefined);
    const saved = JSON.parse(JSON.stringify(ex1.record)) as Record<string, unknown>;

    const logs = collector();
    const ex2 = (await new SimulatedRuntime({ speed: 10 }).reattach(saved, logs.sink)) as Execution;
    expect('exited' in ex2).toBe(true);
    expect(await ex2.exited).toEqual({ code: 3, signal: null });
    expect(logs.lines.map((l) => [l.line, l.offset])).toEqual([['simulated exit code 3', 1]]);

    // A timer fires on the monotonic clock, and Date.now() can trail it by a
    // millisecond, so "after the end" is a clock that reads exactly the end.
    const end = (saved.startedAtMs as number) + (saved.durationMs as number);
    const later = collector();
    const r = (await new SimulatedRuntime({ clock: { ...systemClock, now: () => end } }).reattach(saved, later.sink)) as ExitResult;
    expect(r).toEqual({ code: 3, signal: null });
    expect(later.lines.map((l) => [l.line, l.offset])).toEqual([['simulated exit code 3', 1]]);
  });

  it('reattach after a kill sees the kill', async () => {
    const rt = new SimulatedRuntime();
    const ex = await rt.launch(sim({ expectedDurationSec: 3600 }), () => undefined);
    await ex.kill(0);
    expect(await rt.reattach(JSON.parse(JSON.stringify(ex.record)), () => undefined)).toEqual({ code: 143, signal: 'SIGTERM' });
  });

  it('reattach: an unusable record gives null', async () => {
    const rt = new SimulatedRuntime();
    expect(await rt.reattach({}, () => undefined)).toBeNull();
    expect(await rt.reattach({ kind: 'process', startedAtMs: 1, durationMs: 1, exitCode: 0 }, () => undefined)).toBeNull();
  });

  it('runs in the time of an injected clock', async () => {
    const { clock, advance, pending } = manualClock();
    const rt = new SimulatedRuntime({ speed: 2, clock });
    const ex = await rt.launch(sim({ expectedDurationSec: 60 }), () => undefined);
    let result: ExitResult | null = null;
    void ex.exited.then((r) => (result = r));
    advance(29_999);
    await Promise.resolve();
    expect(result).toBeNull();
    advance(1);
    await ex.exited;
    expect(result).toEqual({ code: 0, signal: null });
    expect(pending()).toBe(0);

    // Re-attached in virtual time: the remainder only.
    const ex2 = await rt.launch(sim({ expectedDurationSec: 10 }), () => undefined);
    advance(2_000);
    const again = (await new SimulatedRuntime({ clock }).reattach({ ...ex2.record }, () => undefined)) as Execution;
    advance(2_999);
    let done = false;
    void again.exited.then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    advance(1);
    expect(await again.exited).toEqual({ code: 0, signal: null });
  });

  it('runs thousands at once', async () => {
    const rt = new SimulatedRuntime({ speed: 100 });
    let lines = 0;
    const execs = await Promise.all(
      Array.from({ length: 5000 }, (_, i) =>
        rt.launch(sim({ jobId: `j${i}`, expectedDurationSec: (i % 10) / 10, env: { SCALAR_SIM_EXIT_CODE: String(i % 3) } }), () => lines++),
      ),
    );
    const results = await Promise.all(execs.map((e) => e.exited));
    expect(results.filter((r) => r.code === 1)).toHaveLength(1667);
    expect(lines).toBe(10_000);
  });
});
