import { describe, expect, it } from 'vitest';
import { createRuntime, DockerRuntime, ProcessRuntime, RUNTIME_KINDS, SimulatedRuntime } from '../../../src/runtimes/index.ts';

describe('createRuntime', () => {
  it('makes each kind', () => {
    expect(RUNTIME_KINDS.map((k) => createRuntime(k).kind)).toEqual(['process', 'docker', 'simulated']);
    expect(createRuntime('process')).toBeInstanceOf(ProcessRuntime);
    expect(createRuntime('simulated', { speed: 4 })).toMatchObject({ speed: 4 });
    expect(createRuntime('simulated')).toBeInstanceOf(SimulatedRuntime);
    const d = createRuntime('docker', { dockerBin: '/opt/docker' });
    expect(d).toBeInstanceOf(DockerRuntime);
    expect((d as DockerRuntime).dockerBin).toBe('/opt/docker');
  });
});
