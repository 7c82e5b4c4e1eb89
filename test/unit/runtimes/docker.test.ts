import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerRuntime, containerName, dockerRunArgs } from '../../../src/runtimes/docker.ts';
import type { HostExecution } from '../../../src/runtimes/process.ts';
import { LaunchError } from '../../../src/runtimes/types.ts';
import { collector, removeTempDirs, spec, tempDir, waitFor } from './helpers.ts';

afterAll(removeTempDirs);

function dockerState(): 'no-cli' | 'no-engine' | 'up' {
  try {
    execFileSync('docker', ['version', '--format', '{{.Server.Version}}'], { stdio: 'pipe', timeout: 5000 });
    return 'up';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no-cli' : 'no-engine';
  }
}
const state = dockerState();

async function launchError(p: Promise<unknown>): Promise<LaunchError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(LaunchError);
    return e as LaunchError;
  }
  throw new Error('launch did not fail');
}

describe('dockerRunArgs', () => {
  const base = spec({ jobId: 'abc', attempt: 2, image: 'pytorch/pytorch:2.3', command: ['python', 'train.py', '--lr', '0.1'], workDir: '/w' });

  it.each([
    [[0, 1], '"device=0,1"'],
    [[3], '"device=3"'],
    [[0, 1, 2, 3, 4, 5, 6, 7], '"device=0,1,2,3,4,5,6,7"'],
  ])('names GPUs %j as --gpus %s (the double quotes are part of the value)', (gpus, value) => {
    const args = dockerRunArgs({ ...base, gpuIndices: gpus });
    expect(args[args.indexOf('--gpus') + 1]).toBe(value);
  });

  it('has no --gpus for a job without GPUs', () => {
    expect(dockerRunArgs({ ...base, gpuIndices: [] })).not.toContain('--gpus');
  });

  it('is the whole command line, env included, image and command last', () => {
    expect(
      dockerRunArgs({ ...base, gpuIndices: [0, 1], cpuCores: 8, ramGb: 64, env: { A: '1', B: 'x y=z' } }),
    ).toEqual([
      'run', '--rm', '--name', 'scalar-abc-2',
      '--gpus', '"device=0,1"',
      '--cpus', '8',
      '--memory', '64g',
      '-e', 'A=1', '-e', 'B=x y=z', '-e', 'SCALAR_JOB_ID=abc', '-e', 'SCALAR_ATTEMPT=2',
      'pytorch/pytorch:2.3', 'python', 'train.py', '--lr', '0.1',
    ]);
  });

  it.each([
    [0.5, 1, '0.5', '1g'],
    [1.25, 1.5, '1.25', '1536m'],
    [16, 0.25, '16', '256m'],
  ])('cpus %s and ram %s GB: --cpus %s --memory %s', (cpus, ram, cpuArg, memArg) => {
    const args = dockerRunArgs({ ...base, cpuCores: cpus, ramGb: ram });
    expect(args[args.indexOf('--cpus') + 1]).toBe(cpuArg);
    expect(args[args.indexOf('--memory') + 1]).toBe(memArg);
  });

  it('lets the runtime own SCALAR_JOB_ID and SCALAR_ATTEMPT, once each', () => {
    const args = dockerRunArgs({ ...base, env: { SCALAR_JOB_ID: 'forged', X: '1' } });
    const envs = args.filter((_, i) => args[i - 1] === '-e');
    expect(envs).toEqual(['SCALAR_JOB_ID=abc', 'X=1', 'SCALAR_ATTEMPT=2']);
  });

  it('leaves the image default command alone when the job has none', () => {
    expect(dockerRunArgs({ ...base, command: [] }).at(-1)).toBe('pytorch/pytorch:2.3');
  });

  it('makes a container name docker accepts', () => {
    expect(containerName({ jobId: '3f2a9c1e-7d4b-4e0a-9c1f-2b3d4e5f6a7b', attempt: 1 })).toBe(
      'scalar-3f2a9c1e-7d4b-4e0a-9c1f-2b3d4e5f6a7b-1',
    );
    expect(containerName({ jobId: 'a/b c:d', attempt: 3 })).toBe('scalar-a_b_c_d-3');
  });
});

describe('docker runtime', () => {
  it('fails the launch with a clear reason when the docker CLI is not installed', async () => {
    const e = await launchError(new DockerRuntime({ dockerBin: '/nonexistent/docker' }).launch(spec(), () => undefined));
    expect(e.reason).toBe('docker runtime: the docker CLI is not installed (spawn /nonexistent/docker ENOENT)');
  });

  it('finds no docker on a PATH without it', async () => {
    const path = process.env.PATH;
    process.env.PATH = tempDir();
    try {
      const e = await launchError(new DockerRuntime().launch(spec(), () => undefined));
      expect(e.reason).toBe('docker runtime: the docker CLI is not installed (spawn docker ENOENT)');
    } finally {
      process.env.PATH = path;
    }
  });

  it.skipIf(state !== 'no-engine')('fails the launch with the CLI\u2019s reason when the engine is not reachable', async () => {
    const s = spec();
    const e = await launchError(new DockerRuntime().launch(s, () => undefined));
    expect(e.reason).toMatch(/^docker runtime: the Docker engine is not reachable: \S/);
    expect(e.reason).not.toContain('\n');
    expect(e.reason).toMatch(/daemon|connect/i);
  });

  it('refuses a job without an image', async () => {
    const e = await launchError(new DockerRuntime({ dockerBin: '/nonexistent/docker' }).launch(spec({ image: '' }), () => undefined));
    expect(e.reason).toMatch(/no image/);
  });

  describe('with a stand-in docker CLI', () => {
    /** A docker that answers `version`, prints the arguments of `run` and logs `kill`/`rm`. */
    function fakeDocker(): { bin: string; calls: () => string[] } {
      const dir = tempDir('scalar-fake-docker-');
      const bin = join(dir, 'docker');
      writeFileSync(
        bin,
        `#!/bin/sh
d=$(dirname "$0")
case "$1" in
  version) echo 27.1.0 ;;
  kill|rm) echo "$*" >>"$d/calls" ;;
  run)
    for a in "$@"; do printf '%s\\n' "$a"; done
    for a in "$@"; do [ "$a" = stubborn ] && { trap '' TERM; sleep 300 & wait; }; done
    exit 0 ;;
esac
`,
      );
      chmodSync(bin, 0o755);
      return {
        bin,
        calls: () => {
          try {
            return readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n');
          } catch {
            return [];
          }
        },
      };
    }

    it('runs `docker run` with the arguments as they are, quotes included', async () => {
      const fake = fakeDocker();
      const logs = collector();
      const s = spec({ jobId: 'j9', gpuIndices: [0, 1], image: 'img:1', command: ['python', '-c', 'print("hi there")'] });
      const ex = (await new DockerRuntime({ dockerBin: fake.bin }).launch(s, logs.sink)) as HostExecution;
      expect(ex.record).toMatchObject({ kind: 'docker', container: 'scalar-j9-1', workDir: s.workDir });
      expect(await ex.exited).toEqual({ code: 0, signal: null });
      expect(logs.of('stdout')).toEqual(dockerRunArgs(s));
      expect(logs.of('stdout')).toContain('"device=0,1"');
    });

    it('kill: docker kill the container when SIGTERM was not enough, then SIGKILL', async () => {
      const fake = fakeDocker();
      const rt = new DockerRuntime({ dockerBin: fake.bin });
      const logs = collector();
      const ex = await rt.launch(spec({ image: 'stubborn', command: [] }), logs.sink);
      await waitFor(() => logs.of('stdout').includes('stubborn'), 2000, 'docker run to start');
      await new Promise((r) => setTimeout(r, 50)); // past its trap
      await ex.kill(150);
      expect(await ex.exited).toEqual({ code: 137, signal: 'SIGKILL' });
      expect(fake.calls()).toEqual(['kill scalar-job-1-1']);
    });

    it('reattach: a CLI gone without a status has its container removed, and ends unknown', async () => {
      const fake = fakeDocker();
      const rt = new DockerRuntime({ dockerBin: fake.bin });
      const r = await rt.reattach(
        { kind: 'docker', pid: 2 ** 22 + 7, pgid: 2 ** 22 + 7, startTime: null, workDir: tempDir(), container: 'scalar-x-1', offsets: { stdout: 0, stderr: 0 } },
        () => undefined,
      );
      expect(r).toEqual({ code: -1, signal: null });
      expect(fake.calls()).toEqual(['rm -f scalar-x-1']);
      expect(await rt.reattach({ kind: 'docker', pid: 5, workDir: '/tmp' }, () => undefined)).toBeNull();
    });
  });
});
