import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { discoverGpus, parseGpuSpec, parseNvidiaSmiCsv } from '../../../src/runtimes/gpus.ts';
import { removeTempDirs, tempDir } from './helpers.ts';

afterAll(removeTempDirs);

const H100_SMI = `0, GPU-6d4e2f1a-93b7-8c4d-5e6f-0a1b2c3d4e5f, NVIDIA H100 80GB HBM3, 81559
1, GPU-7e5f3a2b-04c8-9d5e-6f7a-1b2c3d4e5f60, NVIDIA H100 80GB HBM3, 81559
`;

describe('parseGpuSpec', () => {
  it('reads <count>x<vram>', () => {
    const gpus = parseGpuSpec('8x80');
    expect(gpus).toHaveLength(8);
    expect(gpus[0]).toEqual({ index: 0, uuid: 'GPU-sim-0', model: 'Simulated 80GB', vram_gb: 80 });
    expect(gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(gpus.map((g) => g.uuid)).size).toBe(8);
  });

  it('reads groups in order', () => {
    const gpus = parseGpuSpec('4x40, 2X80');
    expect(gpus.map((g) => [g.index, g.vram_gb, g.model])).toEqual([
      [0, 40, 'Simulated 40GB'],
      [1, 40, 'Simulated 40GB'],
      [2, 40, 'Simulated 40GB'],
      [3, 40, 'Simulated 40GB'],
      [4, 80, 'Simulated 80GB'],
      [5, 80, 'Simulated 80GB'],
    ]);
    expect(parseGpuSpec('4x40,2x80')).toEqual(gpus);
  });

  it.each(['', ' ', '8', 'x80', '8x', '0x80', '8x0', '8x80,', 'eightx80', '8x80GB', '-1x80', '2x1.5'])('refuses %j clearly', (s) => {
    expect(() => parseGpuSpec(s)).toThrow(/GPU spec.*(<count>x<vram_gb>)/);
  });
});

describe('parseNvidiaSmiCsv', () => {
  it('reads nvidia-smi csv, noheader, nounits', () => {
    expect(parseNvidiaSmiCsv(H100_SMI)).toEqual([
      { index: 0, uuid: 'GPU-6d4e2f1a-93b7-8c4d-5e6f-0a1b2c3d4e5f', model: 'NVIDIA H100 80GB HBM3', vram_gb: 80 },
      { index: 1, uuid: 'GPU-7e5f3a2b-04c8-9d5e-6f7a-1b2c3d4e5f60', model: 'NVIDIA H100 80GB HBM3', vram_gb: 80 },
    ]);
  });

  it.each([
    ['0, GPU-a, NVIDIA A100-SXM4-40GB, 40960', 40],
    ['0, GPU-a, NVIDIA A100-SXM4-80GB, 81920', 80],
    ['0, GPU-a, NVIDIA GeForce RTX 4090, 24564', 24],
    ['0, GPU-a, NVIDIA H200, 143771', 140],
    ['0, GPU-a, Tesla T4, 15360', 15],
  ])('%s: %i GB', (line, gb) => {
    expect(parseNvidiaSmiCsv(line)[0]!.vram_gb).toBe(gb);
  });

  it('takes CRLF, blank lines and no output', () => {
    expect(parseNvidiaSmiCsv(H100_SMI.replace(/\n/g, '\r\n') + '\r\n')).toHaveLength(2);
    expect(parseNvidiaSmiCsv('')).toEqual([]);
  });

  it.each(['0, GPU-a, NVIDIA H100', 'x, GPU-a, NVIDIA H100, 81559', '0, GPU-a, NVIDIA H100, [N/A]', '0, , NVIDIA H100, 81559'])(
    'refuses %j naming the line',
    (line) => {
      expect(() => parseNvidiaSmiCsv(line)).toThrow(/nvidia-smi output line 1/);
    },
  );
});

describe('discoverGpus', () => {
  it('is null without nvidia-smi', async () => {
    expect(await discoverGpus({ bin: '/nonexistent/nvidia-smi' })).toBeNull();
  });

  it('parses what nvidia-smi prints', async () => {
    const bin = join(tempDir(), 'nvidia-smi');
    writeFileSync(bin, `#!/bin/sh\n[ "$1" = --query-gpu=index,uuid,name,memory.total ] || exit 9\nprintf '%s' '${H100_SMI}'\n`);
    chmodSync(bin, 0o755);
    expect((await discoverGpus({ bin }))!.map((g) => g.index)).toEqual([0, 1]);
  });

  it('throws with its message when nvidia-smi fails', async () => {
    const bin = join(tempDir(), 'nvidia-smi');
    writeFileSync(bin, `#!/bin/sh\necho "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2\nexit 9\n`);
    chmodSync(bin, 0o755);
    await expect(discoverGpus({ bin })).rejects.toThrow(/couldn't communicate with the NVIDIA driver/);
  });
});
