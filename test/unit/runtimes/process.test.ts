import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HostExecution, ProcessRuntime } from '../../../src/runtimes/process.ts';
import { groupAlive, pidAlive } from '../../../src/runtimes/proc.ts';
import { LaunchError, type ExitResult } from '../../../src/runtimes/types.ts';
import { collector, removeTempDirs, spec, waitFor } from './helpers.ts';

const rt = new ProcessRuntime();
const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});
afterAll(removeTempDirs);

/** Ends a process group the test left behind. */
function reap(pgid: number) {
  cleanup.push(() => {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
}

describe('process runtime', () => {
  it('runs the command, captures stdout and stderr apart, and reports its exit code', async () => {
    const logs = collector();
    const ex = await rt.launch(spec({ command: ['sh', '-c', 'echo hello; echo oops >&2; exit 3'] }), logs.sink);
    expect(ex.pid).toBeGreaterThan(0);
    expect(await ex.exited).toEqual({ code: 3, signal: null });
    expect(logs.of('stdout')).toEqual(['hello']);
    expect(logs.of('stderr')).toEqual(['oops']);
    expect(logs.lines.map((l) => l.offset)).toEqual([0, 0]);
    expect(logs.lines[0]!.time).toBeInstanceOf(Date);
  });

  it('passes the command array as is, with no shell in between', async () => {
    const logs = collector();
    const ex = await rt.launch(spec({ command: ['printf', '%s|%s\\n', 'a b', '$HOME;*'] }), logs.sink);
    expect(await ex.exited).toEqual({ code: 0, signal: null });
    expect(logs.of('stdout')).toEqual(['a b|$HOME;*']);
  });

  it('delivers many lines with byte offsets, a final unterminated line and non-UTF-8 bytes', async () => {
    const logs = collector();
    const ex = await rt.launch(
      spec({ command: ['sh', '-c', 'i=0; while [ $i -lt 200 ]; do echo "line $i"; i=$((i+1)); done; printf "\\377\\376x\\nlast"'] }),
      logs.sink,
    );
    expect((await ex.exited).code).toBe(0);
    const out = logs.lines.filter((l) => l.stream === 'stdout');
    expect(out).toHaveLength(202);
    expect(out[1]).toMatchObject({ line: 'line 1', offset: 7 });
    expect(out[200]!.line).toBe('\uFFFD\uFFFDx');
    expect(out[201]!.line).toBe('last');
    expect(out[201]!.offset).toBe(out[200]!.offset + 4);
    expect((ex as HostExecution).record.offsets.stdout).toBe(out[201]!.offset + 4);
  });

  it('sets CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES and the job env, and not the agent env', async () => {
    process.env.SCALAR_TEST_AGENT_SECRET = 'do-not-leak';
    cleanup.push(() => delete process.env.SCALAR_TEST_AGENT_SECRET);
    const logs = collector();
    const ex = await rt.launch(
      spec({
        jobId: 'j-42',
        attempt: 2,
        gpuIndices: [2, 5],
        env: { MY_VAR: 'x y', CUDA_VISIBLE_DEVICES: '7' },
        command: ['env'],
      }),
      logs.sink,
    );
    expect((await ex.exited).code).toBe(0);
    const env = new Map(logs.of('stdout').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(env.get('CUDA_VISIBLE_DEVICES')).toBe('2,5');
    expect(env.get('NVIDIA_VISIBLE_DEVICES')).toBe('2,5');
    expect(env.get('SCALAR_JOB_ID')).toBe('j-42');
    expect(env.get('SCALAR_ATTEMPT')).toBe('2');
    expect(env.get('MY_VAR')).toBe('x y');
    expect(env.get('PATH')).toBe(process.env.PATH);
    expect(env.has('SCALAR_TEST_AGENT_SECRET')).toBe(false);
    const allowed = new Set(['PATH', 'HOME', 'LANG', 'PWD', 'SHLVL', '_', 'OLDPWD']);
    allowed.add('CUDA_VISIBLE_DEVICES').add('NVIDIA_VISIBLE_DEVICES').add('SCALAR_JOB_ID').add('SCALAR_ATTEMPT').add('MY_VAR');
    expect([...env.keys()].filter((k) => !allowed.has(k))).toEqual([]);
  });

  it('runs in the workDir', async () => {
    const logs = collector();
    const s = spec({ command: ['pwd'] });
    const ex = await rt.launch(s, logs.sink);
    await ex.exited;
    expect(logs.of('stdout')).toEqual([s.workDir]);
  });

  it('reports a command that does not exist as exit code 127 with the shell error on stderr', async () => {
    const logs = collector();
    const ex = await rt.launch(spec({ command: ['scalar-no-such-command-xyz', 'arg'] }), logs.sink);
    expect(await ex.exited).toEqual({ code: 127, signal: null });
    expect(logs.of('stderr').join('\n')).toMatch(/scalar-no-such-command-xyz.*not found/);
  });

  it('refuses an empty command', async () => {
    await expect(rt.launch(spec({ command: [] }), () => undefined)).rejects.toBeInstanceOf(LaunchError);
  });

  it('kill: a command that exits on SIGTERM is gone at once', async () => {
    const ex = await rt.launch(spec({ command: ['sleep', '300'] }), () => undefined);
    reap(ex.pid!);
    const t0 = Date.now();
    await ex.kill(5000);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(await ex.exited).toEqual({ code: 143, signal: 'SIGTERM' });
    expect(groupAlive(ex.pid!)).toBe(false);
    await ex.kill(5000); // twice is fine
  });

  it('kill right after launch is not lost while the command is still starting', async () => {
    const t0 = Date.now();
    const execs = [];
    const kills = [];
    for (let i = 0; i < 12; i++) {
      const ex = await rt.launch(spec({ command: ['sleep', '300'] }), () => undefined);
      reap(ex.pid!);
      kills.push(ex.kill(5000));
      execs.push(ex);
    }
    await Promise.all(kills);
    expect(Date.now() - t0).toBeLessThan(2000);
    for (const ex of execs) {
      const r = await ex.exited;
      expect(r.signal, JSON.stringify(r)).toBe('SIGTERM');
      expect(r.code).toBe(143);
    }
  });

  it('kill: a group that ignores SIGTERM is SIGKILLed after the grace, children included', async () => {
    const logs = collector();
    const ex = await rt.launch(spec({ command: ['sh', '-c', 'trap "" TERM; sleep 300 & echo "child $!"; wait'] }), logs.sink);
    reap(ex.pid!);
    await waitFor(() => logs.of('stdout').length > 0, 2000, 'the child pid');
    const child = Number(/child (\d+)/.exec(logs.of('stdout')[0]!)![1]);
    expect(pidAlive(child)).toBe(true);
    const t0 = Date.now();
    const k1 = ex.kill(300);
    const k2 = ex.kill(300);
    await Promise.all([k1, k2]);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(2000);
    expect(await ex.exited).toEqual({ code: 137, signal: 'SIGKILL' });
    expect(pidAlive(child)).toBe(false);
    expect(groupAlive(ex.pid!)).toBe(false);
    expect(existsSync(join((ex as HostExecution).record.workDir, 'exit'))).toBe(false);
  });

  it('removes what the command left running in its group when it ends', async () => {
    const logs = collector();
    const ex = await rt.launch(spec({ command: ['sh', '-c', 'sleep 300 & echo "child $!"'] }), logs.sink);
    reap(ex.pid!);
    expect((await ex.exited).code).toBe(0);
    const child = Number(/child (\d+)/.exec(logs.of('stdout')[0]!)![1]);
    await waitFor(() => !pidAlive(child), 1000, 'the leftover child to go');
  });

  it('reattach: a second runtime picks up a running attempt, sees its exit and the rest of its logs', async () => {
    const first = collector();
    const s = spec({ command: ['sh', '-c', 'echo one; echo err1 >&2; sleep 0.6; echo two; echo err2 >&2; printf three; exit 5'] });
    const ex1 = (await rt.launch(s, first.sink)) as HostExecution;
    reap(ex1.pid);
    await waitFor(() => first.lines.length === 2, 2000, 'the first lines');
    // The agent dies: it stops watching; what it saved is the record as JSON.
    ex1.detach();
    const saved = JSON.parse(JSON.stringify(ex1.record)) as Record<string, unknown>;
    expect(saved).toMatchObject({ kind: 'process', pid: ex1.pid, pgid: ex1.pid, workDir: s.workDir, offsets: { stdout: 4, stderr: 5 } });

    const second = collector();
    const ex2 = await new ProcessRuntime().reattach(saved, second.sink);
    expect(ex2).not.toBeNull();
    expect('exited' in ex2!).toBe(true);
    const live = ex2 as HostExecution;
    expect(live.pid).toBe(ex1.pid);
    expect(await live.exited).toEqual({ code: 5, signal: null });
    expect(second.lines.map((l) => [l.stream, l.line, l.offset])).toEqual(
      expect.arrayContaining([
        ['stdout', 'two', 4],
        ['stdout', 'three', 8],
        ['stderr', 'err2', 5],
      ]),
    );
    expect(second.lines).toHaveLength(3);
  });

  it('reattach: a live execution can be killed by the new agent', async () => {
    const logs = collector();
    const ex1 = (await rt.launch(spec({ command: ['sh', '-c', 'trap "" TERM; echo up; sleep 300'] }), logs.sink)) as HostExecution;
    reap(ex1.pid);
    await waitFor(() => logs.lines.length > 0, 2000, 'up');
    ex1.detach();
    const ex2 = (await new ProcessRuntime().reattach({ ...ex1.record }, () => undefined)) as HostExecution;
    await ex2.kill(100);
    expect(await ex2.exited).toEqual({ code: 137, signal: 'SIGKILL' });
    expect(groupAlive(ex1.pid)).toBe(false);
  });

  it('reattach: an attempt that ended while no agent watched gives its result and all its logs', async () => {
    const s = spec({ command: ['sh', '-c', 'echo a; echo b >&2; printf c; exit 4'] });
    const ex1 = (await rt.launch(s, () => undefined)) as HostExecution;
    ex1.detach();
    const saved = JSON.parse(JSON.stringify(ex1.record)) as Record<string, unknown>;
    await waitFor(() => existsSync(join(s.workDir, 'exit')), 2000, 'the exit file');
    const logs = collector();
    const r = (await new ProcessRuntime().reattach(saved, logs.sink)) as ExitResult;
    expect(r).toEqual({ code: 4, signal: null });
    expect(logs.lines.map((l) => [l.stream, l.line, l.offset])).toEqual(
      expect.arrayContaining([
        ['stdout', 'a', 0],
        ['stdout', 'c', 2],
        ['stderr', 'b', 0],
      ]),
    );
    expect(logs.lines).toHaveLength(3);
  });

  it('reattach: an attempt gone without an exit status (killed with the agent) ends unknown: -1', async () => {
    const s = spec({ command: ['sh', '-c', 'echo started; exec sleep 300'] });
    const logs1 = collector();
    const ex1 = (await rt.launch(s, logs1.sink)) as HostExecution;
    reap(ex1.pid);
    await waitFor(() => logs1.lines.length === 1, 2000, 'started');
    ex1.detach();
    process.kill(-ex1.pid, 'SIGKILL');
    await waitFor(() => !groupAlive(ex1.pid), 2000, 'the group to die');
    const r = await new ProcessRuntime().reattach({ ...ex1.record }, () => undefined);
    expect(r).toEqual({ code: -1, signal: null });
  });

  it('reattach: does not take a recycled pid for the attempt, nor signal it', async () => {
    const other = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    other.unref();
    const pid = other.pid!;
    reap(pid);
    const workDir = spec().workDir;
    const r = await rt.reattach(
      { kind: 'process', pid, pgid: pid, startTime: '1', workDir, offsets: { stdout: 0, stderr: 0 } },
      () => undefined,
    );
    expect(r).toEqual({ code: -1, signal: null });
    expect(pidAlive(pid)).toBe(true);
  });

  it('reattach: an unusable record gives null', async () => {
    expect(await rt.reattach({}, () => undefined)).toBeNull();
    expect(await rt.reattach({ kind: 'docker', pid: 1, pgid: 1, workDir: '/tmp', container: 'x' }, () => undefined)).toBeNull();
    expect(await rt.reattach({ kind: 'process', pid: 'x', workDir: '/tmp' }, () => undefined)).toBeNull();
  });
});
