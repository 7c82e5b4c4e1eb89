/**
 * The `docker` runtime: `docker run --rm --gpus ...` through the same
 * wrapper, log files and exit file as the `process` runtime (the docker CLI
 * stays attached, so its stdout/stderr are the container's). The CLI
 * forwards SIGTERM to the container (sig-proxy); a SIGKILL cannot be
 * forwarded, so after the grace the container is `docker kill`ed first.
 *
 * The record is the process runtime's plus `container` (its name).
 */
import { execFile } from 'node:child_process';
import { baseEnv, launchHost, reattachHost, type HostExecution } from './process.ts';
import { LaunchError, type Execution, type ExitResult, type LogSink, type RunSpec, type Runtime } from './types.ts';

const ENGINE_CHECK_TIMEOUT_MS = 5000;
const DOCKER_KILL_TIMEOUT_MS = 10_000;

/** `scalar-<jobId>-<attempt>`, with anything docker does not allow in a name replaced by '_'. */
export function containerName(spec: Pick<RunSpec, 'jobId' | 'attempt'>): string {
  return `scalar-${spec.jobId}-${spec.attempt}`.replace(/[^a-zA-Z0-9_.-]/g, '_');
}

/** `--memory`: whole gigabytes as `<n>g`, anything else in (rounded) megabytes. */
function memoryArg(ramGb: number): string {
  return Number.isInteger(ramGb) ? `${ramGb}g` : `${Math.max(1, Math.round(ramGb * 1024))}m`;
}

/**
 * The arguments after `docker` for one attempt. `--gpus` names the devices
 * as docker expects when there is more than one: the value holds the double
 * quotes (`"device=0,1"`), since the CLI parses it as CSV. With no GPUs there
 * is no `--gpus`. The job's env goes in with `-e`, SCALAR_JOB_ID and
 * SCALAR_ATTEMPT last (they win); CUDA_VISIBLE_DEVICES is not set, the
 * container sees exactly its devices, numbered from 0.
 */
export function dockerRunArgs(spec: RunSpec): string[] {
  const args = ['run', '--rm', '--name', containerName(spec)];
  if (spec.gpuIndices.length > 0) args.push('--gpus', `"device=${spec.gpuIndices.join(',')}"`);
  if (spec.cpuCores > 0) args.push('--cpus', String(spec.cpuCores));
  if (spec.ramGb > 0) args.push('--memory', memoryArg(spec.ramGb));
  const env: Record<string, string> = { ...spec.env, SCALAR_JOB_ID: spec.jobId, SCALAR_ATTEMPT: String(spec.attempt) };
  for (const [k, v] of Object.entries(env)) args.push('-e', `${k}=${v}`);
  args.push(spec.image, ...spec.command);
  return args;
}

/** The docker CLI's own environment: the job's minimal base plus what points it at an engine. */
function cliEnv(): Record<string, string> {
  const names = Object.keys(process.env).filter((k) => k.startsWith('DOCKER_'));
  return baseEnv([...names, 'XDG_RUNTIME_DIR']);
}

function run(bin: string, args: string[], timeoutMs: number): Promise<{ err: NodeJS.ErrnoException | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, env: cliEnv(), encoding: 'utf8' }, (err, stdout, stderr) =>
      resolve({ err: err as NodeJS.ErrnoException | null, stdout, stderr }),
    );
  });
}

export interface DockerRuntimeOptions {
  /** The docker CLI (a name looked up on PATH, or a path). Default 'docker'. */
  dockerBin?: string;
}

export class DockerRuntime implements Runtime {
  readonly kind = 'docker' as const;
  readonly dockerBin: string;

  constructor(opts: DockerRuntimeOptions = {}) {
    this.dockerBin = opts.dockerBin ?? 'docker';
  }

  /** Resolves with the engine's version; rejects with LaunchError when there is no CLI or no engine. */
  async checkEngine(): Promise<string> {
    const { err, stdout, stderr } = await run(this.dockerBin, ['version', '--format', '{{.Server.Version}}'], ENGINE_CHECK_TIMEOUT_MS);
    if (!err) return stdout.trim();
    if (err.code === 'ENOENT') {
      throw new LaunchError(`docker runtime: the docker CLI is not installed (spawn ${this.dockerBin} ENOENT)`);
    }
    if ((err as { killed?: boolean }).killed) {
      throw new LaunchError(
        `docker runtime: the Docker engine is not reachable: docker version did not answer within ${ENGINE_CHECK_TIMEOUT_MS / 1000} s`,
      );
    }
    const first = stderr.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? err.message;
    throw new LaunchError(`docker runtime: the Docker engine is not reachable: ${first}`);
  }

  async launch(spec: RunSpec, logs: LogSink): Promise<HostExecution> {
    if (!spec.image) throw new LaunchError('docker runtime: the job has no image');
    await this.checkEngine();
    const container = containerName(spec);
    return launchHost('docker', [this.dockerBin, ...dockerRunArgs(spec)], cliEnv(), spec, logs, this.hooks(container), {
      container,
    });
  }

  reattach(record: Record<string, unknown>, logs: LogSink): Promise<Execution | ExitResult | null> {
    const container = typeof record.container === 'string' ? record.container : '';
    return reattachHost('docker', record, logs, this.hooks(container));
  }

  private hooks(container: string) {
    return {
      beforeSigkill: async () => {
        await run(this.dockerBin, ['kill', container], DOCKER_KILL_TIMEOUT_MS);
      },
      // The CLI is gone without a status; a container it leaves would hold its GPUs unseen.
      onUnknownEnd: async () => {
        await run(this.dockerBin, ['rm', '-f', container], DOCKER_KILL_TIMEOUT_MS);
      },
    };
  }
}
