import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FLEET,
  FleetSpecError,
  NODE_CPU_PER_GPU,
  NODE_RAM_GB_PER_GPU,
  describeFleet,
  fleetGpus,
  parseFleet,
} from '../../../src/sim/fleet-spec.ts';

describe('parseFleet', () => {
  it('reads the default fleet with per-GPU CPU and RAM defaults', () => {
    expect(NODE_CPU_PER_GPU).toBe(16);
    expect(NODE_RAM_GB_PER_GPU).toBe(128);
    expect(parseFleet(DEFAULT_FLEET)).toEqual([
      { pool: 'fast', nodes: 20, gpusPerNode: 8, vramGb: 80, cpuCores: 128, ramGb: 1024 },
      { pool: 'flex', nodes: 10, gpusPerNode: 8, vramGb: 40, cpuCores: 128, ramGb: 1024 },
    ]);
  });

  it('reads explicit CPU and RAM, any case, whitespace, repeated pools and zero nodes', () => {
    expect(parseFleet(' FAST = 2 X 4 X 24 x 32 x 256 ,  flex=0x8x80, Fast=1x1x16.5 ')).toEqual([
      { pool: 'fast', nodes: 2, gpusPerNode: 4, vramGb: 24, cpuCores: 32, ramGb: 256 },
      { pool: 'flex', nodes: 0, gpusPerNode: 8, vramGb: 80, cpuCores: 128, ramGb: 1024 },
      { pool: 'fast', nodes: 1, gpusPerNode: 1, vramGb: 16.5, cpuCores: 16, ramGb: 128 },
    ]);
  });

  it.each([
    ['fast=20x8', '--fleet: "fast=20x8" must be POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80'],
    ['fast=20x8x80x128', '--fleet: "fast=20x8x80x128" must be POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80'],
    ['fast:20x8x80', '--fleet: "fast:20x8x80" must be POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80'],
    ['fast=-1x8x80', '--fleet: "fast=-1x8x80" must be POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80'],
    ['gpu=20x8x80', '--fleet: "gpu=20x8x80": pool must be fast or flex (got "gpu") (form POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80)'],
    ['fast=1.5x8x80', '--fleet: "fast=1.5x8x80": NODES must be a whole number ≥ 0 (got 1.5) (form POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80)'],
    ['fast=2x0x80', '--fleet: "fast=2x0x80": GPUS per node must be a whole number 1–16 (got 0) (form POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80)'],
    ['fast=2x17x80', '--fleet: "fast=2x17x80": GPUS per node must be a whole number 1–16 (got 17) (form POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80)'],
    ['flex=2x8x0', '--fleet: "flex=2x8x0": VRAM per GPU must be > 0 GB (got 0) (form POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80)'],
    ['flex=2x8x40x0x10', '--fleet: "flex=2x8x40x0x10": CPU cores per node must be > 0 (got 0) (form POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80)'],
    ['flex=2x8x40x10x0', '--fleet: "flex=2x8x40x10x0": RAM per node must be > 0 GB (got 0) (form POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80)'],
    ['', '--fleet: empty; expected POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80[,…]'],
    ['fast=1x8x80,', '--fleet: "fast=1x8x80," has an empty group; expected POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80[,…]'],
  ])('rejects %j', (spec, message) => {
    expect(() => parseFleet(spec)).toThrow(FleetSpecError);
    expect(() => parseFleet(spec)).toThrow(message);
  });
});

describe('describeFleet and fleetGpus', () => {
  it('prints the canonical spec back, CPU and RAM only when not the defaults', () => {
    expect(describeFleet(parseFleet(DEFAULT_FLEET))).toBe(DEFAULT_FLEET);
    expect(describeFleet(parseFleet(' FLEX=3X8X40 , fast = 1x4x24x48x384'))).toBe('flex=3x8x40,fast=1x4x24x48x384');
    expect(describeFleet(parseFleet('fast=1x8x80x128x1024'))).toBe('fast=1x8x80');
  });

  it('round-trips', () => {
    for (const spec of ['fast=0x8x80', 'fast=2x4x24x48x384,fast=1x16x141,flex=5x1x16.5']) {
      const g = parseFleet(spec);
      expect(parseFleet(describeFleet(g))).toEqual(g);
    }
  });

  it('counts GPUs per pool', () => {
    expect(fleetGpus(parseFleet(DEFAULT_FLEET))).toEqual({ fast: 160, flex: 80 });
    expect(fleetGpus(parseFleet('fast=2x4x24,fast=1x8x80'))).toEqual({ fast: 16, flex: 0 });
    expect(fleetGpus(parseFleet('flex=0x8x80'))).toEqual({ fast: 0, flex: 0 });
  });
});
