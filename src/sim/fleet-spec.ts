/**
 * The starting fleet of a simulation, written as `--fleet` takes it:
 *
 *   fast=20x8x80,flex=10x8x40          POOL=NODESxGPUSxVRAM_GB, comma-separated
 *   fast=20x8x80x128x1024              … with per-node CPU cores and RAM GB
 *
 * Each comma-separated part is one group of identical nodes. Pools are
 * `fast` and `flex` (any case in, lower case out); a pool may appear in
 * several groups (two node shapes). A group may have 0 nodes (a pool that
 * starts empty and only grows by autoscaling), but a spec has at least one
 * group. GPUs per node are 1–16, VRAM per GPU > 0 GB. Without CPU and RAM a
 * node has NODE_CPU_PER_GPU cores and NODE_RAM_GB_PER_GPU GB per GPU.
 * Whitespace around the parts is ignored; `x` may be upper case.
 */
import type { FleetGroup, Pool } from './types.ts';

export const DEFAULT_FLEET = 'fast=20x8x80,flex=10x8x40';
/** CPU cores per GPU of a node whose spec omits them (8 GPUs → 128 cores). */
export const NODE_CPU_PER_GPU = 16;
/** RAM GB per GPU of a node whose spec omits it (8 GPUs → 1024 GB). */
export const NODE_RAM_GB_PER_GPU = 128;
export const MAX_GPUS_PER_NODE = 16;

const FORM = 'POOL=NODESxGPUSxVRAM[xCPUxRAM], e.g. fast=20x8x80';

export class FleetSpecError extends Error {
  override name = 'FleetSpecError';
}

const NUM = String.raw`(\d+(?:\.\d+)?)`;
const X = String.raw`\s*[xX]\s*`;
const GROUP = new RegExp(
  String.raw`^([A-Za-z]+)\s*=\s*` + NUM + X + NUM + X + NUM + String.raw`(?:` + X + NUM + X + NUM + String.raw`)?$`,
);

export function parseFleet(spec: string): FleetGroup[] {
  if (spec.trim() === '') throw new FleetSpecError(`--fleet: empty; expected ${FORM}[,…]`);
  const groups: FleetGroup[] = [];
  for (const rawPart of spec.split(',')) {
    const part = rawPart.trim();
    if (part === '') throw new FleetSpecError(`--fleet: "${spec.trim()}" has an empty group; expected ${FORM}[,…]`);
    const m = GROUP.exec(part);
    if (!m) throw new FleetSpecError(`--fleet: "${part}" must be ${FORM}`);
    const bad = (what: string): never => {
      throw new FleetSpecError(`--fleet: "${part}": ${what} (form ${FORM})`);
    };
    const pool = m[1]!.toLowerCase();
    if (pool !== 'fast' && pool !== 'flex') bad(`pool must be fast or flex (got "${m[1]}")`);
    const nodes = Number(m[2]);
    if (!Number.isSafeInteger(nodes)) bad(`NODES must be a whole number ≥ 0 (got ${m[2]})`);
    const gpus = Number(m[3]);
    if (!Number.isInteger(gpus) || gpus < 1 || gpus > MAX_GPUS_PER_NODE) {
      bad(`GPUS per node must be a whole number 1–${MAX_GPUS_PER_NODE} (got ${m[3]})`);
    }
    const vram = Number(m[4]);
    if (!(vram > 0)) bad(`VRAM per GPU must be > 0 GB (got ${m[4]})`);
    let cpu = gpus * NODE_CPU_PER_GPU;
    let ram = gpus * NODE_RAM_GB_PER_GPU;
    if (m[5] !== undefined) {
      cpu = Number(m[5]);
      if (!(cpu > 0)) bad(`CPU cores per node must be > 0 (got ${m[5]})`);
      ram = Number(m[6]);
      if (!(ram > 0)) bad(`RAM per node must be > 0 GB (got ${m[6]})`);
    }
    groups.push({ pool: pool as Pool, nodes, gpusPerNode: gpus, vramGb: vram, cpuCores: cpu, ramGb: ram });
  }
  return groups;
}

/**
 * The canonical spec of `groups`: `fast=20x8x80,flex=10x8x40`, in the order
 * given; CPU and RAM only when they differ from the per-GPU defaults.
 * parseFleet(describeFleet(g)) equals g.
 */
export function describeFleet(groups: readonly FleetGroup[]): string {
  return groups
    .map((g) => {
      const base = `${g.pool}=${g.nodes}x${g.gpusPerNode}x${g.vramGb}`;
      const defaults = g.cpuCores === g.gpusPerNode * NODE_CPU_PER_GPU && g.ramGb === g.gpusPerNode * NODE_RAM_GB_PER_GPU;
      return defaults ? base : `${base}x${g.cpuCores}x${g.ramGb}`;
    })
    .join(',');
}

/** GPUs per pool (both pools present, 0 when a pool has none). */
export function fleetGpus(groups: readonly FleetGroup[]): Record<Pool, number> {
  const out: Record<Pool, number> = { fast: 0, flex: 0 };
  for (const g of groups) out[g.pool] += g.nodes * g.gpusPerNode;
  return out;
}
