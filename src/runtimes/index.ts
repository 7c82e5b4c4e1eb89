/** The runtimes an agent can run attempts with, and a factory by kind. */
import { DockerRuntime } from './docker.ts';
import { ProcessRuntime } from './process.ts';
import type { Clock } from '../domain/clock.ts';
import { SimulatedRuntime } from './simulated.ts';
import type { Runtime, RuntimeKind } from './types.ts';

export * from './types.ts';
export { ProcessRuntime, HostExecution, WRAPPER_SCRIPT, processEnv, type HostRecord, type ProcessRuntimeOptions } from './process.ts';
export { DockerRuntime, dockerRunArgs, containerName, type DockerRuntimeOptions } from './docker.ts';
export { SimulatedRuntime, SIM_EXIT_CODE_ENV, type SimulatedRecord, type SimulatedRuntimeOptions } from './simulated.ts';
export { parseGpuSpec, parseNvidiaSmiCsv, discoverGpus } from './gpus.ts';
export { MAX_LINE_BYTES } from './log-tail.ts';

export interface RuntimeOptions {
  /** simulated: how many times faster than expected_duration_sec. Default 1. */
  speed?: number;
  /** simulated: the clock (default: real time). */
  clock?: Clock;
  /** docker: the docker CLI. Default 'docker'. */
  dockerBin?: string;
}

export function createRuntime(kind: RuntimeKind, opts: RuntimeOptions = {}): Runtime {
  switch (kind) {
    case 'process':
      return new ProcessRuntime();
    case 'docker':
      return new DockerRuntime(opts.dockerBin !== undefined ? { dockerBin: opts.dockerBin } : {});
    case 'simulated':
      return new SimulatedRuntime({ speed: opts.speed, clock: opts.clock });
    default: {
      const never: never = kind;
      throw new Error(`unknown runtime ${String(never)}`);
    }
  }
}
