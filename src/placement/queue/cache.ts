/**
 * Skipping the node scan for jobs that cannot fit (the v1 placeQueue idea).
 *
 * Within one pass capacity only shrinks: jobs are held, reservations and
 * victims are added, nothing is released. So a request that did not fit keeps
 * not fitting, and so does any request of the same tier that needs at least
 * as much in every dimension the filters read: GPUs, VRAM per GPU, CPU, RAM,
 * nodes (a gang) and expected duration (the reservation and block_time
 * filters reject longer jobs wherever they reject shorter ones).
 *
 * The cache keeps the exact shapes that failed, and per tier a frontier of
 * minimal failed shapes (none needing as much as another in every dimension),
 * bounded so that the dominance check stays cheap deep in a saturated queue.
 */
import type { Tier } from '../../domain/cluster.ts';
import type { JobRequest } from '../types.ts';

export interface Need {
  gpus: number;
  /** 0 when no GPU is asked for: VRAM per GPU then constrains nothing. */
  vram: number;
  cpu: number;
  ram: number;
  nodes: number;
  durationSec: number;
}

export const needOf = (job: JobRequest): Need => ({
  gpus: job.gpuCount,
  vram: job.gpuCount > 0 ? job.vramPerGpuGb : 0,
  cpu: job.cpuCores,
  ram: job.ramGb,
  nodes: job.nodeCount,
  durationSec: job.expectedDurationSec,
});

/** `a` needs at least as much as `b` everywhere, so it fails wherever `b` fails. */
export const covers = (a: Need, b: Need): boolean =>
  a.gpus >= b.gpus &&
  a.vram >= b.vram &&
  a.cpu >= b.cpu &&
  a.ram >= b.ram &&
  a.nodes >= b.nodes &&
  a.durationSec >= b.durationSec;

const keyOf = (tier: Tier, n: Need): string => `${tier}|${n.gpus}|${n.vram}|${n.cpu}|${n.ram}|${n.nodes}|${n.durationSec}`;

/** Past this many minimal shapes per tier, new failures only enter the exact cache. */
export const MAX_FRONTIER = 256;

export class FailureCache<T> {
  #exact = new Map<string, T>();
  #frontier: Record<Tier, { need: Need; value: T }[]> = { FAST: [], FLEX: [] };

  /** What a failed shape the job covers recorded; `exact` when the shape is the job's own. */
  get(job: JobRequest): { value: T; exact: boolean } | undefined {
    const need = needOf(job);
    const hit = this.#exact.get(keyOf(job.tier, need));
    if (hit !== undefined) return { value: hit, exact: true };
    const f = this.#frontier[job.tier].find((x) => covers(need, x.need));
    return f && { value: f.value, exact: false };
  }

  add(job: JobRequest, value: T): void {
    const need = needOf(job);
    this.#exact.set(keyOf(job.tier, need), value);
    const list = this.#frontier[job.tier].filter((x) => !covers(x.need, need));
    if (list.length < MAX_FRONTIER) list.push({ need, value });
    this.#frontier[job.tier] = list;
  }

  clear(): void {
    this.#exact.clear();
    this.#frontier = { FAST: [], FLEX: [] };
  }
}
